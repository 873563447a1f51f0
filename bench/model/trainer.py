"""The training loop shared by every method: optimiser, Dassl's schedule, mixed precision, NaN guard, resume.

Deep methods see augmented images decoded each epoch (``train.augment=none``: the test-preprocessed images, decoded
once into the image store); methods with a frozen image encoder see cached features of augmented passes: by default a
fresh pass every epoch, the official loaders' statistics (each pass is encoded once and cached, so every method and
run of the same draw and seed shares it); ``train.feature_passes=N`` cycles N passes (pass ``epoch % N``) for N times
fewer image-encoder passes.

Resume: every ``checkpoint_every`` epochs or ``checkpoint_minutes`` minutes (and on a stop request, at the next step
boundary) the loop saves everything the rest of the training depends on — learnable state, optimiser, scheduler,
GradScaler, the method's own between-epoch state and every RNG — so a run continued from it ends bit-for-bit where an
uninterrupted one would.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from bench.data.caches import ImageDataset, Normalizer, StoredImages, train_transform
from bench.errors import BenchError, Preempted
from bench.io import atomic_write
from bench.model.device import loader_options
from bench.model.method import Batch, Method
from bench.precision import Precision

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
        return torch.optim.AdamW(params, lr=cfg["lr"], eps=cfg["eps"], weight_decay=cfg["adamw_weight_decay"])
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
    min_steps, epochs = train["min_steps"], train["epochs"]
    if not min_steps or epochs <= 0:
        return cfg
    needed = math.ceil(min_steps / steps_per_epoch(n_train, train["batch_size"]))
    return cfg if needed <= epochs else {**cfg, "train": {**train, "epochs": needed}}


def cast_learned(method: Method, dtype: torch.dtype) -> None:
    """The method's own floating parameters and buffers, never the backbone's, in ``dtype``: the official fp16 mode
    keeps the learned tensors (CoOp's context, MaPLe's shallow prompt and its projection, TCP's meta-net) in half and
    updates them in half — except those the method lists in ``float32_learned`` (MaPLe's deep prompts and their
    projections, created in float32 after CLIP's convert_weights and never cast: trainers/maple.py)."""
    if dtype == torch.float32:
        return
    keep = ("backbone.", *method.float32_learned)
    for name, t in [*method.named_parameters(), *method.named_buffers()]:
        if t.is_floating_point() and not name.startswith(keep):
            t.data = t.data.to(dtype)


@dataclass
class Checkpointing:
    """Where and when :func:`fit` saves its resumable state (``path``), and how a stop request (SIGTERM) reaches it."""

    path: Path
    every_epochs: int = 0  # 0: by time only
    every_minutes: float = 0.0  # 0: by epochs only
    stop_requested: Callable[[], bool] = field(default=lambda: False)
    # called as the first step starts: from then on a stop request waits for the next step boundary (before, e.g. while
    # features are cached, there is nothing to save and the requester may stop at once)
    on_steps: Callable[[], None] = field(default=lambda: None)


def fit(
    method: Method,
    ctx: FitContext,
    cfg: dict[str, Any],
    on_epoch: Callable[[int, float], None] | None = None,
    checkpoint: Checkpointing | None = None,
    on_metrics: Callable[[dict[str, Any]], None] | None = None,
) -> dict:
    """Train ``method`` on ``ctx.train`` with ``cfg`` (the ``train`` section); returns timing and the last losses.

    With ``checkpoint``, a saved state at ``checkpoint.path`` is resumed first, and a stop request saves the state at
    the next step boundary and raises :class:`~bench.errors.Preempted`. ``on_metrics`` gets one row per epoch (mean of
    every loss term, lr, grad norm, elapsed seconds).
    """
    device = ctx.device
    # the method first: loading may re-create its parameters (Tip-Adapter-F), so the optimiser is built after
    saved = load_method_state(checkpoint.path, method, ctx) if checkpoint and checkpoint.path.exists() else None
    params = method.trainable_parameters()
    epochs = cfg["epochs"]
    stats: dict[str, Any] = {"epochs": epochs, "steps": 0, "train_s": 0.0, "losses": {}}
    if not params or epochs <= 0:
        return stats
    precision = Precision(cfg["precision"], device.type)
    cast_learned(method, precision.weights_dtype)  # again: before_training may have made parameters (Tip-F's keys)
    opt = build_optimizer(params, cfg)
    batches = _batches(method, ctx, cfg)
    per_epoch = batches.steps_per_epoch  # >= 1 by Dassl's rule
    per_iter = cfg["scheduler_step"] == "iter"
    total = epochs * per_epoch if per_iter else epochs
    warmup = cfg["warmup_epochs"] * (per_epoch if per_iter else 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total, warmup, cfg["warmup_lr"], cfg["lr"], cfg["scheduler"])
    )
    scaler = torch.amp.GradScaler(device.type, enabled=precision.loss_scaling)
    state = TrainState(method, ctx, opt, sched, scaler, batches)
    pos = state.restore(saved) if saved is not None else None
    if pos is not None:
        stats = pos.stats
    start_epoch = pos.epoch if pos is not None else 0
    method.train()
    t0 = time.perf_counter() - stats["train_s"]
    last_save = time.monotonic()
    if checkpoint is not None:
        checkpoint.on_steps()
    for epoch in range(start_epoch, epochs):
        resumed = pos is not None and pos.epoch == epoch
        sums = pos.sums if resumed else _EpochSums(device)
        terms: dict[str, Tensor] = {}
        if sums.n == 0:  # the epoch's (first step's) learning rate, for the metrics
            sums.lr = opt.param_groups[0]["lr"]
        for batch in batches.epoch(epoch, sums.n, pos.rng if resumed else None):
            with precision.autocast():
                terms = method.loss(batch)
                loss = sum(terms.values())
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)  # so the logged grad norm is the true one; step() does not unscale twice
            sums.add(loss, terms, params)
            scaler.step(opt)
            scaler.update()
            if per_iter:
                sched.step()
            stats["steps"] += 1
            if checkpoint is not None and sums.n < per_epoch and checkpoint.stop_requested():
                stats["train_s"] = time.perf_counter() - t0
                state.save(checkpoint.path, _Position(epoch, sums, stats))
                raise Preempted(f"stopped in epoch {epoch + 1}/{epochs} after step {sums.n}/{per_epoch}; state saved")
        if not per_iter:
            sched.step()
        mean_loss = (sums.loss / max(sums.n, 1)).item()
        if not math.isfinite(mean_loss):
            raise BenchError(
                f"{method.name}: loss became {mean_loss} in epoch {epoch + 1} on {ctx.dataset}; lower the learning "
                f"rate (--cfg-options train.lr=...) or use train.precision=fp32"
            )
        stats["losses"] = {k: float(v.detach()) for k, v in terms.items()}
        method.after_epoch(ctx, epoch)
        if on_epoch:
            on_epoch(epoch, mean_loss)
        if on_metrics:
            on_metrics(sums.row(epoch, stats["steps"], time.perf_counter() - t0))
        method.train()
        if checkpoint is not None and epoch + 1 < epochs and _due(checkpoint, epoch, last_save):
            stats["train_s"] = time.perf_counter() - t0
            state.save(checkpoint.path, _Position(epoch + 1, _EpochSums(device), stats))
            last_save = time.monotonic()
            if checkpoint.stop_requested():
                raise Preempted(f"stopped after epoch {epoch + 1}/{epochs}; state saved")
    stats["train_s"] = time.perf_counter() - t0
    stats["s_per_epoch"] = stats["train_s"] / epochs
    return stats


