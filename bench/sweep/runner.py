"""``run_one``: seed → data → backbone → method.fit → evaluate → one atomic :class:`Record` per evaluation.

A run's learned state is checkpointed (only the method's parameters, never the backbone) before any evaluation, so
an interrupted run — or one whose record was deleted — resumes by evaluating, not by retraining. During training the
trainer saves a resumable state every ``train.checkpoint_every`` epochs / ``train.checkpoint_minutes`` minutes, and on
SIGTERM at the next step boundary; the next run continues from it.

A run that raises leaves a :class:`Failure` (error line, traceback file, where it stopped) beside its log and raises
:class:`RunFailed`, which the executors count and pass over, so one failing run never ends a sweep.
"""

from __future__ import annotations

import contextlib
import json
import platform
import signal
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import open_clip
import torch

import bench
from bench.config import to_yaml
from bench.data.caches import Caches
from bench.data.dataset import (
    TIP_DRAW_SEED,
    DatasetReader,
    DatasetSplits,
    Datum,
    dassl_fewshot,
    items_from_json,
    items_to_json,
    subsample_classes,
    subset_classnames,
    tip_fewshot,
)
from bench.errors import BenchError, ConfigError, DataError, Preempted
from bench.io import atomic_write, atomic_write_json, atomic_write_text, digest, lock, set_aside
from bench.model.backbone import get_backbone
from bench.model.context import FitContext, evaluate
from bench.model.device import PeakMemory, loader_options
from bench.model.method import Method
from bench.model.trainer import Checkpointing, cast_learned, fit, resolve_schedule, seed_everything
from bench.precision import Precision
from bench.registry import get_dataset, get_method, load_plugins
from bench.sweep.plan import EvalSpec, RunSpec
from bench.sweep.record import Failure, Record
from bench.sweep.runlog import RunLog
from bench.sweep.suites import get_suite

Progress = Callable[[str], None]


# ---------------------------------------------------------------------------------------------------------------------
# Data


@lru_cache(maxsize=64)
def role(suite: str, dataset: str) -> str:
    """The real dataset ``dataset`` plays in ``suite`` (itself on the real benchmark): what methods key their
    per-dataset choices (templates, ensembles) on."""
    return get_suite(suite).roles.get(dataset, dataset)


@lru_cache(maxsize=64)
def read_dataset(name: str, root: str) -> tuple[DatasetReader, DatasetSplits]:
    reader = get_dataset(name)(root)
    return reader, reader.read()


def fewshot_split(spec: RunSpec, reader: DatasetReader, splits: DatasetSplits) -> tuple[list[Datum], list[Datum], str]:
    """The seed's few-shot train/val draw, stored once as portable JSON; returns (train, val, split hash).

    ``train.fewshot_draw=tip`` takes Tip-Adapter's official draw instead (seed 1 for every run, full validation set).
    """
    root = Path(spec.data_root)
    draw = spec.config["train"]["fewshot_draw"]
    path = spec.layout.split(spec.suite, reader.name, spec.shots, spec.seed, draw)
    with lock(path):
        if path.exists():
            try:
                saved = json.loads(path.read_text())
                rows = {"train": saved["train"], "val": saved["val"]}
                train, val = items_from_json(rows["train"], root), items_from_json(rows["val"], root)
            except (ValueError, KeyError) as e:
                raise DataError(f"few-shot split {path} is malformed ({e}); delete it to redraw") from None
        else:
            if draw == "tip":
                train, val = tip_fewshot(splits.train, splits.val, spec.shots)
            else:
                train, val = dassl_fewshot(splits.train, splits.val, spec.shots, spec.seed, draw_val=reader.draw_val)
            rows = {"train": items_to_json(train, root), "val": items_to_json(val, root)}
            seed = spec.seed if draw == "coop" else TIP_DRAW_SEED
            atomic_write_json(path, {**rows, "shots": spec.shots, "seed": seed, "draw": draw, "hash": digest(rows)})
    # the record's split hash covers the draw (as stored beside it) and the test list
    return train, val, digest([digest(rows), digest(items_to_json(splits.test, root))])


# ---------------------------------------------------------------------------------------------------------------------
# Evaluation


# ---------------------------------------------------------------------------------------------------------------------
# One run


@lru_cache(maxsize=1)
def _git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    return {
        "adaptbench": bench.__version__,
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "python": platform.python_version(),
        "cuda": torch.version.cuda or "none",
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu",
    }


class RunFailed(BenchError):
    """A run raised; its :class:`Failure` is written. Executors go on to the next run (unless ``--fail-fast``)."""


