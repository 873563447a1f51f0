"""Where runs execute: in this process, a local pool with one worker per GPU, or Slurm through submitit.

All three call :func:`bench.runner.run_one` on a picklable :class:`~bench.plan.RunSpec`; records are written
atomically, so any mix of executors and interruptions leaves a consistent results folder.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from bench.plan import RunSpec
from bench.runner import run_one

Progress = Callable[[str], None]


def run_local(specs: Sequence[RunSpec], device: str, on_message: Progress, on_done: Callable[[RunSpec, int], None],
              force: bool = False) -> int:  # fmt: skip
    """Run every spec in this process, in order."""
    total = 0
    for spec in specs:
        n = run_one(spec, device, on_message, force)
        total += n
        on_done(spec, n)
    return total


def _init_worker(queue: Any) -> None:
    # Pin this worker to one GPU before anything touches CUDA.
    gpu = queue.get()
    os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)


def _pool_run(spec: RunSpec, force: bool) -> int:
    import torch

    return run_one(spec, "cuda" if torch.cuda.is_available() else "cpu", None, force)


def run_pool(specs: Sequence[RunSpec], gpus: Sequence[str], on_done: Callable[[RunSpec, int], None],
             force: bool = False) -> int:  # fmt: skip
    """One worker process per GPU id in ``gpus`` (e.g. ``["0", "1"]``); runs are handed out as workers free up."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    for g in gpus:
        queue.put(g)
    total = 0
    with ProcessPoolExecutor(len(gpus), mp_context=ctx, initializer=_init_worker, initargs=(queue,)) as pool:
        futures = {pool.submit(_pool_run, s, force): s for s in specs}
        for fut in as_completed(futures):
            n = fut.result()
            total += n
            on_done(futures[fut], n)
    return total


class SlurmRun:
    """A submitit callable: runs one spec; on preemption or timeout it is requeued and resumes from its checkpoint."""

    def __init__(self, spec: RunSpec, force: bool = False) -> None:
        self.spec, self.force = spec, force

    def __call__(self) -> int:
        import torch

        return run_one(self.spec, "cuda" if torch.cuda.is_available() else "cpu", print, self.force)

    def checkpoint(self) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(SlurmRun(self.spec, force=False))


def submit_slurm(specs: Sequence[RunSpec], folder: Path, partition: str | None, timeout_min: int, parallelism: int,
                 cluster: str | None = None, wait: bool = False) -> list[Any]:  # fmt: skip
    """Submit one Slurm job-array task per spec (one GPU each); ``cluster='debug'`` runs them here, for tests."""
    import submitit

    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=cluster)
    params: dict[str, Any] = {"timeout_min": timeout_min, "slurm_array_parallelism": parallelism}
    if executor.cluster == "slurm":
        params.update(gpus_per_node=1, tasks_per_node=1, cpus_per_task=8, slurm_max_num_timeout=10)
        if partition:
            params["slurm_partition"] = partition
    executor.update_parameters(**params)
    jobs = []
    with executor.batch():
        for spec in specs:
            jobs.append(executor.submit(SlurmRun(spec)))
    if wait:
        for job in jobs:
            job.result()
    return jobs
