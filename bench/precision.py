"""What ``train.precision`` means on a device, decided in one place so that CPU tests can check a CUDA run's choices.

* ``fp32``: float32 everywhere.
* ``amp``: float32 weights, float16 autocast and loss scaling on CUDA; float32 on the CPU (CPU float16 is slow).
* ``bf16``: float32 weights, bfloat16 autocast (CUDA and CPU); bf16 needs no loss scaling.
* ``fp16``: the official ``PREC fp16`` of CoOp, CoCoOp, KgCoOp, TCP, MaPLe, PromptSRC and CoPrompt: CLIP's weights
  converted as OpenAI's ``convert_weights`` does (linear, conv, attention and projections in half; LayerNorm computes in
  float32), the learned tensors in half and updated in half by the optimiser (except what the official code itself
  leaves in float32: ``Method.float32_learned``, MaPLe's deep prompts), no loss scaling. Float16 autocast glues
  the few places where a method mixes a float32 tensor into a half layer; half parameters and their updates stay half.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PRECISIONS = ("amp", "bf16", "fp16", "fp32")


@dataclass(frozen=True)
class Precision:
    """``train.precision`` (``name``) on a device type (``cpu`` | ``cuda``)."""

    name: str
    device_type: str

    def __post_init__(self) -> None:
        if self.name not in PRECISIONS:
            raise ValueError(f"precision {self.name!r}: use one of {', '.join(PRECISIONS)}")

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The dtype of autocast regions, or None for none."""
        if self.name == "fp32" or (self.name == "amp" and self.device_type != "cuda"):
            return None
        return torch.bfloat16 if self.name == "bf16" else torch.float16

    @property
    def compute(self) -> str:
        """What matmuls run in: ``float16``, ``bfloat16`` or ``float32``."""
        return str(self.autocast_dtype or torch.float32).removeprefix("torch.")

    @property
    def weights_dtype(self) -> torch.dtype:
        """The dtype of CLIP's converted weights and of every learned parameter (and so of the optimiser's update)."""
        return torch.float16 if self.name == "fp16" else torch.float32

    @property
    def loss_scaling(self) -> bool:
        """Whether a GradScaler runs: fp16 autocast over float32 weights (amp on CUDA); the official fp16 has none."""
        return self.name == "amp" and self.device_type == "cuda"

    def autocast(self) -> torch.autocast:
        dtype = self.autocast_dtype
        if dtype is None:
            return torch.autocast(device_type=self.device_type, enabled=False)
        return torch.autocast(device_type=self.device_type, dtype=dtype)


def autocast(device: torch.device, precision: str = "amp") -> torch.autocast:
    """The autocast region of ``precision`` on ``device`` (see :class:`Precision`)."""
    return Precision(precision, device.type).autocast()
