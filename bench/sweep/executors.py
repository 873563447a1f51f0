"""Where runs execute: this process (:class:`LocalExecutor`), worker processes, one per GPU or per CPU core
(:class:`PoolExecutor`; :class:`AutoExecutor`, the CLI's default, picks it on a multi-core CPU), or Slurm through
submitit (:class:`SlurmExecutor`).

All call :func:`bench.sweep.runner.run_one` on a picklable :class:`~bench.sweep.plan.RunSpec`; records are written
atomically, so any mix of executors and interruptions leaves a consistent results folder. A run that fails has written
its failure record; executors go on to the next run unless ``fail_fast``.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.errors import ConfigError, Preempted
from bench.model.backbone import default_device
from bench.sweep.plan import RunSpec
from bench.sweep.runner import RunFailed, run_one, sigterm_is_free

OnMessage = Callable[[str], None]
OnDone = Callable[[RunSpec, int], None]


def ignore_message(msg: str) -> None:
    pass


def ignore_done(spec: RunSpec, n: int) -> None:
    pass


class Executor(Protocol):
    """Runs specs; returns the number of records written (0 when it only submits, like Slurm).

    A failed run counts as done with 0 records (its failure record is written); ``fail_fast`` stops at the first.
    """

    name: str

    def run(self, specs: Sequence[RunSpec], force: bool = False, on_message: OnMessage = ignore_message,
            on_done: OnDone = ignore_done, fail_fast: bool = False) -> int: ...  # fmt: skip


@dataclass
class LocalExecutor:
    """Every spec in this process, in order."""

    device: str | None = None
    name: str = "local"

    def __post_init__(self) -> None:
        if self.device is not None:
            check_device(self.device)  # a bad --device fails before planning, not after the first run

    def run(self, specs: Sequence[RunSpec], force: bool = False, on_message: OnMessage = ignore_message,
            on_done: OnDone = ignore_done, fail_fast: bool = False) -> int:  # fmt: skip
        device = check_device(self.device or default_device())
        total = 0
        for spec in specs:
            try:
                n = run_one(spec, device, on_message, force)
            except RunFailed:
                on_done(spec, 0)
                if fail_fast:
                    break
                continue
            total += n
            on_done(spec, n)
        return total


def check_device(device: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` that exists here; anything else is one clear error."""
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"--device {device!r}: use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {device!r}: use cpu, cuda or cuda:N")
    if dev.type == "cuda":
        n = torch.cuda.device_count()
        if n == 0:
            raise ConfigError(f"--device {device}: no CUDA GPU is visible here; use --device cpu")
        if dev.index is not None and dev.index >= n:
            raise ConfigError(f"--device {device}: only {n} GPU(s) visible (cuda:0..cuda:{n - 1})")
    return device


_STOPPING: Any = None  # in a pool worker: the pool's "stop" event (set on SIGTERM: start no further run)


def _init_worker(slots: Any, threads: int, stopping: Any) -> None:
    """Pin this worker process to the next slot of ``slots`` before anything touches CUDA: a GPU id makes ``cuda``
    that GPU, whatever the id; ``cpu`` hides the GPUs and gives the worker ``threads`` CPU threads (one per core
    between the workers: several single-thread runs use a small CPU better than one run's intra-op threads)."""
    global _STOPPING
    _STOPPING = stopping
    slot = slots.get()
    if slot == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        import torch

        torch.set_num_threads(threads)
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(slot)


def _call(worker: Callable[[RunSpec, bool, Any], int], spec: RunSpec, force: bool, messages: Any) -> int:
    """One run in a pool worker, unless the pool is stopping (runs already queued to a worker would start anyway)."""
    if _STOPPING is not None and _STOPPING.is_set():
        raise Preempted("not started: the sweep was stopped")
    return worker(spec, force, messages)


def _pool_run(spec: RunSpec, force: bool, messages: Any) -> int:
    return run_one(spec, default_device(), messages.put, force)


