"""``bench data prepare`` and ``bench data check`` (mounted by ``bench.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bench.cli.common import DataRootOpt, user_errors
from bench.data.arrange import prepare
from bench.data.check import check, render
from bench.data.tables import BENCHMARK
from bench.errors import DataError
from bench.sweep.suites import env_data_root

data_app = typer.Typer(help="Get the benchmark datasets into the CoOp layout and check them.", no_args_is_help=True)


def _root(data_root: Path | None) -> Path:
    root = data_root or env_data_root()
    if root is None:
        raise DataError("no data root: pass --data-root DIR or set $BENCH_DATA")
    return root


@data_app.command("prepare")
def prepare_cmd(
    name: Annotated[str, typer.Argument(help="dataset, e.g. dtd (see `bench list datasets`)")],
    data_root: DataRootOpt = None,
) -> None:
    """Download/arrange one dataset and obtain its CoOp split file; prints manual steps where needed."""
    with user_errors():
        ready = prepare(name, _root(data_root))
    if not ready:
        raise typer.Exit(1)


@data_app.command("check")
def check_cmd(
    names: Annotated[list[str] | None, typer.Argument(help="datasets to check (default: all 15)")] = None,
    data_root: DataRootOpt = None,
    quick: Annotated[bool, typer.Option("--quick", help="only check that files exist; do not decode them")] = False,
) -> None:
    """Found, split sizes vs CoOp's, missing/unreadable images, class folders; exit 1 if one is unusable."""
    with user_errors():
        root = _root(data_root)
        if not root.is_dir():
            raise DataError(f"data root {root} does not exist; pass --data-root or set $BENCH_DATA")
        rows = check(names or BENCHMARK, root, decode=not quick)
    Console().print(render(rows))
    # Named datasets must all be usable; with no names, only the datasets present count (absent ones are listed).
    if any(not r.usable and (names or r.found) for r in rows):
        raise typer.Exit(1)


@data_app.command("synth")
def synth_cmd(
    root: Annotated[Path, typer.Argument(help="new folder to write (must not exist, or be empty)")],
    datasets: Annotated[
        str | None, typer.Option("--datasets", "-d", help="comma list (default: all 15 of the benchmark)")
    ] = None,
    size: Annotated[int, typer.Option(help="image side in pixels")] = 16,
    scale: Annotated[float, typer.Option(help="fraction of the real split sizes (class counts stay real)")] = 1.0,
) -> None:
    """Write a SIMULATED data root: the real datasets' class counts and split sizes, tiny hard-linked images.

    For measuring the harness at scale (`benchmarks/scale.py`); accuracies on it mean nothing.
    """
    from bench.data.synth import synth

    with user_errors():
        names = [d for d in datasets.split(",") if d.strip()] if datasets else BENCHMARK
        out = synth(root, names, size, scale, on_dataset=lambda n: Console(stderr=True).print(f"writing {n}"))
    Console().print(f"simulated data root written: {out} (see {out / 'SYNTHETIC.md'})")
