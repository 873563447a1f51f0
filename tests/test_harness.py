"""Config merge, planning, the Dassl schedule, atomic writes and the report's conventions."""

from __future__ import annotations

import json
import math

import pytest

from bench.config import apply_options, config_hash, parse_cfg_options
from bench.errors import ConfigError, DataError
from bench.io import atomic_write
from bench.model.trainer import lr_factor, resolve_schedule, steps_per_epoch
from bench.report import tables as report
from bench.sweep import plan as planlib
from bench.sweep.layout import ResultsLayout
from bench.sweep.protocols import parse_protocols
from bench.sweep.suites import REAL

# -- config ------------------------------------------------------------------------------------------------------------


def test_cfg_options_parse_and_type_check():
    opts = parse_cfg_options(["train.lr=0.01", "method.ctx_init=a photo of a", "train.epochs=3", "method.csc=True"])
    assert opts == {"train.lr": 0.01, "method.ctx_init": "a photo of a", "train.epochs": 3, "method.csc": True}
    cfg = {"train": {"lr": 0.002, "epochs": 200}, "method": {"ctx_init": "", "csc": False}}
    out = apply_options(cfg, opts)
    assert out["train"] == {"lr": 0.01, "epochs": 3} and out["method"] == {"ctx_init": "a photo of a", "csc": True}
    assert isinstance(apply_options({"train": {"lr": 0.1}}, {"train.lr": 1})["train"]["lr"], float)
    # a string option set to the word none stays the word (RMAdapter's Table 4 row `method.reconstruct=none`)
    none = apply_options({"method": {"reconstruct": "both"}}, parse_cfg_options(["method.reconstruct=none"]))
    assert none["method"]["reconstruct"] == "none"


@pytest.mark.parametrize(
    "opt, match",
    [("train.lr=abc", "expected a float"), ("train.lrr=1", "unknown key"), ("train.epochs=1.5", "expected a int")],
)
def test_bad_cfg_options_are_rejected(opt, match):
    with pytest.raises(ConfigError, match=match):
        apply_options({"train": {"lr": 0.1, "epochs": 2}}, parse_cfg_options([opt]))
    with pytest.raises(ConfigError, match="key=value"):
        parse_cfg_options(["train.lr"])


def test_keys_added_at_their_old_behaviour_do_not_change_finished_runs_hashes():
    a = {"train": {"lr": 0.1}, "method": {}, "eval": {}}
    b = {"train": {"lr": 0.1, "fewshot_draw": "coop", "min_steps": 0, "views": 1}, "method": {}, "eval": {}}
    assert config_hash("coop", a) == config_hash("coop", b)
    b["train"]["fewshot_draw"] = "tip"
    assert config_hash("coop", a) != config_hash("coop", b)
    # a method's own keys are neutral for that method (and its subclasses) only
    own = {**a, "method": {"own_template": True}}
    assert config_hash("zeroshot", own) == config_hash("zeroshot", a)
    assert config_hash("tip_adapter", own) == config_hash("tip_adapter", a)
    assert config_hash("coop", own) != config_hash("coop", a)
    shared = {**a, "method": {"shared_layer": True}}
    assert config_hash("rmadapter", shared) == config_hash("rmadapter", a)
    assert config_hash("rmadapter", {**a, "method": {"shared_layer": False}}) != config_hash("rmadapter", a)


def test_adamw_weight_decay_is_hashed_only_where_adamw_reads_it():
    sgd = {"train": {"optimizer": "sgd", "lr": 0.1}, "eval": {}}
    assert config_hash("coop", sgd) == config_hash(
        "coop", {**sgd, "train": {**sgd["train"], "adamw_weight_decay": 0.5}}
    )
    adamw = {"train": {"optimizer": "adamw", "lr": 0.1, "adamw_weight_decay": 0.01}, "eval": {}}
    assert config_hash("tip_adapter_f", adamw) != config_hash(
        "tip_adapter_f", {**adamw, "train": {**adamw["train"], "adamw_weight_decay": 0.02}}
    )