def run_one(
    spec: RunSpec, device: str | torch.device = "cpu", progress: Progress | None = None, force: bool = False
) -> int:
    """Execute one RunSpec; returns the number of records written.

    Raises :class:`RunFailed` (after writing the run's failure record) if anything in the run raises, except a
    :class:`~bench.errors.ConfigError` (bad input: raised as is), and :class:`~bench.errors.Preempted` if SIGTERM
    stopped it (its training state saved first).
    """
    load_plugins(spec.plugins)  # a pool or Slurm worker starts without the user's plugins
    log = RunLog(spec)
    say = _tee(log, progress)
    try:
        with _STOP.installed():
            n = _run_one(spec, torch.device(device), say, force, log)
    except Preempted as e:
        say(f"{spec.label}: {e}")
        raise Preempted(f"{spec.label}: {e}") from None
    except ConfigError:  # bad input found only once a run starts (a --pretrained file that is not weights): every
        raise  # run would fail the same way, so it stops the sweep with its one line, as bad input does
    except Exception as e:
        if isinstance(e, torch.OutOfMemoryError):
            bs = spec.config["train"]["batch_size"]
            e = BenchError(
                f"out of GPU memory; lower the batch size (--cfg-options train.batch_size={max(1, bs // 2)}) "
                f"or evaluation batch (eval.batch_size), or use train.precision=bf16"
            )
        failure = _write_failure(spec, e, log)
        say(f"{spec.label}: FAILED in {log.phase}: {failure.error}")
        raise RunFailed(f"{spec.label}: {failure.error}") from None
    finally:
        log.close()
    if n:
        spec.layout.failure(spec).unlink(missing_ok=True)  # a retried run that now succeeds is no longer failed
        spec.layout.traceback(spec).unlink(missing_ok=True)
    return n


def _tee(log: RunLog, progress: Progress | None) -> Progress:
    def say(msg: str) -> None:
        log.say(msg)
        if progress is not None:
            progress(msg)

    return say


def _write_failure(spec: RunSpec, error: BaseException, log: RunLog) -> Failure:
    """The run's failure record and traceback file, written atomically beside its log."""
    layout = spec.layout
    message = str(error).splitlines()[0] if str(error) else ""
    line = message if isinstance(error, BenchError) else f"{type(error).__name__}: {message}".rstrip(": ")
    atomic_write_text(layout.traceback(spec), "".join(traceback.format_exception(error)))
    failure = Failure(
        label=spec.label, method=spec.method, config_hash=spec.config_hash, suite=spec.suite,
        train_dataset=spec.train_dataset, seed=spec.seed, shots=spec.shots, error=line, phase=log.phase,
        epoch=log.epoch, traceback=layout.traceback(spec).name,
        keys=[k for k, ev in zip(spec.record_keys(), spec.evals) if not spec.record_path(ev).exists()],
        config=spec.config, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )  # fmt: skip
    atomic_write_json(layout.failure(spec), failure.to_dict())
    return failure


def sigterm_is_free() -> bool:
    """Whether this code may install a SIGTERM handler here: in the main thread (the only one Python allows), and no
    other handler owns the signal (submitit's, in a Slurm job)."""
    return threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
        signal.SIG_DFL,
        None,
    )


