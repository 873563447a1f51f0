"""CoCoOp (Zhou et al., CVPR 2022; KaiyangZhou/CoOp ``trainers/cocoop.py``): CoOp's context plus a per-image shift.

A meta-net ``Linear(D, D/16) → ReLU → Linear(D/16, width)`` maps the L2-normalised image feature to one vector that is
added to every context token, so each image gets its own prompts: training and evaluation run the text encoder once
per image and class (batch × classes sequences), which is why the paper trains with batch 1.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from bench.config import Range, dassl_sgd
from bench.model.backbone import Backbone, normalize
from bench.registry import register_method

from .coop import CoOp

TEXT_SEQUENCES = 1024  # text-encoder batch limit (images x classes) per call


@register_method("cocoop")
class CoCoOp(CoOp):
    """Conditional CoOp: 4 context tokens ("a photo of a") shifted per image by a small meta-net on its feature."""

    option_ranges: ClassVar[dict[str, Range]] = {
        **CoOp.option_ranges,
        "meta_reduction": Range(1, what="the meta-net's reduction"),
    }

    @classmethod
    def default_config(cls, protocol: str, dataset: str) -> dict[str, Any]:
        # configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml, used by every script (base2new_*.sh, xd_*.sh):
        # 4 tokens from "a photo of a", SGD 0.002, batch 1, 10 epochs, cosine, 1 warm-up epoch at 1e-5, fp16.
        # No ImageNet-specific setting and no few-shot script: the same config everywhere.
        method = {"n_ctx": 4, "ctx_init": "a photo of a", "class_token_position": "end", "csc": False,
                  "meta_reduction": 16}  # fmt: skip
        return {"method": method, "train": dassl_sgd(0.002, 10, 1, precision="amp")}

    def __init__(self, backbone: Backbone, cfg: dict[str, Any], n_cls: int = 0) -> None:
        super().__init__(backbone, cfg, n_cls)
        d, hidden = backbone.embed_dim, backbone.embed_dim // cfg["method"]["meta_reduction"]
        self.meta_net = nn.Sequential(
            OrderedDict(
                [("linear1", nn.Linear(d, hidden)), ("relu", nn.ReLU(inplace=True)),
                 ("linear2", nn.Linear(hidden, backbone.text_width))]
            )
        )  # fmt: skip

    def logits_from_features(self, image_features: Tensor, text: Tensor | None = None) -> Tensor:
        """Per-image prompts: ``text`` cannot be shared across images, so it is ignored.

        The text encoder sees at most ``TEXT_SEQUENCES`` sequences per call (whole images' class lists): at ImageNet's
        1,000 classes an evaluation batch of 256 images would otherwise be 256,000 sequences at once (tens of GB).
        Each sequence is encoded on its own either way, so the chunks change no result.
        """
        rows = max(1, TEXT_SEQUENCES // max(1, len(self.classnames)))
        return torch.cat([self._logits(f) for f in image_features.split(rows)])

    def _logits(self, image_features: Tensor) -> Tensor:
        f = normalize(image_features)
        prompts = self.prompt.embeddings(shift=self.meta_net(f.to(self.prompt.ctx.dtype)))  # (B, C, L, width)
        b, c = prompts.shape[:2]
        ids = self.prompt.token_ids.repeat(b, 1)
        text = self.backbone.encode_text(ids, embeddings=prompts.flatten(0, 1)).view(b, c, -1)
        return self.backbone.logit_scale() * torch.einsum("bd,bcd->bc", f, normalize(text))
