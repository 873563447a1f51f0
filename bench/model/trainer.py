"""The training loop shared by every method: optimiser, Dassl's schedule, mixed precision, NaN guard.

Deep methods see augmented images decoded each epoch; methods with a frozen image encoder see cached features of
augmented passes (pass ``epoch % feature_passes``), which gives the same augmentation statistics at a fraction of
the cost.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from bench.data.caches import ImageDataset, Normalizer, autocast, train_transform
from bench.errors import BenchError
from bench.model.device import loader_options
from bench.model.method import Batch, Method

if TYPE_CHECKING:
    from bench.model.context import FitContext


def seed_everything(seed: int) -> None:
    """Seed ``random``, ``numpy`` and ``torch`` (Dassl's ``set_random_seed``)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_optimizer(params: list[torch.nn.Parameter], cfg: dict[str, Any]) -> torch.optim.Optimizer:
    name = cfg["optimizer"]
    if name == "sgd":
        return torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
    if name == "adam":  # Dassl's adam: torch's Adam with L2 weight decay (TCP)
        return torch.optim.Adam(params, lr=cfg["lr"], eps=cfg["eps"], weight_decay=cfg["weight_decay"])
    if name == "adamw":
        return torch.optim.AdamW(params, lr=cfg["lr"], eps=cfg["eps"], weight_decay=cfg.get("adamw_weight_decay", 0.01))
    raise BenchError(f"unknown optimizer {name!r} (train.optimizer); use sgd, adam or adamw")


def lr_factor(step: int, total: int, warmup: int, warmup_lr: float, base_lr: float, kind: str) -> float:
    """Dassl's ``ConstantWarmupScheduler`` around ``CosineAnnealingLR(T_max=total)``.

    During the ``warmup`` steps the lr is the constant ``warmup_lr``; afterwards cosine restarts from the base lr at
    step ``warmup`` and would reach 0 at ``warmup + total`` (so the last epoch's lr is not 0, as in Dassl).
    """
    if step < warmup:
        return warmup_lr / base_lr if base_lr else 0.0  # lr 0 (a frozen-run control) stays 0 through warm-up
    if kind == "constant":
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / total))


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Dassl's ``drop_last`` rule: full batches only, or one (short) batch when the set is smaller than a batch."""
    return n_train // batch_size if n_train >= batch_size else 1


def resolve_schedule(cfg: dict[str, Any], n_train: int) -> dict[str, Any]:
    """``cfg`` (a run's whole config) with ``train.epochs`` raised so that one training takes at least
    ``train.min_steps`` optimiser steps (0: the paper's epochs, unchanged).

    Why: the papers' epochs assume real datasets (5–500 base classes, 80–8,000 images); on a dataset with a handful of
    classes a 5-epoch method takes 15–50 steps, which on the real benchmark happens only on EuroSAT.
    """
    train = cfg["train"]
    min_steps, epochs = train.get("min_steps", 0), train["epochs"]
    if not min_steps or epochs <= 0:
        return cfg
    needed = math.ceil(min_steps / steps_per_epoch(n_train, train["batch_size"]))
    return cfg if needed <= epochs else {**cfg, "train": {**train, "epochs": needed}}


