"""Configuration: one documented merge order, validated, hashed.

``BASE_CONFIG`` ← the method's ``default_config(protocol, dataset)`` ← the suite's overrides ← ``--cfg-options``.
Overrides use mmengine's ``key=value`` habit (``train.lr=0.01 method.n_ctx=8``); an unknown key or a value of the
wrong type is a :class:`~bench.errors.ConfigError`, never a silently ignored typo.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterable, Mapping
from typing import Any

from mmengine.config import Config

from bench.errors import ConfigError
from bench.io import digest

# The harness defaults every method starts from (Dassl's defaults as the CoOp family uses them).
BASE_CONFIG: dict[str, dict[str, Any]] = {
    "method": {},
    "train": {
        "optimizer": "sgd",  # sgd | adam | adamw
        "lr": 0.002,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "eps": 1e-8,  # adam / adamw only
        "epochs": 10,
        "min_steps": 0,  # >0: raise the epochs until one training takes at least this many steps (small datasets)
        "batch_size": 32,
        "scheduler": "cosine",  # cosine | constant
        "scheduler_step": "epoch",  # epoch (Dassl) | iter (Tip-Adapter-F)
        "warmup_epochs": 0,
        "warmup_lr": 1e-5,  # Dassl's constant warm-up learning rate
        "precision": "amp",  # amp (fp16 autocast on CUDA, fp32 on CPU) | bf16 | fp32
        "augment": "rrc_flip",  # rrc_flip: RandomResizedCrop(0.08-1) + flip, CoOp's train transform | randaugment | none
        "rrc_scale_min": 0.08,
        "fewshot_draw": "coop",  # coop: Dassl's draw for the run's seed (every method) | tip: Tip-Adapter's seed-1 draw
        "feature_passes": 10,  # frozen-image-encoder methods: augmented feature passes cached and cycled per epoch
        "num_workers": 4,
        "checkpoint_every": 0,  # save a resumable training state every N epochs (0: by time only)
        "checkpoint_minutes": 10.0,  # ... and every M minutes of training (0: by epochs only); SIGTERM saves at once
    },
    "eval": {"batch_size": 256},
}


def dassl_sgd(lr: float, epochs: int, batch_size: int, warmup_epochs: int = 1, **extra: Any) -> dict[str, Any]:
    """The ``train`` section of Dassl's recipe as the CoOp family configures it: SGD (momentum 0.9, weight decay 5e-4),
    cosine over epochs, ``warmup_epochs`` at the constant lr 1e-5; ``extra`` overrides any key."""
    return {"optimizer": "sgd", "lr": lr, "epochs": epochs, "batch_size": batch_size, "scheduler": "cosine",
            "warmup_epochs": warmup_epochs, "warmup_lr": 1e-5, "momentum": 0.9, "weight_decay": 5e-4, **extra}  # fmt: skip


# Keys that change speed, not results: left out of the config hash so they never split a sweep.
NON_RESULT_KEYS = {
    ("train", "num_workers"),
    ("eval", "batch_size"),
    ("train", "checkpoint_every"),
    ("train", "checkpoint_minutes"),
}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for k, v in override.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def parse_cfg_options(options: Iterable[str]) -> dict[str, Any]:
    """``["train.lr=0.01", "method.ctx_init=a photo of a"]`` → ``{"train.lr": 0.01, ...}`` (mmengine parsing)."""
    parsed: dict[str, Any] = {}
    for opt in options:
        key, sep, value = opt.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--cfg-options {opt!r} is not key=value (e.g. train.lr=0.01)")
        parsed[key.strip()] = _parse_value(value.strip())
    return parsed


def _parse_value(value: str) -> Any:
    """Python literals (``0.01``, ``[1, 2]``, ``'x'``), ``true``/``false``/``none`` in any case, else the string."""
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _coerce(key: str, old: Any, new: Any) -> Any:
    """Check ``new`` against the type of the default ``old``."""
    if old is None:
        return new
    if isinstance(old, str):  # a string option: `none` stays the word (RMAdapter's method.reconstruct=none)
        return new if isinstance(new, str) else "none" if new is None else str(new)
    if isinstance(old, bool):
        if isinstance(new, bool):
            return new
    elif isinstance(old, int):
        if isinstance(new, int) and not isinstance(new, bool):
            return new
    elif isinstance(old, float):
        if isinstance(new, (int, float)) and not isinstance(new, bool):
            return float(new)
    elif isinstance(old, (list, tuple)):
        if isinstance(new, (list, tuple)):
            return list(new)
        if isinstance(new, str):  # mmengine habit: a,b,c
            return [_parse_value(v.strip()) for v in new.split(",")]
    else:
        return new
    raise ConfigError(f"--cfg-options {key}={new!r}: expected a {type(old).__name__} like the default {old!r}")


def _parent(cfg: Mapping[str, Any], key: str) -> tuple[Any, str | None]:
    """(the section holding dotted ``key``, its last part), or (None, the first missing part)."""
    parts = key.split(".")
    node: Any = cfg
    for p in parts[:-1]:
        if not isinstance(node, dict) or p not in node:
            return None, p
        node = node[p]
    return (node, parts[-1]) if isinstance(node, dict) and parts[-1] in node else (None, None)


def has_option(cfg: Mapping[str, Any], key: str) -> bool:
    """Whether dotted ``key`` (``method.n_ctx``) exists in ``cfg``."""
    return _parent(cfg, key)[0] is not None


def apply_options(cfg: dict[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Apply dotted overrides to ``cfg``; every key must exist in the defaults."""
    for key, value in options.items():
        node, leaf = _parent(cfg, key)
        if node is None:
            where = f" {leaf!r}" if leaf else ""
            raise ConfigError(f"--cfg-options {key}: unknown key{where}; valid: {_valid_keys(cfg)}")
        node[leaf] = _coerce(key, node[leaf], value)
    # mmengine's Config checks the result is a plain, serialisable config tree
    return Config(cfg).to_dict()


