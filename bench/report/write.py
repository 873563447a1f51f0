"""``bench report --out DIR``: every table as its own Markdown, LaTeX and CSV file, and every figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.io import atomic_write_text
from bench.report.compare import Comparison
from bench.report.render import render
from bench.report.tables import Table


def write_report(
    tables: dict[str, Table | pd.DataFrame], out: Path, layout: str = "paper", interval: str = "std"
) -> list[Path]:
    """Write ``<name>.md``, ``<name>.tex`` and ``<name>.csv`` per table and ``<name>.png`` per results table."""
    from bench.report.plots import plot  # matplotlib only when figures are asked for

    written = []
    for name, table in tables.items():
        for fmt, ext in (("markdown", "md"), ("latex", "tex"), ("csv", "csv")):
            path = out / f"{name}.{ext}"
            atomic_write_text(path, render(table, fmt, layout, interval) + "\n")
            written.append(path)
        if isinstance(table, Table):
            written.append(plot(table, out))
    return written


def write_comparisons(comparisons: list[Comparison], out: Path) -> list[Path]:
    """``compare_<A>_vs_<B>.md``: each protocol's verdict and its per-dataset differences (nothing if none)."""
    if not comparisons:
        return []
    a, b = comparisons[0].a, comparisons[0].b
    text = "\n\n".join(f"{c.verdict()}\n\n{render(c.per_dataset(), 'markdown')}" for c in comparisons)
    path = out / f"compare_{a}_vs_{b}.md".replace(" ", "_").replace("/", "_")
    atomic_write_text(path, text + "\n")
    return [path]
