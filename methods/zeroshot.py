"""Zero-shot CLIP: one hand-crafted prompt per class (CoOp's ``ZeroshotCLIP``), optionally a template ensemble."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from bench.model.backbone import normalize
from bench.model.method import Method
from bench.model.templates import IMAGENET_TEMPLATES_SELECT  # CoOp's trainers/imagenet_templates.py
from bench.registry import register_method


@register_method("zeroshot")
class ZeroShotCLIP(Method):
    """CLIP with the dataset's prompt template and nothing trained (the reference row of every table)."""

    frozen_image_encoder: ClassVar[bool] = True
    trains: ClassVar[bool] = False

    @classmethod
    def default_config(cls, protocol: str, dataset: str) -> dict[str, Any]:
        # ensemble=False: CoOp's zsclip.py, single CUSTOM_TEMPLATES prompt; True: ZeroshotCLIP2 (7 templates + the
        # dataset's own), mean of normalised text features.
        return {"method": {"ensemble": False}}

    @torch.no_grad()
    def zero_shot_text_features(self) -> Tensor:
        if not self.cfg["method"]["ensemble"]:
            return super().zero_shot_text_features()
        templates = [*IMAGENET_TEMPLATES_SELECT, self.template]
        tok = self.backbone.tokenize
        feats = torch.stack(
            [normalize(self.backbone.encode_text(tok([t.format(c) for c in self.classnames]))) for t in templates]
        )
        return normalize(feats.mean(0))
