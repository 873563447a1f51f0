"""CLIP-Adapter (Gao et al., IJCV 2023; gaopengcuhk/CLIP-Adapter:clip_adapter.py): a residual MLP on CLIP features."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from bench.config import Range
from bench.model.adapters import BottleneckAdapter, residual_blend
from bench.model.backbone import Backbone
from bench.model.method import Method
from bench.registry import register_method

from .coop import CoOp


@register_method("clip_adapter")
class CLIPAdapter(Method):
    """Visual adapter ``f ← 0.2·A(f) + 0.8·f`` on frozen image features; text from the dataset's single prompt.

    ``A`` is ``Linear(d, d/4) → ReLU → Linear(d/4, d) → ReLU`` without biases (the repo hard-codes d = 1024 for RN50;
    here d is the backbone's embedding size, 512 for ViT-B/16). ``text_adapter`` adds the paper's optional adapter on
    the text features (the released code, and the paper's default, is visual only).
    """

    frozen_image_encoder: ClassVar[bool] = True

    official_precision: ClassVar[str | None] = "fp32"  # clip_adapter.py: clip_model.float() before building

    option_ranges: ClassVar[dict[str, Range]] = {
        "reduction": Range(1, what="the bottleneck reduction"),
        "ratio": Range(0, 1, "the residual ratio"),
    }

    @classmethod
    def default_config(cls, protocol: str, dataset: str) -> dict[str, Any]:
        # clip_adapter.py: reduction 4, ratio 0.2 hard-coded; visual adapter only.
        method = {"reduction": 4, "ratio": 0.2, "visual_adapter": True, "text_adapter": False}
        # No config ships; the README says to run it with CoOp's commands, so CoOp's training schedule is used.
        return {"method": method, "train": CoOp.default_config(protocol, dataset)["train"]}

    def __init__(self, backbone: Backbone, cfg: dict[str, Any], n_cls: int = 0) -> None:
        super().__init__(backbone, cfg, n_cls)
        m = cfg["method"]
        d = backbone.embed_dim
        self.visual_adapter = BottleneckAdapter(d, m["reduction"]) if m["visual_adapter"] else None
        self.text_adapter = BottleneckAdapter(d, m["reduction"]) if m["text_adapter"] else None

    def compute_text_features(self) -> Tensor:
        text = self.frozen_text_features().float()  # the text encoder is frozen: encoded once per class list
        if self.text_adapter is not None:
            text = residual_blend(text, self.text_adapter, self.cfg["method"]["ratio"])
        return text

    def logits_from_features(self, image_features: Tensor, text: Tensor | None = None) -> Tensor:
        f = image_features.float()
        if self.visual_adapter is not None:
            f = residual_blend(f, self.visual_adapter, self.cfg["method"]["ratio"])
        return super().logits_from_features(f, text)
