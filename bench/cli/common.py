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

from bench.errors import BenchError, Preempted

# Exit codes: 2 bad input, 1 some runs failed (their records say why), 130 Ctrl-C, 143 SIGTERM (state saved: resume).
EXIT_PREEMPTED = 143

console = Console()
err_console = Console(stderr=True)

DataRootOpt = Annotated[
    Path | None,
    typer.Option("--data-root", "--root", help="CoOp-layout data folder ($DATA; default: $BENCH_DATA)."),
]
PluginOpt = Annotated[
    list[str] | None,
    typer.Option(help="Import this module (a dotted name or a .py file) first: it registers extra methods/datasets."),
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
