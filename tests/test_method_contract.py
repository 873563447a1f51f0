"""The method contract, checked for every registered method and a plugin's (docs/adding-a-method.md): for every
protocol's default config on the tiny backbone, the run's lifecycle trains, gradients reach exactly the declared
trainable parameters, a checkpoint restores identical logits, logits score any class list, and a method whose learned
state is per training class declares what it does on classes it has not trained on. The guide's example runs end to
end through the CLI."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from bench.cli import app
from bench.data.caches import Caches
from bench.data.dataset import Datum
from bench.model.backbone import Backbone
from bench.model.context import FitContext
from bench.model.method import Batch, Method
from bench.model.trainer import fit
from bench.registry import get_method, load_plugins, method_names
from bench.sweep.plan import plan
from bench.sweep.protocols import protocol_names
from bench.sweep.suites import get_suite

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "adding-a-method.md"
BASE = ["cat", "dog", "sea turtle"]
NOVEL = ["red car", "tree", "boat"]
OTHER = ["apple", "chair", "cloud", "lamp"]  # another dataset's classes
TEMPLATE = "a photo of a {}."
# a few steps of the harness's loop: 12 training images in batches of 4, one epoch, exact fp32 on the CPU
SHORT = {"train.epochs": 1, "train.batch_size": 4, "train.min_steps": 0, "train.num_workers": 0,
         "train.precision": "fp32"}  # fmt: skip


@dataclass
class World:
    """Tiny images on disk (4 training and 2 validation images of each base class) and the caches over them."""

    train: list[Datum]
    val: list[Datum]
    caches: Caches


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("contract")
    rng = np.random.default_rng(0)
    items: dict[str, list[Datum]] = {"train": [], "val": []}
    for split, n in (("train", 4), ("val", 2)):
        for label, name in enumerate(BASE):
            for i in range(n):
                path = root / f"{split}_{label}_{i}.png"
                Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(path)
                items[split].append(Datum(str(path), label, name))
    return World(items["train"], items["val"], Caches(root / "cache", num_workers=0))


def protocol_configs(name: str, depth: int) -> dict[str, tuple[str, dict[str, Any]]]:
    """Config hash → (training dataset, config) of every protocol the real suite plans for ``name`` (trained on DTD or
    ImageNet), with the method's ``tiny_options`` for a ``depth``-block backbone and a short training."""
    options = {f"method.{k}": v for k, v in get_method(name).tiny_options(depth).items()} | SHORT
    specs = plan([name], protocol_names(), get_suite("real"), [1], [16], Path("data"), Path("results"),
                 datasets=["dtd"], options=options)  # fmt: skip
    return {s.config_hash: (s.train_dataset, s.config) for s in specs}


def build(name: str, backbone: Backbone, cfg: dict[str, Any], dataset: str, classes: list[str]) -> Method:
    torch.manual_seed(0)
    method = get_method(name)(backbone, cfg, n_cls=len(classes))
    method.set_classnames(classes, TEMPLATE, dataset)
    return method


def context(backbone: Backbone, world: World, dataset: str, classes: list[str]) -> FitContext:
    return FitContext(backbone, torch.device("cpu"), dataset, world.train, world.val, classes, TEMPLATE, 1,
                      world.caches, role=dataset)  # fmt: skip


def learned(method: Method) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in method.learned_state_dict()["state"].items()}


def logits(method: Method, images: torch.Tensor, classes: list[str], dataset: str) -> torch.Tensor:
    """The method's logits as the harness evaluates it (cached features for a frozen image encoder)."""
    method.set_classnames(classes, TEMPLATE, dataset)
    method.eval()
    with torch.inference_mode():
        if method.frozen_image_encoder:
            return method(features=method.backbone.encode_image(images))
        return method(images=images)


def check_gradients(method: Method, ctx: FitContext) -> None:
    """One loss on a batch: every declared trainable tensor gets a non-zero gradient, no other parameter any."""
    declared = {id(p) for p in method.trainable_parameters()}
    assert declared <= {id(p) for p in method.parameters()}, "a trainable tensor outside the module is not checkpointed"
    labels = torch.tensor([0, 1, 2, 0])
    if method.frozen_image_encoder:
        batch = Batch(labels=labels, features=ctx.features(ctx.train)[0][:4].clone(), index=torch.arange(4))
    else:
        size = method.backbone.image_size
        batch = Batch(labels=labels, images=torch.randn(4, 3, size, size), index=torch.arange(4))
    method.train()
    sum(method.loss(batch).values()).backward()
    for pname, p in method.named_parameters():
        if id(p) in declared:
            assert p.grad is not None and torch.count_nonzero(p.grad) > 0, f"trainable {pname} got no gradient"
        else:
            assert p.grad is None, f"{pname} is not declared trainable but got a gradient"
    method.zero_grad(set_to_none=True)


