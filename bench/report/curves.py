"""Training curves from the runs' ``metrics.jsonl``: loss and learning rate per epoch, one figure per method variant
(method and config hash, backbone), one line per training dataset and seed."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from bench.sweep.layout import ResultsLayout


def load_curves(results: str | Path, suite: str | None = None) -> dict[str, dict[str, list[dict]]]:
    """{variant: {"<train dataset> seed <s> shots <k>": training rows by epoch}} from every run's metrics file."""
    layout = ResultsLayout(results)
    curves: dict[str, dict[str, list[dict]]] = defaultdict(dict)
    for path in layout.metric_files():
        # runs/<suite>/<method>-<hash>/<backbone>__<weights>/<dataset>__<subset>/shots<k>_seed<s>/metrics.jsonl
        parts = path.relative_to(layout.runs_dir).parts
        if len(parts) != 6 or (suite is not None and parts[0] != suite):
            continue
        rows = []
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill
            if "event" not in row and "loss" in row:
                rows.append(row)
        if rows:
            curves[f"{parts[1]} {parts[2]}"][f"{parts[3]} {parts[4]}"] = sorted(rows, key=lambda r: r["epoch"])
    return dict(curves)


def plot_curves(results: str | Path, out: Path, suite: str | None = None) -> list[Path]:
    """One PNG per variant under ``out/curves/``: loss (top) and lr (bottom) against the epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    written = []
    for variant, runs in sorted(load_curves(results, suite).items()):
        fig, (ax_loss, ax_lr) = plt.subplots(2, 1, sharex=True, figsize=(7, 6))
        for name, rows in sorted(runs.items()):
            epochs = [r["epoch"] for r in rows]
            ax_loss.plot(epochs, [r["loss"] for r in rows], marker=".", label=name)
            ax_lr.plot(epochs, [r["lr"] for r in rows], marker=".", label=name)
        ax_loss.set_ylabel("training loss (epoch mean)")
        ax_lr.set_ylabel("learning rate")
        ax_lr.set_yscale("log")  # Dassl's warm-up lr (1e-5) sits two decades below the base lr
        ax_lr.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_lr.set_xlabel("epoch")
        ax_loss.set_title(variant)
        ax_loss.legend(fontsize="small")
        fig.tight_layout()
        path = out / "curves" / f"{variant.replace(' ', '__')}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
