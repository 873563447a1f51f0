"""The shared adapter mechanics: gradient scaling, MMA's parallel branch, the reconstruction branch, deep prompts."""

from __future__ import annotations

import pytest
import torch
from method_helpers import build, images

from bench.errors import ConfigError
from bench.methods.rmadapter import ReconstructionBranch
from bench.model.adapters import BottleneckAdapter, MultiModalAdapter, Tap, grad_scale, layer_range
from bench.model.deep_prompts import replace_tokens


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal up to float32 rounding relative to the tensor's scale."""
    torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5 * float(b.abs().max()))


@pytest.fixture
def tiny(tiny_backbone):
    return tiny_backbone  # conftest's session-wide bench-tiny (4 blocks, random weights)


def test_grad_scale_is_identity_forward_and_scales_backward():
    x = torch.randn(4, 3, requires_grad=True)
    y = grad_scale(x, 0.25)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, 0.25))


def test_bottleneck_adapter_has_no_bias_and_reduction_four():
    a = BottleneckAdapter(512, 4)
    assert [tuple(p.shape) for p in a.parameters()] == [(128, 512), (512, 128)]
    assert (a(torch.randn(2, 512)) >= 0).all()  # ends with ReLU, as clip_adapter.py


def test_layer_range_is_one_indexed_and_validated():
    assert layer_range(5, 12, 12) == [4, 5, 6, 7, 8, 9, 10, 11]
    with pytest.raises(ConfigError, match="adapter_start"):
        layer_range(5, 12, 4)


def _branch_grads(adapter: MultiModalAdapter, x: torch.Tensor, g: torch.Tensor) -> tuple[list, torch.Tensor]:
    adapter.zero_grad()
    x = x.clone().requires_grad_(True)
    (adapter.branch("visual", 1, x) * g).sum().backward()  # a loss linear in the block output
    return [p.grad.clone() for p in adapter.parameters() if p.grad is not None], x.grad


def test_gradient_scaling_gives_adapter_gradients_as_if_alpha_were_one(tiny):
    """MMA's trick: forward α·A(x); parameter gradients equal those of α = 1 without the trick; the input gradient
    through the adapter is the true one, α times the α = 1 reference."""
    alpha = 1e-3
    torch.manual_seed(0)
    scaled = MultiModalAdapter(tiny, [1], dim=8, scale=alpha, grad_scale_trick=True, towers=["visual"])
    reference = MultiModalAdapter(tiny, [1], dim=8, scale=1.0, grad_scale_trick=False, towers=["visual"])
    reference.load_state_dict(scaled.state_dict())
    x, g = torch.randn(2, 5, tiny.vision_width), torch.randn(2, 5, tiny.vision_width)
    with torch.no_grad():
        assert torch.allclose(scaled.branch("visual", 1, x), alpha * reference.branch("visual", 1, x), atol=1e-9)
    p_scaled, x_scaled = _branch_grads(scaled, x, g)
    p_ref, x_ref = _branch_grads(reference, x, g)
    assert len(p_scaled) == len(p_ref) == 6  # down (w, b), up (w, b), shared (w, b)
    for a, b in zip(p_scaled, p_ref):
        close(a, b)
    close(x_scaled, alpha * x_ref)


def test_mma_gradient_scaling_in_the_full_model(tiny):
    """Whole MMA: identical logits with and without the trick; adapter gradients exactly 1/α times larger with it."""
    alpha = 1e-3
    with_trick = build("mma", tiny, adapter_scale=alpha)
    without = build("mma", tiny, adapter_scale=alpha, grad_scale=False)
    without.load_state_dict(with_trick.state_dict())
    batch_images, labels = images(tiny), torch.tensor([0, 2, 4])
    grads = []
    for m in (with_trick, without):
        m.train()
        loss = torch.nn.functional.cross_entropy(m(batch_images), labels)
        loss.backward()
        grads.append([p.grad.clone() for p in m.trainable_parameters()])
    with torch.no_grad():
        with_trick.eval(), without.eval()
        torch.testing.assert_close(with_trick(batch_images), without(batch_images))
    for a, b in zip(*grads):
        close(a, b / alpha)


def test_adapter_is_parallel_to_the_whole_block_and_reads_ln1_of_its_input(tiny):
    adapter = MultiModalAdapter(tiny, [0], dim=8, scale=0.5, grad_scale_trick=False, towers=["visual"])
    blk = tiny.vision_blocks[0]
    x = torch.randn(2, 5, tiny.vision_width)
    fn = adapter.block_fn("visual")
    out = fn(0, x, lambda t: blk(t))
    h = blk.ln_1(x)
    expected = blk(x) + 0.5 * adapter.up["visual"]["0"](adapter.shared["0"](adapter.down["visual"]["0"](h)))
    torch.testing.assert_close(out, expected)
    assert torch.equal(fn(1, x, lambda t: t), x)  # other layers untouched


@pytest.mark.parametrize(
    "sharing,n_layers,expected",
    [
        ("down", 1, 8 * 64 + 64),
        ("down", 2, (8 * 8 + 8) + 8 * 64 + 64),
        ("down", 3, 2 * (8 * 8 + 8) + 8 * 64 + 64),
        ("up", 2, (64 * 8 + 8) + (8 * 8 + 8)),
        ("independent", 2, (64 * 8 + 8) + (8 * 8 + 8) + 8 * 64 + 64),
    ],
)
def test_reconstruction_branch_sizes(tiny, sharing, n_layers, expected):
    adapter = MultiModalAdapter(tiny, [2, 3], dim=8, towers=["visual", "text"])
    rec = ReconstructionBranch(adapter, ["visual"], n_layers, sharing)
    assert sum(p.numel() for p in rec.parameters()) == 2 * expected  # two layers, visual width 64


@pytest.mark.parametrize("sharing", ["down", "up", "independent"])
def test_reconstruction_loss_is_local(tiny, sharing):
    """With detach_input the reconstruction loss trains only its layer's down-projection and decoder."""
    adapter = MultiModalAdapter(tiny, [1], dim=8, towers=["visual"])
    rec = ReconstructionBranch(adapter, ["visual"], 2, sharing, detach_input=True)
    x = torch.randn(2, 5, tiny.vision_width, requires_grad=True)
    taps: list[Tap] = []
    adapter.branch("visual", 1, x, taps)
    rec.loss(adapter, "visual", taps).backward()
    assert x.grad is None or torch.count_nonzero(x.grad) == 0
    assert adapter.shared["1"][0].weight.grad is None  # the adaptation path's shared layer is not involved
    down_used = sharing == "down"
    assert (adapter.down["visual"]["1"][0].weight.grad is not None) == down_used
    assert (adapter.up["visual"]["1"].weight.grad is not None) == (sharing == "up")


def test_reconstruction_rejects_unknown_sharing(tiny):
    adapter = MultiModalAdapter(tiny, [1], dim=8)
    with pytest.raises(ConfigError, match="sharing"):
        ReconstructionBranch(adapter, ["visual"], 2, "both")


def test_replace_tokens_positions():
    x = torch.zeros(2, 6, 3)
    t = torch.ones(2, 3)
    front = replace_tokens(x, t, 1)
    assert front[:, 1:3].eq(1).all() and front[:, [0, 3, 4, 5]].eq(0).all() and front.shape == x.shape
    back = replace_tokens(x, t, -2)
    assert back[:, 4:].eq(1).all() and back[:, :4].eq(0).all()
