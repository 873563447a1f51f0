"""Records → the tables papers print: base-to-novel (Base/Novel/HM), cross-dataset, domain generalisation, few-shot.

Conventions (CoOp/CoCoOp/MaPLe/MMA, confirmed by MaPLe's maintainer): per dataset, Base and Novel are means over
seeds and HM = 2·B·N/(B+N) of those means; the Average row is HM of the averaged Base and Novel. The mean of the
per-dataset HMs is shown as its own, labelled row. A dataset with a planned run missing is listed and left out of
averages, never silently averaged over fewer seeds.
"""

from __future__ import annotations

import contextlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.errors import DataError
from bench.io import atomic_write_text
from bench.sweep.layout import ResultsLayout
from bench.sweep.record import KEY as RECORD_KEY
from bench.sweep.record import Record

KEY = list(RECORD_KEY)


def hm(base: float | pd.Series, novel: float | pd.Series) -> float | pd.Series:
    """Harmonic mean of base and novel accuracy."""
    return 2 * base * novel / (base + novel)


# ---------------------------------------------------------------------------------------------------------------------
# Loading


def load_records(
    results: str | Path, suite: str | None = None, unreadable: list[tuple[str, str]] | None = None
) -> pd.DataFrame:
    """All records under ``results/records`` as one row each (key columns + accuracy); records that do not load are
    skipped and, if ``unreadable`` is given, appended to it as (path, problem)."""
    df = pd.DataFrame(record_rows(results, unreadable), columns=[*KEY, "accuracy", "train_dataset", "variant"])
    if suite is not None:
        df = df[df["suite"] == suite]
    return label_methods(df)


INDEX_VERSION = 1