class _StopOnSigterm:
    """SIGTERM while a run trains: the trainer saves its state at the next step boundary and raises
    :class:`Preempted`; outside training the run stops at once (records are atomic, so nothing is half written)."""

    def __init__(self) -> None:
        self.requested = False
        self.training = False

    def __call__(self, signum: int, frame: Any) -> None:
        self.requested = True
        if not self.training:
            raise Preempted("stopped by SIGTERM")

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handle SIGTERM during the block, unless another handler owns it (submitit in a Slurm job) or this is not
        the main thread (where Python cannot install handlers)."""
        if not sigterm_is_free():
            yield
            return
        self.requested = False
        previous = signal.signal(signal.SIGTERM, self)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    def defer(self) -> None:
        """From now on (the training steps) a SIGTERM only sets the flag that the trainer polls at each step."""
        if self.requested:
            raise Preempted("stopped by SIGTERM")
        self.training = True

    @contextlib.contextmanager
    def training_steps(self) -> Iterator[None]:
        """Around ``fit``: whatever happens inside, a SIGTERM after it stops the run at once again."""
        try:
            yield
        finally:
            self.training = False


_STOP = _StopOnSigterm()


@dataclass
class _Trained:
    """A fitted method and what its records report about the training."""

    method: Method
    ctx: FitContext
    stats: dict[str, Any]
    split_hash: str
    setup_s: float  # reading the split, building the backbone and method (and loading a checkpoint): per-run fixed cost


def _run_one(spec: RunSpec, device: torch.device, say: Progress, force: bool, log: RunLog) -> int:
    if not force and not spec.pending():
        return 0
    # One process at a time per run, however many share the results folder: a second one waits here, then finds the
    # records written and skips (each run trains once).
    with lock(spec.layout.run_lock(spec)):
        return _run_locked(spec, device, say, force, log)


def _run_locked(spec: RunSpec, device: torch.device, say: Progress, force: bool, log: RunLog) -> int:
    todo = spec.evals if force else spec.pending()
    if not todo:
        return 0
    log.phase = "data"
    say(f"{spec.label}: start (config {spec.config_hash}, {spec.backbone}/{spec.pretrained}, results {spec.results})")
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
        # that mode also fills every new tensor with NaN to expose reads of uninitialised memory: a debugging aid
        # that changes no result and took 8.5 % of a profiled PromptSRC run's CPU time (142k fill_ calls)
        torch.utils.deterministic.fill_uninitialized_memory = False
    seed_everything(spec.seed)
    peak = PeakMemory(device)
    peak.reset()
    caches = Caches(spec.layout.cache_dir, loader_options(device, spec.config["train"]["num_workers"])["num_workers"])
    trained = _train_or_load(spec, device, caches, say, force, log)
    results: dict[tuple[str, str], dict[str, Any]] = {}  # one evaluation per (dataset, subset), shared by protocols
    for ev in todo:
        key = (ev.dataset, ev.subset)
        if key not in results:
            log.phase, log.epoch = f"evaluate {ev.dataset}/{ev.subset}", None
            say(f"{spec.label}: evaluating on {ev.dataset}/{ev.subset}")
            results[key] = _evaluate(spec, ev, trained, caches, device)
            log.metrics({"event": "eval", "epoch": trained.stats.get("epochs", 0), "dataset": ev.dataset,
                         "subset": ev.subset, "accuracy": results[key]["accuracy"]})  # fmt: skip
        say(f"{spec.label}: {ev.protocol} {ev.dataset}/{ev.subset} accuracy {results[key]['accuracy']:.2f}")
        atomic_write_text(spec.layout.record_config(spec, ev), to_yaml(spec.config))  # before the record: done = both
        atomic_write_json(spec.record_path(ev), _record(spec, ev, trained, results[key], peak.mb(), device).to_dict())
    return len(todo)


def _train_or_load(
    spec: RunSpec, device: torch.device, caches: Caches, say: Progress, force: bool, log: RunLog
) -> _Trained:
    """The method fitted on the run's few-shot draw (continuing a saved mid-run state), or restored from the run's
    checkpoint."""
    start = time.perf_counter()
    reader, splits = read_dataset(spec.train_dataset, spec.data_root)
    train, val, split_hash = fewshot_split(spec, reader, splits)
    train = subsample_classes(train, spec.train_subset, range(len(splits.classnames)))
    val = subsample_classes(val, spec.train_subset, range(len(splits.classnames)))
    classnames = subset_classnames(splits.classnames, spec.train_subset)

    log.phase = "build"
    precision = Precision(spec.config["train"]["precision"], device.type)
    backbone = get_backbone(spec.backbone, spec.pretrained, device, half=precision.weights_dtype == torch.float16)
    seed_everything(spec.seed)  # the method's initialisation does not depend on how many backbones were built
    config = resolve_schedule(spec.config, len(train))  # train.min_steps raises the epochs (the record keeps both)
    method: Method = get_method(spec.method)(backbone, config, n_cls=len(classnames)).to(device)
    cast_learned(method, precision.weights_dtype)  # fp16: initialised in float32, then held in half (CoOp's dtype)
    train_role = role(spec.suite, spec.train_dataset)
    method.set_classnames(classnames, reader.template, train_role)
    ctx = FitContext(backbone, device, spec.train_dataset, train, val, classnames, reader.template, spec.seed, caches,
                     spec.config["eval"]["batch_size"], role=train_role)  # fmt: skip

    ckpt_path = spec.checkpoint_path()
    ckpt = _load_checkpoint(ckpt_path, method, device, say) if ckpt_path.exists() and not force else None
    if ckpt is not None:
        ctx.info = ckpt.get("info", {})
        say(f"{spec.label}: loaded checkpoint")
        return _Trained(method, ctx, ckpt["train_stats"], split_hash, time.perf_counter() - start)
    if method.trains:
        say(f"{spec.label}: training on {len(train)} images of {len(classnames)} classes")
    else:  # zero-shot CLIP, Tip-Adapter: nothing trains (caches they build show as their own phase)
        say(f"{spec.label}: nothing to train ({spec.method})")
    log.phase = "train"
    t0 = time.perf_counter()
    setup_s = t0 - start
    stats: dict[str, Any] = {"train_s": 0.0}
    method.before_training(ctx)
    resume = spec.layout.resume_checkpoint(spec)
    if force:
        resume.unlink(missing_ok=True)
    elif resume.exists():
        _check_resume(resume, say)
    if method.trains:
        epochs = config["train"]["epochs"]
        train_cfg = config["train"]
        every = Checkpointing(resume, train_cfg["checkpoint_every"], train_cfg["checkpoint_minutes"],
                              stop_requested=lambda: _STOP.requested, on_steps=_STOP.defer)  # fmt: skip
        if resume.exists():
            say(f"{spec.label}: resuming from {resume.name}")

        def on_epoch(e: int, loss: float) -> None:
            log.epoch = e + 2  # the epoch that runs next: where a failure from here on stops
            say(f"{spec.label}: epoch {e + 1}/{epochs} loss {loss:.4f}")

        log.epoch = None if resume.exists() else 1
        with _STOP.training_steps():
            stats = fit(method, ctx, train_cfg, on_epoch=on_epoch, checkpoint=every, on_metrics=log.metrics)
        log.epoch = None
    log.phase = "after training"
    method.after_training(ctx)
    stats["fit_s"] = time.perf_counter() - t0
    state = {"method": method.learned_state_dict(), "train_stats": stats, "info": ctx.info}
    atomic_write(ckpt_path, lambda tmp: torch.save(state, tmp))
    resume.unlink(missing_ok=True)  # the final checkpoint supersedes the mid-run state
    return _Trained(method, ctx, stats, split_hash, setup_s)


def _check_resume(path: Path, say: Progress) -> None:
    """A mid-run state that does not load is moved aside (kept) and the training starts over, rather than failing
    every retry."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("version") != 1:
            raise ValueError("not a training state of this adaptbench")
    except Exception as e:  # truncated, refused by weights_only, another version: all mean "train from the start"
        aside = set_aside(path, f".unreadable-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}")
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        say(f"warning: training state {path} did not load ({reason}); moved to {aside.name}, training from the start")


