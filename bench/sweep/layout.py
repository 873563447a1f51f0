"""``ResultsLayout``: every path under a results folder, in one place.

::

    results/
      records/<suite>/<protocol>/<method>-<config hash>/<backbone>__<weights>/<dataset>__<subset>/shots<k>_seed<s>.json
                                                                       ... shots<k>_seed<s>.yaml  its resolved config
      checkpoints/<method>-<config hash>/<backbone>__<weights>/<train dataset>__<subset>/shots<k>_seed<s>.pt
                                                        (.resume.pt beside it: the mid-run state, until the run ends)
      runs/<suite>/<method>-<config hash>/<backbone>__<weights>/<train dataset>__<subset>/shots<k>_seed<s>/
          log.txt  metrics.jsonl  tensorboard/          what a run said and measured, per epoch
          failure.json  traceback.txt                   why a run failed (removed when it succeeds)
      splits/<suite>/<dataset>/shot<k>_seed<s>.json     the few-shot draws (portable JSON with a hash; _tip.json: Tip's)
      cache/                                            decoded images and frozen features, shared by runs
      plans/plan-<timestamp>.json                       what each `bench run` planned (for the missing-runs list)
      slurm/<job id>/                                   submitit logs
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from bench.io import atomic_write_json, temp_writer_is_dead


class RunKey(Protocol):
    """What names a run's files: the fields of a :class:`~bench.sweep.plan.RunSpec` that the layout reads (a protocol,
    since the plan's ``RunSpec`` knows its layout, so this module must not import the plan back)."""

    method: str
    config_hash: str
    suite: str
    train_dataset: str
    train_subset: str
    seed: int
    shots: int

    @property
    def backbone_tag(self) -> str: ...


class EvalKey(Protocol):
    """What names an evaluation's record: the fields of a :class:`~bench.sweep.plan.EvalSpec`."""

    @property
    def protocol(self) -> str: ...

    @property
    def dataset(self) -> str: ...

    @property
    def subset(self) -> str: ...


@dataclass(frozen=True)
class ResultsLayout:
    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def records_dir(self) -> Path:
        return self.root / "records"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def plans_dir(self) -> Path:
        return self.root / "plans"

    @property
    def slurm_dir(self) -> Path:
        return self.root / "slurm"

    def run_dir(self, spec: RunKey) -> Path:
        return Path(f"{spec.method}-{spec.config_hash}") / spec.backbone_tag

    def record(self, spec: RunKey, ev: EvalKey) -> Path:
        return (
            self.records_dir / spec.suite / ev.protocol / self.run_dir(spec) / f"{ev.dataset}__{ev.subset}"
            / f"shots{spec.shots}_seed{spec.seed}.json"
        )  # fmt: skip

    def record_config(self, spec: RunKey, ev: EvalKey) -> Path:
        """The run's resolved config as YAML beside its record: what ``bench run --config FILE`` reads back."""
        return self.record(spec, ev).with_suffix(".yaml")

    def checkpoint(self, spec: RunKey) -> Path:
        return (
            self.root / "checkpoints" / self.run_dir(spec) / f"{spec.train_dataset}__{spec.train_subset}"
            / f"shots{spec.shots}_seed{spec.seed}.pt"
        )  # fmt: skip

    def resume_checkpoint(self, spec: RunKey) -> Path:
        """The mid-run training state (optimiser, scheduler, RNGs, ...), deleted once the final checkpoint exists."""
        return self.checkpoint(spec).with_suffix(".resume.pt")

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def run_files(self, spec: RunKey) -> Path:
        """The folder of one run's log, metrics and failure files."""
        return (
            self.runs_dir / spec.suite / self.run_dir(spec) / f"{spec.train_dataset}__{spec.train_subset}"
            / f"shots{spec.shots}_seed{spec.seed}"
        )  # fmt: skip

    def log(self, spec: RunKey) -> Path:
        return self.run_files(spec) / "log.txt"

    def metrics(self, spec: RunKey) -> Path:
        return self.run_files(spec) / "metrics.jsonl"

    def tensorboard(self, spec: RunKey) -> Path:
        return self.run_files(spec) / "tensorboard"

    def failure(self, spec: RunKey) -> Path:
        return self.run_files(spec) / "failure.json"

    def traceback(self, spec: RunKey) -> Path:
        return self.run_files(spec) / "traceback.txt"

    def failures(self) -> Iterator[Path]:
        return iter(sorted(self.runs_dir.rglob("failure.json")))

    def metric_files(self) -> Iterator[Path]:
        return iter(sorted(self.runs_dir.rglob("metrics.jsonl")))

    def run_lock(self, spec: RunKey) -> Path:
        """The path whose ``.lock`` file serialises one run across processes (beside its checkpoint)."""
        return self.checkpoint(spec).with_suffix(".run")

    def split(self, suite: str, dataset: str, shots: int, seed: int, draw: str = "coop") -> Path:
        """The stored few-shot draw; Tip-Adapter's own draw ignores the seed, so all seeds share one file."""
        name = f"shot{shots}_seed{seed}.json" if draw == "coop" else f"shot{shots}_{draw}.json"
        return self.root / "splits" / suite / dataset / name

    def records(self) -> Iterator[Path]:
        return iter(sorted(self.records_dir.rglob("*.json")))

    @property
    def records_index(self) -> Path:
        """What ``bench report`` has already read of the records (rows keyed by file size and mtime)."""
        return self.cache_dir / "records-index.json"

    def record_stats(self) -> list[tuple[str, int, int]]:
        """(path, size, mtime in ns) of every record file, sorted by path: one ``scandir`` per folder and no
        ``Path`` object per file (25,000 of them cost seconds)."""
        out: list[tuple[str, int, int]] = []
        stack = [str(self.records_dir)]
        while stack:
            try:
                entries = list(os.scandir(stack.pop()))
            except FileNotFoundError:
                continue
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.name.endswith(".json") and not e.name.startswith("."):
                    with contextlib.suppress(FileNotFoundError):  # set aside by a concurrent run
                        st = e.stat()
                        out.append((e.path, st.st_size, st.st_mtime_ns))
        return sorted(out)

    def write_plan(self, keys: Iterable[dict[str, Any]]) -> Path:
        """Store the record keys a ``bench run`` planned, so ``bench report`` can list the missing ones."""
        path = self.plans_dir / f"plan-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%f')}.json"
        atomic_write_json(path, list(keys))
        return path

    def remove_stale_temp_files(self, max_age_s: float = 6 * 3600) -> int:
        """Delete the ``.*.tmp`` files that interrupted writes left: the writer is dead, or the file is older than ``max_age_s``.

        A live write of a concurrent sweep (another process, or another node sharing the folder) is never touched.
        """
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - max_age_s
        removed = 0
        for path in self.root.rglob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                if path.is_file() and (temp_writer_is_dead(path) or path.stat().st_mtime < cutoff):
                    path.unlink()
                    removed += 1
        return removed

    def plans(self) -> list[Path]:
        return sorted(self.plans_dir.glob("plan-*.json"))
