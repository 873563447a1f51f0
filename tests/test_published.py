"""Sanity checks on bench/report/published.csv (RMAdapter AAAI 2026, Tables 1-3, transcribed as published)."""

from pathlib import Path

import pandas as pd
import pytest

CSV = Path(__file__).resolve().parents[1] / "bench" / "report" / "published.csv"
METHODS = {"zeroshot", "coop", "cocoop", "kgcoop", "maple", "tcp", "promptsrc", "mma", "coprompt", "rmadapter"}
B2N_DATASETS = {
    "average",
    "imagenet",
    "caltech101",
    "oxford_pets",
    "stanford_cars",
    "oxford_flowers",
    "food101",
    "fgvc_aircraft",
    "sun397",
    "dtd",
    "eurosat",
    "ucf101",
}


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return pd.read_csv(CSV)


@pytest.fixture(scope="module")
def b2n(df: pd.DataFrame) -> pd.DataFrame:
    return df[df.protocol == "base2novel"]


def cell(b2n: pd.DataFrame, method: str, dataset: str, subset: str, metric: str) -> float:
    sel = b2n[(b2n.method == method) & (b2n.dataset == dataset) & (b2n.subset == subset) & (b2n.metric == metric)]
    assert len(sel) == 1, (method, dataset, subset, metric)
    return float(sel.value.iloc[0])


def test_columns(df: pd.DataFrame) -> None:
    assert list(df.columns) == ["source", "method", "protocol", "dataset", "subset", "metric", "value", "note"]
    assert set(df.protocol) == {"base2novel", "cross_dataset", "domain_generalization"}
    assert not df.duplicated(["method", "protocol", "dataset", "subset", "metric"]).any()


def test_b2n_shape(b2n: pd.DataFrame) -> None:
    assert set(b2n.method) == METHODS
    assert set(b2n.dataset) == B2N_DATASETS
    combos = set(zip(b2n.subset, b2n.metric, strict=True))
    assert combos == {("base", "accuracy"), ("novel", "accuracy"), ("all", "hm")}
    assert len(b2n) == 10 * 12 * 3
    assert (b2n.groupby(["method", "dataset"]).size() == 3).all()


def test_rmadapter_average_base(b2n: pd.DataFrame) -> None:
    assert cell(b2n, "rmadapter", "average", "base", "accuracy") == pytest.approx(84.52)


@pytest.mark.parametrize("method", ["coprompt", "tcp", "mma"])
def test_average_hm_is_hm_of_averages(b2n: pd.DataFrame, method: str) -> None:
    base = cell(b2n, method, "average", "base", "accuracy")
    novel = cell(b2n, method, "average", "novel", "accuracy")
    hm = cell(b2n, method, "average", "all", "hm")
    assert hm == pytest.approx(2 * base * novel / (base + novel), abs=0.01)


def test_rmadapter_per_dataset_base_mean(b2n: pd.DataFrame) -> None:
    sel = b2n[(b2n.method == "rmadapter") & (b2n.dataset != "average") & (b2n.subset == "base")]
    assert len(sel) == 11
    assert sel.value.mean() == pytest.approx(84.52, abs=0.01)
