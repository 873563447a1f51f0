"""``run_one``: seed → data → backbone → method.fit → evaluate → one atomic record per evaluation.

A run's learned state is checkpointed (only the method's parameters, never the backbone) before any evaluation, so
an interrupted run — or one whose record was deleted — resumes by evaluating, not by retraining.
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from torch import Tensor

import bench
from bench.backbone import Backbone, load_backbone
from bench.data import Caches, Normalizer, autocast
from bench.datasets.base import (
    DatasetReader,
    DatasetSplits,
    Datum,
    dassl_fewshot,
    digest,
    items_from_json,
    items_to_json,
    subsample_classes,
    subset_classnames,
)
from bench.errors import BenchError, DataError
from bench.io import atomic_write, atomic_write_json, lock
from bench.method import Method
from bench.plan import RunSpec
from bench.registry import get_dataset, get_method
from bench.trainer import fit, seed_everything

Progress = Callable[[str], None]


@dataclass
class FitContext:
    """What a method may use while fitting: the few-shot train/val sets and cached frozen features. Never test."""

    backbone: Backbone
    device: torch.device
    dataset: str
    train: list[Datum]
    val: list[Datum]
    classnames: list[str]
    template: str
    seed: int
    caches: Caches
    eval_batch_size: int = 256
    info: dict[str, Any] = field(default_factory=dict)  # methods may report choices here (e.g. Tip's alpha/beta)

    def features(
        self, items: Sequence[Datum], augment: str | None = None, passes: int = 1, scale_min: float = 0.08
    ) -> list[Tensor]:
        """Frozen image features of ``items`` (test preprocessing, or ``passes`` augmented passes with
        RandomResizedCrop scale ``(scale_min, 1)``)."""
        return self.caches.features(self.backbone, items, self.device, augment, passes, self.seed, scale_min)

    def labels(self, items: Sequence[Datum]) -> Tensor:
        return torch.tensor([d.label for d in items], dtype=torch.long)

    def evaluate(self, method: Method, items: Sequence[Datum]) -> float:
        """Accuracy of ``method`` on ``items`` (validation only: the harness never hands test items to a method)."""
        acc, _ = evaluate(method, items, self.classnames, self.template, self.backbone, self.device, self.caches,
                          self.eval_batch_size)  # fmt: skip
        method.train()
        return acc


# ---------------------------------------------------------------------------------------------------------------------
# Data


@lru_cache(maxsize=64)
def read_dataset(name: str, root: str) -> tuple[DatasetReader, DatasetSplits]:
    reader = get_dataset(name)(root)
    return reader, reader.read()


def fewshot_split(spec: RunSpec, reader: DatasetReader, splits: DatasetSplits) -> tuple[list[Datum], list[Datum], str]:
    """The seed's few-shot train/val draw, stored once as portable JSON; returns (train, val, split hash)."""
    root = Path(spec.data_root)
    path = Path(spec.results) / "splits" / spec.suite / reader.name / f"shot{spec.shots}_seed{spec.seed}.json"
    with lock(path):
        if path.exists():
            try:
                saved = json.loads(path.read_text())
                rows = {"train": saved["train"], "val": saved["val"]}
                train, val = items_from_json(rows["train"], root), items_from_json(rows["val"], root)
            except (ValueError, KeyError) as e:
                raise DataError(f"few-shot split {path} is malformed ({e}); delete it to redraw") from None
        else:
            draw_val = getattr(reader, "draw_val", True)
            train, val = dassl_fewshot(splits.train, splits.val, spec.shots, spec.seed, draw_val=draw_val)
            rows = {"train": items_to_json(train, root), "val": items_to_json(val, root)}
            atomic_write_json(path, {**rows, "shots": spec.shots, "seed": spec.seed, "hash": digest(rows)})
    # the record's split hash covers the draw (as stored beside it) and the test list
    return train, val, digest([digest(rows), digest(items_to_json(splits.test, root))])


# ---------------------------------------------------------------------------------------------------------------------
# Evaluation


@torch.inference_mode()
def evaluate(
    method: Method,
    items: Sequence[Datum],
    classnames: Sequence[str],
    template: str,
    backbone: Backbone,
    device: torch.device,
    caches: Caches,
    batch_size: int = 256,
    precision: str = "amp",
) -> tuple[float, list[float]]:
    """Accuracy (%) and per-class accuracy of ``method`` on ``items`` labelled 0..len(classnames)-1."""
    method.set_classnames(classnames, template)
    method.eval()
    labels = torch.tensor([d.label for d in items], device=device)
    preds = []
    with autocast(device, precision):
        if method.frozen_image_encoder:
            feats = caches.features(backbone, items, device)[0]
            for i in range(0, len(feats), batch_size):
                preds.append(method(features=feats[i : i + batch_size].to(device)).argmax(-1))
        else:
            arr = caches.images(items, backbone.image_size)
            norm = Normalizer(backbone, device)
            for i in range(0, len(arr), batch_size):
                x = torch.from_numpy(np.array(arr[i : i + batch_size]))
                preds.append(method(images=norm(x)).argmax(-1))
    correct = (torch.cat(preds) == labels).float()
    n = len(classnames)
    per_class = torch.zeros(n, device=device).index_add_(0, labels, correct)
    counts = torch.bincount(labels, minlength=n).clamp(min=1)
    return 100.0 * correct.mean().item(), (100.0 * per_class / counts).tolist()


# ---------------------------------------------------------------------------------------------------------------------
# One run


_BACKBONES: dict[tuple[str, str, str], Backbone] = {}