def record_rows(results: str | Path, unreadable: list[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """The report's row of every loadable record, read through an index of the rows already read.

    Why the index: parsing 25,000 records (up to 20 kB each: per-class accuracies, the config) takes seconds; a later
    report re-reads only the files whose size or mtime changed (records are replaced by rename, never edited in
    place). The index is an optimisation: a missing, foreign or unwritable one changes no row.
    """
    layout = ResultsLayout(results)
    try:
        index = json.loads(layout.records_index.read_bytes())
        old = index["rows"] if index.get("version") == INDEX_VERSION else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        old = {}
    rows, new = [], {}
    base = len(str(layout.records_dir)) + 1
    for path, size, mtime in layout.record_stats():
        hit = old.get(path[base:])
        if isinstance(hit, list) and hit[:2] == [size, mtime]:
            row = hit[2]
        else:
            try:
                row = _row(Record.read(path))
            except DataError as e:  # listed by build_report; one damaged file never hides the others
                if unreadable is not None:
                    unreadable.append((path, str(e)))
                continue
        new[path[base:]] = [size, mtime, row]
        rows.append(row)
    if new != old:
        with contextlib.suppress(OSError):  # a read-only results folder: no index, same rows
            atomic_write_text(layout.records_index, json.dumps({"version": INDEX_VERSION, "rows": new}))
    return rows


def _row(data: dict[str, Any]) -> dict[str, Any]:
    variant = " ".join(f"{k}={v}" for k, v in sorted((data.get("options") or {}).items()))
    return {**{k: data[k] for k in KEY}, "accuracy": data["accuracy"], "train_dataset": data.get("train_dataset"),
            "variant": variant}  # fmt: skip


def label_methods(df: pd.DataFrame) -> pd.DataFrame:
    """A display label per method variant: the method name, its ``--cfg-options`` in brackets when it had any, and a
    ``(random init)`` mark for ``--pretrained none`` runs. (Per-dataset defaults, e.g. ImageNet's epochs, change the
    config hash but not the label.)"""
    df = df.copy()
    if "variant" not in df:
        df["variant"] = ""
    variant = df["variant"].fillna("")
    df["label"] = df["method"] + np.where(variant != "", " [" + variant + "]", "")
    df.loc[df["pretrained"] == "none", "label"] += " (random init)"
    return df


def load_manifest(results: str | Path) -> pd.DataFrame:
    rows: list[dict] = []
    for path in ResultsLayout(results).plans():
        try:
            rows.extend(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return pd.DataFrame(rows, columns=KEY).drop_duplicates()


def missing_runs(records: pd.DataFrame, planned: pd.DataFrame) -> pd.DataFrame:
    """Planned evaluations that have no record."""
    if planned.empty:
        return planned
    merged = planned.merge(records[KEY].drop_duplicates(), on=KEY, how="left", indicator=True)
    return merged[merged["_merge"] == "left_only"].drop(columns="_merge")


# ---------------------------------------------------------------------------------------------------------------------
# Tables


def _incomplete(records: pd.DataFrame, missing: pd.DataFrame) -> set[tuple]:
    """(method, config_hash, protocol, dataset) groups with at least one missing planned evaluation."""
    if missing.empty:
        return set()
    return set(map(tuple, missing[["method", "config_hash", "protocol", "dataset"]].drop_duplicates().values))


def base2novel_table(records: pd.DataFrame, missing: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows (dataset, method) with Base, Novel, HM from seed means, ± seed std; Average rows first per method."""
    df = records[records["protocol"] == "base2novel"]
    if df.empty:
        return pd.DataFrame()
    bad = _incomplete(df, missing if missing is not None else pd.DataFrame())
    g = df.groupby(["label", "method", "config_hash", "backbone", "pretrained", "dataset", "subset"])["accuracy"]
    stats = g.agg(["mean", "std", "count"]).reset_index()
    wide = stats.pivot_table(
        index=["label", "method", "config_hash", "backbone", "pretrained", "dataset"], columns="subset",
        values=["mean", "std", "count"],
    )  # fmt: skip
    rows = []
    for idx, r in wide.iterrows():
        label, method, h, backbone, pretrained, dataset = idx
        b, n = r.get(("mean", "base"), np.nan), r.get(("mean", "novel"), np.nan)
        complete = not np.isnan(b) and not np.isnan(n) and (method, h, "base2novel", dataset) not in bad
        seeds = int(np.nan_to_num(min(r.get(("count", "base"), 0), r.get(("count", "novel"), 0))))  # a half missing: 0
        rows.append(
            {"dataset": dataset, "method": label, "backbone": f"{backbone}/{pretrained}", "Base": b, "Novel": n,
             "HM": hm(b, n), "Base std": r.get(("std", "base"), np.nan), "Novel std": r.get(("std", "novel"), np.nan),
             "seeds": seeds, "complete": complete}
        )  # fmt: skip
    per = pd.DataFrame(rows)
    out = []
    for (label, bb), grp in per.groupby(["method", "backbone"], sort=False):
        ok = grp[grp["complete"]]
        if len(ok):
            b, n = ok["Base"].mean(), ok["Novel"].mean()
            avg_name = "Average" if len(ok) == len(grp) else f"Average ({len(ok)} complete datasets)"
            out.append({"dataset": avg_name, "method": label, "backbone": bb, "Base": b, "Novel": n, "HM": hm(b, n),
                        "seeds": int(ok["seeds"].min()), "complete": len(ok) == len(grp)})  # fmt: skip
            out.append({"dataset": "Mean of per-dataset HM", "method": label, "backbone": bb, "HM": ok["HM"].mean(),
                        "seeds": int(ok["seeds"].min()), "complete": len(ok) == len(grp)})  # fmt: skip
    table = pd.concat([pd.DataFrame(out), per], ignore_index=True)
    order = {"Average": 0, "Mean of per-dataset HM": 1}
    table["_o"] = table["dataset"].map(lambda d: order.get(d, 0 if d.startswith("Average") else 2))
    table = table.sort_values(["_o", "dataset", "method"], kind="stable").drop(columns="_o")
    return table.reset_index(drop=True)


def transfer_table(records: pd.DataFrame, protocol: str, missing: pd.DataFrame | None = None) -> pd.DataFrame:
    """Cross-dataset or DG: rows = method, columns = source, targets, Average (mean over complete targets)."""
    df = records[records["protocol"] == protocol]
    if df.empty:
        return pd.DataFrame()
    bad = _incomplete(df, missing if missing is not None else pd.DataFrame())
    source = df["train_dataset"].iloc[0]
    mean = df.groupby(["label", "method", "config_hash", "dataset"])["accuracy"].mean().reset_index()
    mean = mean[
        [(m, h, protocol, d) not in bad for m, h, d in zip(mean["method"], mean["config_hash"], mean["dataset"])]
    ]
    wide = mean.pivot_table(index="label", columns="dataset", values="accuracy")
    targets = [c for c in wide.columns if c != source]
    cols = ([source] if source in wide.columns else []) + targets
    wide = wide[cols]
    if targets:
        complete = wide[targets].notna().all(axis=1)
        wide["Average"] = wide[targets].mean(axis=1).where(complete)
    seeds = df.groupby("label")["seed"].nunique()
    wide["seeds"] = seeds.reindex(wide.index)
    return wide.rename_axis(f"method (source: {source})").reset_index()


def few_shot_table(records: pd.DataFrame) -> pd.DataFrame:
    df = records[records["protocol"] == "few_shot"]
    if df.empty:
        return pd.DataFrame()
    t = df.groupby(["dataset", "label", "shots"])["accuracy"].mean().unstack("shots")
    t.columns = [f"{k} shots" for k in t.columns]
    return t.reset_index().rename(columns={"label": "method"})


def published(protocol: str) -> pd.DataFrame:
    """The numbers papers print (shipped as ``bench/report/published.csv``)."""
    path = resources.files("bench.report") / "published.csv"
    if not path.is_file():
        return pd.DataFrame()
    df = pd.read_csv(str(path))
    return df[df["protocol"] == protocol]


def with_published(table: pd.DataFrame) -> pd.DataFrame:
    """Add the published Base/Novel/HM and our deltas beside a base-to-novel table."""
    pub = published("base2novel")
    if table.empty or pub.empty:
        return table
    pub = pub.pivot_table(index=["method", "dataset"], columns=["metric", "subset"], values="value")
    out = table.copy()
    # Only a like-for-like comparison gets the paper's numbers: CLIP ViT-B/16 weights, and the Average row only when
    # it covers all 11 datasets.
    n_datasets = out[~out["dataset"].str.startswith(("Average", "Mean of"))].groupby("method")["dataset"].nunique()
    comparable = (out["backbone"] == "ViT-B-16/openai") & (
        ~out["dataset"].str.startswith("Average")
        | (out["dataset"] == "Average") & (out["method"].map(n_datasets) == 11)
    )
    keys = [(m.split("@")[0].split(" ")[0], "average" if d.startswith("Average") else d)
            for m, d in zip(out["method"], out["dataset"])]  # fmt: skip
    for col, (metric, subset) in {
        "Base": ("accuracy", "base"),
        "Novel": ("accuracy", "novel"),
        "HM": ("hm", "all"),
    }.items():
        vals = [pub[(metric, subset)].get(k, np.nan) if (metric, subset) in pub else np.nan for k in keys]
        out[f"{col} (paper)"] = pd.Series(vals, index=out.index).where(comparable)
        out[f"Δ{col}"] = out[col] - out[f"{col} (paper)"]
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Rendering


def render(table: pd.DataFrame, fmt: str) -> str:
    """A table as ``markdown`` | ``latex`` | ``csv`` | ``table`` (plain text)."""
    t = table.drop(columns=[c for c in ("complete",) if c in table.columns])
    if fmt == "csv":
        return t.to_csv(index=False, float_format="%.4f")
    if fmt == "latex":
        return t.to_latex(index=False, float_format="%.2f", na_rep="--")
    t = t.astype(object).where(t.notna(), None)  # tabulate leaves None cells blank, not "nan"
    if fmt == "markdown":
        return t.to_markdown(index=False, floatfmt=".2f", missingval="")
    return t.to_markdown(index=False, floatfmt=".2f", tablefmt="simple", missingval="")


def build_report(results: str | Path, suite: str | None = None, paper: bool = False) -> dict[str, pd.DataFrame]:
    """All tables of the results folder, plus the list of missing runs."""
    unreadable: list[tuple[str, str]] = []
    records = load_records(results, suite, unreadable)
    planned = load_manifest(results)
    if suite is not None and not planned.empty:
        planned = planned[planned["suite"] == suite]
    missing = missing_runs(records, planned)
    b2n = base2novel_table(records, missing)
    tables = {
        "base2novel": with_published(b2n) if paper else b2n,
        "cross_dataset": transfer_table(records, "cross_dataset", missing),
        "domain_generalization": transfer_table(records, "domain_generalization", missing),
        "few_shot": few_shot_table(records),
        "missing": missing,
        "unreadable": pd.DataFrame(unreadable, columns=["record", "problem"]),
    }
    return {k: v for k, v in tables.items() if not v.empty}


def write_report(tables: dict[str, pd.DataFrame], out: Path) -> list[Path]:
    """Write every table in Markdown, LaTeX and CSV, and a base-to-novel HM plot, under ``out``."""
    written = []
    for name, table in tables.items():
        for fmt, ext in (("markdown", "md"), ("latex", "tex"), ("csv", "csv")):
            path = out / f"{name}.{ext}"
            atomic_write_text(path, render(table, fmt))
            written.append(path)
    if "base2novel" in tables:
        written.append(plot_base2novel(tables["base2novel"], out / "base2novel_hm.png"))
    return written


def plot_base2novel(table: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per = table[~table["dataset"].str.startswith(("Average", "Mean of"))]
    wide = per.pivot_table(index="dataset", columns="method", values="HM")
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(wide)), 4))
    wide.plot.bar(ax=ax)
    ax.set_ylabel("HM of base and novel accuracy (%)")
    ax.set_title("Base-to-novel generalisation")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
