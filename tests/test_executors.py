"""The local pool and the submitit path run the same RunSpecs and write the same records as the in-process executor."""

from __future__ import annotations

import json

from coop_fixture import make_coop_data

from bench import executors
from bench import plan as planlib


def _specs(tmp_path, results):
    data = make_coop_data(tmp_path / "data", names=["dtd", "eurosat"])
    opts = {"train.epochs": 1}
    return planlib.plan(["zeroshot"], ["base2novel"], planlib.REAL, [1], [4], data, results, ["dtd", "eurosat"],
                        "bench-tiny", "none", opts)  # fmt: skip


def _accuracies(results):
    return sorted(
        (str(p.relative_to(results)), json.loads(p.read_text())["accuracy"])
        for p in (results / "records").rglob("*.json")
    )


def test_pool_matches_local(tmp_path):
    local, pool = tmp_path / "local", tmp_path / "pool"
    specs = _specs(tmp_path, local)
    assert executors.run_local(specs, "cpu", lambda m: None, lambda s, n: None) == 4
    specs = _specs(tmp_path, pool)
    done = []
    assert executors.run_pool(specs, ["0", "1"], lambda s, n: done.append(n)) == 4
    assert done == [2, 2]
    assert _accuracies(local) == _accuracies(pool)


def test_submitit_debug_cluster_runs_specs_and_requeues_from_checkpoint(tmp_path):
    results = tmp_path / "res"
    specs = _specs(tmp_path, results)
    jobs = executors.submit_slurm(specs, results / "slurm", None, 10, 2, cluster="debug", wait=True)
    assert [j.result() for j in jobs] == [2, 2]
    assert len(_accuracies(results)) == 4
    # what submitit calls on preemption: a fresh submission of the same run, which resumes (nothing left to do)
    delayed = executors.SlurmRun(specs[0]).checkpoint()
    assert delayed.function.spec == specs[0] and delayed.function() == 0
