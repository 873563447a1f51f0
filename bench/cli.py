"""The ``bench`` command line (Typer): run sweeps, report tables, list what exists, prepare data."""

from __future__ import annotations

import contextlib
import importlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.errors import BenchError, ConfigError

app = typer.Typer(
    name="bench",
    help="Few-shot adaptation benchmarks for CLIP-like models: `bench run`, then `bench report`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Bad input → one red line and exit code 2; Ctrl-C → exit 130 with how to resume."""
    try:
        yield
    except BenchError as e:
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: finished records are kept; run the same command again to resume")
        raise typer.Exit(130) from None


def _load_plugins(plugins: list[str] | None) -> None:
    for module in plugins or []:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ConfigError(f"--plugin {module}: cannot import it ({e}); is it on PYTHONPATH?") from None


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def run(
    ctx: typer.Context,
    method: Annotated[str, typer.Option("--method", "-m", help="Method name, comma list, or 'all'.")] = "zeroshot",
    protocol: Annotated[
        str,
        typer.Option("--protocol", "-p", help="base2novel | cross_dataset | domain_generalization | few_shot | all"),
    ] = "base2novel",
    suite: Annotated[
        str | None, typer.Option(help="real | toy. Default: real if a data root is given, else the offline toy suite.")
    ] = None,
    datasets: Annotated[str | None, typer.Option("--datasets", "-d", help="Comma list (default: the suite's).")] = None,
    seeds: Annotated[str, typer.Option(help="Comma list of seeds.")] = "1,2,3",
    shots: Annotated[str | None, typer.Option(help="Shots per class (default 16; few_shot: 1,2,4,8,16).")] = None,
    backbone: Annotated[str | None, typer.Option(help="open_clip architecture (default: ViT-B-16).")] = None,
    pretrained: Annotated[
        str | None, typer.Option(help="open_clip pretrained tag (default: openai), a file, or 'none' (random init).")
    ] = None,
    data_root: Annotated[Path | None, typer.Option(help="CoOp-layout data folder (default: $BENCH_DATA).")] = None,
    results: Annotated[Path, typer.Option(help="Results folder.")] = Path("results"),
    device: Annotated[str | None, typer.Option(help="cpu | cuda | cuda:N (default: cuda if available).")] = None,
    cfg_options: Annotated[
        list[str] | None, typer.Option("--cfg-options", help="key=value overrides, e.g. train.lr=0.01 method.n_ctx=8")
    ] = None,
    force: Annotated[bool, typer.Option(help="Re-run runs that already have records.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Print the plan (runs to do, runs done) and exit.")] = False,
    executor: Annotated[str, typer.Option(help="local | pool (one worker per GPU) | slurm (submitit).")] = "local",
    gpus: Annotated[str | None, typer.Option(help="pool: GPU ids, e.g. 0,1,2,3 (default: all visible).")] = None,
    slurm_partition: Annotated[str | None, typer.Option(help="slurm: partition.")] = None,
    slurm_timeout: Annotated[int, typer.Option(help="slurm: minutes per run.")] = 240,
    slurm_parallelism: Annotated[int, typer.Option(help="slurm: max runs at once.")] = 32,
    plugin: Annotated[
        list[str] | None, typer.Option(help="Import this module first (registers extra methods).")
    ] = None,
) -> None:
    """Plan and execute a sweep; finished runs are skipped, so re-running resumes."""
    from bench import plan as planlib
    from bench.config import parse_cfg_options
    from bench.registry import METHODS, parse_names
    from bench.report import write_manifest

    with user_errors():
        _load_plugins(plugin)
        extra = list(ctx.args)
        bad = [a for a in extra if "=" not in a]
        if bad:
            raise ConfigError(f"unexpected argument(s) {' '.join(bad)}; see `bench run --help`")
        options = parse_cfg_options([*(cfg_options or []), *extra])
        methods = parse_names(method, METHODS)
        protocols = planlib.parse_protocols(protocol)
        root = data_root or (Path(os.environ["BENCH_DATA"]) if os.environ.get("BENCH_DATA") else None)
        the_suite = planlib.get_suite(suite or ("real" if root else "toy"))
        if root is None:
            root = planlib.default_data_root(the_suite)
        if root is None:
            raise ConfigError("no data root: pass --data-root DIR or set $BENCH_DATA (or use --suite toy)")
        if not Path(root).is_dir() and the_suite.name != "toy":  # the toy datasets are generated on demand
            raise ConfigError(f"data root {root} does not exist; pass --data-root or set $BENCH_DATA")
        names = [d.strip().lower() for d in datasets.split(",")] if datasets else None
        shot_list = planlib.parse_ints(shots, "shots") if shots else None
        specs = planlib.plan(
            methods, protocols, the_suite, planlib.parse_ints(seeds, "seeds"), shot_list, Path(root), results,
            names, backbone, pretrained, options,
        )  # fmt: skip
        todo = specs if force else [s for s in specs if s.pending()]
        n_evals = sum(len(s.evals) for s in specs)
        n_todo = sum(len(s.evals if force else s.pending()) for s in todo)
        console.print(
            f"[bold]{the_suite.name} suite[/] · {len(specs)} trainings, {n_evals} evaluations · "
            f"[green]{n_evals - n_todo} done[/] · [yellow]{n_todo} to run[/] · data {root} · results {results}"
        )
        if dry_run:
            _print_plan(specs, force)
            return
        if the_suite.name == "toy" and todo:
            from bench.datasets.toy import ensure_toy_data

            with console.status("generating the toy datasets (first use only)"):
                ensure_toy_data(Path(root), _needed_datasets(todo))
        _preflight(todo, Path(root))
        write_manifest(results, _manifest_keys(specs))
        dev = device or _default_device()
        t0 = time.perf_counter()
        written = _execute(todo, dev, executor, gpus, force, results, slurm_partition, slurm_timeout, slurm_parallelism)
        if executor != "slurm":
            console.print(f"[green]done[/]: {written} records in {time.perf_counter() - t0:.0f}s → `bench report`")


def _manifest_keys(specs: list) -> list[dict]:
    return [
        {"method": s.method, "config_hash": s.config_hash, "protocol": ev.protocol, "suite": s.suite,
         "dataset": ev.dataset, "subset": ev.subset, "seed": s.seed, "shots": s.shots, "backbone": s.backbone,
         "pretrained": s.pretrained}
        for s in specs for ev in s.evals
    ]  # fmt: skip


def _needed_datasets(specs: list) -> list[str]:
    return sorted({s.train_dataset for s in specs} | {ev.dataset for s in specs for ev in s.evals})


def _preflight(specs: list, root: Path) -> None:
    """Check every dataset the sweep needs before the first run, so a missing folder fails now, not an hour in."""
    from bench.dataprep import preflight

    preflight(_needed_datasets(specs), root)


def _print_plan(specs: list, force: bool) -> None:
    table = Table("method", "config", "train on", "seed", "shots", "evaluations", "status", title="plan")
    for s in specs:
        pending = s.evals if force else s.pending()
        evs = ", ".join(f"{e.dataset}/{e.subset}" for e in s.evals)
        status = "[green]done[/]" if not pending else f"[yellow]{len(pending)} to run[/]"
        table.add_row(s.method, s.config_hash, f"{s.train_dataset}/{s.train_subset}", str(s.seed), str(s.shots), evs,
                      status)  # fmt: skip
    console.print(table)


def _execute(specs, device, executor, gpus, force, results, partition, timeout, parallelism) -> int:  # noqa: ANN001
    from bench import executors

    if executor == "slurm":
        jobs = executors.submit_slurm(specs, Path(results) / "slurm", partition, timeout, parallelism)
        console.print(f"submitted {len(jobs)} Slurm jobs (first id {jobs[0].job_id if jobs else '-'}); "
                      "`bench report` when they finish, `bench run` again resubmits only missing runs")  # fmt: skip
        return 0
    columns = [TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn()]  # fmt: skip
    with Progress(*columns, console=console, transient=False) as progress:
        sweep = progress.add_task("sweep", total=len(specs))
        current = progress.add_task("", total=None)

        def on_message(msg: str) -> None:
            if "accuracy" in msg:
                progress.console.print(msg, highlight=False, markup=False)
            progress.update(current, description=escape(msg[:100]))

        def on_done(spec, n: int) -> None:  # noqa: ANN001
            progress.advance(sweep)

        if executor == "pool":
            import torch

            ids = gpus.split(",") if gpus else [str(i) for i in range(torch.cuda.device_count())]
            if not ids:
                raise ConfigError("--executor pool needs GPUs (none visible); use --executor local")
            return executors.run_pool(specs, ids, on_done, force)
        if executor != "local":
            raise ConfigError(f"unknown executor {executor!r}; valid: local, pool, slurm")
        return executors.run_local(specs, device, on_message, on_done, force)


@app.command()
def report(
    results: Annotated[Path, typer.Option(help="Results folder.")] = Path("results"),
    suite: Annotated[str | None, typer.Option(help="Only this suite (real | toy).")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table | markdown | csv | latex")] = "table",
    out: Annotated[Path | None, typer.Option(help="Also write every table (md, tex, csv) and plots here.")] = None,
    paper: Annotated[bool, typer.Option(help="Show the published numbers beside ours, with deltas.")] = False,
) -> None:
    """Harmonic-mean tables from the records, and the list of missing runs."""
    from bench.report import build_report, render, write_report

    with user_errors():
        if format not in ("table", "markdown", "csv", "latex"):
            raise ConfigError(f"--format {format!r}: use table, markdown, csv or latex")
        if not (results / "records").is_dir():
            raise ConfigError(f"no records under {results}; run `bench run` first (or pass --results)")
        tables = build_report(results, suite, paper)
        titles = {"base2novel": "Base-to-novel (Base/Novel: mean over seeds; HM of the means)",
                  "cross_dataset": "Cross-dataset transfer (Average = mean of the targets)",
                  "domain_generalization": "Domain generalisation (Average = mean of the targets)",
                  "few_shot": "Few-shot accuracy", "missing": "Missing runs (left out of every average)"}  # fmt: skip
        for name, table in tables.items():
            if format == "table":
                console.print(f"\n[bold]{titles[name]}[/]")
                console.print(render(table, "table"), highlight=False, soft_wrap=True, markup=False)
            else:
                print(f"\n{titles[name]}\n" if format != "csv" else f"# {name}")
                print(render(table, format))
        if not tables:
            console.print("no records match")
        if out:
            paths = write_report(tables, out)
            console.print(f"wrote {len(paths)} files to {out}")


@app.command("list")
def list_(
    what: Annotated[str, typer.Argument(help="methods | datasets | protocols")],
    backbone: Annotated[str, typer.Option(help="Backbone for parameter counts (random weights).")] = "ViT-B-16",
) -> None:
    """What is registered: methods (with trainable parameter counts), datasets, protocols."""
    from bench.registry import dataset_names, get_dataset, method_names

    with user_errors():
        if what == "methods":
            from bench.listing import count_parameters

            table = Table(title="methods")
            table.add_column("method", no_wrap=True)
            table.add_column(f"trainable params ({backbone})", justify="right", no_wrap=True)
            table.add_column("image encoder", no_wrap=True)
            table.add_column("summary", no_wrap=True, overflow="ellipsis", max_width=60)
            for name, count, frozen, doc in count_parameters(backbone, method_names()):
                table.add_row(name, count, "frozen" if frozen else "adapted", doc)
            console.print(table)
        elif what == "datasets":
            table = Table("dataset", "folder", "template", "role", title="datasets")
            for name in dataset_names():
                cls = get_dataset(name)
                role = "test only" if cls.test_only else "train/test"
                table.add_row(name, cls.dataset_dir, cls.template, role)
            console.print(table)
        elif what == "protocols":
            from bench.plan import PROTOCOLS

            for p in PROTOCOLS:
                console.print(p)
        else:
            raise ConfigError(f"bench list {what!r}: use methods, datasets or protocols")


@app.command()
def perf(
    method: Annotated[str, typer.Option("--method", "-m", help="Comma list or 'all'.")] = "zeroshot,coop",
    backbone: Annotated[str, typer.Option(help="open_clip architecture.")] = "ViT-B-16",
    pretrained: Annotated[str, typer.Option(help="Weights (none = random, fine for speed).")] = "none",
    device: Annotated[str | None, typer.Option(help="cpu | cuda (default: cuda if available).")] = None,
    batch_size: Annotated[int, typer.Option(help="Training batch size.")] = 32,
    steps: Annotated[int, typer.Option(help="Timed training steps.")] = 10,
) -> None:
    """Throughput: training and evaluation images/s per method, and the harness's overhead over a bare loop."""
    from bench.perf import measure
    from bench.registry import METHODS, parse_names

    with user_errors():
        dev = device or _default_device()
        table = Table("method", "trainable", "train img/s (bare)", "train img/s (harness)", "overhead", "eval img/s",
                      title=f"{backbone}/{pretrained} on {dev}, batch {batch_size}")  # fmt: skip
        for name in parse_names(method, METHODS):
            r = measure(name, backbone, pretrained, dev, batch_size, steps)
            cells = [f"{r[k]:,.0f}" if k in r else "-" for k in
                     ("train_bare_img_s", "train_harness_img_s", "harness_overhead_pct", "eval_img_s")]  # fmt: skip
            cells[2] += "%" if cells[2] != "-" else ""
            table.add_row(name, f"{int(r['trainable_params']):,}", *cells)
        console.print(table)


def _mount_subapps() -> None:
    from bench.dataprep import data_app
    from bench.datasets.toy.cli import toy_app

    app.add_typer(data_app, name="data")
    app.add_typer(toy_app, name="toy")


_mount_subapps()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
