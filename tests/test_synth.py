"""`bench data synth`: a simulated root with the real class counts that the real readers read unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.data.check import check
from bench.data.synth import per_class, split_sizes
from bench.data.tables import PUBLISHED_CLASSES, PUBLISHED_COUNTS
from bench.registry import get_dataset

NAMES = ["dtd", "fgvc_aircraft", "stanford_cars", "imagenet", "imagenet_a", "imagenetv2"]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "data"
    r = CliRunner().invoke(app, ["data", "synth", str(root), "--datasets", ",".join(NAMES), "--scale", "0.002"])
    assert r.exit_code == 0, r.output
    return root


def test_real_readers_read_the_simulated_root_with_the_real_class_counts(root: Path) -> None:
    assert (root / "SYNTHETIC.md").exists()
    for name in NAMES:
        splits = get_dataset(name)(root).read()
        assert len(splits.classnames) == PUBLISHED_CLASSES[name], name
        n_train, n_val, n_test = split_sizes(name, 0.002)
        assert len(splits.test) == n_test, name
        if name != "imagenet":  # ImageNet's val list is its test list
            assert (len(splits.train), len(splits.val)) == (n_train, n_val), name
        assert sorted({d.label for d in splits.test}) == list(range(PUBLISHED_CLASSES[name])), name
    rows = check(NAMES, root, decode=True)  # every listed file exists and decodes
    assert all(r.usable for r in rows), [(r.dataset, r.errors, r.missing[:1], r.unreadable[:1]) for r in rows]


def test_full_scale_sizes_are_the_published_ones() -> None:
    for name, counts in PUBLISHED_COUNTS.items():
        assert split_sizes(name, 1.0) == counts
        assert sum(per_class(counts[2], PUBLISHED_CLASSES[name])) == counts[2]
    assert per_class(10, 4) == [3, 3, 2, 2]


def test_few_shot_draws_and_the_base_novel_split_work_on_it(root: Path) -> None:
    from bench.data.dataset import dassl_fewshot, subsample_classes

    splits = get_dataset("imagenet")(root).read()
    train, _ = dassl_fewshot(splits.train, splits.val, 2, seed=1, draw_val=False)
    assert len(train) == 2 * 1000
    assert len({d.label for d in subsample_classes(splits.test, "novel")}) == 500


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--datasets", "dtd,mnist"], "unknown dataset(s) mnist"),
        (["--scale", "2"], "--scale 2.0"),
        (["--size", "0"], "--size 0"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    r = CliRunner().invoke(app, ["data", "synth", str(tmp_path / "new"), *args])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output
    assert list(tmp_path.iterdir()) == []


def test_an_existing_data_root_is_never_written_into(tmp_path: Path) -> None:
    (tmp_path / "dtd").mkdir()
    r = CliRunner().invoke(app, ["data", "synth", str(tmp_path), "--datasets", "dtd"])
    assert r.exit_code == 2 and "not an empty folder" in r.output
    assert [p.name for p in tmp_path.iterdir()] == ["dtd"]
