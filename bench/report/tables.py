"""Records → the tables papers print: base-to-novel (Base/Novel/HM), cross-dataset, domain generalisation, few-shot;
one table per registered protocol, laid out and titled as its :class:`~bench.sweep.protocols.Protocol` declares.

Every table is built from one long frame of *cells* (one row per label × dataset × metric [× shots]) with the mean,
the standard deviation over seeds and the number of seeds; the renderers lay the same cells out as the papers do
(wide) or one row per dataset and method (long).

Conventions (CoOp/CoCoOp/MaPLe/MMA, confirmed by MaPLe's maintainer):

- per dataset, Base and Novel are means over seeds and HM = 2·B·N/(B+N) of those means;
- the Average row is HM of the averaged Base and Novel; the mean of the per-dataset HMs is its own, labelled row;
- cross-dataset / DG: the Average is the mean over the targets (the source is shown, not averaged);
- ± is the sample standard deviation (ddof 1) over seeds of the per-seed value: for HM the per-seed HM, for an
  Average the per-seed average over the same datasets (seeds that all of them have), for its HM the HM of the
  per-seed averages. The optional 95 % interval is Student's t half-width, t(0.975, n−1)·std/√n.

An Average covers the datasets whose planned runs are all there; one over fewer datasets than its suite defines, or
with a dataset left out for missing runs, carries a footnote saying which it covers.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

import bench
from bench.config import NON_RESULT_KEYS, flatten
from bench.errors import BenchError, DataError
from bench.io import atomic_write_text
from bench.registry import get_method
from bench.report.failures import load_failures, not_failed
from bench.sweep.layout import ResultsLayout
from bench.sweep.plan import resolve_config
from bench.sweep.protocols import Protocol, get_protocol, protocol_names, transfer_protocols
from bench.sweep.record import KEY as RECORD_KEY
from bench.sweep.record import Record
from bench.sweep.suites import get_suite

KEY = list(RECORD_KEY)
AVERAGE, MEAN_HM = "Average", "Mean of per-dataset HM"

# The papers' names (RMAdapter Table 1–3); datasets of other suites keep their ids.
DATASET_NAMES = {
    "imagenet": "ImageNet", "caltech101": "Caltech101", "oxford_pets": "OxfordPets", "stanford_cars": "StanfordCars",
    "oxford_flowers": "Flowers102", "food101": "Food101", "fgvc_aircraft": "FGVCAircraft", "sun397": "SUN397",
    "dtd": "DTD", "eurosat": "EuroSAT", "ucf101": "UCF101", "imagenetv2": "ImageNet-V2",
    "imagenet_sketch": "ImageNet-Sketch", "imagenet_a": "ImageNet-A", "imagenet_r": "ImageNet-R",
}  # fmt: skip


def hm(base: Any, novel: Any) -> Any:
    """Harmonic mean of base and novel accuracy (floats, arrays or Series)."""
    return 2 * base * novel / (base + novel)


def ci95(std: Any, n: Any) -> Any:
    """Half-width of Student's t 95 % interval of a mean of ``n`` seeds (NaN below two seeds)."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 1, stats.t.ppf(0.975, np.maximum(n - 1, 1)) * np.asarray(std) / np.sqrt(n), np.nan)


# ---------------------------------------------------------------------------------------------------------------------
# Loading and labelling


def load_records(
    results: str | Path, suite: str | None = None, unreadable: list[tuple[str, str]] | None = None
) -> pd.DataFrame:
    """All records under ``results/records`` as one row each (key columns, accuracy, label); records that do not
    load are skipped and, if ``unreadable`` is given, appended to it as (path, problem)."""
    df = pd.DataFrame(
        record_rows(results, unreadable), columns=[*KEY, "accuracy", "train_dataset", "variant", "run_note"]
    )
    if suite is not None:
        df = df[df["suite"] == suite]
    return label_methods(df)


# the rows hold labels worked out from the code's defaults: a new adaptbench version re-reads every record
INDEX_VERSION = f"2-{bench.__version__}"


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
    r = Record.from_dict(data)
    return {**r.key(), "accuracy": r.accuracy, "train_dataset": r.train_dataset, "variant": variant(r),
            "run_note": run_note(r)}  # fmt: skip


