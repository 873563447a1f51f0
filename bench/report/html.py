"""``bench report --html DIR``: the whole report as one static page, ``DIR/index.html``.

Why one file: it is mailed, attached to an issue or opened from a cluster's disk, so it must work without a server or
network. Figures are embedded as base64 PNGs, the CSS is inline, and there is no script. Every name that comes from the
records (labels, options, datasets, class names, errors) is HTML-escaped.
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import DataError
from bench.io import atomic_write_text
from bench.report.compare import Comparison
from bench.report.render import _notes, arrange
from bench.report.tables import LISTS, Table, filter_records, label_methods
from bench.sweep.layout import ResultsLayout
from bench.sweep.record import Record

MAX_PER_CLASS = 2000  # records shown with per-class accuracy: beyond this the page gets too heavy to open

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1600px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; } tbody th { text-align: left; }
.notes { font-size: 0.85em; color: #444; } .notes p { margin: 0.2em 0; }
.verdict { font-weight: bold; } img { border: 1px solid #eee; }
table.list td, table.list th { text-align: left; white-space: normal; } img { max-width: min(100%, 1100px); }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
details { margin: 0.3em 0; } summary { cursor: pointer; }
"""


def write_html(
    tables: dict[str, Table | pd.DataFrame],
    comparisons: list[Comparison],
    results: Path,
    out: Path,
    suite: str | None = None,
    layout: str = "paper",
    interval: str = "std",
    filters: tuple[list[str] | None, list[str] | None, list[str] | None] = (None, None, None),
) -> Path:
    """Write ``out/index.html``: tables with their notes, figures, comparisons, run lists, configs, per-class
    accuracy. ``filters`` are the report's (methods, protocols, datasets), applied to configs and per-class too."""
    records = load_full_records(results, suite, *filters)
    parts = [f"<h1>adaptbench report: {escape(str(results))}</h1>"]
    results_tables = {n: t for n, t in tables.items() if isinstance(t, Table)}
    if not results_tables:
        parts.append("<p>No records match.</p>")
    for table in results_tables.values():
        parts.append(table_html(table, layout, interval))
    if comparisons:
        parts.append(_h2("comparisons", "Comparisons") + "".join(comparison_html(c) for c in comparisons))
    parts.append(figures_html(results_tables, results, suite))
    for name, title in LISTS.items():
        if name in tables and not isinstance(tables[name], Table):
            parts.append(_h2(name, f"{title}: {len(tables[name])}") + _frame_html(tables[name], lists=True))
    parts.append(configs_html(records))
    parts.append(per_class_html(records))
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<link rel="icon" href="data:,">\n'  # no favicon request from file://
        f"<title>adaptbench report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + _contents("\n".join(parts))
        + "\n</body>\n</html>\n"
    )
    path = out / "index.html"
    atomic_write_text(path, page)
    return path


def _h2(anchor: str, title: str) -> str:
    return f'<h2 id="{escape(anchor)}">{escape(title)}</h2>'


def _contents(body: str) -> str:
    """The body with a list of links to its sections after the heading: the page gets long with many tables."""
    links = "".join(f'<li><a href="#{a}">{t}</a></li>' for a, t in re.findall(r'<h2 id="([^"]*)">(.*?)</h2>', body))
    head, _, rest = body.partition("</h1>")
    return f"{head}</h1><nav><ul>{links}</ul></nav>{rest}" if links else body


def _frame_html(df: pd.DataFrame, index: bool = False, lists: bool = False) -> str:
    """A frame as an escaped HTML table (empty cells for missing values, two decimals; ``lists``: text left)."""
    html = df.to_html(index=index, escape=True, na_rep="", float_format=lambda x: f"{x:.2f}", border=0)
    return html.replace('class="dataframe"', 'class="dataframe list"', 1) if lists else html


