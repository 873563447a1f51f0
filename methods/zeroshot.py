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
        # ensemble=False: CoOp's zsclip.py, single CUSTOM_TEMPLATES prompt; True: ZeroshotCLIP2, the mean of the
        # normalised text features of the 7 selected ImageNet templates plus, except on ImageNet, the dataset's own
        # (own_template; decided by the training dataset, so a DG evaluation of an ImageNet run uses the 7 alone).
        return {"method": {"ensemble": False, "own_template": dataset != "imagenet"}}

    def templates(self) -> list[str]:
        """The templates whose text features are averaged into each class's classifier weight."""
        if not self.cfg["method"]["ensemble"]:
            return [self.template]
        own = [self.template] if self.cfg["method"].get("own_template", True) else []
        return [*IMAGENET_TEMPLATES_SELECT, *own]

    @torch.no_grad()
    def zero_shot_text_features(self) -> Tensor:
        if not self.cfg["method"]["ensemble"]:
            return super().zero_shot_text_features()
        templates = self.templates()
        tok = self.backbone.tokenize
        feats = torch.stack(
            [normalize(self.backbone.encode_text(tok([t.format(c) for c in self.classnames]))) for t in templates]
        )
        return normalize(feats.mean(0))