def test_config_hash_ignores_speed_only_keys():
    a = {"train": {"lr": 0.1, "num_workers": 4}, "eval": {"batch_size": 100}}
    b = {"train": {"lr": 0.1, "num_workers": 0}, "eval": {"batch_size": 512}}
    assert config_hash("coop", a) == config_hash("coop", b)
    assert config_hash("coop", a) != config_hash("coop", {"train": {"lr": 0.2}, "eval": {}})


# -- planning ----------------------------------------------------------------------------------------------------------


def _plan(tmp_path, methods, protocols, **kw):
    return planlib.plan(methods, protocols, REAL, [1, 2], None, tmp_path, tmp_path / "results", **kw)


def test_plan_base2novel_grid(tmp_path):
    runs = _plan(tmp_path, ["zeroshot", "coop"], ["base2novel"], datasets=["dtd", "eurosat"])
    assert len(runs) == 2 * 2 * 2
    assert all([(e.subset) for e in r.evals] == ["base", "novel"] and r.train_subset == "base" for r in runs)
    coop = [r for r in runs if r.method == "coop"][0]
    assert coop.config["train"]["epochs"] == 200 and coop.config["method"]["n_ctx"] == 4


def test_cross_dataset_and_dg_share_one_training_when_configs_match(tmp_path):
    runs = _plan(tmp_path, ["zeroshot"], ["cross_dataset", "domain_generalization"])
    assert len(runs) == 2  # one per seed
    protocols = {e.protocol for e in runs[0].evals}
    assert protocols == {"cross_dataset", "domain_generalization"} and runs[0].train_dataset == "imagenet"
    assert len(runs[0].evals) == 11 + 5
    # CoOp's DG setting (16 random tokens) differs from its cross-dataset one (4 tokens): two trainings per seed
    assert len(_plan(tmp_path, ["coop"], ["cross_dataset", "domain_generalization"])) == 4


def test_imagenet_epochs_and_few_shot_shots(tmp_path):
    runs = _plan(tmp_path, ["coop"], ["few_shot"], datasets=["imagenet"])
    assert sorted({r.shots for r in runs}) == [1, 2, 4, 8, 16]
    assert all(r.config["train"]["epochs"] == 50 for r in runs)


def test_pending_tracks_records(tmp_path):
    (run,) = planlib.plan(["zeroshot"], ["base2novel"], REAL, [1], [16], tmp_path, tmp_path, ["dtd"])
    assert len(run.pending()) == 2
    path = run.record_path(run.evals[0])
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_v1_record()))
    assert run.pending() == [run.evals[1]]
    path.write_text("{}")  # not a record: redone, and the file is kept aside
    assert run.pending(heal=False) == run.evals and path.exists()  # a dry run only looks
    assert run.pending() == run.evals and path.with_name(path.name + ".unreadable").exists()


@pytest.mark.parametrize("bad", ["nope", "base2novel,xyz"])
def test_unknown_protocol(bad):
    with pytest.raises(ConfigError, match="unknown protocol"):
        parse_protocols(bad)


def test_all_protocols_are_the_papers_three():
    assert parse_protocols("all") == ["base2novel", "cross_dataset", "domain_generalization"]


def test_unknown_dataset_lists_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match="not in the real suite; valid: imagenet"):
        _plan(tmp_path, ["zeroshot"], ["base2novel"], datasets=["mnist"])


# -- schedule ----------------------------------------------------------------------------------------------------------


def test_dassl_constant_warmup_then_cosine():
    base, warm, total = 0.002, 1e-5, 10
    lrs = [base * lr_factor(e, total, 1, warm, base, "cosine") for e in range(total)]
    assert lrs[0] == pytest.approx(1e-5)
    assert lrs[1] == pytest.approx(base)  # cosine restarts at the base lr after warm-up
    assert lrs[5] == pytest.approx(base * 0.5 * (1 + math.cos(math.pi * 4 / total)))
    assert lrs[-1] > 0  # Dassl's last epoch is not at lr 0
    no_warm = [lr_factor(e, 5, 0, warm, base, "cosine") for e in range(5)]
    assert no_warm[0] == 1.0 and no_warm == sorted(no_warm, reverse=True)
    assert lr_factor(0, total, 1, warm, 0.0, "cosine") == 0.0  # train.lr=0 with warm-up: no division by zero


