"""What a CUDA run does differently, checked on a CPU: loader settings, peak-memory accounting, the pool's GPU pinning."""

from __future__ import annotations

import os
from pathlib import Path, PosixPath
from typing import Any

import pytest
import torch

from bench.errors import ConfigError
from bench.model.device import PeakMemory, loader_options, synchronize
from bench.sweep import executors
from bench.sweep.executors import PoolExecutor

CUDA1 = torch.device("cuda", 1)  # a device object only: nothing here touches a GPU


def test_cuda_loads_with_pinned_memory_and_fresh_workers_each_epoch_cpu_in_process():
    assert loader_options(CUDA1, 8) == {"num_workers": 8, "pin_memory": True, "persistent_workers": False}
    assert loader_options(CUDA1, 0) == {"num_workers": 0, "pin_memory": True, "persistent_workers": False}
    assert loader_options(torch.device("cpu"), 8) == {
        "num_workers": 0,
        "pin_memory": False,
        "persistent_workers": False,
    }


class FakeCuda:
    """The three ``torch.cuda`` calls the harness makes, recorded; the allocator's peak is whatever the test sets."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, torch.device]] = []
        self.peak_bytes = 0

    def reset_peak_memory_stats(self, device: torch.device) -> None:
        self.calls.append(("reset", device))
        self.peak_bytes = 0

    def max_memory_allocated(self, device: torch.device) -> int:
        self.calls.append(("peak", device))
        return self.peak_bytes

    def synchronize(self, device: torch.device) -> None:
        self.calls.append(("sync", device))


def test_peak_memory_is_read_from_the_cuda_allocator_of_the_runs_device():
    cuda = FakeCuda()
    peak = PeakMemory(CUDA1, cuda)
    cuda.peak_bytes = 123
    peak.reset()  # the run starts: an earlier peak does not count
    cuda.peak_bytes = 3 * 2**30
    assert peak.mb() == 3 * 1024
    synchronize(CUDA1, cuda)
    assert cuda.calls == [("reset", CUDA1), ("peak", CUDA1), ("sync", CUDA1)]


def test_on_a_cpu_there_is_no_peak_and_cuda_is_never_called():
    cuda = FakeCuda()
    peak = PeakMemory(torch.device("cpu"), cuda)
    peak.reset()
    synchronize(torch.device("cpu"), cuda)
    assert peak.mb() is None and cuda.calls == []


class _Spec(PosixPath):
    """A stand-in RunSpec for the pool tests: the file its fake worker writes; no evaluations (the pool's ordering)."""

    evals: tuple = ()


def _report_gpu(spec: Path, force: bool, messages: Any) -> int:
    """A pool worker's job in the test: write which GPU this process was pinned to (and its threads), say so."""
    spec.write_text(f"{os.getpid()} {os.environ['CUDA_VISIBLE_DEVICES'] or '-'} {torch.get_num_threads()}")
    messages.put(f"ran {spec.name}")
    return 1


@pytest.mark.e2e
def test_the_pool_pins_each_worker_to_its_own_gpu_id(tmp_path: Path):
    specs = [_Spec(tmp_path / f"spec{i}") for i in range(6)]
    done: list = []
    ran = PoolExecutor(["7", "9"], worker=_report_gpu).run(specs, on_done=lambda s, n: done.append(s))  # type: ignore[arg-type]
    assert ran == 6 and sorted(done) == specs
    seen = [p.read_text().split()[:2] for p in specs]
    gpu_of: dict[str, set[str]] = {}
    for pid, gpu in seen:
        gpu_of.setdefault(pid, set()).add(gpu)
    assert all(len(g) == 1 for g in gpu_of.values())  # a worker keeps its GPU
    assert len({next(iter(g)) for g in gpu_of.values()}) == len(gpu_of) <= 2  # no two workers share one
    assert {gpu for _, gpu in seen} <= {"7", "9"}


@pytest.mark.e2e
def test_a_cpu_pool_hides_the_gpus_splits_the_cores_and_relays_progress(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(executors, "cpu_cores", lambda: 4)  # the parent decides the threads per worker
    specs = [_Spec(tmp_path / f"spec{i}") for i in range(4)]
    said: list[str] = []
    pool = PoolExecutor(workers=2, device="cpu", worker=_report_gpu)  # type: ignore[arg-type]
    assert pool.slots() == ["cpu", "cpu"]
    assert pool.run(specs, on_message=said.append) == 4  # type: ignore[arg-type]
    seen = [p.read_text().split() for p in specs]
    assert {gpu for _, gpu, _ in seen} == {"-"} and {threads for _, _, threads in seen} == {"2"}
    assert len({pid for pid, _, _ in seen}) <= 2
    assert sorted(said) == [f"ran spec{i}" for i in range(4)]


def test_auto_pools_on_a_multicore_cpu_only(monkeypatch):
    monkeypatch.setattr(executors, "cpu_cores", lambda: 2)
    auto = executors.AutoExecutor("cpu")
    assert isinstance(auto.choose(5), PoolExecutor) and auto.choose(5).slots() == ["cpu", "cpu"]
    assert isinstance(auto.choose(1), executors.LocalExecutor)  # one run: no pool start-up to pay
    monkeypatch.setattr(executors, "cpu_cores", lambda: 1)
    assert isinstance(auto.choose(5), executors.LocalExecutor)
    monkeypatch.setattr(executors, "default_device", lambda: "cuda")
    monkeypatch.setattr(executors, "check_device", lambda d: d)  # no GPU here to check
    assert isinstance(executors.AutoExecutor().choose(5), executors.LocalExecutor)  # a GPU runs in this process


def test_pool_workers_must_be_positive():
    with pytest.raises(ConfigError, match="--workers 0"):
        PoolExecutor(workers=0, device="cpu").slots()


def _wait_for_sigterm(spec: Path, force: bool, messages: Any) -> int:
    """A pool worker's run in the test: it starts, then waits; SIGTERM stops it as a training run stops (Preempted)."""
    import signal
    import time

    from bench.errors import Preempted

    def stop(signum: int, frame: Any) -> None:
        raise Preempted("stopped by SIGTERM")

    signal.signal(signal.SIGTERM, stop)
    spec.write_text("started")
    time.sleep(60)
    return 1


@pytest.mark.e2e
def test_sigterm_to_a_pool_stops_its_workers_and_starts_no_more_runs(tmp_path: Path):
    import signal
    import threading
    import time

    from bench.errors import Preempted

    specs = [_Spec(tmp_path / f"spec{i}") for i in range(6)]
    killed: list[float] = []

    def kill_when_started() -> None:
        while sum(p.exists() for p in specs) < 2:
            time.sleep(0.05)
        killed.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=kill_when_started, daemon=True).start()
    with pytest.raises(Preempted, match="SIGTERM"):
        PoolExecutor(workers=2, device="cpu", worker=_wait_for_sigterm).run(specs)  # type: ignore[arg-type]
    assert time.monotonic() - killed[0] < 30  # the workers stopped, not slept their 60 s
    assert sum(p.exists() for p in specs) == 2  # the queued runs never started
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is put back
