"""The method contract enforces itself: a method whose logits do not score the evaluated classes is an error."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.data.dataset import Datum
from bench.errors import BenchError
from bench.model.context import evaluate
from bench.model.method import Method


class LinearProbe(Method):
    """A head over the training classes that never follows set_classnames (the README-reader's first attempt)."""

    name = "probe"
    frozen_image_encoder = True

    def __init__(self, backbone, cfg, n_cls: int = 0) -> None:
        super().__init__(backbone, cfg, n_cls)
        self.head = nn.Linear(backbone.embed_dim, n_cls)

    def forward(self, images=None, features=None):
        return self.head(features)


class FeatureCache:
    def __init__(self, n: int, dim: int) -> None:
        self.feats = torch.randn(n, dim, generator=torch.Generator().manual_seed(0))

    def features(self, backbone, items, device):
        return [self.feats[: len(items)]]


@pytest.mark.parametrize("n_eval,ok", [(5, True), (3, False)])
def test_logits_must_cover_exactly_the_evaluated_classes(tiny_backbone, n_eval, ok):
    probe = LinearProbe(tiny_backbone, {"method": {}, "train": {}}, n_cls=5)
    items = [Datum(f"/x/{i}.jpg", i % n_eval, f"c{i % n_eval}") for i in range(6)]
    names = [f"c{i}" for i in range(n_eval)]
    cache = FeatureCache(len(items), tiny_backbone.embed_dim)
    if ok:
        acc, per_class = evaluate(probe, items, names, "a photo of a {}.", tiny_backbone, torch.device("cpu"), cache)
        assert 0 <= acc <= 100 and len(per_class) == n_eval
    else:
        with pytest.raises(BenchError, match=r"method 'probe': its logits have shape \(6, 5\) on 3 classes"):
            evaluate(probe, items, names, "a photo of a {}.", tiny_backbone, torch.device("cpu"), cache)
