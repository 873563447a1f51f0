"""Frozen-image-encoder methods train on cached augmented passes: by default a fresh pass every epoch, as the official
loaders draw a fresh crop and flip per epoch; ``train.feature_passes=N`` cycles N passes."""

from __future__ import annotations

import pytest
import torch
from method_helpers import CLASSNAMES, config

from bench.config import config_hash
from bench.data.dataset import Datum
from bench.model.trainer import fit
from bench.registry import get_method


class PassContext:
    """What ``fit`` reads of a FitContext, recording which augmented pass each feature request is for."""

    def __init__(self, backbone) -> None:
        self.backbone, self.device, self.seed, self.dataset = backbone, torch.device("cpu"), 1, "dtd"
        self.train = [Datum(f"/x/{i}.jpg", i % len(CLASSNAMES), CLASSNAMES[i % len(CLASSNAMES)]) for i in range(10)]
        self.requested: list[int] = []

    def features(self, items, augment=None, passes=1, scale_min=0.08, first=0, build_only=False):
        assert augment == "rrc_flip"
        self.requested.extend(range(first, first + passes))
        if build_only:
            return []
        dim = self.backbone.embed_dim
        return [
            torch.randn(len(items), dim, generator=torch.Generator().manual_seed(p))
            for p in range(first, first + passes)
        ]


@pytest.mark.parametrize("epochs,passes,expected", [(6, 0, list(range(6))), (6, 2, [0, 1]), (20, 0, list(range(20)))])
def test_each_epoch_trains_on_its_own_pass_or_cycles_n(tiny_backbone, epochs, passes, expected):
    """(20 fresh passes are more than the trainer keeps in memory: cached first, then read one per epoch)"""
    cfg = config("coop")
    cfg["train"].update(epochs=epochs, batch_size=5, feature_passes=passes, warmup_epochs=0)
    method = get_method("coop")(tiny_backbone, cfg, n_cls=len(CLASSNAMES))
    method.set_classnames(CLASSNAMES)
    ctx = PassContext(tiny_backbone)
    seen: list[torch.Tensor] = []
    real = method.loss
    method.loss = lambda batch: (seen.append(batch.features), real(batch))[1]
    fit(method, ctx, cfg["train"])
    assert sorted(set(ctx.requested)) == expected  # every pass encoded (or found in the cache) once, before training
    used = {round(float(f.sum()), 4) for f in seen}
    assert len(ctx.train) // 5 * epochs == len(seen)
    # each epoch's batches come from one pass: 6 epochs see 6 (fresh) or 2 (cycled) different feature sets
    per_epoch = [seen[i : i + 2] for i in range(0, len(seen), 2)]
    sets = {frozenset(round(float(x.sum()), 4) for x in torch.cat(e)) for e in per_epoch}
    assert len(sets) == len(expected) and len(used) > 1


def test_feature_passes_enters_the_hash_only_where_it_can_change_results():
    def h(method: str, passes: int, augment: str = "rrc_flip") -> str:
        cfg = config(method)
        cfg["train"].update(feature_passes=passes, augment=augment)
        return config_hash(method, cfg)

    assert h("coop", 0) != h("coop", 10)  # trains on cached augmented features: fresh vs cycled differ
    assert h("maple", 0) == h("maple", 10)  # sees images decoded every epoch
    assert h("zeroshot", 0) == h("zeroshot", 10)  # trains nothing
    assert h("coop", 0, "none") == h("coop", 10, "none")  # no augmentation: one pass whatever the setting
