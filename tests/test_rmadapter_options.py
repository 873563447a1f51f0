"""RMAdapter's open choices (rmadapter.md §5) as options: each one does what its name says, on small tensors."""

from __future__ import annotations

import pytest
import torch
from method_helpers import build, images

from bench.errors import ConfigError
from bench.model.adapters import Tap
from bench.model.method import Batch


@pytest.fixture
def tiny(tiny_backbone):
    return tiny_backbone  # conftest's session-wide bench-tiny (4 blocks, random weights)


def batch(backbone, index=None) -> Batch:
    return Batch(labels=torch.tensor([0, 1, 4]), images=images(backbone), index=index)


def test_frozen_target_from_shared_lower_blocks_equals_the_straightforward_passes(tiny):
    """Blocks below the first adapter run once; the adapted features and the frozen target are unchanged by it."""
    m = build("rmadapter", tiny)
    m.train()
    x = images(tiny)
    tokens = m.frozen_prefix(x)
    torch.testing.assert_close(m._frozen_image(batch(tiny), tokens), tiny.encode_image(x), rtol=0, atol=1e-5)
    torch.testing.assert_close(m.encode_image_adapted(None, None, tokens), m.encode_image_adapted(x), rtol=0, atol=1e-5)


def test_without_the_shared_layer_the_branch_is_up_of_down(tiny):
    m = build("rmadapter", tiny, shared_layer=False, grad_scale=False)
    a, layer = m.adapter, m.adapter.layers[0]
    x = torch.randn(2, 5, tiny.vision_width)
    h = a.ln_1("visual", layer)(x)
    want = a.up["visual"][str(layer)](a.down["visual"][str(layer)](h)) * a.scale
    torch.testing.assert_close(a.branch("visual", layer, x), want)
    assert not list(a.shared.parameters())


def test_output_target_reconstructs_the_blocks_adapted_output(tiny):
    m = build("rmadapter", tiny, rec_target="output")
    taps: list[Tap] = []
    x = images(tiny)
    m.encode_image_adapted(x, taps)
    assert [t.layer for t in taps] == m.adapter.layers and all(t.out is not None for t in taps)
    first = taps[0]
    assert torch.allclose(taps[1].h, m.adapter.ln_1("visual", taps[1].layer)(first.out), atol=1e-5)  # next input
    rec, goal = m.rec.reconstruct(m.adapter, "visual", first, "output")
    assert torch.equal(goal, m.adapter.ln_1("visual", first.layer)(first.out).detach())
    _, goal_in = m.rec.reconstruct(m.adapter, "visual", first, "input")
    assert torch.equal(goal_in, first.h.detach()) and not torch.allclose(goal, goal_in)
    m.train()
    assert torch.isfinite(m.loss(batch(tiny))["rec_visual"])


@pytest.mark.parametrize("tokens", ["real", "all"])
def test_a_long_class_name_does_not_change_another_class_text_term(tiny, tokens):
    def per_class(classnames: list[str]) -> torch.Tensor:
        m = build("rmadapter", tiny, rec_text_tokens=tokens)
        m.set_classnames(classnames)
        taps: list[Tap] = []
        m.encode_text_adapted(taps, full_length=tokens == "all")
        mask = m.text_token_mask() if tokens == "real" else None
        return m.rec.errors(m.adapter, "text", taps, token_mask=mask)  # (layers, classes)

    short = per_class(["cat", "dog"])
    longer = per_class(["cat", "dog", "a rather long class name with many many words in it"])
    torch.testing.assert_close(longer[:, :2], short, rtol=1e-5, atol=1e-7)


