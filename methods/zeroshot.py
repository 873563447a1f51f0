"""Zero-shot CLIP: one hand-crafted prompt per class (CoOp's ``ZeroshotCLIP``), optionally a template ensemble."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from bench.errors import ConfigError
from bench.model.backbone import Backbone, normalize
from bench.model.method import Method
from bench.model.templates import IMAGENET_FAMILY, IMAGENET_TEMPLATES_SELECT  # CoOp's trainers/imagenet_templates.py
from bench.registry import register_method

ENSEMBLES = ("none", "imagenet", "all")


@register_method("zeroshot")
class ZeroShotCLIP(Method):
    """CLIP with the dataset's prompt template and nothing trained (the reference row of every table).

    Every template choice follows the evaluated dataset, as the official code does (zsclip.py builds the classifier
    from ``cfg.DATASET.NAME``, the dataset being evaluated; Tip-Adapter's main.py from ``dataset.template``).
    """

    frozen_image_encoder: ClassVar[bool] = True
    trains: ClassVar[bool] = False
    # zsclip.py: CLIP as loaded, fp16 weights (Tip-Adapter's clip.load too)
    official_precision: ClassVar[str | None] = "fp16"
    # own_template came after the first records; True is what they did (False on ImageNet changes results: hashed)
    hash_neutral: ClassVar[dict[tuple[str, str], Any]] = {("method", "own_template"): True}

    @classmethod
    def default_config(cls, protocol: str, dataset: str) -> dict[str, Any]:
        # ensemble: none = CoOp's zsclip.py ZeroshotCLIP, the dataset's single CUSTOM_TEMPLATES prompt; all =
        # ZeroshotCLIP2, the mean of the normalised text features of the 7 selected ImageNet templates plus, except on
        # ImageNet itself (own_template), the dataset's own; imagenet = the 7 on ImageNet and its four shifted test
        # sets only, the dataset's own elsewhere (Tip-Adapter: main_imagenet.py vs main.py).
        return {"method": {"ensemble": "none", "own_template": True}}

    def __init__(self, backbone: Backbone, cfg: dict[str, Any], n_cls: int = 0) -> None:
        super().__init__(backbone, cfg, n_cls)
        self.ensemble = ensemble_choice(cfg["method"]["ensemble"])

    def templates(self) -> list[str]:
        """The templates whose text features are averaged into each class's classifier weight."""
        in_family = self.dataset in IMAGENET_FAMILY
        if self.ensemble == "none" or (self.ensemble == "imagenet" and not in_family):
            return [self.template]
        own = [self.template] if self.cfg["method"]["own_template"] and self.dataset != "imagenet" else []
        return [*IMAGENET_TEMPLATES_SELECT, *own]

    @torch.no_grad()
    def zero_shot_text_features(self) -> Tensor:
        templates = self.templates()
        if len(templates) == 1:
            return self.encode_template(templates[0])
        return normalize(torch.stack([normalize(self.encode_template(t)) for t in templates]).mean(0))


def ensemble_choice(value: Any) -> str:
    """``method.ensemble`` as one of :data:`ENSEMBLES` (``true``/``false`` from earlier versions mean all/none)."""
    word = str(value).lower()
    word = {"true": "all", "false": "none"}.get(word, word)
    if word not in ENSEMBLES:
        raise ConfigError(f"method.ensemble={value!r}: use one of {', '.join(ENSEMBLES)}")
    return word
