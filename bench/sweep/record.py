"""``Record``: the schema of one result file (one run × one evaluation split), written by the runner, read by the
report and the planner.

Version 1 records (before the field existed) have the same keys and load unchanged; a record from a newer adaptbench
raises one message saying to upgrade.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import DataError
from bench.io import set_aside

RECORD_VERSION = 2

# The identity of a record: what `bench report` groups by and what a plan lists.
KEY = ("method", "config_hash", "protocol", "suite", "dataset", "subset", "seed", "shots", "backbone", "pretrained")


@dataclass
class Record:
    method: str
    protocol: str
    suite: str
    dataset: str
    subset: str  # all | base | novel
    train_dataset: str
    train_subset: str
    seed: int
    shots: int
    backbone: str
    pretrained: str
    random_init: bool
    config_hash: str
    options: dict[str, Any]  # the user's --cfg-options (the variant label in reports)
    accuracy: float
    per_class_accuracy: dict[str, float]
    n_test: int
    n_train: int
    trainable_params: int
    timing: dict[str, float]
    train_steps: int
    final_losses: dict[str, float]
    method_info: dict[str, Any]
    peak_memory_mb: float | None
    split_hash: str
    test_hash: str
    config: dict[str, Any]
    versions: dict[str, str]
    git_revision: str
    created: str
    # where the run's settings depart from the official code's in ways published numbers depend on (the report prints
    # them under its tables); None in records written before the field existed
    departures: list[str] | None = None
    record_version: int = RECORD_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # unknown keys of an older/newer record, kept on round trip

    def key(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in KEY}

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["departures"] is None:  # an old record round-trips without a field it never had
            del out["departures"]
        return {**out.pop("extra"), **out}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "record") -> Record:
        version = cls.check(data, source)
        names = {f.name for f in dataclasses.fields(cls)} - {"extra", "record_version"}
        known = {k: data.get(k) for k in names}
        extra = {k: v for k, v in data.items() if k not in names and k != "record_version"}
        return cls(**known, record_version=version, extra=extra)

    @staticmethod
    def check(data: dict[str, Any], source: str = "record") -> int:
        """The record version of ``data``; raises :class:`DataError` for a newer version or a non-record."""
        version = int(data.get("record_version", 1))
        if version > RECORD_VERSION:
            raise DataError(
                f"{source} was written by a newer adaptbench (record version {version}); upgrade adaptbench"
            )
        missing = [k for k in KEY if k not in data] + ([] if "accuracy" in data else ["accuracy"])
        if missing:
            raise DataError(
                f"{source} is not an adaptbench record (missing {', '.join(missing)}); move it out of records/"
            )
        return version

    @staticmethod
    def read(path: str | Path) -> dict[str, Any]:
        """A record file's checked JSON object, without building a :class:`Record` (the report reads 25k of them)."""
        try:
            data = json.loads(Path(path).read_bytes())
        except (OSError, ValueError) as e:
            raise DataError(f"record {path} is unreadable ({e}); `bench run` sets it aside and redoes it") from None
        if not isinstance(data, dict):
            raise DataError(f"record {path} is not a JSON object; delete it and run `bench run` again")
        Record.check(data, f"record {path}")
        return data

    @classmethod
    def load(cls, path: str | Path) -> Record:
        return cls.from_dict(cls.read(path), f"record {path}")


def record_ok(path: Path, heal: bool = True) -> bool:
    """Whether ``path`` holds a loadable record; with ``heal`` a damaged one is moved aside (kept) so the run is redone."""
    if not path.exists():
        return False
    try:
        Record.load(path)
        return True
    except DataError:
        if heal:
            set_aside(path)
        return False


@dataclass
class Failure:
    """Why a run has no records: written beside its log when it raises, read by the sweep's summary and the report.

    ``keys`` are the record keys the run still owed (what the report would otherwise call missing).
    """

    label: str
    method: str
    config_hash: str
    suite: str
    train_dataset: str
    seed: int
    shots: int
    error: str  # one line: the exception type and the first line of its message
    phase: str  # data | build | train | evaluate ... : where it stopped
    epoch: int | None  # the epoch it stopped in (training only)
    traceback: str  # the traceback file, relative to this file's folder
    keys: list[dict[str, Any]]
    config: dict[str, Any]
    created: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def load(cls, path: str | Path) -> Failure:
        try:
            data = json.loads(Path(path).read_text())
            return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataError(f"failure record {path} is unreadable ({e}); delete it") from None