def _due(checkpoint: Checkpointing, epoch: int, last_save: float) -> bool:
    """Whether the epoch just finished should be checkpointed (its number, the clock, or a stop request)."""
    by_epoch = checkpoint.every_epochs > 0 and (epoch + 1) % checkpoint.every_epochs == 0
    by_time = checkpoint.every_minutes > 0 and time.monotonic() - last_save >= 60 * checkpoint.every_minutes
    return by_epoch or by_time or checkpoint.stop_requested()


class _EpochSums:
    """One epoch's running sums, kept on the device (no host sync per step): loss, each term, grad norm, steps; and
    the lr its first step used."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), device=device)
        self.grad_norm = torch.zeros((), device=device)
        self.terms: dict[str, Tensor] = {}
        self.n = 0
        self.lr = 0.0

    def add(self, loss: Tensor, terms: dict[str, Tensor], params: list[torch.nn.Parameter]) -> None:
        self.loss += loss.detach().float()
        for k, v in terms.items():
            self.terms[k] = self.terms.get(k, torch.zeros_like(self.loss)) + v.detach().float()
        grads = [p.grad for p in params if p.grad is not None]
        if grads:
            self.grad_norm += torch.nn.utils.get_total_norm(grads).float()
        self.n += 1

    def row(self, epoch: int, step: int, elapsed: float) -> dict[str, Any]:
        n = max(self.n, 1)
        return {"epoch": epoch + 1, "step": step, "loss": (self.loss / n).item(),
                **{f"loss/{k}": (v / n).item() for k, v in self.terms.items()},
                "lr": self.lr, "grad_norm": (self.grad_norm / n).item(),
                "elapsed_s": round(elapsed, 3)}  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "grad_norm": self.grad_norm, "terms": self.terms, "n": self.n, "lr": self.lr}

    @classmethod
    def from_state(cls, state: dict[str, Any], device: torch.device) -> _EpochSums:
        sums = cls(device)
        sums.loss, sums.grad_norm, sums.n, sums.lr = state["loss"], state["grad_norm"], state["n"], state["lr"]
        sums.terms = dict(state["terms"])
        return sums


@dataclass
class _Position:
    """Where a saved training stands: the epoch to run next (``sums.n`` of its steps already done) and its stats."""

    epoch: int
    sums: _EpochSums
    stats: dict[str, Any]
    rng: dict[str, Any] | None = None  # the RNG states at the step boundary (set on load)


@dataclass
class TrainState:
    """Everything a training's future depends on, saved to and restored from one file."""

    method: Method
    ctx: FitContext
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    batches: _batches

    def save(self, path: Path, pos: _Position) -> None:
        state = {
            "version": 1,
            "epoch": pos.epoch,
            "sums": pos.sums.state_dict(),
            "stats": pos.stats,
            "method": self.method.learned_state_dict(),
            "training": self.method.training_state(),
            "info": self.ctx.info,
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": {
                **rng_state(),
                "trainer": self.batches.gen.get_state(),
                # mid-epoch: the shuffle is replayed from the epoch's start; at an epoch's end the next one starts here
                "epoch_start": self.batches.epoch_start_state if pos.sums.n else self.batches.gen.get_state(),
            },
        }
        atomic_write(path, lambda tmp: torch.save(state, tmp))

    def restore(self, saved: dict[str, Any]) -> _Position:
        """Restore the optimiser, scheduler and scaler from a saved state (the method is already restored)."""
        self.opt.load_state_dict(saved["optimizer"])  # moves the state to the parameters' device
        self.sched.load_state_dict(saved["scheduler"])
        self.scaler.load_state_dict(saved["scaler"])
        device = self.ctx.device
        sums = _EpochSums.from_state({k: _to(v, device) for k, v in saved["sums"].items()}, device)
        return _Position(saved["epoch"], sums, saved["stats"], saved["rng"])


