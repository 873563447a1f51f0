"""The inspection commands: `bench list methods`, `bench perf`, `bench toy probe`."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.registry import method_names

pytestmark = pytest.mark.e2e


def test_list_methods_names_are_whole_at_80_columns_and_in_a_pipe() -> None:
    # CliRunner's output is not a terminal: rich falls back to 80 columns, as in `bench list methods | grep coop`
    r = CliRunner().invoke(app, ["list", "methods", "--backbone", "bench-tiny"], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert max(map(len, lines)) <= 80 and "…" not in r.output
    first_cells = {line.split("│")[1].strip() for line in lines if line.startswith("│")}
    assert set(method_names()) <= first_cells
    row = next(line for line in lines if line.startswith("│") and line.split("│")[1].strip() == "coop")
    assert row.split("│")[2].strip() == "256"  # 4 context tokens x width 64 of bench-tiny's text tower


def _perf(*extra: str) -> tuple[int, str, dict[str, list[str]]]:
    args = ["perf", "--backbone", "bench-tiny", "--device", "cpu", "--batch-size", "4", "--steps", "2", *extra]
    r = CliRunner().invoke(app, args, env={"COLUMNS": "250"})
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]] for line in r.output.splitlines()
            if line.startswith("│")}  # fmt: skip
    return r.exit_code, r.output, rows


def test_perf_measures_every_method_it_is_given() -> None:
    code, output, rows = _perf("--method", "zeroshot,cocoop", "--reference", "coop")
    assert code == 0, output
    trainable, bare, harness, overhead, evaluation, saved, ratio, saved_ratio = rows["coop"]  # the reference too
    assert trainable == "256" and float(bare.replace(",", "")) > 0 and float(harness.replace(",", "")) > 0
    assert re.fullmatch(r"-?[\d,]+%", overhead) and float(evaluation.replace(",", "")) > 0 and ratio == "1.00"
    assert float(saved) > 0 and saved_ratio == "1.00"
    assert float(rows["cocoop"][6]) > 0  # CoCoOp's step time as a multiple of CoOp's
    assert float(rows["cocoop"][7]) > 1  # and its activations: the meta-net makes a text pass per image
    assert rows["zeroshot"][1] == "-" and rows["zeroshot"][6] == "-"  # nothing to train


def test_perf_options_reach_the_methods_that_have_them_and_not_the_reference() -> None:
    place = ["method.adapter_start=2", "method.adapter_end=4"]
    opts = [x for o in place for x in ("--cfg-options", o)]
    code, output, rows = _perf("--method", "rmadapter", "--reference", "mma", *opts)
    assert code != 0 and "do not fit a backbone with 4 blocks" in output  # the reference keeps MMA's layers 5-12
    code, output, rows = _perf("--method", "mma,rmadapter", *opts, "--cfg-options", "method.con_image_target=clean")
    assert code == 0, output
    assert "con_image_target=clean" in output and float(rows["rmadapter"][5]) > float(rows["mma"][5]) > 0
    code, output, _ = _perf("--method", "coop", "--cfg-options", "method.con_image_target=clean")
    assert code == 2 and "no measured method has this key" in output


def test_toy_probe_compares_checkpoints() -> None:
    r = CliRunner().invoke(app, ["toy", "probe", "--checkpoint", "random", "--n", "120"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    rows = {line.split("│")[1].strip(): line for line in r.output.splitlines() if line.startswith("│")}
    assert set(rows) == {"random", "majority class"}
    values = [float(v) for v in rows["random"].split("│")[2:-1]]
    assert len(values) == 8 and all(0 <= v <= 100 for v in values)
    r = CliRunner().invoke(app, ["toy", "probe", "--checkpoint", "no/such/file.pt"])
    assert r.exit_code != 0 and "does not exist" in r.output


def test_perf_shows_gpu_peak_memory_and_its_ratio_when_measured(monkeypatch) -> None:
    """The GPU-only column, exercised with a stub measurement (no GPU here)."""
    import bench.model.perf as perf

    def fake(name, *a, **k):
        peak = {"mma": 1000.0, "rmadapter": 1030.0}[name]
        return {"trainable_params": 1.0, "train_bare_img_s": 10.0, "saved_mb": 5.0, "peak_mb": peak}

    monkeypatch.setattr(perf, "measure", fake)
    code, output, rows = _perf("--method", "rmadapter", "--reference", "mma")
    assert code == 0, output
    assert "peak MB" in output and rows["rmadapter"][6] == "1,030" and rows["rmadapter"][9] == "1.03"