def cpu_cores() -> int:
    """The cores this process may use (a container's or ``taskset``'s limit, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class PoolExecutor:
    """Worker processes that take runs as they free up: one per GPU id (default: all visible), or with ``device``
    ``cpu`` (or no GPU visible) one per core, each with its share of the cores' threads. ``workers`` overrides the
    count (on GPUs, several workers share a GPU round-robin: small runs leave a big GPU mostly idle).

    Each worker's progress lines come back to ``on_message`` through a queue, so a pool is watched like a local run.
    """

    gpus: Sequence[str] | None = None
    workers: int | None = None
    device: str | None = None
    name: str = "pool"
    worker: Callable[[RunSpec, bool, Any], int] = _pool_run  # what each worker calls per spec (tests pass their own)

    def slots(self) -> list[str]:
        """One entry per worker: its GPU id, or ``cpu``."""
        import torch

        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers {self.workers}: use 1 or more")
        on_cpu = self.device == "cpu" or (not self.gpus and not torch.cuda.is_available())
        if on_cpu:
            return ["cpu"] * (self.workers or cpu_cores())
        gpus = list(self.gpus) if self.gpus else [str(i) for i in range(torch.cuda.device_count())]
        return [gpus[i % len(gpus)] for i in range(self.workers or len(gpus))]

    def run(self, specs: Sequence[RunSpec], force: bool = False, on_message: OnMessage = ignore_message,
            on_done: OnDone = ignore_done, fail_fast: bool = False) -> int:  # fmt: skip
        slots = self.slots()
        threads = max(1, cpu_cores() // len(slots))
        ctx = mp.get_context("spawn")
        queue, stopping = ctx.Queue(), ctx.Event()
        for s in slots:
            queue.put(s)
        total = 0
        with ctx.Manager() as manager:
            messages = manager.Queue()
            relay = threading.Thread(target=_relay, args=(messages, on_message), daemon=True)
            relay.start()
            try:
                with ProcessPoolExecutor(len(slots), mp_context=ctx, initializer=_init_worker,
                                         initargs=(queue, threads, stopping)) as pool, _Stopper(pool, stopping) as stop:  # fmt: skip
                    futures = {pool.submit(_call, self.worker, s, force, messages): s for s in _longest_first(specs)}
                    for fut in as_completed(futures):
                        try:
                            n = fut.result()
                        except RunFailed:
                            on_done(futures[fut], 0)
                            if fail_fast:
                                pool.shutdown(cancel_futures=True)  # runs already started finish; the rest never start
                                break
                            continue
                        except (Preempted, BrokenProcessPool):
                            if not stop.sigterm:
                                raise
                            pool.shutdown(cancel_futures=True)  # the workers save their training states and stop
                            break
                        total += n
                        on_done(futures[fut], n)
            finally:
                messages.put(None)
                relay.join()
        if stop.sigterm:
            raise Preempted("stopped by SIGTERM; each worker saved its training state (the same command resumes)")
        return total


class _Stopper:
    """A pool's stops. SIGTERM to this process goes on to every worker, whose run saves its training state at the next
    step and raises :class:`Preempted` (as a local run does); Ctrl-C ends the workers at once (records are atomic: a
    run that did not finish is simply to do) instead of waiting for every queued run."""

    def __init__(self, pool: ProcessPoolExecutor, stopping: Any) -> None:
        self.pool, self.stopping, self.previous = pool, stopping, None

    @property
    def sigterm(self) -> bool:
        """Whether SIGTERM stopped the pool (the event the workers read says so)."""
        return bool(self.stopping.is_set())

    def _workers(self) -> list[Any]:
        return list((self.pool._processes or {}).values())  # no public accessor for a pool's processes

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.stopping.set()
        for p in self._workers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)

    def __enter__(self) -> _Stopper:
        if sigterm_is_free():
            self.previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            for p in self._workers():
                p.terminate()
            self.pool.shutdown(wait=False, cancel_futures=True)


def _longest_first(specs: Sequence[RunSpec]) -> list[RunSpec]:
    """Runs with the most evaluations first (a source training scored on every transfer target, the longest runs):
    started last, one of them would keep one worker busy while the others idle at the end."""
    return sorted(specs, key=lambda s: -len(s.evals))  # stable: the plan's order otherwise


def _relay(messages: Any, on_message: OnMessage) -> None:
    """The workers' progress lines, shown in this process until the ``None`` that ends the pool."""
    while (msg := messages.get()) is not None:
        on_message(msg)


