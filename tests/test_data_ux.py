"""Data as a new user meets it: every missing dataset named at once with the command that prepares them, the comma
form in ``bench data check``, and a dataset reader of one's own (``--plugin``) run on the real suite without a Suite."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from coop_fixture import make_coop_data
from typer.testing import CliRunner

from bench.cli import app
from bench.registry import DATASETS

TINY = ["--backbone", "bench-tiny", "--pretrained", "none", "--seeds", "1", "--method", "zeroshot"]


def bench(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "240"})


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return make_coop_data(tmp_path_factory.mktemp("data"), names=["dtd"])


def test_run_names_every_missing_dataset_and_the_one_command_that_prepares_them(root, tmp_path):
    r = bench(
        "run", "--data-root", root, "--results", tmp_path, *TINY, "--datasets", "dtd,oxford_pets,eurosat,caltech101"
    )
    assert r.exit_code == 2
    assert "3 datasets are not ready" in r.output
    for name, folder in (("caltech101", "caltech-101"), ("eurosat", "eurosat"), ("oxford_pets", "oxford_pets")):
        assert f"{name}: folder {root / folder} not found" in r.output
    assert f"`bench data prepare caltech101,eurosat,oxford_pets --data-root {root}`" in r.output
    assert not (tmp_path / "records").exists()


def test_data_check_takes_the_comma_form(root):
    r = bench("data", "check", "dtd,eurosat", "--data-root", root, "--quick")
    assert r.exit_code == 1  # eurosat was asked for and is absent
    assert "dtd" in r.output and "eurosat" in r.output and "missing" in r.output
    assert bench("data", "check", "dtd", "--data-root", root).exit_code == 0
    r = bench("data", "check", "dtd,nosuch", "--data-root", root)
    assert r.exit_code == 2 and "unknown dataset 'nosuch'" in r.output


PLUGIN = """
from bench.datasets.readers import SplitFileReader
from bench.registry import DATASETS


@DATASETS.register_module(name="my_textures")
class MyTextures(SplitFileReader):
    name = "my_textures"
    dataset_dir = "my_textures"
    image_dir = "images"
    split_file = "split_zhou_MyTextures.json"
    template = "a photo of a {} texture."
"""


@pytest.fixture
def plugin(tmp_path):
    path = tmp_path / "my_textures_reader.py"
    path.write_text(textwrap.dedent(PLUGIN))
    yield path
    DATASETS._module_dict.pop("my_textures", None)  # registries are process-wide: leave the next test a clean one


def test_a_plugin_reader_runs_on_the_real_suite_without_a_suite(tmp_path, plugin):
    data = make_coop_data(tmp_path / "data", names=["dtd"])
    (data / "dtd").rename(data / "my_textures")
    (data / "my_textures" / "split_zhou_DescribableTextures.json").rename(
        data / "my_textures" / "split_zhou_MyTextures.json"
    )
    assert bench("data", "check", "my_textures", "--data-root", data, "--plugin", plugin).exit_code == 0
    results = tmp_path / "results"
    r = bench("run", "--plugin", plugin, "--data-root", data, "--results", results, *TINY, "--datasets", "my_textures")
    assert r.exit_code == 0, r.output
    recs = sorted(p.relative_to(results / "records").parts for p in (results / "records").rglob("*.json"))
    assert [(p[0], p[1], p[-2]) for p in recs] == [
        ("real", "base2novel", "my_textures__base"),
        ("real", "base2novel", "my_textures__novel"),
    ]
    # a dataset of another suite is still refused, with the way to add one's own
    r = bench("run", "--data-root", data, "--results", results, *TINY, "--datasets", "toy_shapes")
    assert r.exit_code == 2 and "not in the real suite" in r.output and "--plugin" in r.output
