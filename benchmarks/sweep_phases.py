"""Where a sweep's time goes: per method, the runs' fixed cost (read the split, build backbone and method), training
and evaluation, against the sweep's wall time.

    python benchmarks/sweep_phases.py RESULTS                      # a results folder a sweep wrote
    python benchmarks/sweep_phases.py RESULTS -- --suite toy --method all --protocol all --seeds 1,2,3
                                                                   # run `bench run ... --results RESULTS` first, timed

Phases come from each record's ``timing`` (``setup_s``, ``fit_s``, ``eval_s``; one evaluation per dataset/subset of a
run, shared by its protocols). The wall time is the timed command's, or else first run start to last record. With a
pool of workers the phases add up to more than the wall time: their ratio is the parallel speed-up. "other" is what
no run accounts for (process and worker start-up, planning, waiting).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
from tabulate import tabulate


def run_phases(results: Path) -> pd.DataFrame:
    """One row per (run, dataset, subset): the run's setup and fit seconds, that evaluation's seconds."""
    rows = []
    for p in (results / "records").rglob("*.json"):
        r = json.loads(p.read_text())
        run = (r["method"], r["config_hash"], r["train_dataset"], r["train_subset"], r["seed"], r["shots"])
        t = r.get("timing", {})
        rows.append({"method": r["method"], "run": run, "key": (r["dataset"], r["subset"]),
                     "setup_s": t.get("setup_s", float("nan")), "fit_s": t.get("fit_s", 0.0),
                     "eval_s": t.get("eval_s", 0.0), "created": r["created"]})  # fmt: skip
    return pd.DataFrame(rows)


def by_method(rows: pd.DataFrame) -> pd.DataFrame:
    evals = rows.drop_duplicates(["run", "key"]).groupby("method")["eval_s"].sum()
    runs = rows.drop_duplicates("run").groupby("method")
    table = pd.DataFrame({"runs": runs.size(), "setup_s": runs["setup_s"].sum(), "train_s": runs["fit_s"].sum(),
                          "eval_s": evals})  # fmt: skip
    table["total_s"] = table[["setup_s", "train_s", "eval_s"]].sum(axis=1)
    return table.sort_values("total_s", ascending=False)


def first_start(results: Path) -> float | None:
    """The earliest run-log line's time (the sweep's start, when it was not timed here)."""
    stamps = []
    for log in (results / "runs").rglob("log.txt"):
        with log.open() as f:
            line = f.readline()
        if line[:19].strip():
            stamps.append(datetime.fromisoformat(line[:19]).timestamp())
    return min(stamps) if stamps else None


def main() -> None:
    argv = sys.argv[1:]
    bench_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path)
    args = p.parse_args(own)
    wall = None
    if bench_args:
        t0 = time.perf_counter()
        subprocess.run(["bench", "run", *bench_args, "--results", str(args.results)], check=True)
        wall = time.perf_counter() - t0
    rows = run_phases(args.results)
    if rows.empty:
        sys.exit(f"no records under {args.results / 'records'}")
    table = by_method(rows)
    if wall is None:
        start = first_start(args.results)
        end = max(datetime.fromisoformat(c).timestamp() for c in rows["created"])
        wall = end - start if start is not None else float("nan")
    sums = table[["runs", "setup_s", "train_s", "eval_s", "total_s"]].sum()
    table.loc["all"] = sums
    print(tabulate(table.reset_index(), headers="keys", floatfmt=".1f", showindex=False))
    busy = sums["total_s"]
    print(f"wall {wall:.1f} s; runs account for {busy:.1f} s (x{busy / wall:.2f} of the wall: the workers' overlap); "
          f"other {max(0.0, wall - busy):.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
