"""Failed runs for the report: each with the reason it stopped, kept apart from runs that never ran (missing)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.errors import DataError
from bench.sweep.layout import ResultsLayout
from bench.sweep.record import KEY, Failure

COLUMNS = ["method", "config_hash", "train on", "seed", "shots", "stopped in", "error", "traceback"]


def load_failures(results: str | Path, suite: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per failed run, for display; the record keys those runs still owe, to tell them from missing runs).

    A failure record is removed when its run succeeds, so every one found here is a run still without records.
    """
    runs, keys = [], []
    for path in ResultsLayout(results).failures():
        try:
            f = Failure.load(path)
        except DataError:
            continue
        if suite is not None and f.suite != suite:
            continue
        where = f.phase + (f" (epoch {f.epoch})" if f.epoch else "")
        runs.append([f.method, f.config_hash, f.train_dataset, f.seed, f.shots, where, f.error,
                     str(path.parent / f.traceback)])  # fmt: skip
        keys.extend(f.keys)
    return pd.DataFrame(runs, columns=COLUMNS), pd.DataFrame(keys, columns=list(KEY))


def not_failed(missing: pd.DataFrame, failed_keys: pd.DataFrame) -> pd.DataFrame:
    """The missing evaluations that no failed run owes (never started, or still running)."""
    if missing.empty or failed_keys.empty:
        return missing
    merged = missing.merge(failed_keys.drop_duplicates(), on=list(KEY), how="left", indicator=True)
    return merged[merged["_merge"] == "left_only"].drop(columns="_merge")
