"""Training works: on one toy dataset, CoOp and MMA beat zero-shot on the base classes, and with ``train.lr=0`` they
do not. A trainer, optimiser or gradient path that silently stops updating parameters fails here.

Measured with the shipped toy CLIP on toy_scenes (data version 5), seed 1, base accuracy, the papers' schedules
(``train.min_steps=0``: CoOp 400 steps, MMA 25): zero-shot 33.3; CoOp 81.7 (lr 0: 33.3); MMA 61.7 (lr 0: 30.8). The
toy suite's step floor (MMA 100 steps: 95.0) would only widen the margin, at 4x the time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.config import parse_cfg_options

pytestmark = pytest.mark.e2e

# toy_scenes (the toy EuroSAT, behind the haze camera): where CoOp and MMA gain most over zero-shot on the toy suite.
DATASET = "toy_scenes"
PAPER_SCHEDULE = "train.min_steps=0"  # the papers' epochs: CoOp 200 (400 steps here), MMA 5 (25 steps)
MARGIN = 8.0  # base-accuracy points over zero-shot that a working trainer must reach


def _run(results: Path, method: str, *options: str) -> float:
    """Run one B2N training into the shared results folder (caches are built once); its base accuracy."""
    args = ["run", "--suite", "toy", "--results", results, "--method", method, "--protocol", "base2novel",
            "--datasets", DATASET, "--seeds", "1"]  # fmt: skip
    if options:
        args += ["--cfg-options", *options]
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    wanted = parse_cfg_options(options)
    recs = [json.loads(p.read_text()) for p in (results / "records").rglob("*.json")]
    (acc,) = [x["accuracy"] for x in recs if x["method"] == method and x["subset"] == "base" and x["options"] == wanted]
    return acc


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private toy data root (only the one dataset is generated, in a few seconds)."""
    root = tmp_path_factory.mktemp("toy")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_TOY_ROOT", str(root))
        yield root


@pytest.fixture(scope="module")
def results(toy_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("results")


@pytest.fixture(scope="module")
def zero_shot(results: Path) -> float:
    return _run(results, "zeroshot")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["coop", "mma"])
def test_training_beats_zero_shot_and_lr0_does_not(method: str, zero_shot: float, results: Path) -> None:
    trained = _run(results, method, PAPER_SCHEDULE)
    frozen = _run(results, method, PAPER_SCHEDULE, "train.lr=0")
    assert trained >= zero_shot + MARGIN, (method, trained, zero_shot)
    assert frozen < zero_shot + MARGIN / 2, (method, frozen, zero_shot)