def test_min_steps_raises_the_epochs_only_where_the_papers_schedule_is_shorter():
    cfg = {"method": {}, "train": {"epochs": 5, "batch_size": 16, "min_steps": 150}}
    assert steps_per_epoch(48, 16) == 3 and steps_per_epoch(10, 16) == 1  # Dassl's drop_last rule
    assert resolve_schedule(cfg, 48)["train"]["epochs"] == 50  # 3 steps per epoch: ceil(150 / 3)
    assert resolve_schedule(cfg, 10)["train"]["epochs"] == 150  # one short batch per epoch
    assert resolve_schedule(cfg, 800) is cfg  # 50 steps per epoch x 5 epochs already >= 150
    assert cfg["train"]["epochs"] == 5  # the run's own config is never changed
    assert resolve_schedule({**cfg, "train": {**cfg["train"], "min_steps": 0}}, 48)["train"]["epochs"] == 5
    assert resolve_schedule({**cfg, "train": {**cfg["train"], "epochs": 0}}, 48)["train"]["epochs"] == 0  # no training


# -- atomic writes -----------------------------------------------------------------------------------------------------


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "r.json"

    def boom(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert list(tmp_path.iterdir()) == []


# -- report conventions --------------------------------------------------------------------------------------------------


# (the tables' statistics, order and notes: tests/test_report.py)


def test_manifest_roundtrip(tmp_path):
    keys = [{k: 1 for k in report.KEY}]
    ResultsLayout(tmp_path).write_plan(keys)
    assert len(report.load_manifest(tmp_path)) == 1
    assert json.loads(next((tmp_path / "plans").glob("*.json")).read_text()) == keys


# -- the record schema --------------------------------------------------------------------------------------------------


def _v1_record() -> dict:
    """A record as adaptbench wrote it before the schema had a version (no record_version field)."""
    return {"method": "coop", "protocol": "base2novel", "suite": "real", "dataset": "dtd", "subset": "base",
            "train_dataset": "dtd", "train_subset": "base", "seed": 1, "shots": 16, "backbone": "ViT-B-16",
            "pretrained": "openai", "random_init": False, "config_hash": "abcd1234", "options": {}, "accuracy": 61.5,
            "per_class_accuracy": {"banded": 61.5}, "n_test": 100, "n_train": 16, "trainable_params": 2048,
            "timing": {"eval_s": 1.0}, "train_steps": 10, "final_losses": {"ce": 0.5}, "method_info": {},
            "peak_memory_mb": None, "split_hash": "s" * 16, "test_hash": "t" * 16, "config": {}, "versions": {},
            "git_revision": "unknown", "created": "2026-11-30T00:00:00+00:00", "an_old_field": 1}  # fmt: skip


def test_old_records_load_and_round_trip(tmp_path):
    from bench.sweep.record import RECORD_VERSION, Record

    rec = Record.from_dict(_v1_record())
    assert rec.record_version == 1 and rec.accuracy == 61.5 and rec.extra == {"an_old_field": 1}
    out = rec.to_dict()
    assert out["an_old_field"] == 1 and out["record_version"] == 1
    assert {k: v for k, v in out.items() if k != "record_version"} == _v1_record()
    # and the report reads it like a new one
    path = tmp_path / "records" / "real" / "base2novel" / "x" / "r.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_v1_record()))
    df = report.load_records(tmp_path)
    assert df["accuracy"].tolist() == [61.5] and RECORD_VERSION > 1


def test_records_from_the_future_or_not_records_are_one_clear_error(tmp_path):
    from bench.sweep.record import Record

    with pytest.raises(DataError, match="newer adaptbench"):
        Record.from_dict({**_v1_record(), "record_version": 99})
    bad = tmp_path / "not_a_record.json"
    bad.write_text(json.dumps({"accuracy": 1}))
    with pytest.raises(DataError, match=r"not_a_record.json is not an adaptbench record \(missing method"):
        Record.load(bad)
    bad.write_text("{half")
    with pytest.raises(DataError, match="unreadable"):
        Record.load(bad)


def test_a_run_records_its_options_as_the_config_took_them(tmp_path):
    (run,) = planlib.plan(["coop"], ["base2novel"], REAL, [1], [16], tmp_path, tmp_path, ["dtd"],
                          options=parse_cfg_options(["train.augment=none", "train.lr=1"]))  # fmt: skip
    assert run.options == {"train.augment": "none", "train.lr": 1.0}  # the report labels it train.augment=none


def test_two_views_are_two_independent_augmentations_of_the_same_image(tmp_path):
    import numpy as np
    import torch
    from PIL import Image

    from bench.data.caches import ImageDataset, train_transform
    from bench.data.dataset import Datum

    rng = np.random.default_rng(0)
    path = tmp_path / "a.png"
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(path)
    torch.manual_seed(0)
    ds = ImageDataset([Datum(str(path), 3, "a")], train_transform(32, "randaugment"), views=2)
    views, label, index = ds[0]
    assert views.shape == (2, 3, 32, 32) and views.dtype == torch.uint8 and label == 3 and index == 0
    assert not torch.equal(views[0], views[1])  # RandAugment drew different ops for the two views
    single, *_ = ImageDataset(ds.items, train_transform(32, "none"))[0]
    assert single.shape == (3, 32, 32)


def test_stale_temp_files_of_killed_writes_are_removed_but_live_ones_kept(tmp_path):
    import os
    import subprocess
    import sys
    import time

    from bench.io import _HOST

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # a process that has exited: its half-written file can go at once
    layout = ResultsLayout(tmp_path)
    old = tmp_path / "records" / "x" / ".r.json.abc.tmp"  # untagged, older than the cutoff
    fresh = tmp_path / "cache" / ".f.pt.def.tmp"  # untagged and fresh: may be a live write elsewhere
    killed = tmp_path / "cache" / f".g.pt.{_HOST}-{dead_pid}.k1x_.tmp"
    live = tmp_path / "cache" / f".h.pt.{_HOST}-{os.getpid()}.k2y_.tmp"  # this process is writing it
    other_node = tmp_path / "cache" / f".i.pt.othernode_{_HOST}-{dead_pid}.k3z_.tmp"  # cannot be checked from here
    keep = tmp_path / "records" / "x" / "r.json"
    for p in (old, fresh, killed, live, other_node, keep):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    os.utime(old, (time.time() - 7 * 3600, time.time() - 7 * 3600))
    assert layout.remove_stale_temp_files() == 2
    assert not old.exists() and not killed.exists()
    assert fresh.exists() and live.exists() and other_node.exists() and keep.exists()


def test_atomic_write_names_its_temp_file_after_the_writer(tmp_path):
    import os

    from bench.io import atomic_write, temp_writer_is_dead

    seen = []
    atomic_write(tmp_path / "a.json", lambda tmp: seen.append(tmp) or tmp.write_text("{}"))
    assert f"-{os.getpid()}." in seen[0].name and seen[0].name.endswith(".tmp")
    assert not temp_writer_is_dead(seen[0])  # the writer (this process) is alive
    assert (tmp_path / "a.json").read_text() == "{}" and not seen[0].exists()


def test_atomic_write_flushes_the_file_and_its_folder_before_it_counts(tmp_path, monkeypatch):
    import os

    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.path.realpath(f"/proc/self/fd/{fd}")) or real(fd))
    atomic_write(tmp_path / "a" / "r.json", lambda tmp: tmp.write_text("{}"))
    assert len(synced) == 2 and synced[1] == str((tmp_path / "a").resolve())  # the temp file, then the folder
    assert (tmp_path / "a" / "r.json").read_text() == "{}"
