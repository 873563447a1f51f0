"""Progress: the core reports its long phases through ``bench.progress`` (silent without a reporter), the sweep says
what happens (zero-shot never "trains"), and the sweep bar's time left is the pace so far times the runs to go."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from coop_fixture import make_coop_data

from bench.cli import SweepProgress
from bench.progress import phase, reporting
from bench.sweep import run_sweep


class Recorder:
    """A reporter that keeps each phase's message, total and the units it was advanced by."""

    def __init__(self) -> None:
        self.phases: list[dict] = []

    @contextlib.contextmanager
    def __call__(self, message: str, total: int | None) -> Iterator:
        row = {"message": message, "total": total, "done": 0}
        self.phases.append(row)
        yield lambda n=1: row.__setitem__("done", row["done"] + n)


def test_a_phase_is_silent_without_a_reporter_and_shown_with_one():
    with phase("nobody watches", 3) as advance:
        advance(3)
    seen = Recorder()
    with reporting(seen), phase("writing 3 things", 3) as advance:
        advance(2)
        advance(1)
    assert seen.phases == [{"message": "writing 3 things", "total": 3, "done": 3}]
    with phase("after the block", 1):
        pass
    assert len(seen.phases) == 1


def test_a_sweep_says_what_it_does(tmp_path):
    data = make_coop_data(tmp_path / "data", names=["dtd"])
    seen, messages = Recorder(), []
    with reporting(seen):
        run_sweep(methods="zeroshot,clip_adapter", suite="real", datasets=["dtd"], seeds=[1], backbone="bench-tiny",
                  pretrained="none", data_root=data, results=tmp_path / "results", on_message=messages.append,
                  options={"train.epochs": 1, "train.feature_passes": 2})  # fmt: skip
    zeroshot = [m for m in messages if m.startswith("zeroshot")]
    assert any("nothing to train" in m for m in zeroshot) and not any("training" in m for m in zeroshot)
    assert any(m.startswith("clip_adapter") and "training on" in m for m in messages)
    n_train = next(p["total"] // 2 for p in seen.phases if "augmented passes" in p["message"])
    encode = f"encoding 2 augmented passes (rrc_flip) of {n_train} images with bench-tiny/none"
    assert any(p["message"] == encode and p["done"] == p["total"] == 2 * n_train for p in seen.phases), seen.phases
    assert any(p["message"].startswith("decoding") and p["done"] == p["total"] > 0 for p in seen.phases)
    # the second sweep finds everything cached and done: nothing to show
    seen.phases.clear()
    with reporting(seen):
        run_sweep(methods="clip_adapter", suite="real", datasets=["dtd"], seeds=[1], backbone="bench-tiny",
                  pretrained="none", data_root=data, results=tmp_path / "results",
                  options={"train.epochs": 1, "train.feature_passes": 2})  # fmt: skip
    assert seen.phases == []


def test_the_sweep_bar_estimates_the_time_left_from_the_runs_done():
    clock = [100.0]
    bar = SweepProgress(get_time=lambda: clock[0])
    with bar.shown():
        bar.start(4)
        clock[0] = 130.0  # the first run took 30 s
        bar.on_done(None, 1)
        task = bar.progress.tasks[0]
        assert task.time_remaining == 90  # three runs to go at 30 s each
        clock[0] = 150.0
        bar.on_done(None, 1)
        assert bar.progress.tasks[0].time_remaining == 50  # 25 s a run so far, two to go
