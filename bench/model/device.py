"""What a CUDA run does differently from a CPU run, in one place, so that CPU tests cover the decisions.

Data loading (worker processes, pinned host memory), peak-memory accounting and synchronisation before a timer reads
the clock. The ``cuda`` module is a parameter (default ``torch.cuda``) so a test can pass a fake one. Precision
(autocast, the grad scaler) is decided in ``bench.data.caches.autocast`` and the trainer.
"""

from __future__ import annotations

from typing import Any

import torch


def loader_options(device: torch.device, num_workers: int) -> dict[str, Any]:
    """DataLoader settings for training on ``device``.

    CUDA: ``num_workers`` decoding processes, and pinned host memory so the copy to the GPU overlaps compute
    (``non_blocking``). CPU: decoding in the main process, unpinned: workers would only take the cores the model runs
    on, and pinning needs a GPU. Workers are not persistent: a new iterator per epoch draws their seeds from the
    loader's generator at that epoch's start, so a run resumed at any epoch sees the same shuffles and augmentations.
    """
    workers = num_workers if device.type == "cuda" else 0
    return {"num_workers": workers, "pin_memory": device.type == "cuda", "persistent_workers": False}


class PeakMemory:
    """The peak device memory allocated during a run (what a record reports, and ``bench perf``'s figure).

    ``reset()`` at the start of what is measured, ``mb()`` after it: the CUDA allocator's peak in MiB, or None on a
    CPU, which has no allocator peak to read (``bench perf`` reports saved activations there instead).
    """

    def __init__(self, device: torch.device, cuda: Any = torch.cuda) -> None:
        self.device, self.cuda = device, cuda

    def reset(self) -> None:
        if self.device.type == "cuda":
            self.cuda.reset_peak_memory_stats(self.device)

    def mb(self) -> float | None:
        return self.cuda.max_memory_allocated(self.device) / 2**20 if self.device.type == "cuda" else None


def synchronize(device: torch.device, cuda: Any = torch.cuda) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously: a timer read without this measures launches)."""
    if device.type == "cuda":
        cuda.synchronize(device)
