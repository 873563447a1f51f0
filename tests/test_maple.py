"""MaPLe's deep coupled prompts sit at the right token positions in every block, for every depth."""

from __future__ import annotations

import pytest
import torch
from method_helpers import build, images

from bench.model.method import init_from_text


@pytest.fixture
def tiny(tiny_backbone):
    return tiny_backbone  # conftest's session-wide bench-tiny (4 blocks, random weights)


def _record(blocks: torch.nn.ModuleList) -> tuple[list, list, list]:
    ins, outs, handles = [], [], []
    for blk in blocks:
        handles.append(blk.register_forward_pre_hook(lambda mod, args: ins.append(args[0].detach().clone())))
        handles.append(blk.register_forward_hook(lambda mod, args, out: outs.append(out.detach().clone())))
    return ins, outs, handles


def _check_tower(ins, outs, prompts, positions):
    """Block i >= 1 sees block i-1's output, except at ``positions`` where blocks 1..depth-1 see their prompt."""
    for i in range(1, len(ins)):
        expected = outs[i - 1].clone()
        if i <= len(prompts):
            expected[:, positions] = prompts[i - 1].to(expected.dtype)
        assert torch.equal(ins[i], expected), f"block {i}"


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_prompt_positions_for_every_depth(tiny, depth):
    m = build("maple", tiny, prompt_depth=depth)
    n_ctx = 2
    assert len(m.deep_text) == len(m.deep_proj) == depth - 1
    m.eval()
    with torch.no_grad():
        # text: positions 1..1+n_ctx after SOS; block 0 sees ctx (+ positional embedding)
        ins, outs, handles = _record(tiny.text_blocks)
        m.compute_text_features()
        for h in handles:
            h.remove()
        assert len(ins) == len(tiny.text_blocks)
        pos = tiny.model.positional_embedding
        torch.testing.assert_close(ins[0][:, 1 : 1 + n_ctx], (m.prompt.ctx + pos[1 : 1 + n_ctx]).expand(5, -1, -1))
        _check_tower(ins, outs, [p.detach() for p in m.deep_text], slice(1, 1 + n_ctx))

        # vision: n_ctx tokens appended after the patch tokens, before ln_pre; replaced at the end afterwards
        ins, outs, handles = _record(tiny.vision_blocks)
        x = images(tiny, 2)
        m.encode_image(x)
        for h in handles:
            h.remove()
        n_patches = (tiny.image_size // 8) ** 2
        assert ins[0].shape[1] == 1 + n_patches + n_ctx
        shallow, deep = m.vision_prompts()
        ln_pre = tiny.model.visual.ln_pre
        torch.testing.assert_close(ins[0][:, -n_ctx:], ln_pre(shallow).expand(2, -1, -1))
        _check_tower(ins, outs, deep, slice(-n_ctx, None))


def test_context_initialised_from_a_photo_and_prompt_is_a_photo_of_a(tiny):
    m = build("maple", tiny)
    torch.testing.assert_close(m.prompt.ctx.detach(), init_from_text(tiny, "a photo", 2))
    expected = tiny.tokenize(["a photo of a cat."])
    assert torch.equal(m.prompt.token_ids[0], expected[0])


def test_deep_projections_start_identical_as_in_get_clones(tiny):
    m = build("maple", tiny)
    first = m.deep_proj[0].weight
    assert all(torch.equal(p.weight, first) for p in m.deep_proj)
    assert not torch.equal(m.proj.weight[: first.shape[0]], first)


def test_prompts_change_both_towers(tiny):
    m = build("maple", tiny)
    x = images(tiny, 2)
    m.eval()
    with torch.no_grad():
        base = m(x)
        m.deep_text[0].add_(1.0)
        m.train(), m.eval()  # drop the cached text features
        assert not torch.allclose(m(x), base)