def run_note(record: Record) -> str:
    """Where a real-benchmark run departs from the official code's settings (``Record.departures``; worked out from
    the stored config for records older than the field), as one footnote text; "" when it does not, and on generated
    suites, whose numbers are never set beside a paper's."""
    if record.suite != "real":
        return ""
    departures = record.departures
    if departures is None and record.config:
        try:
            device = "cuda" if record.peak_memory_mb is not None else "cpu"  # peak memory is recorded on GPUs only
            departures = get_method(record.method).departures(record.config, device)
        except (BenchError, KeyError):  # a plugin method that is not loaded, a config from another version
            departures = []
    return "; ".join(f"{record.method}: {d}" for d in departures or [])


_NONE = object()  # a key the defaults do not have (an option of a newer or plugin config)


@cache
def _default_config(method: str, protocol: str, dataset: str, suite: str) -> dict[str, Any] | None:
    """The flattened config a run gets with no ``--cfg-options`` (as JSON would store it); None if the method or
    suite is not registered here (a plugin that is not loaded)."""
    try:
        cfg = resolve_config(method, protocol, dataset, get_suite(suite), {})
    except BenchError:
        return None
    return flatten(json.loads(json.dumps(cfg)))


def variant(record: Record) -> str:
    """The record's resolved options that differ from its method's defaults (``train.lr=0.01``), so a variant is
    named the same however it was typed: an option set to its default names nothing. Records from an unregistered
    method, or without a stored config, fall back to the options as typed."""
    default = _default_config(record.method, record.protocol, record.train_dataset, record.suite)
    if default is None or not record.config:
        options = record.options or {}
    else:
        skip = {".".join(k) for k in NON_RESULT_KEYS}
        options = {k: v for k, v in flatten(record.config).items() if k not in skip and default.get(k, _NONE) != v}
    return " ".join(f"{k}={v}" for k, v in sorted(options.items()))


def label_methods(df: pd.DataFrame) -> pd.DataFrame:
    """A display label per method variant: the method name, its non-default options in brackets, ``(random init)``
    for ``--pretrained none`` runs, and ``@<config hash>`` where one label would otherwise hold two configs for the
    same evaluation (e.g. records from before a default changed)."""
    df = df.copy()
    if "variant" not in df:
        df["variant"] = ""
    v = df["variant"].fillna("")
    df["label"] = df["method"] + np.where(v != "", " [" + v + "]", "")
    df.loc[df["pretrained"] == "none", "label"] += " (random init)"
    same = [k for k in KEY if k != "config_hash"] + ["label"]
    clash = df.groupby(same, dropna=False)["config_hash"].transform("nunique") > 1
    clashing = df.loc[clash, "label"].unique()
    df.loc[df["label"].isin(clashing), "label"] += "@" + df["config_hash"]
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
# Orders


def dataset_order(suite: str, protocol: str) -> list[str]:
    """The suite's declared order (the papers' for the real suite): the source first for transfer protocols."""
    try:
        s = get_suite(suite)
    except BenchError:
        return []
    return list(get_protocol(protocol).datasets(s))


@cache
def method_order() -> list[str]:
    """RMAdapter's row order (the order of ``published.csv``); other methods follow alphabetically."""
    return list(dict.fromkeys(_published_csv()["method"]))


def _sort_key(values: pd.Series, order: list[str]) -> pd.Series:
    rank = {v: i for i, v in enumerate(order)}
    return values.map(lambda v: (rank.get(v, len(order)), str(v)))


# ---------------------------------------------------------------------------------------------------------------------
# Cells


@dataclass
class Table:
    """One table: its cells (long, numeric), how the paper lays them out (``rows`` × ``columns`` of cell fields), a
    title and footnotes. :meth:`add_note` is the one way to footnote cells (a mark beside each chosen cell, the text
    under the table)."""

    name: str
    title: str
    cells: pd.DataFrame
    rows: list[str]
    columns: list[str]
    notes: list[tuple[str, str]] = field(default_factory=list)  # (mark, text); mark "" for the whole table

    def add_note(self, text: str, where: pd.Series | None = None) -> str:
        """Add a footnote; cells where the boolean Series ``where`` (aligned with ``cells``) is True get its number.
        Returns the mark. Without ``where`` (or where it selects nothing) the note is about the whole table."""
        if where is None or not where.any():
            self.notes.append(("", text))
            return ""
        mark = str(1 + sum(bool(m) for m, _ in self.notes))
        self.notes.append((mark, text))
        self.cells.loc[where, "marks"] = self.cells.loc[where, "marks"].map(lambda m: f"{m},{mark}" if m else mark)
        return mark

    @property
    def suite(self) -> str:
        return str(self.cells["suite"].iloc[0])

    @property
    def protocol(self) -> Protocol:
        return get_protocol(str(self.cells["protocol"].iloc[0]))


