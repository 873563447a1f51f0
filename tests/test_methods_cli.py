"""Every new method completes base-to-novel, cross-dataset and DG through the CLI on the generated CoOp fixture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from coop_fixture import make_coop_data
from typer.testing import CliRunner

from bench.cli import app

pytestmark = pytest.mark.e2e

# bench-tiny has 4 blocks: adapters and deep prompts are placed inside it; one epoch keeps this quick.
METHODS = {
    "clip_adapter": ["train.epochs=1", "train.feature_passes=2"],
    "tip_adapter": ["method.augment_passes=2", "method.ensemble=false"],
    "tip_adapter_f": ["train.epochs=2", "method.augment_passes=2", "train.feature_passes=2", "method.ensemble=false"],
    "maple": ["train.epochs=1", "method.prompt_depth=2"],
    "mma": ["train.epochs=1", "method.adapter_start=3", "method.adapter_end=4", "method.adapter_dim=8"],
    "rmadapter": ["train.epochs=1", "method.adapter_start=3", "method.adapter_end=4", "method.adapter_dim=8"],
    "cocoop": ["train.epochs=1", "train.feature_passes=1"],
    "kgcoop": ["train.epochs=2", "train.feature_passes=1"],
    "promptsrc": ["train.epochs=2", "method.text_depth=2", "method.vision_depth=2"],
    "tcp": ["train.epochs=2", "train.feature_passes=1", "method.insert_layer=2"],
    "coprompt": ["train.epochs=1", "method.prompt_depth=2", "method.descriptions=templates"],
}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_coop_data(tmp_path_factory.mktemp("data"), names=["dtd", "imagenet", "imagenetv2"])


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """One results folder for all methods: records are per method, the image and feature caches are shared."""
    return tmp_path_factory.mktemp("results")


@pytest.mark.parametrize("method", sorted(METHODS))
def test_method_runs_all_protocols(data, results, method):
    args = ["run", "--data-root", data, "--results", results, "--backbone", "bench-tiny", "--pretrained", "none",
            "--seeds", "1", "--shots", "2", "--method", method, "--protocol", "all",
            "--datasets", "dtd,imagenetv2", "--cfg-options", *METHODS[method]]  # fmt: skip
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    recs = [json.loads(p.read_text()) for p in (results / "records").rglob("*.json")]
    recs = [r for r in recs if r["method"] == method]
    # B2N: dtd base/novel; cross-dataset: imagenet + dtd; DG: imagenet + imagenetv2
    assert len(recs) == 2 + 2 + 2
    assert {r["protocol"] for r in recs} == {"base2novel", "cross_dataset", "domain_generalization"}
    for r in recs:  # the accuracy is the one that the per-class accuracies and the test size imply
        assert r["accuracy"] == pytest.approx(sum(r["per_class_accuracy"].values()) / len(r["per_class_accuracy"]))
        assert (r["accuracy"] * r["n_test"] / 100) == pytest.approx(round(r["accuracy"] * r["n_test"] / 100))
        assert r["train_steps"] > 0 or method == "tip_adapter"
    if method.startswith("tip"):  # α/β were searched on validation and lie on the search grid
        from bench.methods.tip_adapter import grid

        cfg, info = recs[0]["config"]["method"], recs[0]["method_info"]
        assert info["search"] == "val" and 0 <= info["val_accuracy"] <= 100
        assert info["beta"] in grid(cfg["search_scale"][0], cfg["search_step"][0])
        assert info["alpha"] in grid(cfg["search_scale"][1], cfg["search_step"][1])
