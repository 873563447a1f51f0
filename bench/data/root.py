"""Where the datasets are: the one resolution of the data root and the one phrasing of what to do when it is wrong.

Every command that reads or writes datasets (``bench run``, ``bench data ...``, ``bench toy ...``) resolves its folder
here, in one order: ``--data-root``, else ``$BENCH_DATA``, else the default of a generated world (the toy suite's own
cache folder); the real benchmark has no default.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from bench.errors import DataError

DATA_ENV = "BENCH_DATA"  # CoOp's ``$DATA`` folder


def resolve_root(option: str | Path | None, default: Callable[[], Path] | None = None) -> Path | None:
    """``option`` (``--data-root``), else ``$BENCH_DATA``, else ``default()``; None when none of them gives one."""
    value = option or os.environ.get(DATA_ENV)
    if value:
        return Path(value).expanduser()
    return default() if default is not None else None


def root_hint() -> str:
    """How to point a command at the data: the fix every data-root error ends with."""
    return f"pass --data-root DIR or set ${DATA_ENV}"


def checked_root(root: Path | None, may_create: bool = False) -> Path:
    """``root``, if it is a folder (or, with ``may_create``, not there yet); else one :class:`DataError` saying what is
    wrong with it and how to fix it."""
    if root is None:
        problem = "no data root"
    elif root.exists() and not root.is_dir():
        problem = f"data root {root} is a file, not a folder"
    elif not root.exists() and not may_create:
        problem = f"data root {root} does not exist"
    else:
        return root
    raise DataError(f"{problem}; {root_hint()}")
