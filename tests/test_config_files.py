"""Configs as Dassl/mmengine users know them: ``bench config show``, ``--config FILE`` (``_base_`` allowed) merged
before ``--cfg-options``, and each record's resolved config saved beside it as YAML that ``--config`` reads back."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from coop_fixture import make_coop_data
from typer.testing import CliRunner

from bench.cli import app
from bench.config import apply_options, load_config_file, parse_cfg_options
from bench.sweep import plan as planlib
from bench.sweep.suites import REAL

TINY = ["--backbone", "bench-tiny", "--pretrained", "none", "--seeds", "1", "--method", "coop", "--datasets", "dtd"]


def bench(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args])


def shown_hash(output: str) -> str:
    return re.search(r"config hash ([0-9a-f]{8})", output).group(1)


def test_config_show_gives_the_hash_and_yaml_that_a_run_records(tmp_path):
    data, results = make_coop_data(tmp_path / "data", names=["dtd"]), tmp_path / "results"
    shown = bench("config", "show", "--method", "coop", "--dataset", "dtd", "--cfg-options", "train.epochs=1")
    assert shown.exit_code == 0, shown.output
    r = bench("run", "--data-root", data, "--results", results, *TINY, "--cfg-options", "train.epochs=1")
    assert r.exit_code == 0, r.output
    recs = sorted((results / "records").rglob("*.json"))
    assert len(recs) == 2 and all(f"coop-{shown_hash(shown.output)}" in str(p) for p in recs)
    for rec in recs:
        saved = rec.with_suffix(".yaml")
        assert yaml.safe_load(saved.read_text()) == json.loads(rec.read_text())["config"]
        assert yaml.safe_load(shown.output) == yaml.safe_load(saved.read_text())
    # the saved file is a config: it reproduces the hash, and a run from it finds its runs done
    again = bench("config", "show", "-m", "coop", "-d", "dtd", "--config", recs[0].with_suffix(".yaml"))
    assert shown_hash(again.output) == shown_hash(shown.output)
    r = bench("run", "--data-root", data, "--results", results, *TINY, "--config", recs[0].with_suffix(".yaml"))
    assert r.exit_code == 0 and "0 to run" in r.output, r.output
    assert len(sorted((results / "records").rglob("*.json"))) == 2


def test_config_file_with_base_merges_before_cfg_options(tmp_path):
    (tmp_path / "base.yaml").write_text("train:\n  lr: 0.01\n  epochs: 3\n")
    (tmp_path / "mine.yaml").write_text("_base_: base.yaml\ntrain:\n  epochs: 5\nmethod:\n  n_ctx: 8\n")
    r = bench("config", "show", "-m", "coop", "-d", "dtd", "--config", tmp_path / "mine.yaml",
              "--cfg-options", "train.epochs=7")  # fmt: skip
    assert r.exit_code == 0, r.output
    cfg = yaml.safe_load(r.output)
    assert (cfg["train"]["lr"], cfg["train"]["epochs"], cfg["method"]["n_ctx"]) == (0.01, 7, 8)
    assert cfg["train"]["optimizer"] == "sgd" and cfg["method"]["ctx_init"] == "a photo of a"  # the rest: defaults


@pytest.mark.parametrize(
    "content, message",
    [
        ("train:\n  lrr: 0.1\n", "train.lrr: unknown key"),
        ("train:\n  epochs: 1.5\n", "train.epochs=1.5: expected a int"),
        ("train: [1\n", "cannot read it"),
        (None, "no such file"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_it_and_nothing_runs(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    if content is not None:
        path.write_text(content)
    data, results = make_coop_data(tmp_path / "data", names=["dtd"]), tmp_path / "results"
    r = bench("run", "--data-root", data, "--results", results, *TINY, "--config", path)
    assert r.exit_code == 2
    assert f"--config {path}" in r.output and message in r.output and "Traceback" not in r.output
    assert not results.exists()


def test_list_values_use_mmengines_forms_and_strings_keep_their_spaces():
    cfg = {"method": {"layers": [1], "ctx_init": ""}}
    for value in ("2,3", "[2,3]", "(2, 3)"):
        assert apply_options(cfg, parse_cfg_options([f"method.layers={value}"]))["method"]["layers"] == [2, 3]
    out = apply_options(cfg, parse_cfg_options(["method.ctx_init=a photo of a"]))
    assert out["method"]["ctx_init"] == "a photo of a"


def test_a_full_config_file_names_the_variant_by_what_differs_from_the_defaults(tmp_path):
    shown = bench("config", "show", "-m", "coop", "-d", "dtd", "--cfg-options", "train.epochs=1", "method.n_ctx=8")
    (tmp_path / "full.yaml").write_text(shown.output)
    from_file = load_config_file(tmp_path / "full.yaml")
    origins = {key: "--config full.yaml" for key in from_file}
    (run,) = planlib.plan(["coop"], ["base2novel"], REAL, [1], [16], tmp_path, tmp_path, ["dtd"],
                          options={**from_file, "train.lr": 0.01}, origins=origins)  # fmt: skip
    # the report's label: the file's two changes and the command line's, not the 20 keys the file repeats
    assert run.options == {"train.epochs": 1, "method.n_ctx": 8, "train.lr": 0.01}
