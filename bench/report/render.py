"""Tables as text: the terminal, Markdown (tabulate), LaTeX (booktabs, via pandas' Styler) and tidy CSV.

Two layouts of the same cells: ``paper`` (RMAdapter's: datasets as rows and Base/Novel/HM per method for
base-to-novel, methods as rows and targets as columns for cross-dataset/DG, shots as columns for few-shot) and
``long`` (one row per dataset and method, a column per metric). Every cell reads ``mean ± std`` (or ``± 95 % CI``
half-width); footnote marks follow the value and the notes follow the table.
"""

from __future__ import annotations

import math

import pandas as pd

from bench.report.tables import DATASET_NAMES, METRICS, Table, ci95, label_order

SUPERSCRIPT = str.maketrans("0123456789,", "⁰¹²³⁴⁵⁶⁷⁸⁹,")
LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                 "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "·": r"$\cdot$",
                 "Δ": r"$\Delta$", "−": r"$-$", "≥": r"$\geq$", "√": r"$\surd$"}  # fmt: skip


def latex_escape(text: str) -> str:
    """``text`` safe in LaTeX (``toy_colors`` → ``toy\\_colors``; ± and Δ as math)."""
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _notes(table: Table, interval: str) -> list[tuple[str, str]]:
    """The table's notes after the line that says what ± is."""
    if interval == "ci":
        legend = "± = half-width of the 95 % t-interval over seeds, t(0.975, n−1)·std/√n"
    else:
        hm_rule = "HM: of the per-seed HM; " if "HM" in set(table.cells["metric"]) else ""
        legend = f"± = standard deviation over seeds of the per-seed value ({hm_rule}Average: of the per-seed average)"
    return [("", legend), *table.notes]


def _cell(row: pd.Series, interval: str, latex: bool) -> str:
    if pd.isna(row["mean"]):
        return ""
    if row["label"].startswith("Δ "):
        text = f"{row['mean']:+.2f}"
    else:
        text = f"{row['mean']:.2f}"
        err = row["ci95"] if interval == "ci" else row["std"]
        if row["n"] > 1 and not math.isnan(err):
            text += (r" $\pm$ " if latex else " ± ") + f"{err:.2f}"
    if row["marks"]:
        text += rf"\textsuperscript{{{row['marks']}}}" if latex else row["marks"].translate(SUPERSCRIPT)
    return text


def arrange(table: Table, layout: str = "paper", interval: str = "std", latex: bool = False) -> pd.DataFrame:
    """The table's cells as a frame of strings in the ``paper`` or ``long`` layout (rows and columns in the papers'
    order; datasets under their papers' names)."""
    cells = table.cells.assign(ci95=ci95(table.cells["std"], table.cells["n"]))
    cells["text"] = cells.apply(_cell, axis=1, interval=interval, latex=latex)
    rows, columns = table.rows, table.columns
    if layout == "long":
        rows, columns = [*rows, *[c for c in columns if c != "metric"]], ["metric"]
    orders = {"dataset": list(dict.fromkeys(cells["dataset"])), "label": label_order(cells), "metric": METRICS,
              "shots": sorted(cells["shots"].unique())}  # fmt: skip
    for name in (*rows, *columns):
        cells[name] = pd.Categorical(cells[name], categories=orders[name], ordered=True)
    frame = cells.pivot_table(index=rows, columns=columns, values="text", aggfunc="first", observed=True)
    frame = frame.fillna("").rename(index=DATASET_NAMES, columns=DATASET_NAMES)
    if "shots" in columns:
        frame = frame.rename(columns=lambda k: f"{k} shot{'s' if k != 1 else ''}" if isinstance(k, int) else k)
    frame.columns.names = [None] * frame.columns.nlevels
    return frame.rename_axis(index=[{"label": "method"}.get(r, r) for r in rows])


def render(
    table: Table | pd.DataFrame, fmt: str, layout: str = "paper", interval: str = "std", caption: bool = True
) -> str:
    """A table as ``table`` (plain text) | ``markdown`` | ``latex`` | ``csv``; the notes follow it (CSV: a column)."""
    if isinstance(table, pd.DataFrame):  # plain lists (missing runs, unreadable records)
        return _plain(table, fmt)
    if fmt == "csv":
        return tidy(table).to_csv(index=False, float_format="%.4f")
    if fmt == "latex":
        return to_latex(table, layout, interval)
    frame = arrange(table, layout, interval)
    frame.columns = [" ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in frame.columns]
    text = frame.reset_index().to_markdown(index=False, tablefmt="pipe" if fmt == "markdown" else "simple")
    notes = [f"{mark.translate(SUPERSCRIPT)} {text}" if mark else text for mark, text in _notes(table, interval)]
    head = f"{table.title}\n\n" if caption else ""
    return head + text + "".join(f"\n{'' if fmt != 'markdown' else chr(10)}{n}" for n in notes)


def tidy(table: Table) -> pd.DataFrame:
    """One row per cell: the numbers (mean, std, n, 95 % CI half-width) and the text of its footnotes."""
    cells = table.cells.assign(ci95=ci95(table.cells["std"], table.cells["n"]))
    notes = dict(table.notes)
    cells["notes"] = cells["marks"].map(lambda m: "; ".join(notes[k] for k in m.split(",")) if m else "")
    return cells.drop(columns=["marks"])


def to_latex(table: Table, layout: str = "paper", interval: str = "std") -> str:
    """A ``table`` environment with booktabs rules (needs ``\\usepackage{booktabs}``), the title as caption, names
    escaped, and the notes under the tabular."""
    frame = arrange(table, layout, interval, latex=True)
    styler = frame.style.format_index(escape="latex", axis=0).format_index(escape="latex", axis=1)
    body = styler.to_latex(
        hrules=True, caption=latex_escape(table.title), label=f"tab:{table.name}", position_float="centering",
        multicol_align="c", multirow_align="naive", environment="table",
        column_format="l" * frame.index.nlevels + "r" * len(frame.columns),
    )  # fmt: skip
    body = body.replace("Δ", r"$\Delta$")
    notes = [
        rf"\textsuperscript{{{mark}}} " * bool(mark) + latex_escape(text) for mark, text in _notes(table, interval)
    ]
    body = body.replace("\\end{table}", "\\par\\footnotesize\n" + " \\\\\n".join(notes) + "\n\\end{table}")
    return "% requires \\usepackage{booktabs}\n" + body


def _plain(df: pd.DataFrame, fmt: str) -> str:
    if fmt == "csv":
        return df.to_csv(index=False, float_format="%.4f")
    if fmt == "latex":
        return df.style.format(escape="latex").format_index(escape="latex", axis=1).hide(axis="index").to_latex(
            hrules=True)  # fmt: skip
    df = df.astype(object).where(df.notna(), None)
    return df.to_markdown(
        index=False, tablefmt="pipe" if fmt == "markdown" else "simple", missingval="", floatfmt=".2f"
    )
