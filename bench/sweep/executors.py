"""Where runs execute: this process (:class:`LocalExecutor`), one worker process per GPU (:class:`PoolExecutor`), or
Slurm through submitit (:class:`SlurmExecutor`).

All call :func:`bench.sweep.runner.run_one` on a picklable :class:`~bench.sweep.plan.RunSpec`; records are written
atomically, so any mix of executors and interruptions leaves a consistent results folder. A run that fails has written
its failure record; executors go on to the next run unless ``fail_fast``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.errors import ConfigError
from bench.model.backbone import default_device
from bench.sweep.plan import RunSpec
from bench.sweep.runner import RunFailed, run_one

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


def _init_worker(queue: Any) -> None:
    """Pin this worker process to the next GPU id of ``queue`` before anything touches CUDA: its ``cuda`` is then
    that GPU, whatever the id."""
    gpu = queue.get()
    os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)


def _pool_run(spec: RunSpec, force: bool) -> int:
    return run_one(spec, default_device(), None, force)


@dataclass
class PoolExecutor:
    """One worker process per GPU id (default: all visible); runs are handed out as workers free up."""

    gpus: Sequence[str] | None = None
    name: str = "pool"
    worker: Callable[[RunSpec, bool], int] = _pool_run  # what each worker calls per spec (tests pass their own)

    def run(self, specs: Sequence[RunSpec], force: bool = False, on_message: OnMessage = ignore_message,
            on_done: OnDone = ignore_done, fail_fast: bool = False) -> int:  # fmt: skip
        import torch

        gpus = list(self.gpus) if self.gpus else [str(i) for i in range(torch.cuda.device_count())]
        if not gpus:
            raise ConfigError("--executor pool needs GPUs (none visible); use --executor local")
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        for g in gpus:
            queue.put(g)
        total = 0
        with ProcessPoolExecutor(len(gpus), mp_context=ctx, initializer=_init_worker, initargs=(queue,)) as pool:
            futures = {pool.submit(self.worker, s, force): s for s in specs}
            for fut in as_completed(futures):
                try:
                    n = fut.result()
                except RunFailed:
                    on_done(futures[fut], 0)
                    if fail_fast:
                        pool.shutdown(cancel_futures=True)  # runs already started finish; the rest never start
                        break
                    continue
                total += n
                on_done(futures[fut], n)
        return total


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


def make_executor(name: str, device: str | None = None, gpus: Sequence[str] | None = None, **slurm: Any) -> Executor:
    """The executor called ``name`` (local | pool | slurm), for the CLI's ``--executor``."""
    if name == "local":
        return LocalExecutor(device)
    if name == "pool":
        return PoolExecutor(gpus)
    if name == "slurm":
        return SlurmExecutor(**slurm)
    raise ConfigError(f"unknown executor {name!r}; valid: local, pool, slurm")