def check_contract(name: str, backbone: Backbone, world: World) -> None:
    cls = get_method(name)
    configs = protocol_configs(name, backbone.depth)
    for dataset, cfg in configs.values():
        ctx = context(backbone, world, dataset, BASE)
        method = build(name, backbone, cfg, dataset, BASE)
        method.before_training(ctx)
        trainable = method.trainable_parameters()
        assert cls.trains == (sum(p.numel() for p in trainable) > 0), "`trains` must say whether anything trains"
        frozen_backbone = {k: v.clone() for k, v in backbone.state_dict().items()}
        if cls.trains:
            check_gradients(method, ctx)
            before = learned(method)
            stats = fit(method, ctx, cfg["train"])
            assert stats["steps"] >= 3
            after = learned(method)
            assert any(not torch.equal(before[k], after[k]) for k in before), "training changed nothing"
        method.after_training(ctx)
        for k, v in backbone.state_dict().items():
            assert torch.equal(v, frozen_backbone[k]), f"the frozen backbone's {k} changed"

        # the run's checkpoint restored into a fresh instance (as a re-run does: no before_training) predicts the same
        buffer = io.BytesIO()
        torch.save(method.learned_state_dict(), buffer)
        buffer.seek(0)
        restored = build(name, backbone, cfg, dataset, BASE)
        restored.load_learned_state_dict(torch.load(buffer, weights_only=True))
        images = torch.randn(5, 3, backbone.image_size, backbone.image_size, generator=torch.Generator().manual_seed(1))
        for classes in (BASE, NOVEL, OTHER):
            out = logits(method, images, classes, dataset)
            assert out.shape == (5, len(classes)) and torch.isfinite(out).all(), f"{name} on {classes}: {out.shape}"
            assert torch.equal(out, logits(restored, images, classes, dataset)), f"{name}: restored logits differ"

    # closed vocabulary: learned state whose size follows the training classes must come with a declared rule
    dataset, cfg = next(iter(configs.values()))
    sizes = []
    for classes in (BASE, BASE + NOVEL):
        method = build(name, backbone, cfg, dataset, classes)
        method.before_training(context(backbone, world, dataset, classes))
        sizes.append({k: v.shape for k, v in learned(method).items()})
    if sizes[0] != sizes[1]:
        assert cls.unseen_classes, (
            f"{name} learns per training class: declare `unseen_classes` (what it does on others)"
        )


@pytest.mark.parametrize("name", method_names())
def test_every_method_meets_the_contract(tiny_backbone: Backbone, world: World, name: str) -> None:
    check_contract(name, tiny_backbone, world)


def guide_plugin(folder: Path) -> Path:
    """The guide's complete example, written to a plugin file."""
    blocks = [b for b in re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S) if "@register_method(" in b]
    assert len(blocks) == 1, "the guide has one complete example"
    path = folder / "linear_probe.py"
    path.write_text(blocks[0])
    return path


def test_a_plugin_method_meets_the_contract(tiny_backbone: Backbone, world: World, tmp_path: Path) -> None:
    load_plugins([str(guide_plugin(tmp_path))])
    assert "linear_probe" in method_names()  # a plugin's method is one of "every method"
    assert get_method("linear_probe").unseen_classes  # its head is per class: the contract asks for the rule
    check_contract("linear_probe", tiny_backbone, world)


def test_the_contract_catches_a_method_that_breaks_it(
    tiny_backbone: Backbone, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_plugins([str(guide_plugin(tmp_path))])
    probe = get_method("linear_probe")
    with monkeypatch.context() as m:  # a head per training class, and no word on other classes
        m.setattr(probe, "unseen_classes", None)
        with pytest.raises(AssertionError, match="declare `unseen_classes`"):
            check_contract("linear_probe", tiny_backbone, world)
    with monkeypatch.context() as m:  # what evaluation needs, lost with a checkpoint (before_training is skipped)
        m.setattr(probe, "extra_state", lambda self: {})
        m.setattr(probe, "load_extra_state", lambda self, state: None)
        with pytest.raises(AssertionError, match="restored logits differ"):
            check_contract("linear_probe", tiny_backbone, world)
    with monkeypatch.context() as m:  # a declared trainable parameter that the loss never moves
        m.setattr(probe, "loss", lambda self, batch: {"ce": 0 * Method.loss(self, batch)["ce"]})
        with pytest.raises(AssertionError, match="trainable head got no gradient"):
            check_contract("linear_probe", tiny_backbone, world)


@pytest.mark.e2e
def test_the_guides_example_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_TOY_ROOT", str(tmp_path / "toy"))
    results = tmp_path / "results"
    args = ["run", "--plugin", str(guide_plugin(tmp_path)), "--method", "linear_probe", "--suite", "toy",
            "--protocol", "base2novel", "--datasets", "toy_counts", "--seeds", "1", "--results", str(results)]  # fmt: skip
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    records = [json.loads(p.read_text()) for p in (results / "records").rglob("*.json")]
    assert {(x["subset"], x["method"]) for x in records} == {("base", "linear_probe"), ("novel", "linear_probe")}
    assert all(x["train_steps"] > 0 for x in records)
    r = CliRunner().invoke(app, ["report", "--results", str(results), "--format", "csv"])
    assert r.exit_code == 0, r.output
    rows = [row for row in csv.DictReader(io.StringIO(r.output)) if row["dataset"] == "toy_counts"]
    assert {(row["method"], row["metric"], row["complete"]) for row in rows} == {
        ("linear_probe", metric, "True") for metric in ("Base", "Novel", "HM")
    }
    assert all(0 < float(row["mean"]) <= 100 for row in rows)
