"""CoOp (Zhou et al., IJCV 2022): learnable context vectors in the text prompt, everything else frozen."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from torch import Tensor

from bench.config import Range, dassl_sgd
from bench.model.backbone import Backbone
from bench.model.method import Method
from bench.model.prompts import PromptedText
from bench.registry import register_method


@register_method("coop")
class CoOp(Method):
    """Context Optimization: ``n_ctx`` shared (or class-specific) context tokens learned by cross-entropy."""

    frozen_image_encoder: ClassVar[bool] = True
    # configs: PREC fp16 (train.py extend_cfg); CoCoOp and KgCoOp inherit it
    official_precision: ClassVar[str | None] = "fp16"

    option_ranges: ClassVar[dict[str, Range]] = {"n_ctx": Range(1, what="context tokens")}

    @classmethod
    def default_config(cls, protocol: str, dataset: str) -> dict[str, Any]:
        imagenet = dataset == "imagenet"
        if protocol == "domain_generalization" or protocol == "few_shot":
            # IJCV scripts (scripts/coop/main.sh, eval.sh; configs vit_b16*.yaml): M=16 random-init context,
            # 200 epochs (50 on ImageNet; COOP.md: 1-shot 50, 2/4-shot 100).
            method = {"n_ctx": 16, "ctx_init": "", "class_token_position": "end", "csc": False}
            epochs = 50 if imagenet else 200
        else:
            # CoCoOp's CoOp baseline (scripts/cocoop/base2new_train.sh comments, vit_b16_ctxv1.yaml /
            # vit_b16_ep50_ctxv1.yaml): 4 tokens initialised "a photo of a", 200 epochs, 50 on ImageNet.
            method = {"n_ctx": 4, "ctx_init": "a photo of a", "class_token_position": "end", "csc": False}
            epochs = 50 if imagenet else 200
        # Dassl: SGD 0.002, batch 32, cosine, 1 warm-up epoch at constant 1e-5.
        return {"method": method, "train": dassl_sgd(0.002, epochs, 32)}

    def __init__(self, backbone: Backbone, cfg: dict[str, Any], n_cls: int = 0) -> None:
        super().__init__(backbone, cfg, n_cls)
        m = cfg["method"]
        init = m["ctx_init"] or None
        n_ctx = len(init.split()) if init else m["n_ctx"]  # CoOp: an initialisation fixes n_ctx to its word count
        self.prompt = PromptedText(backbone, n_ctx, init, m["class_token_position"], m["csc"], n_cls)

    def set_classnames(self, classnames: Sequence[str], template: str = "a photo of a {}.", dataset: str = "") -> None:
        super().set_classnames(classnames, template, dataset)
        self.prompt.set_classnames(classnames)

    def compute_text_features(self) -> Tensor:
        return self.backbone.encode_text(self.prompt.token_ids, embeddings=self.prompt.embeddings())
