"""`bench report` on constructed records with known answers: the statistics, order, averages over fewer datasets,
variant labels, published numbers, LaTeX/CSV output, the paired comparison and the figures."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.report import compare as cmp
from bench.report import tables as report
from bench.report.render import render, tidy
from bench.sweep.record import Record

REAL_B2N = ["imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101", "fgvc_aircraft",
            "sun397", "dtd", "eurosat", "ucf101"]  # fmt: skip


def frame(rows: list[dict], suite: str = "real") -> pd.DataFrame:
    """Records as load_records returns them (defaults for the keys a test does not care about)."""
    keys = {"config_hash": "h", "suite": suite, "shots": 16, "backbone": "ViT-B-16", "pretrained": "openai",
            "protocol": "base2novel", "variant": ""}  # fmt: skip
    df = pd.DataFrame([{**keys, "train_dataset": r.get("train_dataset", r["dataset"]), **r} for r in rows])
    return report.label_methods(df)


def b2n(method: str, dataset: str, seeds: dict[int, tuple[float, float]]) -> list[dict]:
    return [{"method": method, "dataset": dataset, "subset": s, "seed": seed, "accuracy": acc}
            for seed, (b, n) in seeds.items() for s, acc in (("base", b), ("novel", n))]  # fmt: skip


def cell(table: report.Table, label: str, dataset: str, metric: str) -> pd.Series:
    c = table.cells
    (row,) = c[(c["label"] == label) & (c["dataset"] == dataset) & (c["metric"] == metric)].to_dict("records")
    return pd.Series(row)


# -- statistics -----------------------------------------------------------------------------------------------------


def test_b2n_means_hm_of_means_and_std_over_seeds_of_per_seed_values():
    rows = b2n("m", "dtd", {1: (80, 60), 2: (90, 70)}) + b2n("m", "eurosat", {1: (100, 40), 2: (100, 50)})
    t = report.build_table(frame(rows), "base2novel")
    assert cell(t, "m", "dtd", "Base")["mean"] == 85 and cell(t, "m", "dtd", "Base")["std"] == pytest.approx(
        math.sqrt(50))  # fmt: skip
    dtd_hm = cell(t, "m", "dtd", "HM")
    assert dtd_hm["mean"] == pytest.approx(report.hm(85, 65))  # HM of the seed means, not the mean of seed HMs
    seed_hms = pd.Series([report.hm(80, 60), report.hm(90, 70)])
    assert dtd_hm["std"] == pytest.approx(seed_hms.std()) and dtd_hm["n"] == 2
    avg = cell(t, "m", "Average", "HM")
    assert avg["mean"] == pytest.approx(report.hm(92.5, 55))  # HM of the averaged Base and Novel
    # std over seeds of the HM of each seed's averages: seed 1 (90, 50), seed 2 (95, 60)
    assert avg["std"] == pytest.approx(pd.Series([report.hm(90, 50), report.hm(95, 60)]).std())
    assert cell(t, "m", "Average", "Novel")["std"] == pytest.approx(pd.Series([50.0, 60.0]).std())
    mean_hm = cell(t, "m", "Mean of per-dataset HM", "HM")
    assert mean_hm["mean"] == pytest.approx((report.hm(85, 65) + report.hm(100, 45)) / 2)
    per_seed = [(report.hm(80, 60) + report.hm(100, 40)) / 2, (report.hm(90, 70) + report.hm(100, 50)) / 2]
    assert mean_hm["std"] == pytest.approx(pd.Series(per_seed).std())


def test_transfer_average_is_the_mean_of_the_targets_with_its_seed_std():
    rows = [{"method": "m", "protocol": "cross_dataset", "dataset": d, "subset": "all", "seed": s, "accuracy": a,
             "train_dataset": "imagenet"}
            for s, accs in ((1, (70, 40, 50)), (2, (72, 44, 58)))
            for d, a in zip(("imagenet", "dtd", "eurosat"), accs, strict=True)]  # fmt: skip
    t = report.build_table(frame(rows), "cross_dataset")
    assert cell(t, "m", "Average", "Acc")["mean"] == 48  # (42 + 54) / 2: the source is not a target
    assert cell(t, "m", "Average", "Acc")["std"] == pytest.approx(pd.Series([45.0, 51.0]).std())
    assert cell(t, "m", "imagenet", "Acc")["mean"] == 71


def test_the_95_percent_interval_is_students_t():
    assert float(report.ci95(1.0, 3)) == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert math.isnan(float(report.ci95(1.0, 1)))


# -- order, completeness, labels -----------------------------------------------------------------------------------


def test_datasets_come_in_the_papers_order_and_dg_targets_as_in_table_3():
    rows = [r for d in ("ucf101", "dtd", "imagenet", "caltech101") for r in b2n("coop", d, {1: (80, 70)})]
    t = report.build_table(frame(rows), "base2novel")
    shown = report_rows(render(t, "markdown"))
    assert shown == ["Average", "Mean of per-dataset HM", "ImageNet", "Caltech101", "DTD", "UCF101"]
    dg = [{"method": "coop", "protocol": "domain_generalization", "dataset": d, "subset": "all", "seed": 1,
           "accuracy": 50.0, "train_dataset": "imagenet"}
          for d in ("imagenet_r", "imagenet_a", "imagenetv2", "imagenet", "imagenet_sketch")]  # fmt: skip
    header = render(report.build_table(frame(dg), "domain_generalization"), "markdown").splitlines()[2]
    names = ["ImageNet", "ImageNet-V2", "ImageNet-Sketch", "ImageNet-A", "ImageNet-R", "Average"]
    assert [header.index(n + " ") for n in names] == sorted(header.index(n + " ") for n in names)


def test_the_toy_suite_keeps_its_declared_order():
    from bench.sweep.suites import get_suite

    order = list(get_suite("toy").datasets)
    rows = [r for d in sorted(order) for r in b2n("coop", d, {1: (80, 70)})]
    t = report.build_table(frame(rows, suite="toy"), "base2novel")
    assert report_rows(render(t, "markdown"))[2:] == order


def report_rows(markdown: str) -> list[str]:
    """The first column of a rendered Markdown table (after the title)."""
    lines = [ln for ln in markdown.splitlines() if ln.startswith("|")][2:]
    return [ln.split("|")[1].strip() for ln in lines]


def test_an_average_over_fewer_datasets_than_the_suite_is_marked_with_what_it_covers():
    rows = b2n("coop", "dtd", {1: (80, 60)}) + b2n("coop", "eurosat", {1: (90, 50)})
    rows += [r for d in REAL_B2N for r in b2n("zeroshot", d, {1: (70, 70)})]
    t = report.build_table(frame(rows), "base2novel")
    assert cell(t, "coop", "Average", "HM")["marks"] == "1"
    assert cell(t, "zeroshot", "Average", "HM")["marks"] == ""
    assert t.notes[0][0] == "1" and t.notes[0][1].startswith("coop: Average over 2 of 11 datasets (without imagenet, ")
    text = render(t, "table")
    assert "¹" in text and "Average over 2 of 11 datasets" in text


def test_a_dataset_with_planned_runs_missing_is_left_out_of_the_average_and_marked():
    rows = b2n("m", "dtd", {1: (80, 60), 2: (80, 60)}) + b2n("m", "eurosat", {1: (100, 40)})
    recs = frame(rows)
    planned = pd.concat([recs[report.KEY], recs[report.KEY].assign(seed=2)]).drop_duplicates()
    missing = report.missing_runs(recs, planned)
    assert set(zip(missing["dataset"], missing["seed"], strict=True)) == {("eurosat", 2)}
    t = report.build_table(recs, "base2novel", missing)
    assert cell(t, "m", "Average", "Base")["mean"] == 80  # dtd only
    assert cell(t, "m", "eurosat", "HM")["marks"] != "" and any("planned runs missing" in n for _, n in t.notes)


def _record(tmp: Path, seed: int, options: dict, config: dict, name: str) -> None:
    rec = Record(method="coop", protocol="base2novel", suite="toy", dataset="toy_shapes", subset="base",
                 train_dataset="toy_shapes", train_subset="base", seed=seed, shots=16, backbone="toy-vit",
                 pretrained="toy", random_init=False, config_hash="c0ffee00", options=options, accuracy=50.0 + seed,
                 per_class_accuracy={}, n_test=1, n_train=1, trainable_params=1, timing={}, train_steps=1,
                 final_losses={}, method_info={}, peak_memory_mb=None, split_hash="s", test_hash="t", config=config,
                 versions={}, git_revision="x", created="now")  # fmt: skip
    path = tmp / "records" / name / f"seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec.to_dict()))


def test_two_backbones_or_shot_counts_are_two_rows_never_one():
    rows = b2n("coop", "dtd", {1: (80, 60)}) + [
        {**r, "backbone": "ViT-L-14", "accuracy": r["accuracy"] - 10} for r in b2n("coop", "dtd", {1: (80, 60)})
    ]
    t = report.build_table(frame(rows), "base2novel")
    assert cell(t, "coop · ViT-L-14/openai", "dtd", "Base")["mean"] == 70
    assert cell(t, "coop · ViT-B-16/openai", "dtd", "Base")["mean"] == 80
    four = [{**r, "shots": 4} for r in b2n("coop", "dtd", {1: (50, 40)})]
    t = report.build_table(frame(b2n("coop", "dtd", {1: (80, 60)}) + four), "base2novel")
    assert cell(t, "coop · 4 shots", "dtd", "Novel")["mean"] == 40


def test_variant_labels_come_from_the_resolved_config_not_from_what_was_typed(tmp_path):
    from bench.sweep.plan import resolve_config
    from bench.sweep.suites import get_suite

    toy = get_suite("toy")
    default = resolve_config("coop", "base2novel", "toy_shapes", toy, {})
    assert default["train"]["min_steps"] == 100  # the toy suite's floor: typing it again changes nothing
    _record(tmp_path, 1, {"train.min_steps": 100}, default, "typed")
    _record(tmp_path, 2, {}, default, "untyped")
    lr = resolve_config("coop", "base2novel", "toy_shapes", toy, {"train.lr": 0.01})
    _record(tmp_path, 3, {"train.lr": 0.01}, lr, "lr")
    records = report.load_records(tmp_path)
    labels = records.groupby("label")["seed"].apply(sorted).to_dict()
    assert labels == {"coop": [1, 2], "coop [train.lr=0.01]": [3]}
    t = report.build_table(records, "base2novel")  # the title lists seeds 1,2,3; a note says who ran which
    assert "seeds 1,2,3" in t.title and ("", "coop: seeds 1,2 only") in t.notes


# -- published numbers ----------------------------------------------------------------------------------------------


def test_paper_adds_published_rows_and_deltas_on_every_protocol():
    pub = report.published("base2novel")
    coop_dtd = pub[(pub["method"] == "coop") & (pub["dataset"] == "dtd")].set_index("subset")["value"]
    t = report.add_published(report.build_table(frame(b2n("coop", "dtd", {1: (80, 60)})), "base2novel"))
    assert cell(t, "coop (paper)", "dtd", "Base")["mean"] == coop_dtd["base"]
    assert cell(t, "Δ coop", "dtd", "HM")["mean"] == pytest.approx(report.hm(80, 60) - coop_dtd["all"])
    # our Average covers 1 of 11 datasets: the paper's Average is shown, but no delta against it
    assert not ((t.cells["label"] == "Δ coop") & (t.cells["dataset"] == "Average")).any()
    assert "RMAdapter AAAI 2026 Table 1" in t.notes[-1][1]
    dg = [{"method": "mma", "protocol": "domain_generalization", "dataset": d, "subset": "all", "seed": 1,
           "accuracy": 60.0, "train_dataset": "imagenet"} for d in ("imagenet", "imagenet_a")]  # fmt: skip
    t = report.add_published(report.build_table(frame(dg), "domain_generalization"))
    assert cell(t, "mma (paper)", "imagenet_a", "Acc")["mean"] == 51.12  # RMAdapter Table 3
    assert cell(t, "Δ mma", "imagenet_a", "Acc")["mean"] == pytest.approx(60 - 51.12)


def test_an_average_over_all_eleven_datasets_gets_its_delta():
    rows = [r for d in REAL_B2N for r in b2n("zeroshot", d, {1: (70, 80), 2: (72, 80)})]
    t = report.add_published(report.build_table(frame(rows), "base2novel"))
    # RMAdapter Table 1, CLIP: 69.34 / 74.22 / 71.70
    assert cell(t, "Δ zeroshot", "Average", "Base")["mean"] == pytest.approx(71 - 69.34)
    assert cell(t, "Δ zeroshot", "Average", "HM")["mean"] == pytest.approx(report.hm(71, 80) - 71.70)
    assert cell(t, "zeroshot", "Average", "HM")["std"] == pytest.approx(
        pd.Series([report.hm(70, 80), report.hm(72, 80)]).std()
    )


def test_a_published_caveat_is_a_footnote_and_other_footnotes_keep_the_delta():
    t = report.build_table(frame(b2n("cocoop", "stanford_cars", {1: (70, 70)})), "base2novel")
    t.add_note("run in fp32", t.cells["label"] == "cocoop")  # a footnote about the run, not its coverage
    t = report.add_published(t)
    assert cell(t, "Δ cocoop", "stanford_cars", "HM")["mean"] == pytest.approx(70 - 72.01)
    mark = cell(t, "cocoop (paper)", "stanford_cars", "HM")["marks"]
    assert (mark, "cocoop (paper), stanford_cars HM: as published; printed HM differs from HM(base,novel)=71.86") in (
        t.notes
    )
    assert cell(t, "cocoop (paper)", "stanford_cars", "Base")["marks"] == ""


def test_paper_numbers_are_never_set_beside_another_suite_or_backbone():
    t = report.add_published(report.build_table(frame(b2n("coop", "toy_shapes", {1: (80, 60)}), "toy"), "base2novel"))
    assert set(t.cells["label"]) == {"coop"} and "real suite" in t.notes[-1][1]


# -- rendering ------------------------------------------------------------------------------------------------------


def test_latex_has_booktabs_a_caption_escaped_names_and_the_notes():
    rows = b2n("clip_adapter", "toy_colors", {1: (80, 60), 2: (82, 62)})
    t = report.build_table(frame(rows, suite="toy"), "base2novel")
    t.add_note("fp32 instead of the official amp", t.cells["dataset"] == "toy_colors")
    tex = render(t, "latex")
    assert "\\usepackage{booktabs}" in tex and "\\toprule" in tex and "\\bottomrule" in tex
    assert "\\caption{Base-to-novel" in tex and "clip\\_adapter" in tex and "toy\\_colors" in tex
    assert "toy_colors" not in tex.replace("toy\\_colors", "")
    assert "81.00 $\\pm$ 1.41\\textsuperscript{2}" in tex  # note 1 is the Average's coverage
    assert "\\textsuperscript{2} fp32 instead of the official amp" in tex
    assert "\\multicolumn{3}{c}{clip\\_adapter}" in tex  # the paper layout: Base/Novel/HM under each method


@pytest.mark.skipif(
    shutil.which("pdflatex") is None, reason="needs pdflatex (apt-get install texlive-latex-recommended)"
)
def test_latex_compiles_with_booktabs_alone(tmp_path):
    rows = [r for d in ("dtd", "eurosat") for r in b2n("clip_adapter", d, {1: (80, 60), 2: (82, 61)})]
    rows += b2n("coop", "dtd", {1: (70, 60)})
    t = report.add_published(report.build_table(frame(rows), "base2novel"))
    t.add_note("100% & _odd_ #chars {x} ~ ^ √", t.cells["label"] == "coop")
    tables = "\n".join(render(t, "latex", layout=layout) for layout in ("paper", "long"))
    (tmp_path / "t.tex").write_text(
        "\\documentclass{article}\n\\usepackage[utf8]{inputenc}\n\\usepackage{booktabs}\n\\begin{document}\n"
        f"{tables}\n\\end{{document}}\n"
    )
    r = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:]


def test_a_note_marks_its_cells_in_every_format():
    t = report.build_table(frame(b2n("m", "dtd", {1: (80, 60), 2: (90, 70)})), "base2novel")
    mark = t.add_note("run with train.precision=fp32", t.cells["metric"] == "HM")
    assert mark == "2"  # 1: the Average covers 1 of 11 datasets
    text = render(t, "table")
    assert "73.67 ± 7.20²" in text and "73.67 ± 7.20¹,²" in text and text.endswith("² run with train.precision=fp32")
    csv = tidy(t)
    assert csv.loc[(csv["dataset"] == "dtd") & (csv["metric"] == "HM"), "notes"].item() == (
        "run with train.precision=fp32")  # fmt: skip


def test_a_run_note_footnotes_that_runs_cells_and_its_averages():
    rows = b2n("coop", "dtd", {1: (80, 60)}) + b2n("coop", "eurosat", {1: (80, 60)}) + b2n("mma", "dtd", {1: (80, 60)})
    recs = frame(rows).assign(run_note="")
    recs.loc[(recs["method"] == "coop") & (recs["dataset"] == "dtd"), "run_note"] = "fp32, not the official amp"
    t = report.build_table(recs, "base2novel")
    (mark,) = [m for m, text in t.notes if text == "fp32, not the official amp"]
    marked = t.cells[t.cells["marks"].str.split(",").map(lambda ms: mark in ms)]
    assert set(zip(marked["label"], marked["dataset"], strict=True)) == {
        ("coop", "dtd"), ("coop", "Average"), ("coop", "Mean of per-dataset HM")}  # fmt: skip


def test_long_layout_and_ci():
    rows = b2n("m", "dtd", {1: (80, 60), 2: (90, 70), 3: (85, 65)}) + b2n("coop", "dtd", {1: (70, 60)})
    t = report.build_table(frame(rows), "base2novel")
    lines = [[c.strip() for c in ln.split("|")[1:-1]] for ln in render(t, "markdown", layout="long").splitlines()
             if ln.startswith("|")]  # fmt: skip
    assert lines[0] == ["dataset", "method", "Base", "Novel", "HM"]
    assert lines[-2:] == [
        ["DTD", "coop", "70.00", "60.00", "64.62"],  # one seed: no ±
        ["DTD", "m", "85.00 ± 5.00", "65.00 ± 5.00", "73.67 ± 5.09"],
    ]  # coop first: papers' order
    half = 4.302653 * 5 / math.sqrt(3)
    assert f"85.00 ± {half:.2f}" in render(t, "table", interval="ci")


# -- comparison -----------------------------------------------------------------------------------------------------


def test_compare_is_a_paired_wilcoxon_over_dataset_and_seed():
    rows = []
    for i, d in enumerate(("dtd", "eurosat")):
        for seed in (1, 2, 3):
            gain = 1 + i * 3 + seed  # six distinct positive differences
            rows += b2n("a", d, {seed: (70 + gain, 70 + gain)}) + b2n("b", d, {seed: (70, 70)})
    (c,) = cmp.compare(frame(rows), "a", "b")
    assert len(c.pairs) == 6 and c.pairs["diff"].tolist() == pytest.approx(sorted(c.pairs["diff"]))
    assert c.p == pytest.approx(2 / 2**6)  # exact: every difference has the same sign
    assert c.mean == pytest.approx((2 + 3 + 4 + 5 + 6 + 7) / 6)
    assert "a ahead on 2/2 datasets" in c.verdict() and "differs beyond seed noise" in c.verdict()
    (few,) = cmp.compare(frame([r for r in rows if r["dataset"] == "dtd"]), "a", "b")
    assert "3 pairs can never reach p < 0.05" in few.verdict()


def test_compare_mixed_signs_is_not_distinguishable_and_unknown_labels_are_an_error():
    from bench.errors import ConfigError

    diffs = [1.0, -2.0, 3.0, -4.0, 5.0, -6.0, 0.5]
    rows = []
    for seed, d in enumerate(diffs, 1):
        rows += b2n("a", "dtd", {seed: (70 + d, 70 + d)}) + b2n("b", "dtd", {seed: (70, 70)})
    (c,) = cmp.compare(frame(rows), "a", "b")
    assert c.p > 0.5 and "not distinguishable from seed noise" in c.verdict()
    with pytest.raises(ConfigError, match="no such method label"):
        cmp.compare(frame(rows), "a", "nope")


# -- the command ----------------------------------------------------------------------------------------------------


def _write_records(results: Path) -> None:
    """Records of a small real-suite sweep (synthetic numbers): two methods, B2N on two datasets and DG."""
    base = {"suite": "real", "shots": 16, "backbone": "ViT-B-16", "pretrained": "openai", "random_init": False,
            "options": {}, "per_class_accuracy": {}, "n_test": 1, "n_train": 1, "trainable_params": 1, "timing": {},
            "train_steps": 1, "final_losses": {}, "method_info": {}, "peak_memory_mb": None, "split_hash": "s",
            "test_hash": "t", "config": {}, "versions": {}, "git_revision": "x", "created": "now"}  # fmt: skip
    i = 0
    for method, gain in (("coop", 2.0), ("zeroshot", 0.0)):
        for seed in (1, 2):
            for d in ("dtd", "eurosat"):
                for subset in ("base", "novel"):
                    i += 1
                    rec = {**base, "method": method, "config_hash": method[:4], "protocol": "base2novel",
                           "dataset": d, "subset": subset, "train_dataset": d, "train_subset": "base", "seed": seed,
                           "accuracy": 60 + gain + seed}  # fmt: skip
                    (results / "records" / f"r{i}.json").write_text(json.dumps(rec))
            for d in ("imagenet", "imagenet_sketch"):
                i += 1
                rec = {**base, "method": method, "config_hash": method[:4], "protocol": "domain_generalization",
                       "dataset": d, "subset": "all", "train_dataset": "imagenet", "train_subset": "all",
                       "seed": seed, "accuracy": 50 + gain}  # fmt: skip
                (results / "records" / f"r{i}.json").write_text(json.dumps(rec))


@pytest.fixture
def results(tmp_path: Path) -> Path:
    (tmp_path / "records").mkdir()
    _write_records(tmp_path)
    return tmp_path


def bench(*args: object):
    return CliRunner().invoke(app, ["report", *map(str, args)], env={"COLUMNS": "250"})


def test_report_command_filters_compares_and_writes_one_file_per_table(results, tmp_path):
    r = bench("--results", results, "--paper", "--compare", "coop", "zeroshot")
    assert r.exit_code == 0, r.output
    assert "coop (paper)" in r.output and "Δ coop" in r.output and "ImageNet-Sketch" in r.output
    assert "coop − zeroshot (base2novel HM): +2.00 over 4 paired" in r.output
    csv = bench("--results", results, "--format", "csv")
    assert csv.exit_code == 2 and "one table per file" in csv.output
    one = bench("--results", results, "--format", "csv", "--protocol", "base2novel", "--method", "coop")
    assert one.exit_code == 0 and set(pd.read_csv(pd.io.common.StringIO(one.output))["label"]) == {"coop"}
    only = bench("--results", results, "--datasets", "dtd", "--protocol", "base2novel")
    assert "DTD" in only.output and "EuroSAT" not in only.output
    dg = bench("--results", results, "--datasets", "imagenet_sketch", "--protocol", "domain_generalization")
    assert "ImageNet " in dg.output and "ImageNet-Sketch" in dg.output  # the source stays beside its targets
    out = tmp_path / "out"
    files = bench("--results", results, "--out", out, "--format", "csv", "--compare", "coop", "zeroshot")
    assert files.exit_code == 0 and "suite,protocol" not in files.output  # the tables went to files only
    assert (out / "compare_coop_vs_zeroshot.md").read_text().startswith("coop − zeroshot (base2novel HM): +2.00")
    tables = {f"{n}.{e}" for n in ("base2novel", "domain_generalization") for e in ("md", "tex", "csv", "png")}
    assert {p.name for p in out.iterdir()} == tables | {"compare_coop_vs_zeroshot.md"}
    assert (out / "base2novel.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bars_start_near_the_data_so_close_methods_stay_apart():
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.collections import PathCollection

    from bench.report.plots import _bars

    rows = b2n("a", "dtd", {1: (56, 56), 2: (57, 57)}) + b2n("b", "dtd", {1: (58, 58), 2: (58.5, 58.5)})
    t = report.build_table(frame(rows), "base2novel")
    fig, ax = plt.subplots()
    _bars(ax, t.cells, "HM")
    low, high = ax.get_ylim()
    assert 50 < low < 55.5 and 59 < high < 65 and "not from 0" in ax.get_ylabel()
    assert [p.get_height() for p in ax.patches] == pytest.approx([56.5] * 3 + [58.25] * 3)  # Average, mean HM, DTD
    plt.close(fig)
    # --paper: the published number is a marker on its method's bar, in the legend once, inside the y range
    t = report.add_published(report.build_table(frame(b2n("mma", "dtd", {1: (80, 60)})), "base2novel"))
    cells = t.cells[~t.cells["label"].str.startswith(("Δ ", "mma (paper)"))]
    fig, ax = plt.subplots()
    _bars(ax, cells, "Base", t.cells[t.cells["label"] == "mma (paper)"])
    assert ax.get_legend_handles_labels()[1] == ["published", "mma"]
    (dots,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    shown = [(x, y) for x, y in np.ma.filled(dots.get_offsets(), np.nan) if not np.isnan(y)]
    assert shown == [(1, 83.20)]  # MMA's DTD Base (Table 1) on the DTD bar; none on our one-dataset Average
    plt.close(fig)


def test_few_shot_table_and_curve(tmp_path):
    from bench.report.plots import plot

    rows = [{"method": "coop", "protocol": "few_shot", "dataset": d, "subset": "all", "seed": s, "shots": k,
             "accuracy": 40 + 5 * math.log2(k) + s} for d in ("dtd", "eurosat") for s in (1, 2)
            for k in (1, 2, 4, 8, 16)]  # fmt: skip
    t = report.build_table(frame(rows), "few_shot")
    assert cell(t.__class__(t.name, t.title, t.cells[t.cells["shots"] == 4], t.rows, t.columns), "coop", "Average",
                "Acc")["mean"] == 51.5  # fmt: skip
    header = render(t, "markdown").splitlines()[2]
    assert header.index("1 shot ") < header.index("2 shots") < header.index("16 shots")
    assert plot(t, tmp_path).name == "few_shot.png" and (tmp_path / "few_shot.png").stat().st_size > 0


def test_departures_from_the_official_settings_footnote_real_benchmark_runs(tmp_path):
    """A real-benchmark record made in amp (CoOp's official runs are fp16) is footnoted; toy records never are."""
    from bench.config import BASE_CONFIG, deep_merge
    from bench.registry import get_method

    cfg = deep_merge(BASE_CONFIG, get_method("coop").default_config("base2novel", "dtd"))
    for suite, seed in (("real", 1), ("toy", 2)):
        rec = Record(method="coop", protocol="base2novel", suite=suite, dataset="dtd", subset="base",
                     train_dataset="dtd", train_subset="base", seed=seed, shots=16, backbone="ViT-B-16",
                     pretrained="openai", random_init=False, config_hash="c0ffee00", options={}, accuracy=70.0,
                     per_class_accuracy={}, n_test=1, n_train=1, trainable_params=1, timing={}, train_steps=1,
                     final_losses={}, method_info={}, peak_memory_mb=1.0, split_hash="s", test_hash="t", config=cfg,
                     versions={}, git_revision="x", created="now",
                     departures=None if suite == "real" else ["precision amp (official: fp16 on GPU)"])  # fmt: skip
        path = tmp_path / "records" / suite / f"seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec.to_dict()))
    records = report.load_records(tmp_path)
    notes = dict(zip(records["suite"], records["run_note"], strict=True))
    # worked out from the stored config for a record older than the field
    assert notes == {"real": "coop: precision amp (official: fp16 on GPU)", "toy": ""}
    t = report.build_table(records[records["suite"] == "real"], "base2novel")
    assert any("precision amp (official: fp16 on GPU)" in n for _, n in t.notes)
