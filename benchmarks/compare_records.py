"""Do two results folders agree? Accuracy of each record key present in both, within a tolerance (points).

    python benchmarks/compare_records.py RESULTS_A RESULTS_B [--tolerance 1.0] [--common]

For the GPU acceptance check: the same toy sweep on ``cuda`` and on ``cpu`` (mixed precision and other kernels move
accuracies slightly, never by a point); with ``--tolerance 0``, that a change left records identical. ``--common``
compares the keys both folders hold (one ran a subset of the other). Prints one line; exit 1 when a key is missing
from one side (without ``--common``) or differs more.
"""

from __future__ import annotations

import argparse
import sys

from bench.report.tables import KEY, load_records


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--tolerance", type=float, default=1.0)
    p.add_argument("--common", action="store_true", help="compare only the keys both folders hold")
    args = p.parse_args()
    a, b = load_records(args.a), load_records(args.b)
    both = a.merge(b, on=KEY, how="inner" if args.common else "outer", suffixes=("_a", "_b"), indicator=True)
    only = int((both["_merge"] != "both").sum())
    diff = (both["accuracy_a"] - both["accuracy_b"]).abs()
    worst = both.loc[diff.idxmax()] if diff.notna().any() else None
    where = f" ({worst['method']} {worst['dataset']}/{worst['subset']})" if worst is not None else ""
    ok = only == 0 and len(both) > 0 and bool((diff <= args.tolerance).all())
    print(f"records={len(both)} only_one_side={only} identical={int((diff == 0).sum())} "
          f"max_abs_diff={diff.max():.4g}{where} "
          f"tolerance={args.tolerance} {'OK' if ok else 'FAIL'}")  # fmt: skip
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
