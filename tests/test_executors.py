"""The local pool and the submitit path run the same RunSpecs and write the same records as the in-process executor."""

from __future__ import annotations

import json

import pytest
from coop_fixture import make_coop_data

from bench.sweep import executors
from bench.sweep import plan as planlib
from bench.sweep.suites import REAL

pytestmark = pytest.mark.e2e


def _specs(tmp_path, results):
    data = make_coop_data(tmp_path / "data", names=["dtd", "eurosat"])
    opts = {"train.epochs": 1}
    return planlib.plan(["zeroshot"], ["base2novel"], REAL, [1], [4], data, results, ["dtd", "eurosat"],
                        "bench-tiny", "none", opts)  # fmt: skip


def _accuracies(results):
    return sorted(
        (str(p.relative_to(results)), json.loads(p.read_text())["accuracy"])
        for p in (results / "records").rglob("*.json")
    )


def test_pool_matches_local(tmp_path):
    local, pool = tmp_path / "local", tmp_path / "pool"
    specs = _specs(tmp_path, local)
    assert executors.LocalExecutor("cpu").run(specs) == 4
    specs = _specs(tmp_path, pool)
    done = []
    assert executors.PoolExecutor(["0", "1"]).run(specs, on_done=lambda s, n: done.append(n)) == 4
    assert done == [2, 2]
    assert _accuracies(local) == _accuracies(pool)


def test_submitit_debug_cluster_runs_specs_and_requeues_from_checkpoint(tmp_path):
    results = tmp_path / "res"
    specs = _specs(tmp_path, results)
    slurm = executors.SlurmExecutor(timeout_min=10, parallelism=2, cluster="debug", wait=True)
    assert slurm.run(specs) == 4
    assert [j.result() for j in slurm.jobs] == [2, 2]
    assert (results / "slurm").is_dir()  # the layout's slurm folder by default
    assert len(_accuracies(results)) == 4
    # what submitit calls on preemption: a fresh submission of the same run, which resumes (nothing left to do)
    delayed = executors.SlurmRun(specs[0]).checkpoint()
    assert delayed.function.spec == specs[0] and delayed.function() == 0
