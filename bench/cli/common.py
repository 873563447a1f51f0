"""What every ``bench`` command shares: the consoles, the one user-error printer, the data-root option, plugins."""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from bench.errors import BenchError, Preempted
from bench.progress import Advance, Reporter, reporting

# Exit codes: 2 bad input, 1 some runs failed (their records say why), 130 Ctrl-C, 143 SIGTERM (state saved: resume).
EXIT_PREEMPTED = 143

console = Console()
err_console = Console(stderr=True)

# The one data-root option of `bench run`, `bench data ...` and `bench toy ...`, resolved by bench.data.root.
DataRootOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-root",
        "--root",
        help="Data folder in the CoOp layout ($DATA). Default: $BENCH_DATA, else the toy suite's own folder "
        "($BENCH_TOY_ROOT/v<data version>, or ~/.cache/adaptbench/toy/v<data version>; the real benchmark has none).",
    ),
]
ConfigFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        dir_okay=False,
        help="Config file (YAML, JSON or Python; mmengine's _base_ allowed), merged before --cfg-options; "
        "`bench config show` prints one.",
    ),
]
PluginOpt = Annotated[
    list[str] | None,
    typer.Option(
        help="Import this module (a dotted name or a .py file) first: it registers extra methods/datasets/protocols."
    ),
]


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Bad input → one red line and exit code 2; Ctrl-C → exit 130 with how to resume; SIGTERM → exit 143 with the
    command that resumes."""
    try:
        yield
    except BenchError as e:
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except Preempted as e:
        command = shlex.join(["bench", *sys.argv[1:]])
        err_console.print(f"[yellow]stopped[/]: {escape(str(e))}; resume with: {escape(command)}", soft_wrap=True)
        raise typer.Exit(EXIT_PREEMPTED) from None
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: finished records are kept; run the same command again to resume")
        raise typer.Exit(130) from None


class _Count(MofNCompleteColumn):
    """done/total, blank for a phase without a total (a spinner), where rich would print ``0/?``."""

    def render(self, task: Task) -> Text:
        return Text("") if task.total is None else super().render(task)


def progress_columns() -> list[ProgressColumn]:
    """Spinner, what happens, bar, done/total, elapsed, time left."""
    return [SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(), _Count(),
            TimeElapsedColumn(), TimeRemainingColumn()]  # fmt: skip


def rich_reporter(progress: Progress) -> Reporter:
    """Each :func:`bench.progress.phase` as a row of ``progress``, removed when the phase ends."""

    @contextlib.contextmanager
    def show(message: str, total: int | None) -> Iterator[Advance]:
        task = progress.add_task(escape(message), total=total)
        try:
            yield lambda n=1: progress.advance(task, n)
        finally:
            progress.remove_task(task)

    return show


@contextlib.contextmanager
def phases_shown() -> Iterator[None]:
    """Show the phases of a command that runs no sweep (``bench perf``, ``bench toy ...``) as spinners and bars."""
    progress = Progress(*progress_columns(), console=err_console, transient=True)
    with progress, reporting(rich_reporter(progress)):
        yield