CELL_COLUMNS = ["suite", "protocol", "backbone", "label", "method", "dataset", "shots", "metric", "mean", "std", "n"]
# build_table adds ``marks`` (footnote numbers, "1,3") and ``complete`` (False: an Average over fewer datasets than the
# suite's, or a dataset with planned runs missing; never set beside a paper's number)


def per_seed(records: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """One value per label × dataset × shots × seed × metric (B2N: Base, Novel and the per-seed HM; else Acc)."""
    df = records[records["protocol"] == protocol].copy()
    df["backbone"] = df["backbone"] + "/" + df["pretrained"]
    keys = ["suite", "protocol", "backbone", "label", "method", "dataset", "shots", "seed"]
    if not get_protocol(protocol).base_novel:
        return df.assign(metric="Acc", value=df["accuracy"])[[*keys, "metric", "value"]]
    wide = df.pivot_table(index=keys, columns="subset", values="accuracy").reindex(columns=["base", "novel"])
    wide = wide.rename(columns={"base": "Base", "novel": "Novel"})
    wide["HM"] = hm(wide["Base"], wide["Novel"])
    return wide.reset_index().melt(id_vars=keys, value_vars=["Base", "Novel", "HM"], var_name="metric")


def _cells(seeds: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and seed count per cell; B2N's HM cell is the HM of the Base and Novel means (the convention)."""
    keys = [c for c in CELL_COLUMNS if c not in ("mean", "std", "n")]
    out = seeds.dropna(subset="value").groupby(keys)["value"].agg(mean="mean", std="std", n="count").reset_index()
    if "HM" in set(out["metric"]):
        means = out.pivot_table(index=keys[:-1], columns="metric", values="mean").reindex(columns=["Base", "Novel"])
        is_hm = out["metric"] == "HM"
        idx = pd.MultiIndex.from_frame(out.loc[is_hm, keys[:-1]])
        out.loc[is_hm, "mean"] = hm(means["Base"], means["Novel"]).reindex(idx).to_numpy()
    return out


def _averages(seeds: pd.DataFrame, cells: pd.DataFrame, included: dict[tuple, list[str]]) -> pd.DataFrame:
    """Average (and, for B2N, Mean of per-dataset HM) cells per label × shots over the ``included`` datasets."""
    rows = []
    group = ["suite", "protocol", "backbone", "label", "method", "shots"]
    for key, g in seeds.groupby(group):
        datasets = included.get(key[:4], [])
        g = g[g["dataset"].isin(datasets)]
        if g.empty:
            continue
        # the per-seed average uses the seeds every included dataset has, so each seed averages the same datasets
        have = g.dropna(subset="value").groupby(["seed", "metric"])["dataset"].nunique()
        common = have[have == len(datasets)].reset_index()
        by_seed = g.merge(common[["seed", "metric"]]).groupby(["metric", "seed"])["value"].mean().unstack("metric")
        by_seed = by_seed.reindex(columns=METRICS)  # no common seed: no std (n = 0)
        mine = (cells[group] == pd.Series(key, index=group)).all(axis=1) & cells["dataset"].isin(datasets)
        mean = cells[mine].groupby("metric")["mean"].mean()
        base = dict(zip(group, key, strict=True))
        if "HM" in mean:
            avg_b, avg_n = mean["Base"], mean["Novel"]
            seed_hm = hm(by_seed["Base"], by_seed["Novel"])
            rows.append({**base, "dataset": AVERAGE, "metric": "Base", "mean": avg_b, "std": by_seed["Base"].std(),
                         "n": by_seed["Base"].count()})  # fmt: skip
            rows.append({**base, "dataset": AVERAGE, "metric": "Novel", "mean": avg_n,
                         "std": by_seed["Novel"].std(), "n": by_seed["Novel"].count()})  # fmt: skip
            rows.append({**base, "dataset": AVERAGE, "metric": "HM", "mean": hm(avg_b, avg_n), "std": seed_hm.std(),
                         "n": seed_hm.count()})  # fmt: skip
            rows.append({**base, "dataset": MEAN_HM, "metric": "HM", "mean": mean["HM"], "std": by_seed["HM"].std(),
                         "n": by_seed["HM"].count()})  # fmt: skip
        else:
            rows.append({**base, "dataset": AVERAGE, "metric": "Acc", "mean": mean["Acc"],
                         "std": by_seed["Acc"].std(), "n": by_seed["Acc"].count()})  # fmt: skip
    return pd.DataFrame(rows, columns=CELL_COLUMNS)


def build_table(records: pd.DataFrame, protocol: str, missing: pd.DataFrame | None = None) -> Table | None:
    """The table of one protocol and suite (``records`` of one suite); None when it has no records."""
    df = records[records["protocol"] == protocol]
    if df.empty:
        return None
    suite = str(df["suite"].iloc[0])
    the_protocol = get_protocol(protocol)
    df = _distinct(df, the_protocol)
    seeds = per_seed(df, protocol)
    cells = _cells(seeds)
    order = dataset_order(suite, protocol)
    source = [df["train_dataset"].iloc[0]] if the_protocol.transfer else []
    expected = [d for d in order if d not in source] or sorted(set(df["dataset"]) - set(source))
    incomplete = _incomplete(df, missing)
    # per label: the datasets an Average may use (every expected dataset with all its runs) and a note when it falls
    # short of the suite's list
    included: dict[tuple, list[str]] = {}
    notes: dict[str, list[tuple]] = {}
    for key, g in cells.groupby(["suite", "protocol", "backbone", "label"]):
        have = set(g.loc[g["mean"].notna(), "dataset"])
        if the_protocol.base_novel:
            both = g[g["metric"] == "HM"]
            have = set(both.loc[both["mean"].notna(), "dataset"])
        ok = [d for d in expected if d in have and (key[3], d) not in incomplete]
        included[key] = ok
        if len(ok) < len(expected):
            left_out = ", ".join(d for d in expected if d not in ok)
            text = f"Average over {len(ok)} of {len(expected)} datasets (without {left_out})"
            notes.setdefault(text, []).append(key)
    averages = _averages(seeds, cells, included)
    cells = pd.concat([averages, cells], ignore_index=True)
    cells["n"] = cells["n"].astype(int)
    cells["marks"] = ""
    # like for like with a paper's cell: every planned run there, and an Average over every dataset of the suite
    short = {k[3] for keys in notes.values() for k in keys}
    partial = cells["dataset"].isin([AVERAGE, MEAN_HM]) & cells["label"].isin(short)
    cells["complete"] = ~partial & ~pd.Series(list(zip(cells["label"], cells["dataset"], strict=True))).isin(incomplete)
    cells = _sorted(cells, [AVERAGE, MEAN_HM, *order] if the_protocol.base_novel else [*order, AVERAGE])
    backbones = ", ".join(sorted(cells["backbone"].unique()))
    seed_list = ",".join(map(str, sorted(df["seed"].unique())))
    title = f"{the_protocol.title} · {suite} suite · {backbones} · seeds {seed_list}"
    layout = the_protocol.layout
    table = Table(protocol, title, cells, list(layout.rows), list(layout.columns))
    for text, keys in notes.items():
        labels = {k[3] for k in keys}
        table.add_note(f"{', '.join(sorted(labels))}: {text}", (cells["dataset"].isin([AVERAGE, MEAN_HM])
                                                                 & cells["label"].isin(labels)))  # fmt: skip
    for label, seeds_of in df.groupby("label")["seed"].unique().items():
        if len(seeds_of) < df["seed"].nunique():
            table.add_note(f"{label}: seeds {','.join(map(str, sorted(seeds_of)))} only")
    for label, dataset in sorted(incomplete):
        where = (cells["label"] == label) & (cells["dataset"] == dataset)
        table.add_note(f"{label} on {dataset}: planned runs missing (left out of the Average)", where)
    if "run_note" in df:
        note_runs(table, df)
    return table


def note_runs(table: Table, records: pd.DataFrame) -> None:
    """One footnote per distinct ``run_note`` text of the records (e.g. a departure from the official settings):
    marked on the cells of the runs that carry it and on their label's Averages. ``records`` are the table's own
    (after its labels are final)."""
    runs = records[records["run_note"].fillna("") != ""]
    cells = table.cells
    for text, g in runs.groupby("run_note"):
        pairs = set(zip(g["label"], g["dataset"], strict=True))
        own = pd.Series([p in pairs for p in zip(cells["label"], cells["dataset"], strict=True)], index=cells.index)
        averages = cells["label"].isin(g["label"]) & cells["dataset"].isin([AVERAGE, MEAN_HM])
        table.add_note(str(text), own | averages)


def _distinct(df: pd.DataFrame, protocol: Protocol) -> pd.DataFrame:
    """Labels that keep apart what the layout would merge: the backbone when a table has several, the shots when a
    protocol whose table has no shots axis was run at several."""
    df = df.copy()
    backbone = df["backbone"] + "/" + df["pretrained"]
    if backbone.nunique() > 1:
        df["label"] += " · " + backbone
    if not protocol.layout.by_shots and df["shots"].nunique() > 1:
        df["label"] += " · " + df["shots"].astype(str) + " shots"
    return df


def label_order(cells: pd.DataFrame) -> list[str]:
    """Labels in the papers' method order; each method's variants, then its published row, then its delta."""
    labels = cells[["label", "method"]].drop_duplicates()
    kind = labels["label"].map(lambda lab: 1 if lab.endswith(" (paper)") else 2 if lab.startswith("Δ ") else 0)
    rank = _sort_key(labels["method"], method_order())
    return labels.assign(r=rank, k=kind).sort_values(["r", "k", "label"])["label"].tolist()


METRICS = ["Base", "Novel", "HM", "Acc"]


def _sorted(cells: pd.DataFrame, datasets: list[str]) -> pd.DataFrame:
    """Cells by dataset (in ``datasets`` order), label, shots and metric."""
    by_label = {lab: i for i, lab in enumerate(label_order(cells))}
    key = pd.DataFrame({
        "d": _sort_key(cells["dataset"], datasets), "l": cells["label"].map(by_label),
        "s": cells["shots"], "m": cells["metric"].map(METRICS.index),
    })  # fmt: skip
    return cells.loc[key.sort_values(["d", "l", "s", "m"]).index].reset_index(drop=True)


def _incomplete(records: pd.DataFrame, missing: pd.DataFrame | None) -> set[tuple[str, str]]:
    """(label, dataset) pairs with at least one planned evaluation missing (matched by method and config hash)."""
    if missing is None or missing.empty:
        return set()
    labels = records[["method", "config_hash", "label"]].drop_duplicates()
    m = missing.merge(labels, on=["method", "config_hash"])
    return set(zip(m["label"], m["dataset"], strict=True))


# ---------------------------------------------------------------------------------------------------------------------
# Published numbers


@cache
def _published_csv() -> pd.DataFrame:
    return pd.read_csv(str(resources.files("bench.report") / "published.csv"))


def published(protocol: str) -> pd.DataFrame:
    """The numbers papers print (``bench/report/published.csv``, each row with its source)."""
    df = _published_csv()
    return df[df["protocol"] == protocol]


PAPER_BACKBONE = "ViT-B-16/openai"


def add_published(table: Table) -> Table:
    """Add each method's published cells (label ``<method> (paper)``) and ours minus theirs (``Δ <method>``) for the
    default-config label of each method. Only like for like: the real suite on CLIP ViT-B/16, 16 shots; an Average
    only when ours covers every dataset the paper averages."""
    pub = published(table.name)
    cells = table.cells
    if pub.empty:
        table.add_note(f"no published {table.name} numbers ship in published.csv")
        return table
    if table.suite != "real":
        table.add_note(f"no published numbers shown: they are for the real suite on {PAPER_BACKBONE}, 16 shots")
        return table
    ours = cells[(cells["backbone"] == PAPER_BACKBONE) & (cells["label"] == cells["method"]) & (cells["shots"] == 16)]
    pub = pub.assign(dataset=pub["dataset"].replace({"average": AVERAGE}),
                     metric=pub["metric"].map({"hm": "HM", "accuracy": "Acc"}))  # fmt: skip
    if table.protocol.base_novel:
        pub.loc[pub["metric"] == "Acc", "metric"] = pub["subset"].str.capitalize()
    pub = pub[pub["method"].isin(ours["method"]) & pub["dataset"].isin(cells["dataset"])]
    if pub.empty:
        return table
    paper = pub.assign(suite="real", protocol=table.name, backbone=PAPER_BACKBONE, label=pub["method"] + " (paper)",
                       shots=16, mean=pub["value"], std=np.nan, n=0, marks="", complete=True)  # fmt: skip
    delta = ours[ours["complete"]].merge(paper[["method", "dataset", "metric", "mean"]], on=["method", "dataset", "metric"],
                         suffixes=("", "_paper"))  # fmt: skip
    delta = delta.assign(label="Δ " + delta["method"], mean=delta["mean"] - delta["mean_paper"], std=np.nan, n=0)
    table.cells = pd.concat([cells, paper[cells.columns], delta[cells.columns]], ignore_index=True)
    table.cells = _sorted(table.cells, list(dict.fromkeys(cells["dataset"])))
    for row in paper[paper["note"].notna()].itertuples():  # the transcription's caveats (an inconsistent average)
        where = (table.cells["label"] == row.label) & (table.cells["dataset"] == row.dataset)
        table.add_note(
            f"{row.label}, {row.dataset} {row.metric}: {row.note}", where & (table.cells["metric"] == row.metric)
        )
    sources = "; ".join(sorted(pub["source"].unique()))
    table.add_note(
        f"(paper): as published in {sources}; Δ = ours − paper, where ours is like for like (the default "
        f"config on {PAPER_BACKBONE}, 16 shots; an Average over every dataset)"
    )
    return table


# ---------------------------------------------------------------------------------------------------------------------
# The report

# The plain lists a report may hold besides its tables, with their headings.
LISTS = {"missing": "Missing runs (left out of every average)",
         "failed": "Failed runs (left out of every average; `bench run` retries them)",
         "unreadable": "Unreadable records (skipped; `bench run` redoes them)",
         "unregistered": "Records of protocols not registered here (no table: pass the --plugin that registers them)"}  # fmt: skip


def build_report(
    results: str | Path,
    suite: str | None = None,
    paper: bool = False,
    methods: list[str] | None = None,
    protocols: list[str] | None = None,
    datasets: list[str] | None = None,
) -> dict[str, Table | pd.DataFrame]:
    """Every table of the results folder (one per suite × registered protocol; named ``<protocol>`` when one suite is
    there, else ``<suite>_<protocol>``), plus the lists of ``LISTS``: missing, failed and unreadable runs, and the
    records of protocols not registered. Filters keep the named methods
    (method or label), protocols and datasets (an Average then covers the kept datasets, and says so)."""
    unreadable: list[tuple[str, str]] = []
    records = load_records(results, suite, unreadable)
    planned = load_manifest(results)
    if suite is not None and not planned.empty:
        planned = planned[planned["suite"] == suite]
    missing = missing_runs(records, planned)
    failed, failed_keys = load_failures(results, suite)
    missing = not_failed(missing, failed_keys)  # failed runs are listed (with their reason) under "failed"
    records = filter_records(records, methods, protocols, datasets)
    missing = filter_records(missing, methods, protocols, datasets)
    out: dict[str, Table | pd.DataFrame] = {}
    suites = sorted(records["suite"].unique())
    registered = protocol_names()
    for s in suites:
        for protocol in registered:
            table = build_table(records[records["suite"] == s], protocol, missing)
            if table is not None:
                if len(suites) > 1:
                    table.name = f"{s}_{protocol}"
                out[table.name] = add_published(table) if paper else table
    if not failed.empty:
        out["failed"] = failed
    if not missing.empty:
        out["missing"] = missing
    if unreadable:
        out["unreadable"] = pd.DataFrame(unreadable, columns=["record", "problem"])
    unregistered = records[~records["protocol"].isin(registered)]
    if not unregistered.empty:
        out["unregistered"] = unregistered.groupby(["suite", "protocol"]).size().reset_index(name="records")
    return out


def filter_records(
    df: pd.DataFrame, methods: list[str] | None, protocols: list[str] | None, datasets: list[str] | None
) -> pd.DataFrame:
    """Rows whose method (or full label), protocol and dataset are among those named (None keeps all). For transfer
    protocols the source dataset is kept whenever a target is."""
    keep = pd.Series(True, index=df.index)
    if methods:
        keep &= df["method"].isin(methods) | df.get("label", df["method"]).isin(methods)
    if protocols:
        keep &= df["protocol"].isin(protocols)
    if datasets:
        source = df["protocol"].isin(transfer_protocols()) & (df["dataset"] == df.get(
            "train_dataset", df["dataset"]))  # fmt: skip
        keep &= df["dataset"].isin(datasets) | source
    return df[keep]
