"""`bench perf`: images/s of training steps and evaluation per method, and the harness's overhead.

The bare loop calls ``method.loss`` / backward / step on one resident batch; the harness loop is :func:`bench.model.trainer.fit`
on real image files (decode, augmentation, normalisation included). The gap between them is what the harness costs.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from bench.config import BASE_CONFIG, apply_options, deep_merge, has_option
from bench.data.caches import Caches
from bench.data.dataset import Datum
from bench.model.backbone import get_backbone
from bench.model.context import FitContext, evaluate
from bench.model.device import PeakMemory, loader_options, synchronize
from bench.model.method import Batch, Method
from bench.model.trainer import build_optimizer, cast_learned, fit
from bench.precision import Precision
from bench.progress import phase
from bench.registry import get_method


def _fake_items(folder: Path, n: int, n_cls: int, size: int) -> list[Datum]:
    rng = np.random.default_rng(0)
    items = []
    for i in range(n):
        path = folder / f"{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path, quality=90)
        items.append(Datum(str(path), i % n_cls, f"class {i % n_cls}"))
    return items


def saved_activation_bytes(step: Callable[[], Tensor]) -> int:
    """Bytes of the distinct tensors autograd keeps for the backward pass of ``step()``'s loss.

    What a training step holds beyond the weights, whatever the device: a like-for-like memory figure on a CPU,
    where no allocator reports a peak.
    """
    seen: dict[tuple[int, int], int] = {}

    def pack(t: Tensor) -> Tensor:
        if t.device.type != "meta" and t.numel():
            storage = t.untyped_storage()
            seen[(storage.data_ptr(), t.device.index or 0)] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = step()
    loss.backward()
    return sum(seen.values())


def method_options(method_name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The subset of dotted ``options`` that ``method_name``'s configuration has (``bench perf --cfg-options``)."""
    cfg = deep_merge(BASE_CONFIG, get_method(method_name).default_config("base2novel", "perf"))
    return {key: value for key, value in options.items() if has_option(cfg, key)}


def measure(
    method_name: str,
    arch: str,
    pretrained: str,
    device: str,
    batch_size: int,
    steps: int,
    n_cls: int = 10,
    options: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Train and eval throughput (images/s) of one method, bare vs harness training, and its saved activations."""
    dev = torch.device(device)
    peak = PeakMemory(dev)
    cls = get_method(method_name)
    # a dataset no method has settings for: generic defaults, no per-dataset files (CoPrompt's descriptions)
    cfg = apply_options(deep_merge(BASE_CONFIG, cls.default_config("base2novel", "perf")), options or {})
    cfg["train"].update(batch_size=batch_size, epochs=1, feature_passes=1)
    precision = Precision(cfg["train"]["precision"], dev.type)
    backbone = get_backbone(arch, pretrained, dev, half=precision.weights_dtype == torch.float16)
    method: Method = cls(backbone, cfg, n_cls=n_cls).to(dev)
    cast_learned(method, precision.weights_dtype)
    names = [f"class {i}" for i in range(n_cls)]
    method.set_classnames(names)
    size = backbone.image_size
    images = torch.randn(batch_size, 3, size, size, device=dev)
    labels = torch.arange(batch_size, device=dev) % n_cls
    out: dict[str, float] = {"trainable_params": float(method.num_trainable())}
    with tempfile.TemporaryDirectory() as tmp:
        with phase(f"{method_name}: writing {batch_size * steps} random test images"):
            items = _fake_items(Path(tmp), batch_size * steps, n_cls, max(size, 256))
        caches = Caches(Path(tmp) / "cache", loader_options(dev, cfg["train"]["num_workers"])["num_workers"])
        ctx = FitContext(backbone, dev, "perf", items, items[:batch_size], names, "a photo of a {}.", 0, caches)
        if method.trains and method.trainable_parameters():
            with phase(f"{method_name}: preparing training (caches, frozen targets)"):
                method.before_training(ctx)  # per-run state (caches, frozen targets) as in a real run, untimed
            cast_learned(method, precision.weights_dtype)
            opt = build_optimizer(method.trainable_parameters(), cfg["train"])
            method.train()
            feats = backbone.encode_image(images).detach() if method.frozen_image_encoder else None
            index = torch.arange(batch_size)  # the batch stands for the first items of ctx.train
            batch = Batch(labels=labels, images=None if feats is not None else images, features=feats, index=index)
            with precision.autocast():
                out["saved_mb"] = saved_activation_bytes(lambda: sum(method.loss(batch).values())) / 2**20
            opt.zero_grad(set_to_none=True)
            with phase(f"{method_name}: timing {steps} bare training steps (+2 warm-up) of {batch_size} images",
                       steps + 2) as done:  # fmt: skip
                for i in range(steps + 2):  # two warm-up steps
                    if i == 2:
                        synchronize(dev)
                        peak.reset()
                        t0 = time.perf_counter()
                    with precision.autocast():
                        loss = sum(method.loss(batch).values())
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    done(1)
                synchronize(dev)
            out["train_bare_img_s"] = steps * batch_size / (time.perf_counter() - t0)
            if (peak_mb := peak.mb()) is not None:  # the paper's memory figure: everything allocated, weights included
                out["peak_mb"] = peak_mb
            with phase(f"{method_name}: timing one epoch of {len(items)} images through the harness"):
                method.before_training(ctx)
                stats = fit(method, ctx, cfg["train"])
            out["train_harness_img_s"] = len(items) / stats["train_s"]
            out["harness_overhead_pct"] = 100 * (out["train_bare_img_s"] / out["train_harness_img_s"] - 1)
        caches.images(items, size)  # decode once, as a real sweep does before evaluating
        if method.frozen_image_encoder:
            caches.features(backbone, items, dev)
        synchronize(dev)
        t0 = time.perf_counter()
        with phase(f"{method_name}: timing the evaluation of {len(items)} images"):
            evaluate(method, items, names, "a photo of a {}.", backbone, dev, caches, 256, cfg["train"]["precision"])
            synchronize(dev)
        out["eval_img_s"] = len(items) / (time.perf_counter() - t0)
    return out
