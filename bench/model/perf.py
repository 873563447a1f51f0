"""`bench perf`: images/s of training steps and evaluation per method, and the harness's overhead.

The bare loop calls ``method.loss`` / backward / step on one resident batch; the harness loop is :func:`bench.model.trainer.fit`
on real image files (decode, augmentation, normalisation included). The gap between them is what the harness costs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.config import BASE_CONFIG, deep_merge
from bench.data.caches import Caches, autocast
from bench.datasets.base import Datum
from bench.model.backbone import get_backbone
from bench.model.context import FitContext, evaluate
from bench.model.method import Batch, Method
from bench.model.trainer import build_optimizer, fit
from bench.registry import get_method


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _fake_items(folder: Path, n: int, n_cls: int, size: int) -> list[Datum]:
    rng = np.random.default_rng(0)
    items = []
    for i in range(n):
        path = folder / f"{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path, quality=90)
        items.append(Datum(str(path), i % n_cls, f"class {i % n_cls}"))
    return items


def measure(
    method_name: str, arch: str, pretrained: str, device: str, batch_size: int, steps: int, n_cls: int = 10
) -> dict[str, float]:
    """Train and eval throughput (images/s) of one method; bare vs harness training."""
    dev = torch.device(device)
    backbone = get_backbone(arch, pretrained, dev)
    cls = get_method(method_name)
    # a dataset no method has settings for: generic defaults, no per-dataset files (CoPrompt's descriptions)
    cfg = deep_merge(BASE_CONFIG, cls.default_config("base2novel", "perf"))
    cfg["train"].update(batch_size=batch_size, epochs=1, feature_passes=1)
    method: Method = cls(backbone, cfg, n_cls=n_cls).to(dev)
    names = [f"class {i}" for i in range(n_cls)]
    method.set_classnames(names)
    size = backbone.image_size
    images = torch.randn(batch_size, 3, size, size, device=dev)
    labels = torch.arange(batch_size, device=dev) % n_cls
    out: dict[str, float] = {"trainable_params": float(method.num_trainable())}
    with tempfile.TemporaryDirectory() as tmp:
        items = _fake_items(Path(tmp), batch_size * steps, n_cls, max(size, 256))
        caches = Caches(Path(tmp) / "cache", num_workers=cfg["train"]["num_workers"] if dev.type == "cuda" else 0)
        ctx = FitContext(backbone, dev, "perf", items, items[:batch_size], names, "a photo of a {}.", 0, caches)
        if method.trains and method.trainable_parameters():
            opt = build_optimizer(method.trainable_parameters(), cfg["train"])
            method.train()
            feats = backbone.encode_image(images).detach() if method.frozen_image_encoder else None
            batch = Batch(labels=labels, images=None if feats is not None else images, features=feats)
            for i in range(steps + 2):  # two warm-up steps
                if i == 2:
                    _sync(dev)
                    t0 = time.perf_counter()
                with autocast(dev, cfg["train"]["precision"]):
                    loss = sum(method.loss(batch).values())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            _sync(dev)
            out["train_bare_img_s"] = steps * batch_size / (time.perf_counter() - t0)
            method.before_training(ctx)
            stats = fit(method, ctx, cfg["train"])
            out["train_harness_img_s"] = len(items) / stats["train_s"]
            out["harness_overhead_pct"] = 100 * (out["train_bare_img_s"] / out["train_harness_img_s"] - 1)
        caches.images(items, size)  # decode once, as a real sweep does before evaluating
        if method.frozen_image_encoder:
            caches.features(backbone, items, dev)
        _sync(dev)
        t0 = time.perf_counter()
        evaluate(method, items, names, "a photo of a {}.", backbone, dev, caches, 256, cfg["train"]["precision"])
        _sync(dev)
        out["eval_img_s"] = len(items) / (time.perf_counter() - t0)
    return out
