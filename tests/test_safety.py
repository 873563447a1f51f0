"""Loading what a results folder holds is safe: a crafted checkpoint cannot run code, a damaged one is set aside."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from coop_fixture import make_coop_data
from typer.testing import CliRunner

from bench.cli import app

pytestmark = pytest.mark.e2e


class _Payload:
    """Unpickling this (with plain pickle) would write ``marker``: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


@pytest.mark.parametrize("damage", ["crafted", "truncated", "other method"])
def test_a_bad_checkpoint_never_runs_code_and_the_run_trains_again(tmp_path: Path, damage: str) -> None:
    data = make_coop_data(tmp_path / "data", names=["dtd"])
    results = tmp_path / "res"
    args = ["run", "--data-root", str(data), "--results", str(results), "--backbone", "bench-tiny", "--pretrained",
            "none", "--method", "coop", "--datasets", "dtd", "--seeds", "1", "--shots", "2", "--cfg-options",
            "train.epochs=1"]  # fmt: skip
    assert CliRunner().invoke(app, args).exit_code == 0
    (ckpt,) = (results / "checkpoints").rglob("*.pt")
    records = sorted((results / "records").rglob("*.json"))
    first = [json.loads(p.read_text())["accuracy"] for p in records]
    marker = tmp_path / "marker.txt"
    if damage == "crafted":
        torch.save({"method": _Payload(marker), "train_stats": {}}, ckpt)
    elif damage == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:100])
    else:
        torch.save({"method": {"state": {"something.else": torch.zeros(3)}, "extra": {}}, "train_stats": {}}, ckpt)
    for p in records:
        p.unlink()
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert not marker.exists()
    assert "did not load" in r.output and len(list(ckpt.parent.glob("*.unreadable-*"))) == 1
    assert [json.loads(p.read_text())["accuracy"] for p in records] == first  # retrained: the same numbers


def test_a_damaged_record_is_listed_by_the_report_and_redone_by_the_next_run(tmp_path: Path) -> None:
    data = make_coop_data(tmp_path / "data", names=["dtd", "eurosat"])
    results = tmp_path / "res"
    args = ["run", "--data-root", str(data), "--results", str(results), "--backbone", "bench-tiny", "--pretrained",
            "none", "--method", "zeroshot", "--datasets", "dtd,eurosat", "--seeds", "1", "--shots", "2"]  # fmt: skip
    assert CliRunner().invoke(app, args).exit_code == 0
    records = sorted((results / "records").rglob("*.json"))
    good = {p: p.read_text() for p in records}
    damaged = next(p for p in records if "dtd__novel" in str(p))
    damaged.write_text("{half a rec")
    next(p for p in records if "eurosat__base" in str(p)).unlink()  # and one base half missing
    r = CliRunner().invoke(app, ["report", "--results", str(results)], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    assert "Unreadable records" in r.output and "dtd__novel" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0 and "2 to run" in r.output
    assert json.loads(damaged.read_text())["accuracy"] == json.loads(good[damaged])["accuracy"]
    assert (damaged.parent / f"{damaged.name}.unreadable").read_text() == "{half a rec"  # kept, not deleted


@pytest.mark.slow
def test_four_processes_on_one_results_folder_train_each_run_once(tmp_path: Path) -> None:
    import re
    import subprocess
    import sys

    data = make_coop_data(tmp_path / "data", names=["dtd", "eurosat"])
    results = tmp_path / "res"
    base = [sys.executable, "-m", "bench.cli", "run", "--data-root", str(data), "--results", str(results),
            "--backbone", "bench-tiny", "--pretrained", "none", "--shots", "2", "--seeds", "1",
            "--cfg-options", "train.epochs=3"]  # fmt: skip
    plans = [
        ["--method", "coop", "--datasets", "dtd,eurosat"],
        ["--method", "coop,zeroshot", "--datasets", "dtd"],
        ["--method", "coop", "--datasets", "eurosat,dtd"],
        ["--method", "zeroshot,coop", "--datasets", "dtd,eurosat"],
    ]
    procs = [subprocess.Popen([*base, *p], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**__import__("os").environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"})
             for p in plans]  # fmt: skip
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    written = [int(re.search(r"done: (\d+) records", o).group(1)) for o in outputs]
    # coop and zeroshot on dtd and eurosat, base and novel: 8 evaluations, each written by exactly one process
    assert sum(written) == 8, written
    assert len(list((results / "records").rglob("*.json"))) == 8


def test_damaged_image_and_feature_caches_are_rebuilt(tmp_path: Path) -> None:
    data = make_coop_data(tmp_path / "data", names=["dtd"])
    results = tmp_path / "res"
    args = ["run", "--data-root", str(data), "--results", str(results), "--backbone", "bench-tiny", "--pretrained",
            "none", "--method", "zeroshot", "--datasets", "dtd", "--seeds", "1", "--shots", "2"]  # fmt: skip
    assert CliRunner().invoke(app, args).exit_code == 0
    records = sorted((results / "records").rglob("*.json"))
    first = [json.loads(p.read_text())["accuracy"] for p in records]
    caches = [*(results / "cache").rglob("*.npy"), *(results / "cache").rglob("*.pt")]
    assert caches
    for p in caches:
        p.write_bytes(p.read_bytes()[:64])  # truncated
    for p in records:
        p.unlink()
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert [json.loads(p.read_text())["accuracy"] for p in records] == first
    assert all(p.with_name(p.name + ".unreadable").exists() for p in caches)


def test_caches_follow_the_files_and_the_weights_not_just_their_names(tmp_path: Path) -> None:
    """An image rewritten at the same path, or other weights under the same backbone name, never hit the old cache."""
    import os

    import numpy as np
    import torch
    from PIL import Image

    import bench.data.caches as caches_module
    from bench.data.caches import Caches
    from bench.data.dataset import Datum
    from bench.model.backbone import load_backbone

    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(path)
    items = [Datum(str(path), 0, "a")]
    caches = Caches(tmp_path / "cache", num_workers=0)
    backbone = load_backbone("bench-tiny", "none")
    before = caches.features(backbone, items, torch.device("cpu"))[0]
    Image.fromarray(np.full((40, 40, 3), 255, np.uint8)).save(path)  # the same path, new content
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # a later write, surely
    caches_module._FINGERPRINTS.clear()  # as in the next process: fingerprints are computed once per process
    assert np.asarray(caches.images(items, backbone.image_size)).max() == 255
    after = caches.features(backbone, items, torch.device("cpu"))[0]
    assert not torch.allclose(before, after)
    other = load_backbone("bench-tiny", "none")  # same name "bench-tiny/none", other random weights
    torch.manual_seed(123)
    for p in other.parameters():
        p.data.normal_()
    assert other.name == backbone.name and other.fingerprint != backbone.fingerprint
    assert not torch.allclose(caches.features(other, items, torch.device("cpu"))[0], after)
