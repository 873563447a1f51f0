"""docs/adding-a-dataset.md cannot rot: its reader, loaded as a ``--plugin`` file, reads a generated CoOp folder, and
its Python snippet draws the few-shot set from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from coop_fixture import make_coop_data
from typer.testing import CliRunner

from bench.cli import app
from bench.registry import DATASETS

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "adding-a-dataset.md"


@pytest.fixture
def my_textures(tmp_path: Path):
    """The guide's reader as a plugin file, and a data root holding its dataset (a generated DTD, renamed)."""
    reader, snippet = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)
    plugin = tmp_path / "my_textures.py"
    plugin.write_text(reader)
    data = make_coop_data(tmp_path / "data", names=["dtd"], n_classes=5)
    folder = (data / "dtd").rename(data / "my_textures")
    (folder / "split_zhou_DescribableTextures.json").rename(folder / "split_zhou_MyTextures.json")
    yield plugin, data, snippet
    DATASETS._module_dict.pop("my_textures", None)  # registries are process-wide: leave the next test a clean one


def test_the_guides_reader_and_few_shot_draw_run(my_textures, capsys) -> None:
    plugin, data, snippet = my_textures
    r = CliRunner().invoke(app, ["data", "check", "my_textures", "--plugin", str(plugin), "--data-root", str(data)])
    assert r.exit_code == 0 and "│ ok " in r.output, r.output  # found, sizes read, every image decodes
    assert 'Path("~/data")' in snippet  # where the test puts its data root
    exec(compile(snippet.replace('Path("~/data")', f"Path({str(data)!r})"), str(GUIDE), "exec"), {})
    # 5 classes; 2 shots each; base = the first ceil(5 / 2) = 3 classes
    assert capsys.readouterr().out.strip() == "5 classes; 10 training images drawn; 6 of them base"
