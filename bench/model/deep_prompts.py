"""Deep prompts: per-layer token replacement as backbone ``block_fn`` hooks (MaPLe, and later IVLP/PromptSRC).

A deep prompt for block ``i`` (0-based, ``i >= 1``) *replaces* the tokens that the previous block produced at the
prompt positions before block ``i`` runs (MaPLe ``ResidualAttentionBlock_MaPLe``): in the text tower the context
positions ``1 .. 1+n_ctx`` right after SOS, in the vision tower the last ``n_ctx`` tokens (appended after the patch
tokens by ``Backbone.encode_image(extra_tokens=...)``). Block 0 sees the shallow prompts that entered with the input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from bench.model.backbone import BlockFn


def replace_tokens(x: Tensor, tokens: Tensor, start: int) -> Tensor:
    """``x`` (B, L, D) with positions ``start .. start+n`` replaced by ``tokens`` (n, D); ``start < 0`` counts from
    the end. Built by concatenation, so gradients reach ``tokens`` and nothing is modified in place."""
    n = tokens.shape[0]
    start = start % x.shape[1] if start < 0 else start
    t = tokens.to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
    return torch.cat([x[:, :start], t, x[:, start + n :]], dim=1)


def deep_prompt_fn(prompts: Sequence[Tensor], start: int) -> BlockFn:
    """A ``block_fn`` that writes ``prompts[i-1]`` at ``start`` before block ``i`` for ``i = 1..len(prompts)``."""

    def fn(layer: int, x: Tensor, block: Callable[[Tensor], Tensor]) -> Tensor:
        if 1 <= layer <= len(prompts):
            x = replace_tokens(x, prompts[layer - 1], start)
        return block(x)

    return fn


def text_deep_prompt_fn(prompts: Sequence[Tensor]) -> BlockFn:
    """Deep text prompts at positions ``1 .. 1+n_ctx`` (after SOS), as in MaPLe's text blocks."""
    return deep_prompt_fn(prompts, 1)


def vision_deep_prompt_fn(prompts: Sequence[Tensor]) -> BlockFn:
    """Deep vision prompts as the last ``n_ctx`` tokens, as in MaPLe's vision blocks."""
    n = prompts[0].shape[0] if prompts else 0
    return deep_prompt_fn(prompts, -n if n else 0)