def load_method_state(path: Path, method: Method, ctx: FitContext) -> dict[str, Any]:
    """Read a saved training state and restore the method's part of it; returns the rest for :meth:`TrainState.restore`.

    Tensors and plain values only (``weights_only``): a crafted file cannot run code.
    """
    saved = torch.load(path, map_location="cpu", weights_only=True)
    method.load_learned_state_dict(saved["method"])
    method.to(ctx.device)
    method.load_training_state(_to(saved["training"], ctx.device))
    ctx.info.update(saved["info"])
    return saved


def _to(value: Any, device: torch.device) -> Any:
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to(v, device) for v in value)
    return value


def rng_state() -> dict[str, Any]:
    """The global RNG states (``random``, numpy, torch CPU and CUDA) in a form ``torch.load(weights_only=True)`` reads."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tuples(state["python"]))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(value: Any) -> Any:
    """``random.setstate`` wants tuples all the way down; a saved state may come back with lists."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


_KEEP = 16  # passes held in memory at most (one ImageNet pass, 16k × 512 floats, is 32 MB)


class _batches:
    """Per-epoch batches of images or cached features, with Dassl's shuffling and ``drop_last`` rule."""

    def __init__(self, method: Method, ctx: FitContext, cfg: dict[str, Any]) -> None:
        self.method, self.ctx, self.cfg = method, ctx, cfg
        self.bs = cfg["batch_size"]
        n = len(ctx.train)
        self.drop_last = n >= self.bs  # Dassl: drop the last batch only when there is more than one
        self.steps_per_epoch = steps_per_epoch(n, self.bs)
        self.gen = torch.Generator().manual_seed(ctx.seed)
        self.epoch_start_state = self.gen.get_state()  # where the current epoch's shuffle began (for a mid-epoch save)
        if method.frozen_image_encoder:
            self.augment = None if cfg["augment"] == "none" else cfg["augment"]
            self.passes = (cfg["feature_passes"] or cfg["epochs"]) if self.augment else 1
            self.kept: dict[int, Tensor] = {}
            if self.passes <= _KEEP:  # a few passes stay in memory
                self.kept = dict(enumerate(ctx.features(ctx.train, self.augment, self.passes, cfg["rrc_scale_min"])))
            else:  # more are encoded (or found) now, before the first step, and read back when their epoch comes
                ctx.features(ctx.train, self.augment, self.passes, cfg["rrc_scale_min"], build_only=True)
            self.labels = torch.tensor([d.label for d in ctx.train])
        else:
            size = ctx.backbone.image_size
            if cfg["augment"] == "none":  # the same images every epoch: decoded once, shared by methods and seeds
                data: Dataset = StoredImages(ctx.caches.images(ctx.train, size), ctx.train, cfg["views"])
            else:
                tf = train_transform(size, cfg["augment"], cfg["rrc_scale_min"])
                data = ImageDataset(ctx.train, tf, cfg["views"])
            self.loader = DataLoader(
                data,
                batch_size=self.bs,
                shuffle=True,
                drop_last=self.drop_last,
                generator=self.gen,
                **loader_options(ctx.device, cfg["num_workers"]),
            )
            self.norm = Normalizer(ctx.backbone, ctx.device)

    def _pass(self, p: int) -> Tensor:
        if p not in self.kept:
            return self.ctx.features(self.ctx.train, self.augment, 1, self.cfg["rrc_scale_min"], first=p)[0]
        return self.kept[p]

    def epoch(self, epoch: int, skip: int = 0, rng: dict[str, Any] | None = None) -> Iterator[Batch]:
        """The batches of ``epoch``. With ``rng`` (a checkpoint's RNG states) the epoch's shuffle is replayed from its
        start, its first ``skip`` batches (done before the checkpoint) are drawn and dropped, and every RNG is set to
        the saved step boundary before the next batch is drawn."""
        if rng is not None:
            self.gen.set_state(rng["epoch_start"])
        self.epoch_start_state = self.gen.get_state()
        batches = self._epoch(epoch)
        if rng is not None:
            for _ in range(skip):
                next(batches)
            set_rng_state(rng)
            self.gen.set_state(rng["trainer"])
        yield from batches

    def _epoch(self, epoch: int) -> Iterator[Batch]:
        device = self.ctx.device
        if self.method.frozen_image_encoder:
            feats = self._pass(epoch % self.passes)
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
