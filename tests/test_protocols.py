"""Protocols are registered like methods: the example of docs/adding-a-protocol.md, loaded with ``--plugin``, is planned,
run and tabled on the toy suite with no change to the harness; the papers' four keep their plans."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.registry import PROTOCOLS, load_plugins
from bench.report.tables import hm
from bench.sweep.plan import plan
from bench.sweep.protocols import get_protocol, parse_protocols, protocol_names
from bench.sweep.suites import REAL

DOC = Path(__file__).resolve().parents[1] / "docs" / "adding-a-protocol.md"
NAME = "base2novel_4shots"


@pytest.fixture
def plugin(tmp_path: Path) -> Iterator[Path]:
    """The guide's example, as the file a user would save; unregistered afterwards (other tests see the core four)."""
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert code is not None, f"{DOC} has no python example"
    path = tmp_path / "my_protocol.py"
    path.write_text(code.group(1))
    yield path
    PROTOCOLS.module_dict.pop(NAME, None)
    sys.modules.pop(f"bench_plugin_{path.stem}", None)


def test_the_guides_protocol_plans_its_own_trainings(plugin: Path, tmp_path: Path) -> None:
    load_plugins([str(plugin)])
    assert NAME in protocol_names() and get_protocol(NAME).name == NAME
    assert parse_protocols("all") == ["base2novel", "cross_dataset", "domain_generalization"]  # in_all = False
    specs = plan(["zeroshot"], [NAME], REAL, [1], None, tmp_path, tmp_path)
    assert [s.train_dataset for s in specs] == list(REAL.datasets[1:])  # every dataset but the source, ImageNet
    assert {(s.train_subset, s.shots) for s in specs} == {("base", 4)}
    assert [(e.protocol, e.dataset, e.subset) for e in specs[0].evals] == [
        (NAME, "caltech101", "base"), (NAME, "caltech101", "novel")]  # fmt: skip


@pytest.mark.e2e
def test_the_guides_protocol_runs_on_the_toy_suite_and_gets_a_table(
    plugin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_TOY_ROOT", str(tmp_path / "toy"))
    results = tmp_path / "res"
    bench = CliRunner().invoke
    r = bench(app, ["list", "protocols", "--plugin", str(plugin)])
    assert r.exit_code == 0 and NAME in r.output.split(), r.output
    r = bench(app, ["run", "--suite", "toy", "--plugin", str(plugin), "--method", "zeroshot", "--protocol", NAME,
                    "--datasets", "toy_counts", "--seeds", "1", "--results", str(results)])  # fmt: skip
    assert r.exit_code == 0, r.output
    recs = [json.loads(p.read_text()) for p in (results / "records").rglob("*.json")]
    acc = {x["subset"]: x["accuracy"] for x in recs}
    assert {(x["protocol"], x["dataset"], x["shots"], x["train_subset"]) for x in recs} == {
        (NAME, "toy_counts", 4, "base")}  # fmt: skip
    assert set(acc) == {"base", "novel"}

    r = bench(app, ["report", "--plugin", str(plugin), "--results", str(results), "--format", "markdown"])
    assert r.exit_code == 0, r.output
    assert f"{get_protocol(NAME).title} · toy suite" in r.output and "at 4 shots" in r.output
    lines = r.output.splitlines()
    header = next(line for line in lines if "zeroshot Base" in line)
    assert [c.strip() for c in header.strip("|").split("|")] == ["dataset", "zeroshot Base", "zeroshot Novel",
                                                                  "zeroshot HM"]  # fmt: skip
    row = next(line for line in lines if line.startswith("| toy_counts"))
    expected = [f"{acc['base']:.2f}", f"{acc['novel']:.2f}", f"{hm(acc['base'], acc['novel']):.2f}"]
    assert [c.strip() for c in row.strip("|").split("|")][1:] == expected

    # without the plugin the protocol is unknown: no table, and the report says whose records it leaves out
    monkeypatch.delitem(PROTOCOLS.module_dict, NAME)
    r = bench(app, ["report", "--results", str(results)])
    assert r.exit_code == 0, r.output
    assert "not registered" in r.output and NAME in r.output and "zeroshot Base" not in r.output
