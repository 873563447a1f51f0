"""Mid-run resume: a training stopped at epoch k (a failure) or at a step boundary (SIGTERM) continues from its saved
state and ends with bit-for-bit the record of an uninterrupted run — accuracy, losses, learned parameters."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
from coop_fixture import make_coop_data
from typer.testing import CliRunner

from bench.cli import app
from bench.config import BASE_CONFIG, config_hash
from bench.errors import Preempted
from bench.registry import get_method
from bench.sweep import executors, run_sweep, runner
from bench.sweep.plan import EvalSpec, RunSpec

pytestmark = pytest.mark.e2e

# CoOp trains on cached features (shuffled by the trainer's generator); MaPLe on images through a seeded DataLoader;
# Tip-Adapter-F and PromptSRC carry state between epochs (the best epoch on val; the Gaussian prompt average).
METHODS = {"coop": {}, "maple": {"method.prompt_depth": 3}, "tip_adapter_f": {},
           "promptsrc": {"method.text_depth": 3, "method.vision_depth": 3}}  # fmt: skip
EPOCHS = 4


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_coop_data(tmp_path_factory.mktemp("data"), names=["dtd"])


def sweep(data: Path, results: Path, method: str, **kw):
    # 4 shots x 3 base classes = 12 images, batch 4: 3 steps per epoch; momentum and warm-up make the state matter
    opts = {"train.epochs": EPOCHS, "train.batch_size": 4, "train.checkpoint_every": 1, **METHODS[method]}
    return run_sweep(methods=[method], datasets=["dtd"], seeds=[1], shots=[4], backbone="bench-tiny",
                     pretrained="none", data_root=data, results=results, options=opts, **kw)  # fmt: skip


def outcome(results: Path) -> dict:
    """Everything a run produced that must not depend on interruptions (timings and dates excluded)."""
    recs = {}
    for p in sorted((results / "records").rglob("*.json")):
        r = json.loads(p.read_text())
        recs[p.name + p.parent.name] = (r["accuracy"], r["per_class_accuracy"], r["final_losses"], r["train_steps"])
    (ckpt,) = (results / "checkpoints").rglob("shots4_seed1.pt")
    state = torch.load(ckpt, weights_only=True)["method"]["state"]
    (metrics,) = (results / "runs").rglob("metrics.jsonl")
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    curve = [{k: v for k, v in row.items() if k != "elapsed_s"} for row in rows]
    return {"records": recs, "state": state, "curve": curve}


def assert_same(a: dict, b: dict) -> None:
    assert len(a["records"]) == 2 and a["records"] == b["records"]
    assert a["state"].keys() == b["state"].keys()
    for k in a["state"]:
        assert torch.equal(a["state"][k], b["state"][k]), k
    assert [r.get("epoch") for r in a["curve"]] == [1, 2, 3, 4, 4, 4]  # one row per epoch, then the 2 evaluations
    assert a["curve"] == b["curve"]


@pytest.fixture(scope="module", params=list(METHODS))
def reference(request, data, tmp_path_factory) -> tuple[str, dict]:
    results = tmp_path_factory.mktemp("uninterrupted")
    assert sweep(data, results, request.param).written == 2
    return request.param, outcome(results)


class StepCounter:
    """Counts the training steps a method takes (its ``loss`` calls), and can act at one of them."""

    def __init__(self, monkeypatch, method: str, at: int | None = None, action=None) -> None:
        cls = get_method(method)
        original = cls.loss
        self.steps = 0

        def loss(this, batch):
            self.steps += 1
            if self.steps == at:
                action()
            return original(this, batch)

        monkeypatch.setattr(cls, "loss", loss)


def test_a_run_that_fails_at_epoch_k_resumes_there_and_ends_bit_for_bit_as_an_uninterrupted_one(
    reference, data, tmp_path, monkeypatch
):
    method, expected = reference
    cls = get_method(method)
    after_epoch = cls.after_epoch

    def fail_in_epoch_3(self, ctx, epoch):
        if epoch == 2:
            raise RuntimeError("out of luck in epoch 3")
        after_epoch(self, ctx, epoch)

    with monkeypatch.context() as m:
        m.setattr(cls, "after_epoch", fail_in_epoch_3)
        first = sweep(data, tmp_path, method)
    (spec, failure) = first.failed[0]
    assert first.written == 0 and (failure.phase, failure.epoch) == ("train", 3)
    resume = first.results.resume_checkpoint(spec)
    assert resume.exists()  # saved after epochs 1 and 2

    counter = StepCounter(monkeypatch, method)
    second = sweep(data, tmp_path, method)
    assert second.written == 2 and not second.failed
    assert counter.steps == 2 * 3  # epochs 3 and 4 only: it resumed, it did not retrain
    assert not resume.exists() and not first.results.failure(spec).exists()
    assert "resuming from" in first.results.log(spec).read_text()
    assert_same(outcome(tmp_path), expected)


@pytest.mark.parametrize("reference", ["coop", "maple"], indirect=True)  # the two data paths
def test_sigterm_saves_at_the_next_step_and_the_same_command_resumes_bit_for_bit(
    reference, data, tmp_path, monkeypatch
):
    method, expected = reference
    with monkeypatch.context() as m:  # the real signal, in the middle of epoch 2 (step 5 of 12)
        StepCounter(m, method, at=5, action=lambda: signal.raise_signal(signal.SIGTERM))
        with pytest.raises(Preempted, match=r"stopped in epoch 2/4 after step 2/3; state saved"):
            sweep(data, tmp_path, method)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the runner's handler is gone again
    assert not list((tmp_path / "records").rglob("*.json"))
    counter = StepCounter(monkeypatch, method)
    assert sweep(data, tmp_path, method).written == 2
    assert counter.steps == 12 - 5
    assert_same(outcome(tmp_path), expected)


def test_sigterm_through_the_cli_exits_143_with_the_command_that_resumes(data, tmp_path, monkeypatch):
    StepCounter(monkeypatch, "coop", at=2, action=lambda: signal.raise_signal(signal.SIGTERM))
    args = ["run", "--data-root", str(data), "--results", str(tmp_path), "--backbone", "bench-tiny", "--pretrained",
            "none", "--seeds", "1", "--shots", "4", "--datasets", "dtd", "--method", "coop",
            "--cfg-options", "train.epochs=2", "train.batch_size=4"]  # fmt: skip
    monkeypatch.setattr("sys.argv", ["bench", *args])
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 143, r.output
    out = " ".join(r.output.split())
    assert "stopped in epoch 1/2 after step 2/3; state saved; resume with: bench run --data-root" in out
    assert list(tmp_path.rglob("*.resume.pt"))


def test_checkpoint_settings_do_not_change_the_config_hash():
    cfg = {**BASE_CONFIG, "train": {**BASE_CONFIG["train"]}}
    before = config_hash("coop", cfg)
    cfg["train"].update(checkpoint_every=5, checkpoint_minutes=1.0)
    assert config_hash("coop", cfg) == before


def test_a_preempted_slurm_job_resubmits_the_same_run_without_force(tmp_path):
    spec = RunSpec("coop", "real", "dtd", "base", 1, 16, "bench-tiny", "none", {}, "abc", [EvalSpec("base2novel", "dtd",
                   "base")], str(tmp_path), str(tmp_path))  # fmt: skip
    job = executors.SlurmRun(spec, force=True)
    delayed = job.checkpoint()  # what submitit calls on preemption or timeout, before it requeues
    assert isinstance(delayed.function, executors.SlurmRun)
    assert delayed.function.spec is spec and delayed.function.force is False  # a forced run must not restart
    assert delayed.args == () and delayed.kwargs == {}


def test_sigterm_outside_the_training_steps_stops_at_once_and_inside_waits_for_the_trainer():
    stop = runner._StopOnSigterm()
    with stop.installed():
        with pytest.raises(Preempted):  # e.g. while evaluating: records are atomic, nothing to save
            signal.raise_signal(signal.SIGTERM)
        with stop.training_steps():
            stop.requested = False
            stop.defer()
            signal.raise_signal(signal.SIGTERM)  # only flags it: the trainer saves at its next step
            assert stop.requested
        with pytest.raises(Preempted):
            stop.defer()  # a request that came before the steps began
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


@pytest.mark.parametrize("reference", ["coop"], indirect=True)
def test_a_damaged_training_state_is_set_aside_and_the_run_trains_from_the_start(reference, data, tmp_path):
    method, expected = reference
    plan = sweep(data, tmp_path, method, dry_run=True)
    results, (spec,) = plan.results, plan.specs
    resume = results.resume_checkpoint(spec)
    resume.parent.mkdir(parents=True)
    resume.write_bytes(b"PK\x03\x04 truncated")
    assert sweep(data, tmp_path, method).written == 2
    assert not resume.exists() and len(list(resume.parent.glob("*.resume.pt.unreadable-*"))) == 1
    assert "did not load" in results.log(spec).read_text()
    assert_same(outcome(tmp_path), expected)
