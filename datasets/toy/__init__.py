"""The toy world: procedural images, a small CLIP pretrained on them, and datasets in the CoOp layout.

:mod:`bench.datasets.toy.register` registers the world with the harness like any plugin (the registries import it on
first lookup). Public API, imported on first use so that ``bench toy --help`` loads neither torch nor numpy:
:func:`ensure_toy_data` (write the datasets into a cache folder, return the data root), ``TOY_SUITE``,
:func:`checkpoint_path` / :func:`load_toy_state_dict` (the shipped weights as an open_clip state dict) and
``bench.datasets.toy.cli.toy_app`` (``bench toy ...``).
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {"READERS": "data", "SPECS": "data", "TOY_SUITE": "data", "default_root": "data", "ensure_toy_data": "data",
        "checkpoint_path": "pretrain", "load_toy_state_dict": "pretrain", "toy_suite": "register"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_API[name]}"), name)


__all__ = sorted(_API)
