"""End to end through the real CLI (Typer's CliRunner) on a generated CoOp-layout $DATA and a tiny random CLIP."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from coop_fixture import make_coop_data
from typer.testing import CliRunner

from bench.cli import app

pytestmark = pytest.mark.e2e

TINY = ["--backbone", "bench-tiny", "--pretrained", "none", "--seeds", "1"]
DATASETS = ["dtd", "eurosat", "imagenet", "imagenetv2", "imagenet_sketch"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_coop_data(tmp_path_factory.mktemp("data"), names=DATASETS)


def bench(*args: str | Path):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result


def run_args(data: Path, results: Path, *extra: str) -> list:
    return ["run", "--data-root", data, "--results", results, *TINY, *extra]


def records(results: Path) -> list[Path]:
    return sorted((results / "records").rglob("*.json"))


@pytest.fixture(scope="module")
def sweep(data, tmp_path_factory):
    """zeroshot + CoOp over all three protocols, one seed, 2 epochs."""
    results = tmp_path_factory.mktemp("results")
    args = run_args(data, results, "--method", "zeroshot,coop", "--protocol", "all",
                    "--datasets", "dtd,eurosat,imagenetv2,imagenet_sketch", "--cfg-options", "train.epochs=2")  # fmt: skip
    r = bench(*args)
    assert r.exit_code == 0, r.output
    return results, args


def test_sweep_writes_one_record_per_evaluation(sweep):
    results, _ = sweep
    recs = records(results)
    # per method: B2N 2 datasets x base/novel = 4; cross-dataset imagenet + 2 targets = 3; DG imagenet + 2 variants = 3
    assert len(recs) == 2 * (4 + 3 + 3)
    r = json.loads(next(p for p in recs if "coop" in str(p) and "dtd__novel" in str(p)).read_text())
    for key in ("accuracy", "per_class_accuracy", "split_hash", "config", "versions", "git_revision", "timing"):
        assert key in r
    assert r["random_init"] is True and r["pretrained"] == "none"
    assert r["config"]["train"]["epochs"] == 2 and r["config"]["method"]["n_ctx"] == 4
    assert r["trainable_params"] == 4 * 64 and r["train_steps"] > 0
    assert len(r["per_class_accuracy"]) == 3  # novel half of 6 classes
    # 4 test images per class: each class scores a multiple of 25 %, and the accuracy is their mean (balanced)
    assert all(a % 25 == 0 for a in r["per_class_accuracy"].values()) and r["n_test"] == 12
    assert r["accuracy"] == pytest.approx(sum(r["per_class_accuracy"].values()) / 3)
    # the few-shot draw is stored portably: paths relative to the data root
    split = json.loads(next((results / "splits").rglob("shot16_seed1.json")).read_text())
    assert not any(Path(p).is_absolute() for p, _, _ in split["train"]) and len(split["hash"]) == 16


def test_report_prints_the_three_tables(sweep):
    results, _ = sweep
    r = bench("report", "--results", results)
    assert r.exit_code == 0, r.output
    for text in ("Base-to-novel", "Average", "Mean of per-dataset HM", "Cross-dataset", "Domain generalisation",
                 "coop [train.epochs=2] (random init)", "ImageNet-Sketch", "Average over 2 of 4 datasets"):  # fmt: skip
        assert text in r.output
    md = bench("report", "--results", results, "--format", "markdown")
    assert md.exit_code == 0 and "| dataset" in md.output
    out = results / "report"
    assert bench("report", "--results", results, "--out", out).exit_code == 0
    assert (out / "base2novel.csv").exists() and (out / "cross_dataset.tex").exists()
    assert (out / "base2novel.png").exists() and (out / "domain_generalization.png").exists()


def test_rerun_skips_done_runs_and_resumes_a_deleted_record(sweep):
    results, args = sweep
    again = bench(*args)
    assert again.exit_code == 0 and "0 to run" in again.output
    victim = next(p for p in records(results) if "coop" in str(p) and "eurosat__base" in str(p))
    others = {p: p.stat().st_mtime_ns for p in records(results) if p != victim}
    ckpts = {p: p.stat().st_mtime_ns for p in (results / "checkpoints").rglob("*.pt")}
    victim.unlink()
    dry = bench(*args, "--dry-run")
    assert dry.exit_code == 0 and "1 to run" in dry.output and not victim.exists()
    again = bench(*args)
    assert again.exit_code == 0, again.output
    assert victim.exists()
    assert {p: p.stat().st_mtime_ns for p in others} == others  # nothing else was rewritten
    assert {p: p.stat().st_mtime_ns for p in ckpts} == ckpts  # evaluated from the checkpoint, not retrained


def test_same_seed_gives_the_same_numbers(data, tmp_path):
    accs = []
    for i in range(2):
        res = tmp_path / f"r{i}"
        r = bench(*run_args(data, res, "--method", "coop", "--datasets", "dtd", "--cfg-options", "train.epochs=2"))
        assert r.exit_code == 0, r.output
        accs.append([json.loads(p.read_text())["accuracy"] for p in records(res)])
    assert accs[0] == accs[1]


def test_min_steps_raises_the_epochs_and_the_record_keeps_both(data, tmp_path):
    """``train.min_steps``: a training takes at least that many steps (whole epochs); the record keeps the config as
    asked (paper epochs + floor) and its own hash, and counts the steps it took."""
    steps = {}
    for floor in (0, 20):
        results = tmp_path / f"floor{floor}"
        r = bench(*run_args(data, results, "--method", "coop", "--datasets", "dtd", "--cfg-options", "train.epochs=1",
                            "train.batch_size=2", f"train.min_steps={floor}"))  # fmt: skip
        assert r.exit_code == 0, r.output
        rec = json.loads(records(results)[0].read_text())
        assert rec["config"]["train"]["epochs"] == 1 and rec["config"]["train"]["min_steps"] == floor
        steps[floor] = (rec["train_steps"], rec["config_hash"])
    per_epoch = steps[0][0]  # one epoch
    assert per_epoch < 20  # so the floor must add epochs
    assert steps[20][0] == per_epoch * math.ceil(20 / per_epoch) >= 20
    assert steps[20][1] != steps[0][1]


def test_list_commands():
    r = bench("list", "datasets")
    assert r.exit_code == 0 and "imagenet_sketch" in r.output and "{} texture." in r.output
    assert "few_shot" in bench("list", "protocols").output


# -- bad input: one clear line, exit code 2, no record ----------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--method", "nosuch"], "unknown method 'nosuch'; valid names:"),
        (["--protocol", "sideways"], "unknown protocol 'sideways'"),
        (["--datasets", "mnist"], "not in the real suite"),
        (["--cfg-options", "train.lr=fast"], "train.lr='fast': expected a float"),
        (["--cfg-options", "train.nope=1"], "unknown key"),
        (["--cfg-options", "train.augment=crop"], "train.augment='crop': use one of rrc_flip, randaugment, none"),
        (["--cfg-options", "train.fewshot_draw=tipadapter"], "train.fewshot_draw='tipadapter': use one of coop, tip"),
        (["--seeds", "one"], "--seeds 'one'"),
        (["--shots", "0"], "shots per class must be at least 1"),
        (["--shots=-1"], "shots per class must be at least 1"),
        (["--seeds", ""], "no seeds given"),
        (["--cfg-options", "train.epochs=-1"], "train.epochs=-1: training epochs must be at least 0"),
        (["--cfg-options", "train.batch_size=0"], "train.batch_size=0: images per step must be at least 1"),
        (["--device", "tpu"], "--device 'tpu': use cpu, cuda or cuda:N"),
        (["--executor", "slurm"], "no Slurm on this machine"),
    ],
)
def test_bad_arguments(data, tmp_path, extra, message):
    """Each bad input fails before any work: exit 2, one line naming it, no traceback, no record."""
    if "--executor" in extra and __import__("shutil").which("sbatch"):
        pytest.skip("Slurm is installed here")
    r = bench(*run_args(data, tmp_path, "--method", "zeroshot", "--datasets", "dtd", "--seeds", "1"), *extra)
    assert r.exit_code == 2, r.output
    assert message in r.output.replace("\n", " ") and "Traceback" not in r.output
    assert not (tmp_path / "records").exists()


def test_missing_data_root(tmp_path):
    r = bench(*run_args(tmp_path / "nowhere", tmp_path, "--datasets", "dtd"))
    assert r.exit_code == 2 and "does not exist" in r.output


def test_missing_dataset_folder(data, tmp_path):
    r = bench(*run_args(data, tmp_path, "--datasets", "oxford_pets"))
    assert r.exit_code == 2 and "oxford_pets" in r.output
    assert not (tmp_path / "records").exists()


def test_malformed_split_file(tmp_path):
    root = make_coop_data(tmp_path / "data", names=["dtd"])
    (root / "dtd" / "split_zhou_DescribableTextures.json").write_text('{"train": [["a.jpg", 0]]')
    r = bench(*run_args(root, tmp_path / "res", "--datasets", "dtd"))
    assert r.exit_code == 2 and "split_zhou_DescribableTextures.json" in r.output
    assert not (tmp_path / "res" / "records").exists()


def test_unreadable_image_names_the_file(tmp_path):
    root = make_coop_data(tmp_path / "data", names=["dtd"])
    split = json.loads((root / "dtd" / "split_zhou_DescribableTextures.json").read_text())
    bad = root / "dtd" / "images" / split["test"][0][0]
    bad.write_bytes(bad.read_bytes()[:40])  # truncated file
    r = bench(*run_args(root, tmp_path / "res", "--datasets", "dtd", "--method", "zeroshot"))
    assert r.exit_code == 1, r.output  # a failed run (recorded), not bad input
    (failure,) = (tmp_path / "res" / "runs").rglob("failure.json")
    assert bad.name in json.loads(failure.read_text())["error"]
    assert "1 failed run(s)" in r.output and "Traceback" not in r.output
    assert not list((tmp_path / "res").rglob("*.tmp"))  # nothing half written


def test_nan_loss_stops_with_the_fix(data, tmp_path):
    r = bench(*run_args(data, tmp_path, "--method", "coop", "--datasets", "dtd",
                        "--cfg-options", "train.lr=1e38", "train.epochs=3", "train.warmup_epochs=0"))  # fmt: skip
    assert r.exit_code == 1 and "1 failed run(s)" in r.output  # a failed run (recorded), not bad input
    (failure,) = (tmp_path / "runs").rglob("failure.json")
    assert "lower the learning rate (--cfg-options train.lr=...)" in json.loads(failure.read_text())["error"]
    assert not (tmp_path / "records").exists()


# -- interruption --------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_kill_9_mid_sweep_then_rerun_completes_without_partial_records(data, tmp_path):
    results = tmp_path / "res"
    cmd = [sys.executable, "-m", "bench.cli", *map(str, run_args(data, results, "--method", "coop",
           "--datasets", "dtd,eurosat", "--seeds", "1,2", "--cfg-options", "train.epochs=30"))]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(records(results)) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(records(results))
    assert 2 <= done_before < 8
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    recs = records(results)
    assert len(recs) == 8 and all(json.loads(p.read_text())["n_test"] > 0 for p in recs)  # every record is whole
    assert not list(results.rglob("*.tmp"))


# -- the offline toy suite -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_toy_suite_end_to_end_is_the_default_without_a_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_TOY_ROOT", str(tmp_path / "toy"))
    monkeypatch.delenv("BENCH_DATA", raising=False)
    results = tmp_path / "res"
    r = bench("run", "--results", results, "--method", "zeroshot,coop", "--protocol", "all", "--seeds", "1",
              "--datasets", "toy_shapes,toy_imagenet_sketch", "--cfg-options", "train.epochs=1", "train.min_steps=0")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "toy suite" in r.output
    # the sweep ends on its own tables (toy numbers), the datasets it ran in them
    tables = r.output[r.output.index("done:") :]
    for text in ("Base-to-novel", "Cross-dataset", "Domain generalisation", "toy_shapes", "toy_imagenet_sketch"):
        assert text in tables
    # per method: B2N toy_shapes base/novel, cross-dataset toy_imagenet + toy_shapes, DG toy_imagenet + sketch
    assert len(records(results)) == 2 * (2 + 2 + 2)
    from bench.datasets.toy.data import DATA_VERSION

    toy = tmp_path / "toy" / f"v{DATA_VERSION}"  # one folder per data version
    assert {p.name for p in toy.iterdir() if not p.name.startswith(".")} == {
        "toy_shapes", "toy_imagenet", "toy_imagenet_sketch"}  # fmt: skip
    zs = json.loads(next(p for p in records(results) if "zeroshot" in str(p) and "toy_imagenet__all" in str(p)
                         and "domain_generalization" in str(p)).read_text())  # fmt: skip
    assert zs["backbone"] == "toy-vit" and zs["pretrained"] == "toy" and zs["accuracy"] > 100 / 48 * 3  # > 3x chance
    rep = bench("report", "--results", results, "--suite", "toy")
    assert rep.exit_code == 0 and "toy_imagenet_sketch" in rep.output


def test_results_path_under_a_file_is_one_clear_error(data, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    r = bench(*run_args(data, blocker / "res", "--method", "zeroshot", "--datasets", "dtd", "--seeds", "1"))
    assert r.exit_code == 2 and "is a file, not a folder" in r.output


def test_a_data_root_or_report_folder_that_is_a_file_is_one_clear_error(data, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    r = bench("run", "--data-root", afile, "--results", tmp_path / "res", "--method", "zeroshot")
    assert r.exit_code == 2 and "is a file, not a folder" in r.output
    r = bench("report", "--results", tmp_path, "--out", afile)
    assert r.exit_code == 2 and "--out" in r.output and "is a file" in r.output


@pytest.mark.parametrize("command", [["run", "--method", "zeroshot"], ["data", "check"], ["data", "prepare", "dtd"],
                                     ["toy", "generate"], ["toy", "zeroshot"]], ids=" ".join)  # fmt: skip
def test_every_data_command_resolves_and_refuses_a_data_root_alike(tmp_path, monkeypatch, command):
    """One resolver and one message: a --data-root, or a $BENCH_DATA, that is a file is the same error line everywhere."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    line = f"error: data root {afile} is a file, not a folder; pass --data-root DIR or set $BENCH_DATA"
    monkeypatch.chdir(tmp_path)  # `bench run`'s default results folder
    monkeypatch.delenv("BENCH_DATA", raising=False)
    r = bench(*command, "--data-root", afile)
    assert (r.exit_code, r.output.strip()) == (2, line)
    monkeypatch.setenv("BENCH_DATA", str(afile))
    r = bench(*command)
    assert (r.exit_code, r.output.strip()) == (2, line)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"] and afile.read_text() == "x"  # nothing written


def test_toy_pretrain_refuses_a_folder_as_its_checkpoint_before_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("ckpt").mkdir()
    r = bench("toy", "pretrain", "--out", "ckpt", "--steps", "1")
    assert r.exit_code == 2 and "'--out': file 'ckpt' is a directory" in r.output
    assert os.listdir("ckpt") == []


@pytest.mark.parametrize("content", ["random", "text", "checkpoint"])
def test_a_pretrained_file_that_is_not_weights_is_one_clear_error(data, tmp_path, content):
    import torch

    path = tmp_path / "weights.pt"
    if content == "random":
        path.write_bytes(bytes(range(256)) * 10)
    elif content == "text":
        path.write_text("these are not weights\n")
    else:  # a method checkpoint, not a backbone
        torch.save({"method": {"state": {}, "extra": {}}, "train_stats": {}}, path)
    args = ["run", "--data-root", data, "--results", tmp_path / "res", "--backbone", "bench-tiny", "--pretrained", path,
            "--method", "zeroshot", "--datasets", "dtd", "--seeds", "1"]  # fmt: skip
    r = bench(*args)
    assert r.exit_code == 2, r.output
    assert "is not a weights file of bench-tiny" in r.output and "Traceback" not in r.output
