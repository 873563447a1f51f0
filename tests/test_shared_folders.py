"""Shared results folders: every file a sweep and a report write (records, checkpoint, few-shot split, plan, caches,
report tables) and every folder they create get the mode the process umask gives, not ``mkstemp``'s private 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from coop_fixture import make_coop_data
from typer.testing import CliRunner

from bench.cli import app
from bench.io import atomic_write_text, current_umask


@pytest.fixture
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _modes(root: Path) -> dict[str, set[str]]:
    files = {oct(stat.S_IMODE(p.stat().st_mode)) for p in root.rglob("*") if p.is_file()}
    dirs = {oct(stat.S_IMODE(p.stat().st_mode)) for p in root.rglob("*") if p.is_dir()}
    return {"files": files, "dirs": dirs}


@pytest.mark.parametrize("umask", [0o022, 0o002], indirect=True)
def test_atomic_write_follows_the_umask(tmp_path, umask):
    assert current_umask() == umask
    atomic_write_text(tmp_path / "new" / "a.txt", "x")
    assert _modes(tmp_path / "new") == {"files": {oct(0o666 & ~umask)}, "dirs": set()}
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o777 & ~umask


@pytest.mark.parametrize("umask", [0o022, 0o002], indirect=True)
def test_a_sweep_and_its_report_are_readable_by_the_group(tmp_path, umask):
    data = make_coop_data(tmp_path / "data", names=["dtd"])
    results = tmp_path / "results"
    run = ["run", "--data-root", data, "--results", results, "--backbone", "bench-tiny", "--pretrained", "none",
           "--seeds", "1", "--method", "coop", "--datasets", "dtd", "--cfg-options", "train.epochs=1"]  # fmt: skip
    r = CliRunner().invoke(app, [str(a) for a in run])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["report", "--results", str(results), "--out", str(results / "report")])
    assert r.exit_code == 0, r.output
    kinds = {p.relative_to(results).parts[0] for p in results.rglob("*") if p.is_file()}
    assert {"records", "checkpoints", "splits", "plans", "cache", "report"} <= kinds
    assert _modes(results) == {"files": {oct(0o666 & ~umask)}, "dirs": {oct(0o777 & ~umask)}}
