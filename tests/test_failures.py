"""Failures are results: a run that raises is recorded (error, traceback, where it stopped) and the sweep goes on;
the sweep ends with the failed-run table and exit 1; a re-run retries; the report lists failed runs apart from missing
ones. Each run also leaves its log and per-epoch metrics (and TensorBoard events when asked)."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from coop_fixture import make_coop_data
from typer.testing import CliRunner

from bench.cli import app
from bench.registry import METHODS

pytestmark = pytest.mark.e2e

PLUGIN = '''
import os
from bench.methods.coop import CoOp
from bench.registry import register_method


@register_method("flaky")
class Flaky(CoOp):
    """CoOp that raises in its second epoch on the dataset named by $FLAKY_ON."""

    def after_epoch(self, ctx, epoch):
        if epoch == 1 and ctx.dataset == os.environ.get("FLAKY_ON"):
            raise RuntimeError(f"flaky broke on {ctx.dataset}")
'''


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("data")
    (root / "flaky_plugin.py").write_text(PLUGIN)
    yield make_coop_data(root, names=["dtd", "eurosat"])
    METHODS.module_dict.pop("flaky", None)  # the plugin's method is this module's only: other tests list the methods
    sys.modules.pop("bench_plugin_flaky_plugin", None)


def bench(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def run(data: Path, results: Path, *extra: str):
    return bench("run", "--data-root", data, "--results", results, "--backbone", "bench-tiny", "--pretrained", "none",
                 "--seeds", "1", "--shots", "4", "--method", "flaky", "--plugin", data / "flaky_plugin.py",
                 "--datasets", "dtd,eurosat", "--cfg-options", "train.epochs=3", *extra)  # fmt: skip


def files(results: Path, pattern: str, dataset: str) -> list[Path]:
    return sorted(p for p in results.rglob(pattern) if f"{dataset}__" in str(p))


def test_a_failing_run_is_recorded_the_sweep_goes_on_and_a_rerun_retries_it(data, tmp_path, monkeypatch):
    monkeypatch.setenv("FLAKY_ON", "dtd")  # the first run of the sweep
    r = run(data, tmp_path)
    assert r.exit_code == 1, r.output
    out = " ".join(r.output.split())
    assert "1 failed run(s)" in out and "flaky dtd/base seed 1 shots 4" in out and "flaky broke" in out
    assert len(files(tmp_path / "records", "*.json", "eurosat")) == 2  # the next run still ran
    assert not files(tmp_path / "records", "*.json", "dtd")
    (failure,) = files(tmp_path / "runs", "failure.json", "dtd")
    f = json.loads(failure.read_text())
    assert (f["error"], f["phase"], f["epoch"]) == ("RuntimeError: flaky broke on dtd", "train", 2)
    assert f["config"]["train"]["epochs"] == 3 and len(f["keys"]) == 2
    tb = (failure.parent / f["traceback"]).read_text()
    assert tb.startswith("Traceback") and "raise RuntimeError" in tb
    assert "FAILED in train" in (failure.parent / "log.txt").read_text()

    # the report lists it with its reason, not as missing
    rep = bench("report", "--results", tmp_path)
    assert rep.exit_code == 0, rep.output
    assert "Failed runs" in rep.output and "flaky broke on dtd" in rep.output
    assert "Missing runs" not in rep.output

    # --skip-failed leaves it; a plain re-run retries it, and once it succeeds it is no longer failed
    monkeypatch.setenv("FLAKY_ON", "nowhere")
    r = run(data, tmp_path, "--skip-failed")
    assert r.exit_code == 0 and "1 run(s) that failed before were left" in " ".join(r.output.split())
    assert failure.exists() and not files(tmp_path / "records", "*.json", "dtd")
    r = run(data, tmp_path)
    assert r.exit_code == 0, r.output
    assert len(files(tmp_path / "records", "*.json", "dtd")) == 2
    assert not failure.exists() and not (failure.parent / "traceback.txt").exists()
    assert "Failed runs" not in bench("report", "--results", tmp_path).output


def test_fail_fast_stops_at_the_first_failure(data, tmp_path, monkeypatch):
    monkeypatch.setenv("FLAKY_ON", "dtd")
    r = run(data, tmp_path, "--fail-fast")
    assert r.exit_code == 1 and "1 failed run(s)" in r.output
    assert not list((tmp_path / "records").rglob("*.json")) and not files(tmp_path / "runs", "log.txt", "eurosat")


def test_each_run_writes_its_log_and_per_epoch_metrics_and_the_report_draws_them(data, tmp_path, monkeypatch):
    monkeypatch.setenv("FLAKY_ON", "nowhere")
    assert run(data, tmp_path, "--datasets", "dtd").exit_code == 0
    (log,) = files(tmp_path / "runs", "log.txt", "dtd")
    lines = log.read_text().splitlines()
    assert any(line.endswith("epoch 3/3 loss " + line.split()[-1]) for line in lines)
    assert all(line[:4].isdigit() and line[4] == "-" for line in lines)  # each line starts with its date
    rows = [json.loads(line) for line in (log.parent / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "event" not in r]
    assert [r["epoch"] for r in train] == [1, 2, 3] and [r["step"] for r in train] == [1, 2, 3]
    assert train[0]["lr"] == 1e-5 and train[1]["lr"] == 0.002  # Dassl's constant warm-up epoch, then the base lr
    assert all(r["loss"] == r["loss/ce"] and r["grad_norm"] > 0 and r["elapsed_s"] > 0 for r in train)
    evals = [r for r in rows if r.get("event") == "eval"]
    assert {(r["dataset"], r["subset"]) for r in evals} == {("dtd", "base"), ("dtd", "novel")}

    r = bench("report", "--results", tmp_path, "--out", tmp_path / "report")
    assert r.exit_code == 0, r.output
    (png,) = (tmp_path / "report" / "curves").glob("flaky-*.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard not installed")
def test_logger_tensorboard_mirrors_the_metrics(data, tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("FLAKY_ON", "nowhere")
    assert run(data, tmp_path, "--datasets", "dtd", "--logger", "tensorboard").exit_code == 0
    (folder,) = files(tmp_path / "runs", "tensorboard", "dtd")
    events = EventAccumulator(str(folder)).Reload()
    loss = events.Scalars("train/loss")
    metrics = (folder.parent / "metrics.jsonl").read_text().splitlines()
    assert [e.step for e in loss] == [1, 2, 3]
    assert [e.value for e in loss] == pytest.approx([json.loads(m)["loss"] for m in metrics[:3]])
    assert "eval/dtd_novel/accuracy" in events.Tags()["scalars"]


@pytest.mark.parametrize("name", ["wandb", "tensorboard"])
def test_a_logger_that_is_not_installed_is_one_clear_error_before_any_run(data, tmp_path, monkeypatch, name):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == name else real(n, *a))
    r = run(data, tmp_path, "--logger", name)
    assert r.exit_code == 2 and f"--logger {name} needs the {name} package: pip install {name}" in r.output
    assert not (tmp_path / "records").exists() and not (tmp_path / "runs").exists()
    r = run(data, tmp_path, "--logger", "mlflow")
    assert r.exit_code == 2 and "--logger 'mlflow': use tensorboard, wandb" in r.output
