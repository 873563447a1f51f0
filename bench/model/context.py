"""What a method sees while fitting (:class:`FitContext`) and how any method is evaluated (:func:`evaluate`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor

from bench.data.caches import Caches, Normalizer
from bench.data.dataset import Datum
from bench.errors import BenchError
from bench.model.backbone import Backbone
from bench.precision import autocast


class Classifier(Protocol):
    """What :func:`evaluate` uses of a :class:`~bench.model.method.Method`. A protocol, not the class: the method module
    imports this one (its hooks receive a :class:`FitContext`), so this one must not import it back."""

    name: ClassVar[str]
    frozen_image_encoder: ClassVar[bool]

    def __call__(self, images: Tensor | None = None, features: Tensor | None = None) -> Tensor: ...

    def set_classnames(self, classnames: Sequence[str], template: str, dataset: str) -> None: ...

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...


@dataclass
class FitContext:
    """What a method may use while fitting: the few-shot train/val sets and cached frozen features. Never test."""

    backbone: Backbone
    device: torch.device
    dataset: str
    train: list[Datum]
    val: list[Datum]
    classnames: list[str]
    template: str
    seed: int
    caches: Caches
    eval_batch_size: int = 256
    info: dict[str, Any] = field(default_factory=dict)  # methods may report choices here (e.g. Tip's alpha/beta)
    role: str = ""  # the real dataset ``dataset`` plays (itself on the real benchmark): per-dataset templates

    def features(
        self,
        items: Sequence[Datum],
        augment: str | None = None,
        passes: int = 1,
        scale_min: float = 0.08,
        first: int = 0,
        build_only: bool = False,
    ) -> list[Tensor]:
        """Frozen image features of ``items`` (test preprocessing, or augmented passes ``first .. first + passes - 1``
        with RandomResizedCrop scale ``(scale_min, 1)``; ``build_only``: cache them, return nothing)."""
        return self.caches.features(self.backbone, items, self.device, augment, passes, self.seed, scale_min,
                                    first=first, build_only=build_only)  # fmt: skip

    def labels(self, items: Sequence[Datum]) -> Tensor:
        return torch.tensor([d.label for d in items], dtype=torch.long)

    def evaluate(self, method: Classifier, items: Sequence[Datum]) -> float:
        """Accuracy of ``method`` on ``items`` (validation only: the harness never hands test items to a method)."""
        acc, _ = evaluate(method, items, self.classnames, self.template, self.backbone, self.device, self.caches,
                          self.eval_batch_size, dataset=self.role)  # fmt: skip
        method.train()
        return acc


@torch.inference_mode()
def evaluate(
    method: Classifier,
    items: Sequence[Datum],
    classnames: Sequence[str],
    template: str,
    backbone: Backbone,
    device: torch.device,
    caches: Caches,
    batch_size: int = 256,
    precision: str = "amp",
    dataset: str = "",
) -> tuple[float, list[float]]:
    """Accuracy (%) and per-class accuracy of ``method`` on ``items`` labelled 0..len(classnames)-1 of ``dataset``
    (its role: per-dataset templates follow the evaluated dataset, see :meth:`Method.set_classnames`)."""
    method.set_classnames(classnames, template, dataset)
    method.eval()
    labels = torch.tensor([d.label for d in items], device=device)
    preds = []
    with autocast(device, precision):
        if method.frozen_image_encoder:
            feats = caches.features(backbone, items, device)[0]
            for i in range(0, len(feats), batch_size):
                preds.append(_checked(method(features=feats[i : i + batch_size].to(device)), method, classnames))
        else:
            norm = Normalizer(backbone, device)
            for x in caches.images(items, backbone.image_size).batches(batch_size):  # one batch in memory
                preds.append(_checked(method(images=norm(x)), method, classnames))
    correct = (torch.cat(preds) == labels).float()
    n = len(classnames)
    per_class = torch.zeros(n, device=device).index_add_(0, labels, correct)
    counts = torch.bincount(labels, minlength=n).clamp(min=1)
    return 100.0 * correct.mean().item(), (100.0 * per_class / counts).tolist()


def _checked(logits: Tensor, method: Classifier, classnames: Sequence[str]) -> Tensor:
    """The predicted class of each row, once the logits are known to score exactly the evaluated classes: a method
    that kept its training head (a base-class probe evaluated on novel classes) is an error, not a number."""
    if logits.dim() != 2 or logits.shape[1] != len(classnames):
        raise BenchError(
            f"method {method.name or type(method).__qualname__!r}: its logits have shape {tuple(logits.shape)} on "
            f"{len(classnames)} classes; a method must score exactly the classes set by set_classnames (base, novel or "
            "another dataset's)"
        )
    return logits.argmax(-1)