def get_backbone(arch: str, pretrained: str, device: torch.device) -> Backbone:
    """Backbones are reused across the runs of one process (they are frozen)."""
    key = (arch, pretrained, str(device))
    if key not in _BACKBONES:
        _BACKBONES.clear()  # one at a time: GPU memory
        _BACKBONES[key] = load_backbone(arch, pretrained).to(device)
    return _BACKBONES[key]


@lru_cache(maxsize=1)
def _git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    return {
        "adaptbench": bench.__version__,
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "python": platform.python_version(),
        "cuda": torch.version.cuda or "none",
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu",
    }


def run_one(
    spec: RunSpec, device: str | torch.device = "cpu", progress: Progress | None = None, force: bool = False
) -> int:
    """Execute one RunSpec; returns the number of records written."""
    try:
        return _run_one(spec, torch.device(device), progress, force)
    except torch.OutOfMemoryError:
        bs = spec.config["train"]["batch_size"]
        raise BenchError(
            f"{spec.label}: out of GPU memory; lower the batch size (--cfg-options train.batch_size={max(1, bs // 2)}) "
            f"or evaluation batch (eval.batch_size), or use train.precision=bf16"
        ) from None


def _run_one(spec: RunSpec, device: torch.device, progress: Progress | None, force: bool) -> int:
    say = progress or (lambda msg: None)
    todo = spec.evals if force else spec.pending()
    if not todo:
        return 0
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    seed_everything(spec.seed)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    workers = spec.config["train"]["num_workers"] if device.type == "cuda" else 0  # CPU: workers only steal compute
    caches = Caches(Path(spec.results) / "cache", workers)
    method_cls = get_method(spec.method)

    reader, splits = read_dataset(spec.train_dataset, spec.data_root)
    train, val, split_hash = fewshot_split(spec, reader, splits)
    train = subsample_classes(train, spec.train_subset, range(len(splits.classnames)))
    val = subsample_classes(val, spec.train_subset, range(len(splits.classnames)))
    classnames = subset_classnames(splits.classnames, spec.train_subset)

    backbone = get_backbone(spec.backbone, spec.pretrained, device)
    seed_everything(spec.seed)  # the method's initialisation does not depend on how many backbones were built
    method: Method = method_cls(backbone, spec.config, n_cls=len(classnames)).to(device)
    method.set_classnames(classnames, reader.template)
    ctx = FitContext(backbone, device, spec.train_dataset, train, val, classnames, reader.template, spec.seed, caches,
                     spec.config["eval"]["batch_size"])  # fmt: skip

    ckpt_path = spec.checkpoint_path()
    train_stats: dict[str, Any] = {"train_s": 0.0}
    if ckpt_path.exists() and not force:
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        method.load_learned_state_dict(ckpt["method"])
        train_stats, ctx.info = ckpt["train_stats"], ckpt.get("info", {})
        say(f"{spec.label}: loaded checkpoint")
    else:
        say(f"{spec.label}: training ({len(train)} images, {len(classnames)} classes)")
        t0 = time.perf_counter()
        method.before_training(ctx)
        if method.trains:
            train_stats = fit(method, ctx, spec.config["train"], on_epoch=lambda e, loss: say(
                f"{spec.label}: epoch {e + 1}/{spec.config['train']['epochs']} loss {loss:.4f}"))  # fmt: skip
        method.after_training(ctx)
        train_stats["fit_s"] = time.perf_counter() - t0
        state = {"method": method.learned_state_dict(), "train_stats": train_stats, "info": ctx.info}
        atomic_write(ckpt_path, lambda tmp: torch.save(state, tmp))

    written = 0
    results: dict[tuple[str, str], tuple[float, list[float], list[str], float, int, str]] = {}
    for ev in todo:
        key = (ev.dataset, ev.subset)
        if key not in results:
            ev_reader, ev_splits = read_dataset(ev.dataset, spec.data_root)
            items = subsample_classes(ev_splits.test, ev.subset, range(len(ev_splits.classnames)))
            names = subset_classnames(ev_splits.classnames, ev.subset)
            t0 = time.perf_counter()
            acc, per_class = evaluate(method, items, names, ev_reader.template, backbone, device, caches,
                                      spec.config["eval"]["batch_size"], spec.config["train"]["precision"])  # fmt: skip
            results[key] = (acc, per_class, names, time.perf_counter() - t0, len(items),
                            digest(items_to_json(items, Path(spec.data_root))))  # fmt: skip
        acc, per_class, names, eval_s, n, test_hash = results[key]
        say(f"{spec.label}: {ev.protocol} {ev.dataset}/{ev.subset} accuracy {acc:.2f}")
        record = {
            "method": spec.method,
            "protocol": ev.protocol,
            "suite": spec.suite,
            "dataset": ev.dataset,
            "subset": ev.subset,
            "train_dataset": spec.train_dataset,
            "train_subset": spec.train_subset,
            "seed": spec.seed,
            "shots": spec.shots,
            "backbone": spec.backbone,
            "pretrained": spec.pretrained,
            "random_init": spec.pretrained == "none",
            "config_hash": spec.config_hash,
            "options": spec.options,
            "accuracy": acc,
            "per_class_accuracy": dict(zip(names, per_class)),
            "n_test": n,
            "n_train": len(train),
            "trainable_params": method.num_trainable(),
            "timing": {**{k: v for k, v in train_stats.items() if k.endswith("_s")}, "eval_s": eval_s},
            "train_steps": train_stats.get("steps", 0),
            "final_losses": train_stats.get("losses", {}),
            "method_info": ctx.info,
            "peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
            "split_hash": split_hash,
            "test_hash": test_hash,
            "config": spec.config,
            "versions": versions(),
            "git_revision": _git_revision(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        atomic_write_json(spec.record_path(ev), record)
        written += 1
    return written
