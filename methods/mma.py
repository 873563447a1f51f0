"""MMA — Multi-Modal Adapter (Yang et al., CVPR 2024; ZjjConan/Multi-Modal-Adapter), RMAdapter's direct baseline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from bench.config import Range, dassl_sgd
from bench.model.adapters import MultiModalAdapter, Tap, layer_range
from bench.model.backbone import Backbone
from bench.model.method import Method
from bench.registry import register_method

# MMA's TEXT_CTX_INIT + " " + classname + ".": one fixed prompt for every dataset (trainers/mmadapter.py).
MMA_TEMPLATE = "a photo of a {}."


def mma_config(protocol: str, dataset: str) -> dict[str, Any]:
    """MMA's published settings, shared by RMAdapter (which says it follows MMA's hyper-parameters)."""
    xd = protocol in ("cross_dataset", "domain_generalization")
    method = {
        # configs/trainers/MultiModalAdapter/vit_b16_ep5.yaml: ADAPTER_START 5, ADAPTER_END 12 (1-indexed blocks).
        # Cross-dataset / DG: no config ships; the paper (quoted in VLM-MultiModalAdapter issue #3) says "similar to
        # MaPLe, we set k = 9 and train our models just for 1 epoch".
        "adapter_start": 9 if xd else 5,
        "adapter_end": 12,
        "adapter_dim": 32,  # ADAPTER_DIM 32
        "adapter_scale": 0.001,  # ADAPTER_SCALE 0.001 (code default 0.1 is overridden by the yaml)
        "grad_scale": True,  # clip/gsl.py gradient-scale layers around the adapter
        "activation": "relu",  # _build_adapter: nn.ReLU after down and shared
        "template": MMA_TEMPLATE,
    }
    # OPTIM.LR 0.0015, MAX_EPOCH 5 (1 for xd/DG: paper, issue #3), WARMUP_EPOCH 0, PREC amp; batch 16, or 128 on
    # ImageNet (vit_b16_ep5.yaml / vit_b16_ep5_imnet.yaml).
    train = dassl_sgd(0.0015, 1 if xd else 5, 128 if dataset == "imagenet" else 16, warmup_epochs=0, precision="amp")
    return {"method": method, "train": train}


@register_method("mma")
class MMA(Method):
    """Multi-Modal Adapter: bottleneck adapters parallel to upper blocks of both towers with a shared cross-modal layer.

    Per adapted block ``ℓ``: ``x_out = block(x) + α·up_m(shared_ℓ(down_m(ln_1(x))))`` for each tower ``m``; α = 0.001
    with the gradient-scale trick, so the adapters learn as if α were 1. Text prompts are fixed to
    "a photo of a {class}." for every dataset (no learnable context).
    """

    official_precision: ClassVar[str | None] = "amp"  # configs/trainers/MultiModalAdapter/*.yaml: PREC amp

    option_ranges: ClassVar[dict[str, Range]] = {
        "adapter_dim": Range(1, what="the adapter width"),
        "adapter_start": Range(1, what="the first adapted block (1-based)"),
        "adapter_end": Range(1, what="the last adapted block (1-based)"),
    }

    @classmethod
    def default_config(cls, protocol: str, dataset: str) -> dict[str, Any]:
        return mma_config(protocol, dataset)

    @classmethod
    def tiny_options(cls, depth: int) -> dict[str, Any]:
        return {"adapter_start": max(1, depth // 2), "adapter_end": depth, "adapter_dim": 8}  # the upper half

    def __init__(self, backbone: Backbone, cfg: dict[str, Any], n_cls: int = 0) -> None:
        super().__init__(backbone, cfg, n_cls)
        m = cfg["method"]
        layers = layer_range(m["adapter_start"], m["adapter_end"], backbone.depth)
        self.adapter = MultiModalAdapter(
            backbone, layers, m["adapter_dim"], m["adapter_scale"], m["activation"], m["grad_scale"],
            shared_layer=self.cross_modal_layer(),
        )  # fmt: skip
        self.register_buffer("token_ids", torch.zeros(0, dtype=torch.long), persistent=False)

    def cross_modal_layer(self) -> bool:
        """Whether each adapted block keeps MMA's shared r×r layer between the towers (always, in MMA)."""
        return True

    def set_classnames(self, classnames: Sequence[str], template: str = MMA_TEMPLATE, dataset: str = "") -> None:
        super().set_classnames(
            classnames, self.cfg["method"]["template"], dataset
        )  # MMA ignores the dataset's template
        self.token_ids = self.backbone.tokenize(self.prompts())

    def encode_text_adapted(self, taps: list[Tap] | None = None, full_length: bool = False) -> Tensor:
        fn = self.adapter.block_fn("text", taps)
        return self.backbone.encode_text(self.token_ids, block_fn=fn, full_length=full_length)

    def encode_image_adapted(
        self, images: Tensor | None, taps: list[Tap] | None = None, tokens: Tensor | None = None
    ) -> Tensor:
        """Adapted image features; ``tokens`` (from :meth:`frozen_prefix`) skips the blocks below the first adapter."""
        fn = self.adapter.block_fn("visual", taps)
        if tokens is None:
            return self.backbone.encode_image(images, block_fn=fn)
        return self.backbone.encode_image_from(tokens, self.adapter.layers[0], block_fn=fn)

    @torch.no_grad()
    def frozen_prefix(self, images: Tensor) -> Tensor:
        """The tokens entering the first adapted block: the same for the adapted and the frozen image pass."""
        return self.backbone.image_tokens(images, upto=self.adapter.layers[0])

    def compute_text_features(self) -> Tensor:
        return self.encode_text_adapted()

    def encode_image(self, images: Tensor) -> Tensor:
        return self.encode_image_adapted(images)