@dataclass
class AutoExecutor:
    """The CLI's default: on a CPU with several cores and several runs, a :class:`PoolExecutor` with one
    single-thread worker per core (``benchmarks/sweep_phases.py`` measures the gain); otherwise, and always on a
    GPU, :class:`LocalExecutor`."""

    device: str | None = None
    workers: int | None = None
    name: str = "auto"

    def __post_init__(self) -> None:
        if self.device is not None:
            check_device(self.device)

    def choose(self, n_specs: int) -> Executor:
        device = self.device or default_device()
        cores = self.workers or cpu_cores()
        if device == "cpu" and cores > 1 and n_specs > 1:
            return PoolExecutor(workers=min(cores, n_specs), device="cpu")
        return LocalExecutor(device)

    def run(self, specs: Sequence[RunSpec], force: bool = False, on_message: OnMessage = ignore_message,
            on_done: OnDone = ignore_done, fail_fast: bool = False) -> int:  # fmt: skip
        return self.choose(len(specs)).run(specs, force, on_message, on_done, fail_fast)


class SlurmRun:
    """A submitit callable: runs one spec. On preemption or timeout submitit calls :meth:`checkpoint` and requeues
    what it returns — this run again, which continues from its last mid-run training state
    (``train.checkpoint_every`` / ``train.checkpoint_minutes``) or its final checkpoint."""

    def __init__(self, spec: RunSpec, force: bool = False) -> None:
        self.spec, self.force = spec, force

    def __call__(self) -> int:
        return run_one(self.spec, default_device(), print, self.force)

    def checkpoint(self) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(SlurmRun(self.spec, force=False))


@dataclass
class SlurmExecutor:
    """One Slurm job-array task per spec (one GPU each); ``cluster='debug'`` runs them here, for tests."""

    partition: str | None = None
    timeout_min: int = 240
    parallelism: int = 32
    folder: Path | None = None  # default: the results folder's slurm/
    cluster: str | None = None
    wait: bool = False
    name: str = "slurm"
    jobs: list[Any] = field(default_factory=list)

    def run(self, specs: Sequence[RunSpec], force: bool = False, on_message: OnMessage = ignore_message,
            on_done: OnDone = ignore_done, fail_fast: bool = False) -> int:  # fmt: skip
        """Submit every spec as one job array; with ``wait``, collect them (a failed job has its failure record).
        ``fail_fast`` has no effect on jobs already queued."""
        import submitit

        if not specs:
            return 0
        folder = self.folder or specs[0].layout.slurm_dir
        executor = submitit.AutoExecutor(folder=str(Path(folder) / "%j"), cluster=self.cluster)
        if self.cluster is None and executor.cluster != "slurm":  # submitit would quietly run the jobs here instead
            raise ConfigError("--executor slurm: no Slurm on this machine (sbatch not found); use local or pool")
        params: dict[str, Any] = {"timeout_min": self.timeout_min, "slurm_array_parallelism": self.parallelism}
        if executor.cluster == "slurm":
            params.update(gpus_per_node=1, tasks_per_node=1, cpus_per_task=8, slurm_max_num_timeout=10)
            if self.partition:
                params["slurm_partition"] = self.partition
        executor.update_parameters(**params)
        with executor.batch():
            for spec in specs:
                self.jobs.append(executor.submit(SlurmRun(spec, force)))
        if not self.wait:
            return 0
        total = 0
        for job, spec in zip(self.jobs, specs):
            try:
                n = job.result()
            except Exception:  # submitit wraps the job's RunFailed; the job wrote its failure record
                n = 0
            total += n
            on_done(spec, n)
        return total


def make_executor(
    name: str, device: str | None = None, gpus: Sequence[str] | None = None, workers: int | None = None, **slurm: Any
) -> Executor:
    """The executor called ``name`` (auto | local | pool | slurm), for the CLI's ``--executor``."""
    if name == "auto":
        return AutoExecutor(device, workers)
    if name == "local":
        return LocalExecutor(device)
    if name == "pool":
        if device is not None:
            check_device(device)
        return PoolExecutor(gpus, workers, device)
    if name == "slurm":
        return SlurmExecutor(**slurm)
    raise ConfigError(f"unknown executor {name!r}; valid: auto, local, pool, slurm")