def fit(
    method: Method, ctx: FitContext, cfg: dict[str, Any], on_epoch: Callable[[int, float], None] | None = None
) -> dict:
    """Train ``method`` on ``ctx.train`` with ``cfg`` (the ``train`` section); returns timing and the last losses."""
    device = ctx.device
    params = method.trainable_parameters()
    epochs = cfg["epochs"]
    stats: dict[str, Any] = {"epochs": epochs, "steps": 0, "train_s": 0.0, "losses": {}}
    if not params or epochs <= 0:
        return stats
    opt = build_optimizer(params, cfg)
    batches = _batches(method, ctx, cfg)
    per_epoch = batches.steps_per_epoch  # >= 1 by Dassl's rule
    per_iter = cfg["scheduler_step"] == "iter"
    total = epochs * per_epoch if per_iter else epochs
    warmup = cfg["warmup_epochs"] * (per_epoch if per_iter else 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total, warmup, cfg["warmup_lr"], cfg["lr"], cfg["scheduler"])
    )
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda" and cfg["precision"] == "amp")
    method.train()
    t0 = time.perf_counter()
    for epoch in range(epochs):
        loss_sum = torch.zeros((), device=device)  # summed on device: no host sync per step
        terms: dict[str, Tensor] = {}
        n = 0
        for batch in batches.epoch(epoch):
            with autocast(device, cfg["precision"]):
                terms = method.loss(batch)
                loss = sum(terms.values())
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if per_iter:
                sched.step()
            loss_sum += loss.detach().float()
            n += 1
        if not per_iter:
            sched.step()
        mean_loss = (loss_sum / max(n, 1)).item()
        if not math.isfinite(mean_loss):
            raise BenchError(
                f"{method.name}: loss became {mean_loss} in epoch {epoch + 1} on {ctx.dataset}; lower the learning "
                f"rate (--cfg-options train.lr=...) or use train.precision=fp32"
            )
        stats["losses"] = {k: float(v.detach()) for k, v in terms.items()}
        stats["steps"] += n
        method.after_epoch(ctx, epoch)
        if on_epoch:
            on_epoch(epoch, mean_loss)
        method.train()
    stats["train_s"] = time.perf_counter() - t0
    stats["s_per_epoch"] = stats["train_s"] / epochs
    return stats


class _batches:
    """Per-epoch batches of images or cached features, with Dassl's shuffling and ``drop_last`` rule."""

    def __init__(self, method: Method, ctx: FitContext, cfg: dict[str, Any]) -> None:
        self.method, self.ctx, self.cfg = method, ctx, cfg
        self.bs = cfg["batch_size"]
        n = len(ctx.train)
        self.drop_last = n >= self.bs  # Dassl: drop the last batch only when there is more than one
        self.steps_per_epoch = steps_per_epoch(n, self.bs)
        self.gen = torch.Generator().manual_seed(ctx.seed)
        if method.frozen_image_encoder:
            augment = None if cfg["augment"] == "none" else cfg["augment"]
            self.features = ctx.features(ctx.train, augment, cfg["feature_passes"], cfg["rrc_scale_min"])
            self.labels = torch.tensor([d.label for d in ctx.train])
        else:
            tf = train_transform(ctx.backbone.image_size, cfg["augment"], cfg["rrc_scale_min"])
            self.loader = DataLoader(
                # train.views (only in the configs of methods that use a second view, e.g. CoPrompt; absent = 1,
                # so adding it changed no other method's config hash)
                ImageDataset(ctx.train, tf, cfg.get("views", 1)),
                batch_size=self.bs,
                shuffle=True,
                drop_last=self.drop_last,
                generator=self.gen,
                **loader_options(ctx.device, cfg["num_workers"]),
            )
            self.norm = Normalizer(ctx.backbone, ctx.device)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        device = self.ctx.device
        if self.method.frozen_image_encoder:
            feats = self.features[epoch % len(self.features)]
            order = torch.randperm(len(feats), generator=self.gen)
            stop = self.steps_per_epoch * self.bs if self.drop_last else len(order)
            for i in range(0, stop, self.bs):
                idx = order[i : i + self.bs]
                yield Batch(labels=self.labels[idx].to(device), features=feats[idx].to(device), index=idx)
        else:
            for images, labels, index in self.loader:
                labels = labels.to(device, non_blocking=True)
                if images.dim() == 5:  # (B, views, C, H, W)
                    yield Batch(labels, self.norm(images[:, 0]), images2=self.norm(images[:, 1]), index=index)
                else:
                    yield Batch(labels=labels, images=self.norm(images), index=index)
