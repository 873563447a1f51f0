"""Tip-Adapter / Tip-Adapter-F: the logit formula, the validation-only search, zero-shot fallback, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from method_helpers import CLASSNAMES, build, config

from bench.data.dataset import Datum
from bench.methods.tip_adapter import cache_logits, grid, search_alpha_beta, tip_logits
from bench.model.backbone import normalize
from bench.model.trainer import fit


@pytest.fixture
def tiny(tiny_backbone):
    return tiny_backbone  # conftest's session-wide bench-tiny (4 blocks, random weights)


def test_tip_logits_equal_the_formula_on_small_tensors():
    torch.manual_seed(0)
    f = F.normalize(torch.randn(3, 4), dim=-1)
    w = F.normalize(torch.randn(2, 4), dim=-1)
    keys = F.normalize(torch.randn(5, 4), dim=-1)
    labels = [0, 1, 1, 0, 1]
    values = F.one_hot(torch.tensor(labels), 2).float()
    alpha, beta, scale = 1.7, 5.5, 100.0
    out = tip_logits(f, w, keys, values, alpha, beta, scale)
    for n in range(3):
        for c in range(2):
            clip = scale * sum(f[n, d] * w[c, d] for d in range(4))
            cache = sum(
                math.exp(-beta * (1 - float(sum(f[n, d] * keys[j, d] for d in range(4)))))
                for j in range(5)
                if labels[j] == c
            )
            assert out[n, c].item() == pytest.approx(float(clip) + alpha * cache, rel=1e-5)
    assert torch.allclose(cache_logits(f, keys, values, 0.0), values.sum(0).expand(3, -1))


def test_search_grid_matches_the_official_loop():
    torch.manual_seed(1)
    clip = torch.randn(30, 4)
    affinity = torch.rand(30, 12) * 2 - 1
    values = F.one_hot(torch.arange(12) % 4, 4).float()
    labels = torch.randint(0, 4, (30,))
    betas, alphas = grid(7.0, 20), grid(3.0, 10)
    assert betas[0] == pytest.approx(0.1) and betas[1] == pytest.approx(0.1 + 6.9 / 20) and len(alphas) == 10
    best_acc, best = 0.0, (None, None)
    for beta in betas:  # utils.py search_hp, verbatim in spirit: beta outer, alpha inner, strict ">"
        for alpha in alphas:
            logits = clip + alpha * (torch.exp(-beta * (1 - affinity)) @ values)
            acc = (logits.argmax(-1) == labels).float().mean().item() * 100
            if acc > best_acc:
                best_acc, best = acc, (alpha, beta)
    alpha, beta, acc = search_alpha_beta(clip, affinity, values, labels, betas, alphas)
    assert (alpha, beta) == best and acc == pytest.approx(best_acc)


class StubContext:
    """The parts of FitContext Tip uses, recording every item list whose features are requested."""

    def __init__(self, backbone, n_cls: int = 5, shots: int = 4) -> None:
        g = torch.Generator().manual_seed(0)
        self.centres = F.normalize(torch.randn(n_cls, backbone.embed_dim, generator=g), dim=-1)

        def items(split: str, per_class: int) -> list[Datum]:
            return [Datum(f"/{split}/{c}_{i}.jpg", c, CLASSNAMES[c]) for c in range(n_cls) for i in range(per_class)]

        self.backbone, self.device, self.seed = backbone, torch.device("cpu"), 1
        self.train, self.val, self.test = items("train", shots), items("val", 2), items("test", 3)
        self.classnames = CLASSNAMES[:n_cls]
        self.info: dict = {}
        self.requested: list[list[Datum]] = []

    def _feats(self, items, p: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(100 * p + len(items[0].impath))
        noise = torch.randn(len(items), self.centres.shape[1], generator=g)
        return 3 * self.centres[[d.label for d in items]] + noise

    def features(self, items, augment=None, passes: int = 1, scale_min: float = 0.08, first: int = 0, build_only=False):
        if augment is not None:
            assert scale_min == 0.5  # Tip-Adapter's cache crops with scale (0.5, 1)
        self.requested.append(items)
        return [self._feats(items, p) for p in range(first, first + passes if augment else 1)]

    def labels(self, items) -> torch.Tensor:
        return torch.tensor([d.label for d in items])

    def evaluate(self, method, items) -> float:
        self.requested.append(items)
        method.set_classnames(self.classnames)
        method.eval()
        with torch.no_grad():
            acc = (method(features=self._feats(items, 0)).argmax(-1) == self.labels(items)).float().mean().item()
        method.train()
        return 100 * acc


def _never_test(ctx: StubContext) -> None:
    assert ctx.requested and all(items is ctx.train or items is ctx.val for items in ctx.requested)


def test_tip_adapter_cache_and_validation_only_search(tiny):
    ctx = StubContext(tiny)
    m = build("tip_adapter", tiny)
    m.before_training(ctx)
    assert m.cache_keys.shape == (20, tiny.embed_dim) and m.cache_values.sum(0).tolist() == [4.0] * 5
    mean_of_passes = normalize(torch.stack([ctx._feats(ctx.train, p) for p in range(10)]).mean(0))
    torch.testing.assert_close(m.cache_keys, mean_of_passes)
    m.after_training(ctx)
    _never_test(ctx)
    assert ctx.info["search"] == "val" and ctx.info["alpha"] == m.alpha and ctx.info["beta"] == m.beta
    assert m.num_trainable() == 0


def test_tip_adapter_reduces_to_zero_shot_on_other_classes(tiny):
    ctx = StubContext(tiny)
    m = build("tip_adapter", tiny)
    zs = build("zeroshot", tiny)
    m.before_training(ctx)
    f = ctx._feats(ctx.test, 0)
    m.eval(), zs.eval()
    with torch.no_grad():
        assert not torch.allclose(m(features=f), zs(features=f))  # training classes: cache active
        for method in (m, zs):
            method.set_classnames(["cat", "zebra", "kite"])  # one class without cache entries: zero-shot for all
        torch.testing.assert_close(m(features=f), zs(features=f))
        # a subset of the cached classes (ImageNet-A/-R style) keeps the cache, restricted to those classes
        subset = [CLASSNAMES[3], CLASSNAMES[1]]
        m.set_classnames(subset)
        full = build("tip_adapter", tiny)
        full.load_learned_state_dict(m.learned_state_dict())
        full.eval()
        torch.testing.assert_close(m(features=f), full(features=f)[:, [3, 1]], rtol=1e-5, atol=1e-4)  # logits ~100


def test_tip_adapter_checkpoint_round_trip(tiny):
    ctx = StubContext(tiny)
    m = build("tip_adapter", tiny)
    m.before_training(ctx)
    m.after_training(ctx)
    fresh = build("tip_adapter", tiny)
    fresh.load_learned_state_dict(m.learned_state_dict())
    f = ctx._feats(ctx.val, 0)
    m.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.equal(m(features=f), fresh(features=f))
    assert (fresh.alpha, fresh.beta) == (m.alpha, m.beta)


def test_tip_adapter_f_trains_keys_and_selects_epoch_on_val(tiny):
    ctx = StubContext(tiny)
    m = build("tip_adapter_f", tiny)
    cfg = config("tip_adapter_f")["train"]
    cfg.update({"epochs": 3, "batch_size": 8})
    m.before_training(ctx)
    initial = m.adapter.detach().clone()
    assert torch.equal(initial, m.cache_keys) and m.num_trainable() == 20 * tiny.embed_dim
    stats = fit(m, ctx, cfg)
    m.after_training(ctx)
    _never_test(ctx)
    assert stats["steps"] == 3 * (20 // 8)
    assert 1 <= ctx.info["best_epoch"] <= 3 and ctx.info["search"] == "val"
    assert not torch.equal(m.adapter, initial)
    fresh = build("tip_adapter_f", tiny)
    fresh.load_learned_state_dict(m.learned_state_dict())
    assert torch.equal(fresh.adapter, m.adapter)


def test_tip_adapter_multiplies_clip_logits_by_the_official_100_unless_told_to_use_the_models(tiny):
    ctx = StubContext(tiny)
    f = normalize(ctx._feats(ctx.test, 0))
    for option, scale in ((None, 100.0), ("model", float(tiny.logit_scale())), ("30", 30.0)):
        m = build("tip_adapter", tiny) if option is None else build("tip_adapter", tiny, logit_scale=option)
        m.before_training(ctx)
        m.eval()
        text = normalize(m.text_features())
        expected = tip_logits(f, text, m.cache_keys, m.cache_values, m.alpha, m.beta, scale)
        with torch.no_grad():
            torch.testing.assert_close(m(features=f), expected)
    assert float(tiny.logit_scale()) != pytest.approx(100.0)  # the two defaults differ on this checkpoint


def test_tip_adapter_logit_scale_option_from_the_command_line(tmp_path, tiny):
    from typer.testing import CliRunner

    from bench.cli import app
    from bench.errors import ConfigError

    args = ["run", "--suite", "toy", "--method", "tip_adapter", "--datasets", "toy_shapes", "--seeds", "1", "--dry-run",
            "--results", str(tmp_path)]  # fmt: skip
    for value in ("model", "30", "100.0"):
        r = CliRunner().invoke(app, [*args, "--cfg-options", f"method.logit_scale={value}"])
        assert r.exit_code == 0, r.output
    with pytest.raises(ConfigError, match="method.logit_scale='fast'"):
        build("tip_adapter", tiny, logit_scale="fast")
