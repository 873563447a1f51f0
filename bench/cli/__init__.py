"""The ``bench`` command line (Typer): run sweeps, report tables, list what exists, prepare data."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress, TaskID
from rich.table import Table

from bench.cli.common import (
    ConfigFileOpt,
    DataRootOpt,
    PluginOpt,
    console,
    err_console,
    phases_shown,
    progress_columns,
    rich_reporter,
    user_errors,
)
from bench.errors import ConfigError
from bench.progress import reporting

if TYPE_CHECKING:
    from bench.sweep.run import SweepResult

app = typer.Typer(
    name="bench",
    help="Few-shot adaptation benchmarks for CLIP-like models: `bench run`, then `bench report`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def run(
    ctx: typer.Context,
    method: Annotated[str, typer.Option("--method", "-m", help="Method name, comma list, or 'all'.")] = "zeroshot",
    protocol: Annotated[
        str,
        typer.Option("--protocol", "-p", help="Comma list of `bench list protocols`, or 'all' (those papers report)."),
    ] = "base2novel",
    suite: Annotated[
        str | None, typer.Option(help="real | toy. Default: real if a data root is given, else the offline toy suite.")
    ] = None,
    datasets: Annotated[str | None, typer.Option("--datasets", "-d", help="Comma list (default: the suite's).")] = None,
    seeds: Annotated[str, typer.Option(help="Comma list of seeds.")] = "1,2,3",
    shots: Annotated[
        str | None, typer.Option(help="Shots per class (default: the protocol's; 16, few_shot: 1,2,4,8,16).")
    ] = None,
    backbone: Annotated[str | None, typer.Option(help="open_clip architecture (default: ViT-B-16).")] = None,
    pretrained: Annotated[
        str | None, typer.Option(help="open_clip pretrained tag (default: openai), a file, or 'none' (random init).")
    ] = None,
    data_root: DataRootOpt = None,
    results: Annotated[Path, typer.Option(help="Results folder.")] = Path("results"),
    device: Annotated[str | None, typer.Option(help="cpu | cuda | cuda:N (default: cuda if available).")] = None,
    config: ConfigFileOpt = None,
    cfg_options: Annotated[
        list[str] | None, typer.Option("--cfg-options", help="key=value overrides, e.g. train.lr=0.01 method.n_ctx=8")
    ] = None,
    force: Annotated[bool, typer.Option(help="Re-run runs that already have records.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Print the plan (runs to do, runs done) and exit.")] = False,
    fail_fast: Annotated[
        bool, typer.Option(help="Stop at the first run that fails (default: record it, go on).")
    ] = False,
    skip_failed: Annotated[bool, typer.Option(help="Leave runs that failed before (default: retry them).")] = False,
    logger: Annotated[
        str | None, typer.Option(help="Also mirror each run's metrics to tensorboard and/or wandb (comma list).")
    ] = None,
    executor: Annotated[
        str,
        typer.Option(
            help="auto (pool on a CPU, else local) | local | pool (a worker per GPU, or per core) | slurm.",
            envvar="BENCH_EXECUTOR",
        ),
    ] = "auto",
    gpus: Annotated[str | None, typer.Option(help="pool: GPU ids, e.g. 0,1,2,3 (default: all visible).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="pool: worker processes (default: one per GPU; on a CPU, one per core).")
    ] = None,
    slurm_partition: Annotated[str | None, typer.Option(help="slurm: partition.")] = None,
    slurm_timeout: Annotated[int, typer.Option(help="slurm: minutes per run.")] = 240,
    slurm_parallelism: Annotated[int, typer.Option(help="slurm: max runs at once.")] = 32,
    plugin: PluginOpt = None,
) -> None:
    """Plan and execute a sweep; finished runs are skipped, so re-running resumes."""
    from bench.sweep.executors import make_executor
    from bench.sweep.plan import parse_ints
    from bench.sweep.run import run_sweep

    with user_errors():
        extra = list(ctx.args)
        bad = [a for a in extra if "=" not in a]
        if bad:
            raise ConfigError(f"unexpected argument(s) {' '.join(bad)}; see `bench run --help`")
        runner = make_executor(executor, device, gpus.split(",") if gpus else None, workers, partition=slurm_partition,
                               timeout_min=slurm_timeout, parallelism=slurm_parallelism)  # fmt: skip

        def on_plan(r: SweepResult) -> None:
            console.print(
                f"[bold]{r.suite.name} suite[/] · {len(r.specs)} trainings, {r.n_evals} evaluations · "
                f"[green]{r.n_evals - r.n_todo} done[/] · [yellow]{r.n_todo} to run[/] · data {r.data_root} · "
                f"results {r.results.root}"
            )
            if dry_run:
                _print_plan(r)

        with SweepProgress().shown() as bar:
            result = run_sweep(
                methods=method, protocols=protocol, suite=suite,
                datasets=datasets.split(",") if datasets else None, seeds=parse_ints(seeds, "seeds"),
                shots=parse_ints(shots, "shots") if shots else None, backbone=backbone, pretrained=pretrained,
                data_root=data_root, results=results, options=[*(cfg_options or []), *extra], config=config,
                plugins=plugin or (), force=force, dry_run=dry_run, fail_fast=fail_fast, skip_failed=skip_failed,
                loggers=logger.split(",") if logger else (), executor=runner,
                on_plan=lambda r: (on_plan(r), None if dry_run else bar.start(len(r.todo))),
                on_message=bar.on_message, on_done=bar.on_done,
            )  # fmt: skip
        if dry_run:
            return
        if result.skipped_failed:
            console.print(f"[yellow]{len(result.skipped_failed)} run(s) that failed before were left "
                          "(--skip-failed)[/]: `bench report` lists them")  # fmt: skip
        if result.failed:
            _print_failures(result)
            raise typer.Exit(1)
        if executor == "slurm":
            console.print(f"submitted {len(result.todo)} Slurm jobs → `bench report` when they finish; "
                          "`bench run` again resubmits only missing runs")  # fmt: skip
        else:
            console.print(f"[green]done[/]: {result.written} records in {result.seconds:.0f}s")
            _print_sweep_tables(result, datasets.split(",") if datasets else None)


def _print_sweep_tables(result: SweepResult, datasets: list[str] | None) -> None:
    """The tables of what this sweep covered (its methods and protocols, every seed in the folder), as `bench report`
    prints them: a sweep ends on its numbers, not on a pointer to another command."""
    from bench.report.tables import Table as ReportTable
    from bench.report.tables import build_report

    methods = sorted({s.method for s in result.specs})
    protocols = sorted({ev.protocol for s in result.specs for ev in s.evals})
    tables = build_report(result.results.root, result.suite.name, False, methods, protocols, datasets)
    for name, table in tables.items():
        if isinstance(table, ReportTable):
            _print_table(name, table, "paper", "std")
    console.print(f"\n`bench report --results {result.results.root}` prints every table of the folder, with options")


def _print_table(name: str, table: Any, layout: str, interval: str) -> None:
    """One report table (or list of runs) in the terminal, under its title: what `bench report` and `bench run` show."""
    from bench.report.render import render
    from bench.report.tables import LISTS

    console.print(f"\n[bold]{escape(LISTS.get(name) or getattr(table, 'title', name))}[/]")
    console.print(
        render(table, "table", layout, interval, caption=False), highlight=False, soft_wrap=True, markup=False
    )


def _print_failures(result: SweepResult) -> None:
    """The failed runs of this sweep: what, where it stopped, the error line, and the files that say more."""
    table = Table(title=f"{len(result.failed)} failed run(s)", title_style="bold red")
    table.add_column("run", no_wrap=True)  # what a user greps for: never cut
    table.add_column("stopped in")
    table.add_column("error", overflow="fold", ratio=1)  # the whole line, the fix included
    table.add_column("traceback", overflow="fold", ratio=1)
    for spec, f in result.failed:
        where = f.phase + (f" (epoch {f.epoch})" if f.epoch else "")
        table.add_row(escape(f.label), where, escape(f.error), escape(str(result.results.traceback(spec))))
    console.print(table)
    console.print(f"{result.written} records written; re-run the same command to retry the failed runs "
                  "(--skip-failed leaves them); log.txt beside each traceback")  # fmt: skip


class SweepProgress:
    """run_sweep's callbacks, shown with rich: the sweep's bar with the time left at the pace so far (elapsed / runs
    done × runs to go), a status line (the current step) and a row per phase that the core reports through
    :mod:`bench.progress` (encoding features, decoding images, writing toy data)."""

    def __init__(self, get_time: Callable[[], float] | None = None) -> None:
        # rich's estimate over the whole sweep (not its default 30 s window: one run can take an hour)
        self.progress = Progress(*progress_columns(), console=console, transient=True, get_time=get_time,
                                 speed_estimate_period=30 * 24 * 3600)  # fmt: skip
        self.sweep: TaskID | None = None
        self.current: TaskID | None = None

    def start(self, total: int) -> None:
        if total and self.sweep is None:
            self.progress.start()
            self.sweep = self.progress.add_task(f"sweep: {total} runs", total=total)
            self.progress.advance(self.sweep, 0)  # a first sample at the start: the first finished run gives an ETA
            self.current = self.progress.add_task("starting", total=None)

    def on_message(self, msg: str) -> None:
        if "accuracy" in msg or msg.startswith("warning"):
            self.progress.console.print(msg, highlight=False, markup=False)
        if self.current is not None:
            self.progress.update(self.current, description=escape(msg[:100]))

    def on_done(self, spec: Any, n: int) -> None:
        if self.sweep is not None:
            self.progress.advance(self.sweep)

    @contextlib.contextmanager
    def shown(self) -> Iterator[SweepProgress]:
        try:
            with reporting(rich_reporter(self.progress)):
                yield self
        finally:
            self.progress.stop()


_PLAN_ROWS = 80  # a longer plan is printed grouped over seeds and shots (20,000 rows help no one)


def _print_plan(result: SweepResult) -> None:
    if len(result.specs) > _PLAN_ROWS:
        _print_grouped_plan(result)
        return
    table = Table("method", "config", "train on", "seed", "shots", "evaluations", "status", title="plan")
    for s in result.specs:
        pending = result.pending(s)
        evs = ", ".join(f"{e.dataset}/{e.subset}" for e in s.evals)
        status = "[green]done[/]" if not pending else f"[yellow]{len(pending)} to run[/]"
        if result.results.failure(s).exists():  # no pending evaluations: left by --skip-failed
            status = f"{status} [red](failed before)[/]" if pending else "[red]failed before, left[/]"
        table.add_row(s.method, s.config_hash, f"{s.train_dataset}/{s.train_subset}", str(s.seed), str(s.shots), evs,
                      status)  # fmt: skip
    console.print(table)


def _print_grouped_plan(result: SweepResult) -> None:
    """The plan as one row per method, config and training set, with its seeds, shots and runs left."""
    groups: dict[tuple[str, str, str], list] = {}
    for s in result.specs:
        groups.setdefault((s.method, s.config_hash, f"{s.train_dataset}/{s.train_subset}"), []).append(s)
    table = Table(
        "method", "config", "train on", "seeds", "shots", "runs", "to run", title=f"plan ({len(result.specs)} runs)"
    )
    for (method, h, train), specs in groups.items():
        seeds = sorted({s.seed for s in specs})
        shown = ",".join(map(str, seeds)) if len(seeds) <= 6 else f"{len(seeds)} ({seeds[0]}…{seeds[-1]})"
        todo = sum(bool(result.pending(s)) for s in specs)
        table.add_row(method, h, train, shown, ",".join(map(str, sorted({s.shots for s in specs}))), str(len(specs)),
                      f"[yellow]{todo}[/]" if todo else "[green]0[/]")  # fmt: skip
    console.print(table)


@app.command()
def report(
    results: Annotated[Path, typer.Option(help="Results folder.")] = Path("results"),
    suite: Annotated[str | None, typer.Option(help="Only this suite (real | toy).")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table | markdown | csv | latex")] = "table",
    layout: Annotated[
        str, typer.Option(help="paper (datasets × method/metric, as the papers print) | long (a row per method)")
    ] = "paper",
    ci: Annotated[bool, typer.Option("--ci", help="± the 95 % t-interval half-width instead of the seed std.")] = False,
    out: Annotated[
        Path | None, typer.Option(help="Also write each table (.md, .tex, .csv: one file each) and its figure here.")
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Also write one self-contained page, DIR/index.html: tables, figures, configs."),
    ] = None,
    paper: Annotated[bool, typer.Option(help="Show the published numbers beside ours, with deltas.")] = False,
    method: Annotated[
        str | None, typer.Option("--method", "-m", help="Only these methods or labels (comma list).")
    ] = None,
    protocol: Annotated[str | None, typer.Option("--protocol", "-p", help="Only these protocols (comma list).")] = None,
    datasets: Annotated[str | None, typer.Option("--datasets", "-d", help="Only these datasets (comma list).")] = None,
    compare: Annotated[
        tuple[str, str] | None,
        typer.Option(help="A B: paired A − B over matching dataset × seed runs, with a Wilcoxon signed-rank test."),
    ] = None,
    plugin: PluginOpt = None,
) -> None:
    """Tables from the records (mean ± std over seeds), the missing runs, and optionally a paired comparison."""
    from bench.registry import load_plugins
    from bench.report.compare import compare as compare_labels
    from bench.report.render import render
    from bench.report.tables import LISTS, build_report, filter_records, load_records
    from bench.report.tables import Table as ReportTable
    from bench.sweep.protocols import parse_protocols

    with user_errors():
        load_plugins(plugin)  # the protocols (and methods) the records name
        if format not in ("table", "markdown", "csv", "latex"):
            raise ConfigError(f"--format {format!r}: use table, markdown, csv or latex")
        if layout not in ("paper", "long"):
            raise ConfigError(f"--layout {layout!r}: use paper or long")
        if out is not None and out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out} is a file; pass a folder (it is created if missing)")
        if html is not None and html.exists() and not html.is_dir():
            raise ConfigError(f"--html {html} is a file; pass a folder (it is created if missing)")
        if not (results / "records").is_dir():
            raise ConfigError(f"no records under {results}; run `bench run` first (or pass --results)")
        methods = method.split(",") if method else None
        protocols = parse_protocols(protocol) if protocol else None
        names = datasets.split(",") if datasets else None
        interval = "ci" if ci else "std"
        tables = build_report(results, suite, paper, methods, protocols, names)
        results_tables = [t for t in tables.values() if isinstance(t, ReportTable)]
        if format == "csv" and out is None and len(results_tables) > 1:
            raise ConfigError(
                f"--format csv writes one table per file: pass --out DIR, or pick one of the {len(results_tables)} "
                "tables with --protocol (and --suite)"
            )
        for name, table in tables.items():
            if format == "csv" and out is not None:
                continue  # one file per table under --out, never several tables in one stream
            if format == "csv":
                if not isinstance(table, ReportTable):
                    err_console.print(f"{LISTS.get(name, name)}: {len(table)} (see --format table)")
                else:
                    print(render(table, "csv"), end="")
            elif format == "table":
                _print_table(name, table, layout, interval)
            else:
                print(f"\n{LISTS.get(name) or name}\n" if not isinstance(table, ReportTable) else "")
                print(render(table, format, layout, interval))
        if not tables:
            console.print("no records match")
        comparisons = []
        if compare:
            records = filter_records(load_records(results, suite), None, protocols, names)
            comparisons = compare_labels(records, *compare)
            for c in comparisons:
                target = console if format != "csv" else err_console
                target.print(f"\n[bold]{escape(c.verdict())}[/]", highlight=False, soft_wrap=True)
                if format != "csv":
                    console.print(render(c.per_dataset(), "table"), highlight=False, markup=False, soft_wrap=True)
        if out:
            from bench.report.curves import plot_curves
            from bench.report.write import write_comparisons, write_report

            paths = write_report(tables, out, layout, interval) + write_comparisons(comparisons, out)
            paths += plot_curves(results, out, suite)
            console.print(f"wrote {len(paths)} files to {out}")
        if html:
            from bench.report.html import write_html

            page = write_html(tables, comparisons, results, html, suite, layout, interval, (methods, protocols, names))
            console.print(f"wrote {page}")


@app.command("list")
def list_(
    what: Annotated[str, typer.Argument(help="methods | datasets | protocols")],
    backbone: Annotated[str, typer.Option(help="Backbone for parameter counts (random weights).")] = "ViT-B-16",
    plugin: PluginOpt = None,
) -> None:
    """What is registered: methods (with trainable parameter counts), datasets, protocols."""
    from rich.console import Console

    from bench.registry import dataset_names, get_dataset, load_plugins, method_names

    console = Console()  # sized now: the terminal (or 80 columns in a pipe)
    with user_errors():
        for failure in load_plugins(plugin, strict=False):  # a broken plugin never hides the rest
            console.print(f"[yellow]warning:[/] {failure}")
        if what == "methods":
            from bench.cli.listing import count_parameters

            names = method_names()
            # The names are what a user needs (and greps for): never cut; the summary wraps in what is left.
            table = Table(title=f"methods (trainable parameters on {backbone})")
            table.add_column("method", no_wrap=True, min_width=max(map(len, names)))
            table.add_column("params", justify="right", no_wrap=True)
            table.add_column("image enc.", no_wrap=True)
            table.add_column("summary", overflow="fold", ratio=1)
            for name, count, frozen, doc in count_parameters(backbone, names):
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
            from bench.sweep.protocols import protocol_names

            for p in protocol_names():
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
    reference: Annotated[
        str | None, typer.Option(help="Also print each method's training step time as a multiple of this method's.")
    ] = None,
    cfg_options: Annotated[
        list[str] | None,
        typer.Option(
            "--cfg-options",
            help="key=value overrides for each listed method that has the key (not the "
            "reference), e.g. method.con_image_target=clean",
        ),
    ] = None,  # fmt: skip
) -> None:
    """Throughput: training and evaluation images/s per method, the harness's overhead over a bare loop, and the
    activations a training step keeps for its backward pass (a memory figure that a CPU can measure too); on a GPU
    also the peak memory allocated during the timed steps."""
    from bench.config import parse_cfg_options
    from bench.model.perf import measure, method_options
    from bench.registry import METHODS, parse_names

    with user_errors():
        from bench.model.backbone import default_device

        dev = device or default_device()
        names = parse_names(method, METHODS)
        options = parse_cfg_options(cfg_options or [])
        per_method = {name: method_options(name, options) for name in names if name != reference}
        unused = set(options) - {k for opts in per_method.values() for k in opts}
        if unused:
            raise ConfigError(f"--cfg-options {', '.join(sorted(unused))}: no measured method has this key")
        if reference is not None and reference not in names:
            names = [reference, *names]  # measured in the same run, so the ratio compares like with like
        with phases_shown():
            results = {
                n: measure(n, backbone, pretrained, dev, batch_size, steps, options=per_method.get(n)) for n in names
            }
        columns = ["method", "trainable", "train img/s (bare)", "train img/s (harness)", "overhead", "eval img/s"]
        columns.append("saved MB")
        gpu = any("peak_mb" in r for r in results.values())
        if gpu:
            columns.append("peak MB")
        if reference is not None:
            columns += [f"step time × {reference}", f"saved × {reference}"] + ([f"peak × {reference}"] if gpu else [])
        title = f"{backbone}/{pretrained} on {dev}, batch {batch_size}" + (
            f"; {' '.join(cfg_options)}" if options else ""
        )
        table = Table(*columns, title=title)
        ref = results[reference] if reference is not None else {}
        for name, r in results.items():
            cells = [_rate(r.get(k)) for k in ("train_bare_img_s", "train_harness_img_s")]
            cells.append(f"{r['harness_overhead_pct']:.0f}%" if "harness_overhead_pct" in r else "-")
            cells.append(_rate(r.get("eval_img_s")))
            cells.append(f"{r['saved_mb']:,.1f}" if "saved_mb" in r else "-")
            if gpu:
                cells.append(f"{r['peak_mb']:,.0f}" if "peak_mb" in r else "-")
            if reference is not None:
                cells.append(_ratio(ref.get("train_bare_img_s"), r.get("train_bare_img_s")))
                cells.append(_ratio(r.get("saved_mb"), ref.get("saved_mb")))
                if gpu:
                    cells.append(_ratio(r.get("peak_mb"), ref.get("peak_mb")))
            table.add_row(name, f"{int(r['trainable_params']):,}", *cells)
        console.print(table)


def _ratio(num: float | None, den: float | None) -> str:
    return f"{num / den:.2f}" if num and den else "-"


def _rate(value: float | None) -> str:
    """Images/s with enough digits that slow CPU figures are not rounded to whole numbers."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _mount_subapps() -> None:
    from bench.cli.config import config_app
    from bench.cli.data import data_app
    from bench.datasets.toy.cli import toy_app

    app.add_typer(config_app, name="config")
    app.add_typer(data_app, name="data")
    app.add_typer(toy_app, name="toy")


_mount_subapps()


def main() -> None:
    app()
