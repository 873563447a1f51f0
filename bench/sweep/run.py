"""``run_sweep``: the one Python entry point for a sweep — plan, check the data, execute, in that order.

``bench run`` is a thin layer over it; a notebook or a test calls it directly::

    from bench.sweep import run_sweep
    result = run_sweep(methods=["coop", "mma"], protocols=["base2novel"], suite="toy", seeds=[1])
    print(result.written, "records in", result.results)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.config import load_config_file, parse_cfg_options
from bench.data.check import preflight
from bench.errors import ConfigError
from bench.model.backbone import create_model
from bench.registry import METHODS, get_method, load_plugins, parse_names
from bench.sweep.executors import Executor, LocalExecutor, OnDone, OnMessage, ignore_done, ignore_message
from bench.sweep.layout import ResultsLayout
from bench.sweep.plan import EvalSpec, RunSpec, plan
from bench.sweep.protocols import parse_protocols
from bench.sweep.record import Failure
from bench.sweep.runlog import check_loggers
from bench.sweep.suites import Suite, resolve_data_root


@dataclass
class SweepResult:
    """What a sweep planned and did."""

    suite: Suite
    data_root: Path
    results: ResultsLayout
    specs: list[RunSpec]
    to_run: dict[int, list[EvalSpec]] = field(default_factory=dict)  # id(spec) -> its evaluations to (re)do
    written: int = 0
    seconds: float = 0.0
    failed: list[tuple[RunSpec, Failure]] = field(default_factory=list)  # runs of this sweep that raised
    skipped_failed: list[RunSpec] = field(default_factory=list)  # runs that failed before, left by skip_failed

    @property
    def todo(self) -> list[RunSpec]:
        """The runs that had (or, in a dry run, have) work to do."""
        return [s for s in self.specs if self.pending(s)]

    @property
    def n_evals(self) -> int:
        return sum(len(s.evals) for s in self.specs)

    @property
    def n_todo(self) -> int:
        return sum(len(self.pending(s)) for s in self.specs)

    def pending(self, spec: RunSpec) -> list[EvalSpec]:
        """What the plan found still to do for ``spec`` (records are read once, when the sweep is planned)."""
        return self.to_run.get(id(spec), [])


def needed_datasets(specs: Sequence[RunSpec]) -> list[str]:
    """Every dataset the runs train or evaluate on."""
    return sorted({s.train_dataset for s in specs} | {ev.dataset for s in specs for ev in s.evals})


def _check(seeds: Sequence[int], shots: Sequence[int] | None, results: Path) -> None:
    """Bad sweep arguments fail here, before any data is touched."""
    if not seeds:
        raise ConfigError("no seeds given: pass --seeds 1,2,3")
    bad = next((s for s in seeds if not 0 <= s <= MAX_SEED), None)
    if bad is not None:
        raise ConfigError(f"--seeds: {bad} is not a seed; seeds are integers from 0 to {MAX_SEED} (2**32 - 1)")
    _no_repeats(seeds, "seeds")
    if shots is not None and (not shots or min(shots) < 1):
        raise ConfigError(f"--shots {','.join(map(str, shots)) or '(empty)'}: shots per class must be at least 1")
    _no_repeats(shots or [], "shots")
    for parent in (results, *results.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"--results {results}: {parent} is a file, not a folder; choose another path")
            break


MAX_SEED = 2**32 - 1  # numpy's and torch's seed range


def _no_repeats(values: Sequence[int], what: str) -> None:
    seen: set[int] = set()
    for v in values:
        if v in seen:
            raise ConfigError(f"--{what}: {v} is given twice; list each once")
        seen.add(v)


def writable_folder(results: Path) -> None:
    """``results`` (or the folder that would hold it) accepts new files: a read-only mount or a folder of another user
    is one line here, not a traceback after the first run."""
    parent = next(p for p in (results, *results.parents) if p.exists())
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--results {results}: {parent} is not writable (permissions or a read-only mount); "
                          "choose another folder with --results")  # fmt: skip


def check_weights_file(arch: str, pretrained: str) -> None:
    """A ``--pretrained`` file loads into ``arch`` (one line naming it otherwise), before anything is written; open_clip
    tags are left to open_clip, which reports a missing download itself."""
    path = Path(pretrained).expanduser()
    if not (path.exists() or os.sep in pretrained or path.suffix in (".pt", ".pth", ".bin", ".safetensors")):
        return
    if not path.is_file():
        raise ConfigError(f"--pretrained {pretrained}: {'a folder, not a file' if path.is_dir() else 'no such file'}; "
                          "pass a state-dict file of the backbone or an open_clip tag")  # fmt: skip
    create_model(arch, str(path))


def run_sweep(
    *,
    methods: Sequence[str] | str,
    protocols: Sequence[str] | str = "base2novel",
    suite: str | None = None,
    datasets: Sequence[str] | None = None,
    seeds: Sequence[int] = (1, 2, 3),
    shots: Sequence[int] | None = None,
    backbone: str | None = None,
    pretrained: str | None = None,
    data_root: str | Path | None = None,
    results: str | Path = "results",
    options: dict[str, Any] | Sequence[str] | None = None,
    config: str | Path | None = None,
    plugins: Sequence[str] = (),
    force: bool = False,
    dry_run: bool = False,
    fail_fast: bool = False,
    skip_failed: bool = False,
    loggers: Sequence[str] = (),
    executor: Executor | None = None,
    on_plan: Callable[[SweepResult], None] | None = None,
    on_message: OnMessage = ignore_message,
    on_done: OnDone = ignore_done,
) -> SweepResult:
    """Plan the sweep, check every dataset it needs, and run what is not done yet (all of it with ``force``).

    ``methods`` / ``protocols``: names or a comma string (``"all"`` allowed); ``options``: ``--cfg-options`` as a dict
    of dotted keys or ``key=value`` strings, applied over ``config`` (a YAML/JSON/Python config file, mmengine's
    ``_base_`` allowed); ``plugins``: modules or ``.py`` files that register extra methods. The data root is
    ``data_root``, else ``$BENCH_DATA``, else the suite's own (the toy suite generates its datasets on first use).
    ``on_plan`` sees the plan before anything runs (the CLI prints it); ``dry_run`` stops there. Raises
    :class:`~bench.errors.BenchError` on bad input, before any run starts.

    A run that raises writes a failure record and the sweep goes on (``fail_fast``: stops at the first); the result's
    ``failed`` lists them. Runs that failed before are retried, unless ``skip_failed``. ``loggers``: ``tensorboard``
    and/or ``wandb`` mirror each run's metrics.jsonl.
    """
    load_plugins(plugins)
    logger_names = check_loggers(list(loggers))
    _check(seeds, shots, Path(results))
    method_names = parse_names(methods if isinstance(methods, str) else ",".join(methods), METHODS)
    protocol_names = parse_protocols(protocols if isinstance(protocols, str) else ",".join(protocols))
    opts = dict(options or {}) if options is None or isinstance(options, dict) else parse_cfg_options(options)
    from_file = load_config_file(config) if config is not None else {}
    origins = {key: f"--config {config}" for key in from_file if key not in opts}
    opts = {**from_file, **opts}
    the_suite, root = resolve_data_root(data_root, suite)
    names = [d.strip().lower() for d in datasets] if datasets else None
    specs = plan(method_names, protocol_names, the_suite, list(seeds), list(shots) if shots else None, root,
                 Path(results), names, backbone, pretrained, opts, origins)  # fmt: skip
    for s in specs:
        s.plugins = [str(Path(p).resolve()) if p.endswith(".py") else p for p in plugins]
        s.loggers = logger_names
    # each record is read once here; a dry run only looks (damaged records are set aside by a real run)
    to_run = {id(s): s.evals if force else s.pending(heal=not dry_run) for s in specs}
    layout = ResultsLayout(results)
    skipped = [s for s in specs if skip_failed and not force and to_run[id(s)] and layout.failure(s).exists()]
    for s in skipped:
        to_run[id(s)] = []
    result = SweepResult(the_suite, root, layout, specs, to_run, skipped_failed=skipped)
    todo = result.todo
    if on_plan:
        on_plan(result)
    if dry_run:
        return result
    writable_folder(Path(results))
    for spec in {s.config_hash: s for s in todo}.values():  # the files each method reads, before any is written
        get_method(spec.method).check_config(spec.config)
    for arch, weights in {(s.backbone, s.pretrained) for s in todo}:
        check_weights_file(arch, weights)
    if the_suite.prepare is not None and todo:
        the_suite.prepare(root, needed_datasets(todo))
    preflight(needed_datasets(todo), root)  # a missing folder fails now, not an hour in
    result.results.remove_stale_temp_files()  # what killed processes left half written (never counted as done)
    result.results.write_plan(k for s in specs for k in s.record_keys())
    t0, started = time.perf_counter(), time.time()
    result.written = (executor or LocalExecutor()).run(todo, force, on_message, on_done, fail_fast=fail_fast)
    result.seconds = time.perf_counter() - t0
    # failure records this sweep wrote (a run stopped by fail_fast, or still queued on Slurm, may have an older one)
    new = [s for s in todo if layout.failure(s).exists() and layout.failure(s).stat().st_mtime >= started - 1]
    result.failed = [(s, Failure.load(layout.failure(s))) for s in new]
    return result
