"""What a method sees while fitting (:class:`FitContext`) and how any method is evaluated (:func:`evaluate`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from bench.data.caches import Caches, Normalizer, autocast
from bench.datasets.base import Datum
from bench.model.backbone import Backbone
from bench.model.method import Method


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

    def features(
        self, items: Sequence[Datum], augment: str | None = None, passes: int = 1, scale_min: float = 0.08
    ) -> list[Tensor]:
        """Frozen image features of ``items`` (test preprocessing, or ``passes`` augmented passes with
        RandomResizedCrop scale ``(scale_min, 1)``)."""
        return self.caches.features(self.backbone, items, self.device, augment, passes, self.seed, scale_min)

    def labels(self, items: Sequence[Datum]) -> Tensor:
        return torch.tensor([d.label for d in items], dtype=torch.long)

    def evaluate(self, method: Method, items: Sequence[Datum]) -> float:
        """Accuracy of ``method`` on ``items`` (validation only: the harness never hands test items to a method)."""
        acc, _ = evaluate(method, items, self.classnames, self.template, self.backbone, self.device, self.caches,
                          self.eval_batch_size)  # fmt: skip
        method.train()
        return acc


@torch.inference_mode()
def evaluate(
    method: Method,
    items: Sequence[Datum],
    classnames: Sequence[str],
    template: str,
    backbone: Backbone,
    device: torch.device,
    caches: Caches,
    batch_size: int = 256,
    precision: str = "amp",
) -> tuple[float, list[float]]:
    """Accuracy (%) and per-class accuracy of ``method`` on ``items`` labelled 0..len(classnames)-1."""
    method.set_classnames(classnames, template)
    method.eval()
    labels = torch.tensor([d.label for d in items], device=device)
    preds = []
    with autocast(device, precision):
        if method.frozen_image_encoder:
            feats = caches.features(backbone, items, device)[0]
            for i in range(0, len(feats), batch_size):
                preds.append(method(features=feats[i : i + batch_size].to(device)).argmax(-1))
        else:
            norm = Normalizer(backbone, device)
            for x in caches.images(items, backbone.image_size).batches(batch_size):  # one batch in memory
                preds.append(method(images=norm(x)).argmax(-1))
    correct = (torch.cat(preds) == labels).float()
    n = len(classnames)
    per_class = torch.zeros(n, device=device).index_add_(0, labels, correct)
    counts = torch.bincount(labels, minlength=n).clamp(min=1)
    return 100.0 * correct.mean().item(), (100.0 * per_class / counts).tolist()
