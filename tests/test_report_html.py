"""`bench report --html DIR`: one self-contained page with every table, figure, comparison, run list, config and
per-class accuracy, names escaped; and (when Chromium is installed) that a real browser renders it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.sweep.record import KEY, Failure, Record

ODD = "a<b&c"  # an option value that must come out escaped


def _record(results: Path, method: str, dataset: str, subset: str, seed: int, accuracy: float, options: dict) -> dict:
    """Write one toy base-to-novel record (no stored config: its label comes from the options as typed)."""
    rec = Record(method=method, protocol="base2novel", suite="toy", dataset=dataset, subset=subset,
                 train_dataset=dataset, train_subset="base", seed=seed, shots=16, backbone="toy-vit",
                 pretrained="toy", random_init=False, config_hash=f"{method}0000", options=options, accuracy=accuracy,
                 per_class_accuracy={"<circle>": accuracy - 1, "square": accuracy + 1}, n_test=1, n_train=1,
                 trainable_params=1, timing={}, train_steps=1, final_losses={}, method_info={}, peak_memory_mb=None,
                 split_hash="s", test_hash="t", config={} if not options else {"train": {"name": ODD}},
                 versions={}, git_revision="x", created="now")  # fmt: skip
    path = results / "records" / method / f"{dataset}__{subset}" / f"seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec.to_dict()))
    return rec.key()


def make_results(root: Path) -> Path:
    """Two methods (one with an option holding ``<`` and ``&``) on two datasets × two seeds, and a plan that also
    asks for a seed 3 nobody ran (a missing run)."""
    planned = []
    for method, options in (("coop", {"train.name": ODD}), ("mma", {})):
        for i, dataset in enumerate(("toy_shapes", "toy_colors")):
            for seed in (1, 2):
                for subset, acc in (("base", 80.0), ("novel", 60.0)):
                    value = acc + seed + i + (5 if method == "coop" else 0)
                    planned.append(_record(root, method, dataset, subset, seed, value, options))
    ghost = {**planned[-1], "seed": 3}
    (root / "plans").mkdir(parents=True)
    (root / "plans" / "plan-1.json").write_text(json.dumps([{k: ghost[k] for k in KEY}, *planned]))
    run = root / "runs" / "toy" / "coop-coop0000" / "toy-vit__toy" / "toy_shapes__base" / "shots16_seed1"
    run.mkdir(parents=True)
    rows = [{"epoch": e, "loss": 1.0 / e, "lr": 0.002} for e in (1, 2, 3)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))  # a training curve
    failed = root / "runs" / "toy" / "maple-maple000" / "toy-vit__toy" / "toy_shapes__base" / "shots16_seed1"
    failed.mkdir(parents=True)
    failure = Failure(label="maple", method="maple", config_hash="maple000", suite="toy", train_dataset="toy_shapes",
                      seed=1, shots=16, error="RuntimeError: <oom> & out", phase="train", epoch=2,
                      traceback="traceback.txt", keys=[], config={}, created="now")  # fmt: skip
    (failed / "failure.json").write_text(json.dumps(failure.to_dict()))
    return root


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return make_results(tmp_path / "results")


def _page(results: Path, out: Path, *args: str) -> str:
    run = CliRunner().invoke(app, ["report", "--results", str(results), "--html", str(out), *args])
    assert run.exit_code == 0, run.output
    assert sorted(p.name for p in out.iterdir()) == ["index.html"]  # one file, nothing beside it
    return (out / "index.html").read_text()


@pytest.mark.e2e
def test_the_page_is_one_self_contained_file_with_tables_figures_lists_and_escaped_names(results, tmp_path):
    page = _page(results, tmp_path / "page", "--compare", "mma", f"coop [train.name={ODD}]")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)  # nothing fetched from anywhere
    assert "<script" not in page
    assert "mma" in page and "coop [train.name=a&lt;b&amp;c]" in page and ODD not in page
    assert "Average" in page and "± = standard deviation over seeds" in page
    assert page.count("data:image/png;base64,") == 2  # the table's figure and coop's training curve
    assert "Failed runs" in page and "RuntimeError: &lt;oom&gt; &amp; out" in page
    missing = page[page.index("Missing runs (left out of every average): 1") :]
    assert re.search(r"<td>toy_colors</td>\s*<td>novel</td>\s*<td>3</td>", missing)  # the seed nobody ran
    assert "Wilcoxon signed-rank" in page  # the --compare verdict
    assert "&lt;circle&gt;" in page and "<circle>" not in page  # per-class accuracy, class names escaped
    assert "Configs (resolved" in page and "&quot;name&quot;: &quot;a&lt;b&amp;c&quot;" in page


@pytest.mark.e2e
def test_html_next_to_a_file_is_refused(results, tmp_path):
    (tmp_path / "f").write_text("")
    run = CliRunner().invoke(app, ["report", "--results", str(results), "--html", str(tmp_path / "f")])
    assert run.exit_code != 0 and "is a file" in run.output


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium binary (apt-get install chromium)")
def test_chromium_renders_the_page_without_console_errors(results, tmp_path):
    page_dir = tmp_path / "page"
    _page(results, page_dir)
    shot = tmp_path / "page.png"
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           f"--screenshot={shot}", "--window-size=1400,2000", "--enable-logging=stderr", "--v=0",
           (page_dir / "index.html").resolve().as_uri()]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), run.stderr
    assert "CONSOLE" not in run.stderr and "Uncaught" not in run.stderr, run.stderr
    from PIL import Image

    with Image.open(shot) as img:
        low, high = img.convert("L").getextrema()
    assert high - low > 50  # not a blank (one-colour) page: text and tables drew
