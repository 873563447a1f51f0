"""CoPrompt — Consistency-guided Prompt learning (Roy & Etemad, ICLR 2024; ShuvenduRoy/CoPrompt
``trainers/coprompt.py``, ``trainers/constants.py``).

MaPLe's multi-modal prompts, plus a bottleneck adapter on each tower's output feature
(``f ← 0.1·A(f) + 0.9·f`` for images, ``0.2 / 0.8`` for text), plus consistency with frozen CLIP on two fronts:
``1 − mean cos`` between the adapted text features and frozen CLIP's features of one randomly drawn LLM description
per class (the same draw for every class in a step), and between the adapted feature of one augmented view and frozen
CLIP's feature of a second view. Loss = CE + λ·(text term + image term).

The LLM descriptions are the user's files, never shipped: CoPrompt's ``gpt_file/<name>_prompt.json`` (a JSON object
``{"class name": ["sentence", ...], ...}``, the same number of sentences per class) — download them from the CoPrompt
repository and pass ``--cfg-options method.descriptions=PATH`` (default: ``gpt_file/<name>_prompt.json`` under the
current directory, as the official code reads them). ``method.descriptions=templates`` uses the 60 OpenAI ImageNet
templates instead (the toy suite does: it has no LLM descriptions); results are then *not* CoPrompt's.

Following the code: depth, context length and λ are per dataset (``constants.py``, Food-101 trains 5 epochs), the
hand-written template features it computes are unused, and both views go through RandAugment(2, 10) after a
224×224 resize (torchvision's RandAugment here, Dassl's own op list there).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.config import Range, dassl_sgd
from bench.errors import ConfigError
from bench.model.adapters import BottleneckAdapter, residual_blend
from bench.model.backbone import Backbone, normalize
from bench.model.losses import consistency_loss
from bench.model.method import Batch
from bench.model.templates import OPENAI_IMAGENET_TEMPLATES
from bench.registry import register_method

from .maple import MaPLe

# trainers/constants.py: dataset -> (prompt depth, n_ctx, λ); the yaml default (depth 9, 2 tokens, λ 1) otherwise.
SETTINGS = {
    "imagenet": (12, 4, 8.0), "caltech101": (12, 4, 4.0), "oxford_pets": (12, 2, 0.1), "stanford_cars": (12, 4, 4.0),
    "oxford_flowers": (9, 4, 8.0), "food101": (9, 4, 0.5), "fgvc_aircraft": (9, 4, 2.0), "sun397": (12, 4, 8.0),
    "dtd": (12, 2, 8.0), "eurosat": (12, 2, 0.1), "ucf101": (12, 4, 2.0),
}  # fmt: skip
# trainers/coprompt.py dataset_name_mapping: the file stem of each dataset's descriptions.
FILES = {
    "imagenet": "imagenet", "caltech101": "caltech", "oxford_pets": "oxford_pets", "stanford_cars": "stanford_cars",
    "oxford_flowers": "oxford_flowers", "food101": "food101", "fgvc_aircraft": "fgvc", "sun397": "sun397",
    "dtd": "dtd", "eurosat": "eurosat", "ucf101": "ucf101", "imagenetv2": "imagenetv2",
    "imagenet_sketch": "imagenet_sketch", "imagenet_a": "imagenet_a", "imagenet_r": "imagenet_r",
}  # fmt: skip


@register_method("coprompt")
class CoPrompt(MaPLe):
    """MaPLe prompts + output adapters, kept consistent with frozen CLIP on LLM descriptions and a second view."""

    option_ranges: ClassVar[dict[str, Range]] = {
        **MaPLe.option_ranges,
        "reduction": Range(1, what="the adapters' reduction"),
        "image_ratio": Range(0, 1, "the image adapter's ratio"),
        "text_ratio": Range(0, 1, "the text adapter's ratio"),
    }

    @classmethod
    def default_config(cls, protocol: str, dataset: str) -> dict[str, Any]:
        # configs/trainers/coprompt.yaml: SGD 0.0035, batch 4, 8 epochs, cosine, 1 warm-up epoch at 1e-5, fp16,
        # K_TRANSFORMS 2 with ["randaugment", "normalize"]; constants.py per dataset. B2N scripts only: cross-dataset
        # and DG use the same settings (ImageNet's when trained on it).
        depth, n_ctx, weight = SETTINGS.get(dataset, (9, 2, 1.0))
        file = FILES.get(dataset)
        method = {"n_ctx": n_ctx, "ctx_init": "a photo of a", "prompt_depth": depth, "image_ratio": 0.1,
                  "text_ratio": 0.2, "reduction": 4, "consistency_weight": weight,
                  "descriptions": f"gpt_file/{file}_prompt.json" if file else "templates"}  # fmt: skip
        train = dassl_sgd(0.0035, 5 if dataset == "food101" else 8, 4, precision="amp", augment="randaugment", views=2)
        return {"method": method, "train": train}

    @classmethod
    def tiny_options(cls, depth: int) -> dict[str, Any]:
        return {**super().tiny_options(depth), "descriptions": "templates"}  # no LLM descriptions offline

    def __init__(self, backbone: Backbone, cfg: dict[str, Any], n_cls: int = 0) -> None:
        super().__init__(backbone, cfg, n_cls)
        m = cfg["method"]
        self.adapter_image = BottleneckAdapter(backbone.embed_dim, m["reduction"])
        self.adapter_text = BottleneckAdapter(backbone.embed_dim, m["reduction"])
        self._descriptions: Tensor | None = None  # (sentences, classes, D) of the training classes

    def compute_text_features(self) -> Tensor:
        return residual_blend(super().compute_text_features(), self.adapter_text, self.cfg["method"]["text_ratio"])

    def encode_image(self, images: Tensor) -> Tensor:
        return residual_blend(super().encode_image(images), self.adapter_image, self.cfg["method"]["image_ratio"])

    @torch.no_grad()
    def description_features(self) -> Tensor:
        """Frozen CLIP's normalised features of every description of every class: (sentences, classes, D)."""
        if self._descriptions is None:
            self._descriptions = torch.stack([normalize(self.backbone.encode_text(self.backbone.tokenize(s)))
                                              for s in self._sentences()], dim=1)  # fmt: skip
        return self._descriptions

    def _sentences(self) -> list[list[str]]:
        source = self.cfg["method"]["descriptions"]
        if source == "templates":
            return [[t.format(c) for t in OPENAI_IMAGENET_TEMPLATES] for c in self.classnames]
        path = Path(source).expanduser()
        table = read_descriptions(path)
        missing = [c for c in self.classnames if c not in table]
        if missing:
            raise ConfigError(f"{path} has no descriptions for {', '.join(missing[:5])}; is it this dataset's file?")
        counts = {len(table[c]) for c in self.classnames}
        if len(counts) != 1:
            raise ConfigError(f"{path}: every class needs the same number of descriptions (found {sorted(counts)})")
        return [table[c] for c in self.classnames]

    @classmethod
    def check_config(cls, cfg: dict[str, Any]) -> None:
        source = cfg["method"]["descriptions"]
        if source != "templates":
            read_descriptions(Path(source).expanduser())

    def set_classnames(self, classnames: list[str], template: str = "a photo of a {}.", dataset: str = "") -> None:
        super().set_classnames(classnames, template, dataset)
        self._descriptions = None

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        image, text = self.encode_image(batch.images), self.compute_text_features()
        logits = self.backbone.logit_scale() * normalize(image) @ normalize(text).t()
        terms = {"ce": F.cross_entropy(logits, batch.labels)}
        weight = self.cfg["method"]["consistency_weight"]
        if weight:
            descriptions = self.description_features()
            target = descriptions[int(torch.randint(len(descriptions), ()))]  # one draw for every class
            second = batch.images if batch.images2 is None else batch.images2
            with torch.no_grad():
                frozen_image = self.backbone.encode_image(second)
            terms["con_text"] = weight * consistency_loss(text, target, "cosine")
            terms["con_image"] = weight * consistency_loss(image, frozen_image, "cosine")
        return terms


def read_descriptions(path: Path) -> dict[str, list[str]]:
    """A ``gpt_file/*_prompt.json``: class name → its LLM descriptions; anything else is one error naming the file."""
    fix = ("download gpt_file/*_prompt.json from github.com/ShuvenduRoy/CoPrompt and pass --cfg-options "
           "method.descriptions=PATH (or method.descriptions=templates to run without them, which is not CoPrompt's "
           "setting)")  # fmt: skip
    if not path.is_file():
        raise ConfigError(
            f"CoPrompt's class descriptions {path} {'is a folder' if path.is_dir() else 'not found'}: {fix}"
        )
    try:
        table = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"CoPrompt's class descriptions {path} are not valid JSON ({e}): {fix}") from None
    if (
        not isinstance(table, dict)
        or not table
        or not all(isinstance(v, list) and v and all(isinstance(x, str) for x in v) for v in table.values())
    ):
        raise ConfigError(f"CoPrompt's class descriptions {path}: expected {{class name: [sentence, ...]}}: {fix}")
    return table