def test_the_old_text_average_depended_on_the_longest_class_name(tiny):
    """Why rec_text_tokens exists: a mean over the positions the batch keeps moves with the longest name."""
    m = build("rmadapter", tiny)

    def term(classnames: list[str]) -> torch.Tensor:
        m.set_classnames(classnames)
        taps: list[Tap] = []
        m.encode_text_adapted(taps)
        return m.rec.errors(m.adapter, "text", taps)[:, 0]  # no mask: mean over every kept position

    assert not torch.allclose(term(["cat", "dog"]), term(["cat", "a rather long class name with many words"]))


def test_norm_reduction_is_the_mean_reduction_times_the_width(tiny):
    m = build("rmadapter", tiny)
    taps: list[Tap] = []
    m.encode_image_adapted(images(tiny), taps)
    mean = m.rec.loss(m.adapter, "visual", taps, per_vector="mean")
    norm = m.rec.loss(m.adapter, "visual", taps, per_vector="norm")
    torch.testing.assert_close(norm, mean * tiny.vision_width)
    m.train()
    a = build("rmadapter", tiny).loss(batch(tiny))
    b = build("rmadapter", tiny, rec_reduction="norm", lambda_rec_text=1.0 / tiny.text_width).loss(batch(tiny))
    torch.testing.assert_close(b["rec_text"], a["rec_text"])


def test_reconstruction_and_task_reach_the_adapter_at_the_same_scale_whatever_alpha(tiny):
    """Issue 12 item 8's worry, measured: the gradient-scale trick does not leave L_rec ×α weaker than the CE."""
    grads = {}
    for alpha in (0.001, 0.01):
        m = build("rmadapter", tiny, adapter_start=2, adapter_end=2, adapter_scale=alpha, consistency=False)
        m.train()
        terms = m.loss(batch(tiny))
        down = m.adapter.down["visual"]["1"][0].weight
        for name in ("ce", "rec_visual"):
            (g,) = torch.autograd.grad(terms[name], down, retain_graph=True)
            grads[alpha, name] = g
    torch.testing.assert_close(grads[0.001, "rec_visual"], grads[0.01, "rec_visual"])  # L_rec does not see α at all
    ratio = grads[0.001, "ce"].norm() / grads[0.01, "ce"].norm()
    assert 0.5 < ratio < 2  # the CE reaches the adapter as if α were 1, not ×10 larger at the smaller α


def test_clean_target_reads_cached_features_by_index_and_skips_the_frozen_pass(tiny, monkeypatch):
    class Ctx:
        train = list(range(6))

        def features(self, items):
            assert items is self.train
            return [torch.arange(6 * tiny.embed_dim, dtype=torch.float).view(6, -1)]

    m = build("rmadapter", tiny, con_image_target="clean")
    m.before_training(Ctx())
    calls = []
    real = tiny.encode_image_from
    monkeypatch.setattr(tiny, "encode_image_from", lambda *a, **k: calls.append(1) or real(*a, **k))
    m.train()
    idx = torch.tensor([5, 0, 2])
    target = m._frozen_image(batch(tiny, idx), m.frozen_prefix(images(tiny)))
    torch.testing.assert_close(target, Ctx().features(Ctx.train)[0][idx])
    assert "con_image" in m.loss(batch(tiny, idx)) and len(calls) == 1  # the adapted pass only
    with pytest.raises(RuntimeError, match="indices"):
        m.loss(batch(tiny))
    m.after_training(Ctx())
    assert m._clean_features is None


@pytest.mark.parametrize(
    "option", ["rec_reduction=sum", "rec_text_tokens=some", "rec_target=middle", "con_image_target=blurred"]
)
def test_unknown_option_values_are_config_errors(tiny, option):
    key, value = option.split("=")
    with pytest.raises(ConfigError, match=f"method.{key}='{value}'"):
        build("rmadapter", tiny, **{key: value})


def test_gelu_option_reaches_every_activation(tiny):
    m = build("rmadapter", tiny, activation="gelu")
    acts = [type(mod).__name__ for mod in m.modules() if type(mod).__name__ in ("ReLU", "GELU")]
    assert acts and set(acts) == {"GELU"}