def table_html(table: Table, layout: str, interval: str) -> str:
    """A results table in the report's layout, its title above and its notes (the ± legend first) below."""
    frame = arrange(table, layout, interval)
    notes = "".join(
        f"<p>{f'<sup>{escape(mark)}</sup> ' if mark else ''}{escape(text)}</p>"
        for mark, text in _notes(table, interval)
    )
    return _h2(table.name, table.title) + frame.to_html(escape=True, border=0) + f'<div class="notes">{notes}</div>'


def comparison_html(c: Comparison) -> str:
    """The verdict line and the per-dataset paired differences."""
    return f'<p class="verdict">{escape(c.verdict())}</p>' + _frame_html(c.per_dataset())


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def figures_html(tables: dict[str, Table], results: Path, suite: str | None) -> str:
    """Each table's figure and the training curves, drawn by the ``--out`` code into a temp folder, then inlined."""
    if not tables:
        return ""
    from bench.report.curves import plot_curves
    from bench.report.plots import plot  # matplotlib only when figures are asked for

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        figures = [_img(plot(t, folder), t.title) for t in tables.values()]
        curves = [_img(p, p.stem) for p in plot_curves(results, folder, suite)]
    html = _h2("figures", "Figures") + "".join(figures)
    if curves:
        html += _h2("curves", "Training curves") + "".join(curves)
    return html


def load_full_records(
    results: Path,
    suite: str | None,
    methods: list[str] | None = None,
    protocols: list[str] | None = None,
    datasets: list[str] | None = None,
) -> pd.DataFrame:
    """One row per loadable record with its report label, resolved config and per-class accuracy (the report's
    index keeps neither, so the records are read again; unreadable ones are already listed by the report)."""
    from bench.report.tables import variant

    rows: list[dict[str, Any]] = []
    for path in ResultsLayout(results).records():
        try:
            r = Record.from_dict(Record.read(path))
        except DataError:
            continue
        if suite is None or r.suite == suite:
            rows.append({**r.key(), "train_dataset": r.train_dataset, "variant": variant(r), "accuracy": r.accuracy,
                         "config": r.config, "per_class": r.per_class_accuracy})  # fmt: skip
    if not rows:
        return pd.DataFrame(columns=["label", "config", "per_class"])
    return filter_records(label_methods(pd.DataFrame(rows)), methods, protocols, datasets)


def configs_html(records: pd.DataFrame) -> str:
    """One resolved config per label (as JSON), from its first record: why one, a label is one method variant."""
    if records.empty:
        return ""
    blocks = []
    for label, group in records.groupby("label", sort=True):
        first = group.iloc[0]
        text = json.dumps(first["config"], indent=2, sort_keys=True, default=str)
        where = f"{first['protocol']} · {first['train_dataset']} · config {first['config_hash']}"
        blocks.append(
            f"<details><summary>{escape(str(label))} <small>({escape(where)})</small></summary>"
            f"<pre>{escape(text)}</pre></details>"
        )
    return _h2("configs", "Configs (resolved, one per method variant)") + "".join(blocks)


def per_class_html(records: pd.DataFrame) -> str:
    """Per-class accuracy, a collapsed block per record, sorted by label, protocol, dataset, seed."""
    if records.empty:
        return ""
    keys = ["label", "protocol", "dataset", "subset", "shots", "seed"]
    ordered = records.sort_values(keys)
    blocks = []
    for row in ordered.head(MAX_PER_CLASS).itertuples(index=False):
        classes = pd.DataFrame(sorted(row.per_class.items()), columns=["class", "accuracy (%)"])
        summary = (f"{row.label} · {row.protocol} · {row.dataset}/{row.subset} · {row.shots} shots · seed {row.seed}: "
                   f"{row.accuracy:.2f}")  # fmt: skip
        body = _frame_html(classes) if not classes.empty else "<p>no per-class accuracy stored</p>"
        blocks.append(f"<details><summary>{escape(summary)}</summary>{body}</details>")
    more = len(ordered) - MAX_PER_CLASS
    tail = f"<p>{more} more records not shown.</p>" if more > 0 else ""
    return _h2("per-class", "Per-class accuracy") + "".join(blocks) + tail
