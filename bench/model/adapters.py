"""Adapter mechanics shared by CLIP-Adapter, MMA and RMAdapter (RMAdapter's own reconstruction branch lives in
``methods/rmadapter.py``).

* :class:`BottleneckAdapter` — CLIP-Adapter's feature-space ``Linear → ReLU → Linear → ReLU`` (no bias) and
  :func:`residual_blend`, its ``ratio·adapter(f) + (1-ratio)·f`` mix.
* :func:`grad_scale` — MMA's ``GradientScaleLayer`` (identity forward, gradient × scale backward).
* :class:`MultiModalAdapter` — MMA's per-layer text/visual down/up projections with a cross-modal shared layer,
  applied parallel to whole frozen transformer blocks through the backbone's ``block_fn`` hook:
  ``block(x) + α·up(shared(down(ln_1(x))))``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bench.errors import ConfigError
from bench.model.backbone import Backbone, BlockFn

TOWERS = ("visual", "text")


# ---------------------------------------------------------------------------------------------------------------------
# Feature-space adapter (CLIP-Adapter)


class BottleneckAdapter(nn.Sequential):
    """``Linear(d, d/r) → ReLU → Linear(d/r, d) → ReLU`` without biases (CLIP-Adapter's ``Adapter``, clip_adapter.py)."""

    def __init__(self, dim: int, reduction: int = 4, bias: bool = False) -> None:
        hidden = dim // reduction
        super().__init__(
            nn.Linear(dim, hidden, bias=bias),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, dim, bias=bias),
            nn.ReLU(inplace=True),
        )


def residual_blend(features: Tensor, adapter: nn.Module, ratio: float) -> Tensor:
    """``ratio·adapter(f) + (1-ratio)·f``: keeps most of the frozen CLIP feature (CLIP-Adapter's residual ratio)."""
    return ratio * adapter(features) + (1.0 - ratio) * features


# ---------------------------------------------------------------------------------------------------------------------
# Gradient scaling (MMA, clip/gsl.py)


class _GradScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor, scale: float) -> Tensor:  # type: ignore[override]
        ctx.scale = scale  # type: ignore[attr-defined]
        return x.view_as(x)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return grad * ctx.scale, None  # type: ignore[attr-defined]


def grad_scale(x: Tensor, scale: float) -> Tensor:
    """Identity in the forward pass; multiplies the incoming gradient by ``scale`` in the backward pass.

    MMA wraps its adapter as ``gsl(α·A(gsl(x, α)), 1/α)``: the forward contribution is ``α·A(x)``, the adapter's
    parameters get gradients as if α were 1, and the backbone sees the true gradient of ``α·A``.
    """
    return _GradScale.apply(x, scale)


def activation(name: str) -> nn.Module:
    """``relu`` (MMA's code, the baseline numbers) or ``gelu`` (RMAdapter's Eq. 7 text: "typically a GELU")."""
    if name == "relu":
        return nn.ReLU()
    if name == "gelu":
        return nn.GELU()
    raise ConfigError(f"unknown activation {name!r}; use relu or gelu")


def kaiming_init_(module: nn.Module) -> None:
    """MMA's ``_build_adapter`` init: ``kaiming_normal_(fan_out, relu)`` weights, zero biases — up-projections too."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def layer_range(start: int, end: int, n_blocks: int, what: str = "adapter") -> list[int]:
    """0-based block indices for the 1-indexed inclusive range ``start..end`` (MMA's ADAPTER_START/END), validated."""
    if not 1 <= start <= end <= n_blocks:
        raise ConfigError(
            f"{what} layers {start}..{end} (1-indexed) do not fit a backbone with {n_blocks} blocks; set "
            f"method.adapter_start / method.adapter_end within 1..{n_blocks}"
        )
    return list(range(start - 1, end))


# ---------------------------------------------------------------------------------------------------------------------
# Parallel multi-modal adapter (MMA; RMAdapter's adaptation branch)


@dataclass
class Tap:
    """What one adapted block saw: its LN1-normalised input ``h`` (the adapter input), the bottleneck code, and the
    block's adapted output ``out``: what RMAdapter's reconstruction branch reads (``rec_target=input | output``)."""

    layer: int
    h: Tensor
    code: Tensor
    out: Tensor | None = None


class MultiModalAdapter(nn.Module):
    """MMA's adapters: per tower and layer ``down`` (d→r, σ) and ``up`` (r→d); per layer a ``shared`` (r→r, σ).

    The branch reads the block's own frozen ``ln_1`` of the block *input* and is added to the block *output*, on all
    tokens (MMA clip/model.py; RMAdapter Eqs. 14–15). ``grad_scale_trick`` switches MMA's gradient scaling;
    ``shared_layer=False`` drops the cross-modal r×r layer (RMAdapter's Eq. 9 as printed: ``up(down(x))``).
    """

    def __init__(
        self,
        backbone: Backbone,
        layers: Sequence[int],
        dim: int = 32,
        scale: float = 0.001,
        act: str = "relu",
        grad_scale_trick: bool = True,
        towers: Sequence[str] = TOWERS,
        shared_layer: bool = True,
    ) -> None:
        super().__init__()
        self.layers = list(layers)
        self.dim, self.scale, self.grad_scale_trick = dim, scale, grad_scale_trick
        self._blocks = {"visual": backbone.vision_blocks, "text": backbone.text_blocks}  # plain dict: not submodules
        self.widths = {"visual": backbone.vision_width, "text": backbone.text_width}
        self.towers = list(towers)
        self.down = nn.ModuleDict()
        self.up = nn.ModuleDict()
        for tower in self.towers:
            width = self.widths[tower]
            self.down[tower] = nn.ModuleDict(
                {str(i): nn.Sequential(nn.Linear(width, dim), activation(act)) for i in layers}
            )
            self.up[tower] = nn.ModuleDict({str(i): nn.Linear(dim, width) for i in layers})
        self.shared = nn.ModuleDict(
            {
                str(i): nn.Sequential(nn.Linear(dim, dim), activation(act)) if shared_layer else nn.Identity()
                for i in layers
            }
        )
        kaiming_init_(self)

    def ln_1(self, tower: str, layer: int) -> nn.Module:
        return self._blocks[tower][layer].ln_1

    def branch(self, tower: str, layer: int, x: Tensor, taps: list[Tap] | None = None) -> Tensor:
        """``α·up(shared(down(ln_1(x))))`` with MMA's gradient scaling; records a :class:`Tap` when asked."""
        s, trick = self.scale, self.grad_scale_trick
        h = self.ln_1(tower, layer)(grad_scale(x, s) if trick else x)
        code = self.down[tower][str(layer)](h)
        y = self.up[tower][str(layer)](self.shared[str(layer)](code)) * s
        if taps is not None:
            taps.append(Tap(layer, h, code))
        return grad_scale(y, 1.0 / s) if trick else y

    def block_fn(self, tower: str, taps: list[Tap] | None = None) -> BlockFn:
        """A backbone ``block_fn`` adding the branch parallel to each adapted block of ``tower``."""
        adapted = set(self.layers) if tower in self.towers else set()

        def fn(layer: int, x: Tensor, block: Callable[[Tensor], Tensor]) -> Tensor:
            out = block(x)
            if layer in adapted:
                out = out + self.branch(tower, layer, x, taps).to(out.dtype)
                if taps is not None:
                    taps[-1].out = out
            return out

        return fn
