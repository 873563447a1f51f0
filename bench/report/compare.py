"""``bench report --compare A B``: does A differ from B beyond seed noise?

The comparison is paired: one difference A − B per matched (dataset, seed, shots) — the same few-shot draw, so the
split's luck cancels — of the per-seed HM (base-to-novel) or accuracy (the targets of cross-dataset / DG; every
few-shot dataset and shot count). The verdict is the two-sided Wilcoxon signed-rank test (``scipy.stats.wilcoxon``;
exact for up to 50 pairs without ties) on those differences: "differs beyond seed noise" means p < 0.05, i.e. the
differences are unlikely to be centred on zero. It treats the pairs as exchangeable across datasets (a per-dataset
breakdown shows where the sign changes); with n pairs no p-value can fall below 2/2ⁿ, so five or fewer pairs can never
separate two methods, and the verdict says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from scipy import stats

from bench.errors import ConfigError
from bench.report.tables import dataset_order, per_seed
from bench.sweep.protocols import get_protocol

ALPHA = 0.05


@dataclass
class Comparison:
    """A − B on one protocol: the paired differences, per dataset and overall, and the test."""

    a: str
    b: str
    protocol: str
    metric: str
    pairs: pd.DataFrame  # dataset, shots, seed, a, b, diff
    p: float

    @property
    def mean(self) -> float:
        return float(self.pairs["diff"].mean())

    def per_dataset(self) -> pd.DataFrame:
        """Per dataset (and shots): both means over the matched seeds, the mean difference, its seed std, n."""
        keys = ["dataset", "shots"] if get_protocol(self.protocol).layout.by_shots else ["dataset"]
        g = self.pairs.groupby(keys, sort=False)
        out = g.agg(a=("a", "mean"), b=("b", "mean"), diff=("diff", "mean"), std=("diff", "std"), n=("diff", "count"))
        names = {"a": f"{self.a} (mean of seed {self.metric})", "b": f"{self.b} (mean of seed {self.metric})"}
        return out.reset_index().rename(columns={**names, "diff": "A − B", "std": "std of A − B"})

    def verdict(self) -> str:
        """One line: the mean difference, on how many datasets A is ahead, the test and what it means."""
        per = self.per_dataset()
        n = len(self.pairs)
        ahead = int((per["A − B"] > 0).sum())
        head = (f"{self.a} − {self.b} ({self.protocol} {self.metric}): {self.mean:+.2f} over {n} paired dataset×seed "
                f"runs; {self.a} ahead on {ahead}/{len(per)} datasets; Wilcoxon signed-rank p = {self.p:.3g}")  # fmt: skip
        if 2 / 2**n > ALPHA:
            return f"{head} → not distinguishable: {n} pairs can never reach p < {ALPHA} (run more seeds or datasets)"
        if self.p < ALPHA:
            return f"{head} < {ALPHA} → differs beyond seed noise"
        return f"{head} ≥ {ALPHA} → not distinguishable from seed noise"


def compare(records: pd.DataFrame, a: str, b: str) -> list[Comparison]:
    """A − B on every protocol where both have matching runs. ``a``/``b`` are labels as the tables print them (a
    method name is its default-config label)."""
    labels = set(records["label"])
    for name in (a, b):
        if name not in labels:
            raise ConfigError(f"--compare {name!r}: no such method label; labels: {', '.join(sorted(labels))}")
    out = []
    for protocol in records["protocol"].unique():
        seeds = per_seed(records[records["protocol"] == protocol], protocol)
        the_protocol = get_protocol(protocol)
        if the_protocol.transfer:
            sources = set(records.loc[records["protocol"] == protocol, "train_dataset"])
            seeds = seeds[~seeds["dataset"].isin(sources)]  # the targets, as the Average
        metric = "HM" if the_protocol.base_novel else "Acc"
        seeds = seeds[seeds["metric"] == metric].dropna(subset="value")
        key = ["backbone", "dataset", "shots", "seed"]
        pairs = seeds[seeds["label"] == a][[*key, "value"]].merge(
            seeds[seeds["label"] == b][[*key, "value"]], on=key, suffixes=("_a", "_b"))  # fmt: skip
        if pairs.empty:
            continue
        pairs = pairs.rename(columns={"value_a": "a", "value_b": "b"}).assign(diff=lambda d: d["a"] - d["b"])
        order = dataset_order(str(records["suite"].iloc[0]), protocol)
        pairs = pairs.sort_values(
            ["dataset", "shots", "seed"], key=lambda c: _rank(c, order) if c.name == "dataset" else c
        )
        out.append(Comparison(a, b, protocol, metric, pairs, paired_p(pairs["diff"])))
    if not out:
        raise ConfigError(f"--compare {a} {b}: no dataset × seed that both have; run them on the same seeds")
    return out


def _rank(datasets: pd.Series, order: list[str]) -> pd.Series:
    """Position in the suite's order (unknown datasets last, alphabetically)."""
    return datasets.map(lambda d: f"{order.index(d):04d}" if d in order else f"9999{d}")


def paired_p(diff: pd.Series) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (1 when every difference is zero)."""
    if not (diff != 0).any():
        return 1.0
    return float(stats.wilcoxon(diff).pvalue)
