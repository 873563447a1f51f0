"""Deep prompts: per-layer token replacement as backbone ``block_fn`` hooks (MaPLe, PromptSRC, CoPrompt, TCP).

A deep prompt for block ``i`` (0-based, ``i >= 1``) *replaces* the tokens that the previous block produced at the
prompt positions before block ``i`` runs (MaPLe ``ResidualAttentionBlock_MaPLe``): in the text tower the context
positions ``1 .. 1+n_ctx`` right after SOS, in the vision tower the last ``n_ctx`` tokens (appended after the patch
tokens by ``Backbone.encode_image(extra_tokens=...)``). Block 0 sees the shallow prompts that entered with the input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from bench.errors import ConfigError
from bench.model.backbone import Backbone, BlockFn


def check_depth(depth: int, backbone: Backbone, key: str) -> int:
    """``depth`` (prompted blocks, counting the input) must fit the backbone; a ConfigError naming ``key`` if not."""
    if not 1 <= depth <= backbone.depth:
        raise ConfigError(f"{key}={depth} must be within 1..{backbone.depth} (the backbone's blocks)")
    return depth


def deep_prompt_params(depth: int, n_ctx: int, width: int, std: float = 0.02) -> nn.ParameterList:
    """The deep prompts of blocks ``1..depth-1``: ``depth - 1`` tensors ``(n_ctx, width)``, normal(0, ``std``)."""
    params = []
    for _ in range(depth - 1):
        p = torch.empty(n_ctx, width)
        nn.init.normal_(p, std=std)
        params.append(nn.Parameter(p))
    return nn.ParameterList(params)


def replace_tokens(x: Tensor, tokens: Tensor, start: int) -> Tensor:
    """``x`` (B, L, D) with positions ``start .. start+n`` replaced by ``tokens`` — (n, D) for every sequence, or
    (B, n, D) one set per sequence; ``start < 0`` counts from the end. Built by concatenation, so gradients reach
    ``tokens`` and nothing is modified in place."""
    n = tokens.shape[-2]
    start = start % x.shape[1] if start < 0 else start
    t = tokens.to(x.dtype)
    t = t if t.dim() == 3 else t.unsqueeze(0).expand(x.shape[0], -1, -1)  # (n, D): the same for every sequence
    return torch.cat([x[:, :start], t, x[:, start + n :]], dim=1)


def deep_prompt_fn(prompts: Sequence[Tensor], start: int) -> BlockFn:
    """A ``block_fn`` that writes ``prompts[i-1]`` at ``start`` before block ``i`` for ``i = 1..len(prompts)``."""

    def fn(layer: int, x: Tensor, block: Callable[[Tensor], Tensor]) -> Tensor:
        if 1 <= layer <= len(prompts):
            x = replace_tokens(x, prompts[layer - 1], start)
        return block(x)

    return fn


def insert_at_layer_fn(layer: int, tokens: Tensor, start: int = 1) -> BlockFn:
    """A ``block_fn`` that writes ``tokens`` at ``start`` before block ``layer`` only (TCP's class-aware tokens)."""

    def fn(i: int, x: Tensor, block: Callable[[Tensor], Tensor]) -> Tensor:
        return block(replace_tokens(x, tokens, start) if i == layer else x)

    return fn


def text_deep_prompt_fn(prompts: Sequence[Tensor]) -> BlockFn:
    """Deep text prompts at positions ``1 .. 1+n_ctx`` (after SOS), as in MaPLe's text blocks."""
    return deep_prompt_fn(prompts, 1)


def vision_deep_prompt_fn(prompts: Sequence[Tensor]) -> BlockFn:
    """Deep vision prompts as the last ``n_ctx`` tokens, as in MaPLe's vision blocks."""
    n = prompts[0].shape[0] if prompts else 0
    return deep_prompt_fn(prompts, -n if n else 0)
