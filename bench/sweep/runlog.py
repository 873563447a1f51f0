"""What one run says and measures: ``log.txt`` (every progress message, timestamped, like Dassl's log), and
``metrics.jsonl`` (one row per epoch, then one per evaluation), mirrored to TensorBoard or W&B when asked.

Both files sit in the run's folder (:meth:`ResultsLayout.run_files`). A resumed run appends to its log; its metrics
drop the rows of epochs it is about to redo, so the curve has one point per epoch.
"""

from __future__ import annotations

import importlib.util
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bench.errors import ConfigError
from bench.io import atomic_write_text, digest

if TYPE_CHECKING:
    from bench.sweep.plan import RunSpec

LOGGERS = {"tensorboard": "tensorboard", "wandb": "wandb"}  # --logger name -> the package it needs


def check_loggers(names: list[str]) -> list[str]:
    """The ``--logger`` names, each known and its library installed (else one clear error before any run)."""
    for name in names:
        if name not in LOGGERS:
            raise ConfigError(f"--logger {name!r}: use {', '.join(LOGGERS)} (metrics.jsonl is always written)")
        if importlib.util.find_spec(LOGGERS[name]) is None:
            raise ConfigError(f"--logger {name} needs the {LOGGERS[name]} package: pip install {LOGGERS[name]}")
    return names


class RunLog:
    """A run's log and metrics files, opened on first use (a run with nothing to do leaves no files)."""

    def __init__(self, spec: RunSpec) -> None:
        layout = spec.layout
        self.spec = spec
        self.log_path, self.metrics_path = layout.log(spec), layout.metrics(spec)
        self.tb_dir = layout.tensorboard(spec)
        self.phase = "start"  # where the run is: recorded if it fails
        self.epoch: int | None = None
        self._log: TextIO | None = None
        self._metrics: TextIO | None = None
        self._mirrors: list[Any] = []

    def say(self, msg: str) -> None:
        if self._log is None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            # open for the whole run (closed by close()); line-buffered: a killed run keeps its last line
            self._log = open(self.log_path, "a", buffering=1)  # noqa: SIM115
        self._log.write(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} {msg}\n")

    def metrics(self, row: dict[str, Any]) -> None:
        """Append one row; the first training row of this process drops the rows of the epochs it will redo."""
        if self._metrics is None:  # an evaluation row first (nothing trained in this process): keep every epoch
            self._open_metrics(row["epoch"] if "event" not in row else None)
        assert self._metrics is not None
        self._metrics.write(json.dumps(row) + "\n")
        step = row.get("epoch", 0)
        for mirror in self._mirrors:
            mirror.log(row, step)

    def _open_metrics(self, first_epoch: int | None) -> None:
        path = self.metrics_path
        kept = []
        if path.exists():  # rows of epochs done before the resumed checkpoint stay; later ones are redone
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if "event" not in row and (first_epoch is None or row.get("epoch", 0) < first_epoch):
                    kept.append(line + "\n")
        atomic_write_text(path, "".join(kept))
        self._metrics = open(path, "a", buffering=1)  # noqa: SIM115 (closed by close())
        names = self.spec.loggers
        if "tensorboard" in names:
            self._mirrors.append(_TensorBoard(self.tb_dir, first_epoch))
        if "wandb" in names:
            self._mirrors.append(_WandB(self.spec, path.parent))

    def close(self) -> None:
        for f in (self._log, self._metrics):
            if f is not None:
                f.close()
        for mirror in self._mirrors:
            mirror.close()
        self._log = self._metrics = None
        self._mirrors = []


class _TensorBoard:
    """Scalars per epoch through ``torch.utils.tensorboard``; a resumed run purges the epochs it redoes."""

    def __init__(self, folder: Path, first_epoch: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder), purge_step=first_epoch)

    def log(self, row: dict[str, Any], step: int) -> None:
        prefix = "eval/" + row["dataset"] + "_" + row["subset"] + "/" if row.get("event") == "eval" else "train/"
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("epoch", "step"):
                self.writer.add_scalar(prefix + key, value, step)

    def close(self) -> None:
        self.writer.close()


class _WandB:
    """The same rows through ``wandb``; one W&B run per adaptbench run (a stable id, so a resumed run continues it)."""

    def __init__(self, spec: RunSpec, folder: Path) -> None:
        import wandb

        self.run = wandb.init(project="adaptbench", name=spec.label, id=digest(str(folder)), resume="allow",
                              config=spec.config, dir=str(folder))  # fmt: skip

    def log(self, row: dict[str, Any], step: int) -> None:
        self.run.log({k: v for k, v in row.items() if k != "epoch"}, step=step)

    def close(self) -> None:
        self.run.finish()
