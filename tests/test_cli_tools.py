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


def test_perf_measures_every_method_it_is_given() -> None:
    args = ["perf", "--method", "zeroshot,cocoop", "--backbone", "bench-tiny", "--device", "cpu", "--batch-size", "4",
            "--steps", "2", "--reference", "coop"]  # fmt: skip
    r = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]] for line in r.output.splitlines()
            if line.startswith("│")}  # fmt: skip
    trainable, bare, harness, overhead, evaluation, ratio = rows["coop"]  # the reference is measured too
    assert trainable == "256" and float(bare.replace(",", "")) > 0 and float(harness.replace(",", "")) > 0
    assert re.fullmatch(r"-?[\d,]+%", overhead) and float(evaluation.replace(",", "")) > 0 and ratio == "1.00"
    assert float(rows["cocoop"][5]) > 0  # CoCoOp's step time as a multiple of CoOp's
    assert rows["zeroshot"][1] == "-" and rows["zeroshot"][5] == "-"  # nothing to train


def test_toy_probe_compares_checkpoints() -> None:
    r = CliRunner().invoke(app, ["toy", "probe", "--checkpoint", "random", "--n", "120"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    rows = {line.split("│")[1].strip(): line for line in r.output.splitlines() if line.startswith("│")}
    assert set(rows) == {"random", "majority class"}
    values = [float(v) for v in rows["random"].split("│")[2:-1]]
    assert len(values) == 8 and all(0 <= v <= 100 for v in values)
    r = CliRunner().invoke(app, ["toy", "probe", "--checkpoint", "no/such/file.pt"])
    assert r.exit_code != 0 and "does not exist" in r.output