def _load_checkpoint(path: Path, method: Method, device: torch.device, say: Progress) -> dict[str, Any] | None:
    """A run checkpoint loaded into ``method`` — tensors and plain values only (``weights_only``: a crafted file cannot
    run code). One that does not load or does not fit is moved aside (kept, not deleted) and the run retrains."""
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(ckpt, dict) or not {"method", "train_stats"} <= ckpt.keys():
            raise ValueError("not a run checkpoint")
        method.load_learned_state_dict(ckpt["method"])
        return ckpt
    except Exception as e:  # unpickling refused, truncated file, wrong method: all mean "retrain"
        aside = set_aside(path, f".unreadable-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}")
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        say(f"warning: checkpoint {path} did not load ({reason}); moved to {aside.name}, training again")
        return None


def _evaluate(spec: RunSpec, ev: EvalSpec, trained: _Trained, caches: Caches, device: torch.device) -> dict[str, Any]:
    reader, splits = read_dataset(ev.dataset, spec.data_root)
    items = subsample_classes(splits.test, ev.subset, range(len(splits.classnames)))
    names = subset_classnames(splits.classnames, ev.subset)
    t0 = time.perf_counter()
    acc, per_class = evaluate(trained.method, items, names, reader.template, trained.ctx.backbone, device, caches,
                              spec.config["eval"]["batch_size"], spec.config["train"]["precision"],
                              role(spec.suite, ev.dataset))  # fmt: skip
    return {"accuracy": acc, "per_class_accuracy": dict(zip(names, per_class)), "eval_s": time.perf_counter() - t0,
            "n_test": len(items), "test_hash": digest(items_to_json(items, Path(spec.data_root)))}  # fmt: skip


def _record(
    spec: RunSpec, ev: EvalSpec, trained: _Trained, result: dict[str, Any], peak_mb: float | None, device: torch.device
) -> Record:
    stats = trained.stats
    return Record(
        method=spec.method,
        protocol=ev.protocol,
        suite=spec.suite,
        dataset=ev.dataset,
        subset=ev.subset,
        train_dataset=spec.train_dataset,
        train_subset=spec.train_subset,
        seed=spec.seed,
        shots=spec.shots,
        backbone=spec.backbone,
        pretrained=spec.pretrained,
        random_init=spec.pretrained == "none",
        config_hash=spec.config_hash,
        options=spec.options,
        accuracy=result["accuracy"],
        per_class_accuracy=result["per_class_accuracy"],
        n_test=result["n_test"],
        n_train=len(trained.ctx.train),
        trainable_params=trained.method.num_trainable(),
        timing={
            **{k: v for k, v in stats.items() if k.endswith("_s")},
            "setup_s": trained.setup_s,
            "eval_s": result["eval_s"],
        },  # fmt: skip
        train_steps=stats.get("steps", 0),
        final_losses=stats.get("losses", {}),
        method_info=trained.ctx.info,
        peak_memory_mb=peak_mb,
        split_hash=trained.split_hash,
        test_hash=result["test_hash"],
        config=spec.config,
        versions=versions(),
        git_revision=_git_revision(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        departures=get_method(spec.method).departures(spec.config, device.type),
    )
