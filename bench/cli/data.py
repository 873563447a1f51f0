"""``bench data prepare`` and ``bench data check`` (mounted by ``bench.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bench.cli.common import DataRootOpt, PluginOpt, phases_shown, user_errors
from bench.data.root import checked_root, resolve_root

data_app = typer.Typer(help="Get the benchmark datasets into the CoOp layout and check them.", no_args_is_help=True)


def _names(names: list[str] | None) -> list[str]:
    """``dtd,eurosat`` and ``dtd eurosat`` alike (the comma form is what ``bench run --datasets`` takes)."""
    return [n.strip().lower() for arg in names or [] for n in arg.split(",") if n.strip()]


@data_app.command("prepare")
def prepare_cmd(
    names: Annotated[list[str], typer.Argument(help="datasets, e.g. dtd or dtd,eurosat (see `bench list datasets`)")],
    data_root: DataRootOpt = None,
) -> None:
    """Download/arrange datasets and obtain their CoOp split files; prints manual steps where needed."""
    from bench.data.arrange import prepare

    with user_errors():
        root = checked_root(resolve_root(data_root), may_create=True)
        not_ready = [name for name in _names(names) if not prepare(name, root)]
    if not_ready:
        typer.echo(f"not ready yet (manual steps above): {','.join(not_ready)}")
        raise typer.Exit(1)


@data_app.command("check")
def check_cmd(
    names: Annotated[
        list[str] | None, typer.Argument(help="datasets to check, e.g. dtd or dtd,eurosat (default: all 15)")
    ] = None,
    data_root: DataRootOpt = None,
    quick: Annotated[bool, typer.Option("--quick", help="only check that files exist; do not decode them")] = False,
    plugin: PluginOpt = None,
) -> None:
    """Found, split sizes vs CoOp's, missing/unreadable images, class folders; exit 1 if one is unusable."""
    from bench.data.check import check, render
    from bench.data.tables import BENCHMARK
    from bench.registry import get_dataset, load_plugins

    with user_errors():
        load_plugins(plugin)
        root = checked_root(resolve_root(data_root))
        wanted = _names(names)
        for name in wanted:
            get_dataset(name)  # an unknown name: one line listing the valid ones
        with phases_shown():
            rows = check(wanted or BENCHMARK, root, decode=not quick)
    Console().print(render(rows))
    # Named datasets must all be usable; with no names, only the datasets present count (absent ones are listed).
    if any(not r.usable and (wanted or r.found) for r in rows):
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
    from bench.data.tables import BENCHMARK

    with user_errors():
        names = [d for d in datasets.split(",") if d.strip()] if datasets else BENCHMARK
        out = synth(root, names, size, scale, on_dataset=lambda n: Console(stderr=True).print(f"writing {n}"))
    Console().print(f"simulated data root written: {out} (see {out / 'SYNTHETIC.md'})")