# Bounds that every method's training config must satisfy: key -> (minimum, what it means).
_MINIMA = {"epochs": (0, "training epochs"), "batch_size": (1, "images per step"), "lr": (0, "the learning rate"),
           "feature_passes": (1, "augmented feature passes"), "checkpoint_every": (0, "epochs between checkpoints"),
           "checkpoint_minutes": (0, "minutes between checkpoints")}  # fmt: skip


_CHOICES = {"optimizer": ("sgd", "adam", "adamw"), "scheduler": ("cosine", "constant"), "scheduler_step": ("epoch", "iter"),
            "precision": ("amp", "bf16", "fp32"), "augment": ("rrc_flip", "randaugment", "none"),
            "fewshot_draw": ("coop", "tip")}  # fmt: skip


def validate(cfg: Mapping[str, Any]) -> None:
    """Reject values no training can use (negative epochs, a zero batch, an unknown optimizer) before any run starts."""
    for key, allowed in _CHOICES.items():
        value = cfg.get("train", {}).get(key)
        if value is not None and value not in allowed:
            raise ConfigError(f"train.{key}={value!r}: use one of {', '.join(allowed)}")
    for key, (low, what) in _MINIMA.items():
        value = cfg.get("train", {}).get(key)
        if value is not None and value < low:
            raise ConfigError(f"train.{key}={value}: {what} must be at least {low}")
    if cfg.get("eval", {}).get("batch_size", 1) < 1:
        raise ConfigError(f"eval.batch_size={cfg['eval']['batch_size']}: must be at least 1")


def _valid_keys(cfg: Mapping[str, Any], prefix: str = "") -> str:
    keys = []
    for k, v in cfg.items():
        if isinstance(v, Mapping) and v:
            keys.append(_valid_keys(v, f"{prefix}{k}."))
        else:
            keys.append(f"{prefix}{k}")
    return ", ".join(keys)


# Keys added after results existed, with the value that reproduces the earlier behaviour: left out of the hash at
# that value, so upgrading never re-runs a finished sweep whose results it would not change (other values are hashed).
HASH_NEUTRAL = {
    ("train", "fewshot_draw"): "coop",
    ("train", "min_steps"): 0,
    ("method", "own_template"): True,  # zero-shot / Tip ensembles (False on ImageNet changes results: hashed)
    ("method", "shared_layer"): True,  # RMAdapter
    ("method", "rec_target"): "input",
    ("method", "rec_reduction"): "mean",
    ("method", "con_image_target"): "augmented",
    ("world", "data_version"): "4",  # the toy world every record was made in before data versions were hashed
}


def config_hash(method: str, cfg: Mapping[str, Any], data_version: str | None = None) -> str:
    """A short hash of everything in the config that can change results, and of a generated world's ``data_version``
    (so a new toy world never counts the old world's records as done)."""
    slim = copy.deepcopy(dict(cfg))
    if data_version is not None:
        slim["world"] = {"data_version": data_version}
    for section, key in NON_RESULT_KEYS:
        slim.get(section, {}).pop(key, None)
    for (section, key), neutral in HASH_NEUTRAL.items():
        if key in slim.get(section, {}) and slim[section][key] == neutral:
            del slim[section][key]
    if slim.get("world") == {}:
        del slim["world"]
    return digest({"method": method, "config": slim})[:8]
