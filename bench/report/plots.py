"""Figures from the report's tables: base-to-novel Base/Novel/HM bars, cross-dataset and DG bars (source and Average
included), few-shot accuracy against shots. Error bars and bands are ± std over seeds; every title names the suite,
backbone and seeds (the table's title); the y axis starts near the data, not at 0, so close methods stay apart (the
axis label says so)."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.report.tables import DATASET_NAMES, MEAN_HM, Table, label_order  # noqa: E402


def _ours(table: Table) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Our cells and the published ones (``--paper``; no delta rows), datasets under their papers' names."""
    c = table.cells[~table.cells["label"].str.startswith("Δ ")]
    c = c.assign(dataset=c["dataset"].map(lambda d: DATASET_NAMES.get(d, d)))
    paper = c["label"].str.endswith(" (paper)")
    return c[~paper], c[paper]


def _bars(ax: plt.Axes, cells: pd.DataFrame, metric: str, paper: pd.DataFrame | None = None) -> None:
    """Grouped bars: datasets along x (table order), one bar per label, ± std error bars; a black diamond on a
    default-config bar where the paper printed a number."""
    c = cells[cells["metric"] == metric]
    datasets = list(dict.fromkeys(c["dataset"]))
    labels = [lab for lab in label_order(c) if lab in set(c["label"])]
    width = 0.8 / max(len(labels), 1)
    x = np.arange(len(datasets))
    pub = paper[paper["metric"] == metric] if paper is not None else c.iloc[:0]
    for i, lab in enumerate(labels):
        mine = c[c["label"] == lab].set_index("dataset").reindex(datasets)
        at = x + (i - (len(labels) - 1) / 2) * width
        ax.bar(at, mine["mean"], width, yerr=mine["std"].fillna(0), capsize=2, label=lab)
        theirs = pub[pub["label"] == f"{lab} (paper)"].set_index("dataset").reindex(datasets)["mean"]
        theirs = theirs.where(mine["complete"].fillna(False).astype(bool))  # not on an Average over fewer datasets
        if theirs.notna().any():
            first = "published" not in ax.get_legend_handles_labels()[1]
            ax.scatter(at, theirs, marker="D", s=18, color="black", zorder=3, label="published" if first else None)
    ax.set_xticks(x, datasets, rotation=30, ha="right")
    values = pd.concat([c["mean"] - c["std"].fillna(0), c["mean"] + c["std"].fillna(0), pub["mean"]])
    low, high = values.min(), values.max()
    pad = max(1.0, 0.1 * (high - low))
    ax.set_ylim(max(0.0, low - pad), min(100.0, high + pad))
    ax.set_ylabel(f"{metric} (%){' — axis not from 0' if low - pad > 0 else ''}")
    ax.grid(axis="y", alpha=0.3)


def _title(table: Table, what: str = "error bars") -> str:
    """The table's title without its parenthesis (what, suite, backbone, seeds), and what the error bars are."""
    return re.sub(r" \(.*?\)", "", table.title) + f" · {what}: ± std over seeds"


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")  # keeps the legend placed outside the axes
    plt.close(fig)
    return path


def plot_base2novel(table: Table, path: Path) -> Path:
    """Base, Novel and HM per dataset (the Average first), one panel each, legend outside."""
    cells, paper = _ours(table)
    cells = cells[cells["dataset"] != MEAN_HM]  # an HM-only row: its bars would leave gaps in Base and Novel
    n = cells["dataset"].nunique()
    fig, axes = plt.subplots(3, 1, figsize=(max(7.0, 0.9 * n + 2), 10), sharex=True)
    for ax, metric in zip(axes, ("Base", "Novel", "HM"), strict=True):
        _bars(ax, cells, metric, paper)
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="method")
    fig.suptitle(_title(table), fontsize=10)
    return _save(fig, path)


def plot_transfer(table: Table, path: Path) -> Path:
    """Cross-dataset or DG accuracy per target, the source first and the Average last."""
    cells, paper = _ours(table)
    fig, ax = plt.subplots(figsize=(max(7.0, 0.9 * cells["dataset"].nunique() + 2), 4.5))
    _bars(ax, cells, "Acc", paper)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="method")
    ax.set_title(_title(table), fontsize=10)
    return _save(fig, path)


def plot_few_shot(table: Table, path: Path) -> Path:
    """Accuracy against shots (log₂ axis) per dataset and on the Average, ± std shaded."""
    cells, _ = _ours(table)
    datasets = list(dict.fromkeys(cells["dataset"]))
    cols = min(4, len(datasets))
    rows = -(-len(datasets) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols + 2, 2.8 * rows), squeeze=False)
    labels = [lab for lab in label_order(cells) if lab in set(cells["label"])]
    for ax, dataset in zip(axes.flat, datasets, strict=False):
        for lab in labels:
            c = cells[(cells["dataset"] == dataset) & (cells["label"] == lab)].sort_values("shots")
            if c.empty:
                continue
            (line,) = ax.plot(c["shots"], c["mean"], marker="o", label=lab)
            std = c["std"].fillna(0)
            ax.fill_between(c["shots"], c["mean"] - std, c["mean"] + std, color=line.get_color(), alpha=0.2)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(cells["shots"].unique()), [str(s) for s in sorted(cells["shots"].unique())])
        ax.set_title(dataset, fontsize=9)
        ax.set_xlabel("shots per class")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(datasets) :]:
        ax.axis("off")
    fig.suptitle(_title(table, "bands"), fontsize=10)
    fig.tight_layout()
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="center left", bbox_to_anchor=(1.0, 0.5), title="method")
    return _save(fig, path)


def plot(table: Table, folder: Path) -> Path:
    """The table's figure, as ``<table name>.png`` in ``folder``: bars of Base, Novel and HM, accuracy against shots,
    or accuracy per dataset, as the protocol's table is laid out."""
    protocol = table.protocol
    draw = plot_base2novel if protocol.base_novel else plot_few_shot if protocol.layout.by_shots else plot_transfer
    return draw(table, folder / f"{table.name}.png")
