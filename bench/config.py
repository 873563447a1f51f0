"""Configuration: one documented merge order, validated, hashed.

``BASE_CONFIG`` ← the method's ``default_config(protocol, dataset)`` ← the suite's overrides ← ``--config FILE``
(mmengine ``Config.fromfile``: YAML, JSON or Python, ``_base_`` allowed) ← ``--cfg-options``. Overrides use mmengine's
``key=value`` habit (``train.lr=0.01 method.n_ctx=8``) and are merged by mmengine's ``Config.merge_from_dict``; an
unknown key or a value of the wrong type is a :class:`~bench.errors.ConfigError`, never a silently ignored typo.
"""

from __future__ import annotations

import ast
import copy
import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import mmengine
from mmengine.config import Config, DictAction

from bench.errors import ConfigError
from bench.io import digest
from bench.precision import PRECISIONS
from bench.registry import get_method

# The harness defaults every method starts from (Dassl's defaults as the CoOp family uses them).
BASE_CONFIG: dict[str, dict[str, Any]] = {
    "method": {},
    "train": {
        "optimizer": "sgd",  # sgd | adam | adamw
        "lr": 0.002,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "eps": 1e-8,  # adam / adamw only
        "adamw_weight_decay": 0.01,  # adamw only: PyTorch's default (Tip-Adapter-F); `weight_decay` is the L2 of sgd/adam
        "epochs": 10,
        "min_steps": 0,  # >0: raise the epochs until one training takes at least this many steps (small datasets)
        "batch_size": 32,
        "scheduler": "cosine",  # cosine | constant
        "scheduler_step": "epoch",  # epoch (Dassl) | iter (Tip-Adapter-F)
        "warmup_epochs": 0,
        "warmup_lr": 1e-5,  # Dassl's constant warm-up learning rate
        "precision": "amp",  # amp (fp16 autocast on CUDA, fp32 on CPU) | bf16 | fp16 (official PREC fp16) | fp32
        "augment": "rrc_flip",  # rrc_flip: RandomResizedCrop(0.08-1) + flip, CoOp's train transform | randaugment | none
        "rrc_scale_min": 0.08,
        "views": 1,  # augmented views of each training image per step (2: CoPrompt's second view, ``Batch.images2``)
        "fewshot_draw": "coop",  # coop: Dassl's draw for the run's seed (every method) | tip: Tip-Adapter's seed-1 draw
        # frozen-image-encoder methods train on cached features of augmented passes: 0 = a fresh pass every epoch (the
        # official loaders' fresh crop and flip per epoch; each pass is cached once and shared by every method and run
        # that asks for it); N = N passes cycled (N times fewer image-encoder passes; not the official statistics)
        "feature_passes": 0,
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
    """Python literals (``0.01``, ``[1, 2]``, ``'x'``), ``true``/``false``/``none`` in any case, else the string.

    Not mmengine's ``DictAction`` for single values: it deletes every space (``method.ctx_init=a photo of a`` would
    become ``aphotoofa``) and reads only ``None``; list values use it (see :func:`_coerce`)."""
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _coerce(key: str, old: Any, new: Any, origin: str = "--cfg-options") -> Any:
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
        if isinstance(new, str):  # mmengine's list forms: a,b,c  [a,b]  (a,b)
            try:
                parsed = DictAction._parse_iterable(new)
            except AssertionError:  # its check of balanced brackets
                raise ConfigError(f"{origin} {key}={new!r}: unbalanced brackets; e.g. [1,2] or 1,2") from None
            return list(parsed) if isinstance(parsed, (list, tuple)) else [parsed]
    else:
        return new
    raise ConfigError(f"{origin} {key}={new!r}: expected a {type(old).__name__} like the default {old!r}")


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


def apply_options(
    cfg: dict[str, Any], options: Mapping[str, Any], origins: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Apply dotted overrides to ``cfg``; every key must exist in the defaults and keep its type. ``origins`` names
    where a key came from in the error (``--config FILE``; default ``--cfg-options``)."""
    checked = {}
    for key, value in options.items():
        origin = (origins or {}).get(key, "--cfg-options")
        node, leaf = _parent(cfg, key)
        if node is None:
            where = f" {leaf!r}" if leaf else ""
            raise ConfigError(f"{origin} {key}: unknown key{where}; valid: {_valid_keys(cfg)}")
        checked[key] = _coerce(key, node[leaf], value, origin)
    merged = Config(copy.deepcopy(cfg))
    merged.merge_from_dict(checked)  # mmengine's merge of dotted keys (its Config also checks the tree is plain data)
    return merged.to_dict()


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A config file (``.yaml``/``.json``/``.py``, mmengine's ``_base_`` inheritance resolved) as dotted overrides.

    Its keys get the same checks as ``--cfg-options`` (unknown key, wrong type) when a run's config is resolved."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file; pass a YAML file such as `bench config show` prints")
    try:
        tree = Config.fromfile(str(path)).to_dict()
    except Exception as e:  # YAML syntax, a missing _base_, a Python config that raises: all one line
        reason = " ".join(str(e).split())[:300] or type(e).__name__
        raise ConfigError(f"--config {path}: cannot read it ({reason}); fix the file (YAML, JSON or Python)") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"--config {path}: expected sections like `train:` and `method:` at the top level")
    return flatten(tree)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.01}}`` → ``{"train.lr": 0.01}`` (an empty section adds nothing)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def to_yaml(cfg: Mapping[str, Any]) -> str:
    """The config as YAML in its own key order (mmengine's dump), the form ``--config FILE`` reads back."""
    return mmengine.dump(dict(cfg), file_format="yaml", sort_keys=False)


class Range(NamedTuple):
    """The values a numeric key may take: ``low`` (inclusive; exclusive with ``open_low``) to ``high`` (inclusive)."""

    low: float
    high: float | None = None
    what: str = ""
    open_low: bool = False

    def check(self, key: str, value: float) -> None:
        too_low = value <= self.low if self.open_low else value < self.low
        if too_low or (self.high is not None and value > self.high):
            bound = f"{'above' if self.open_low else 'at least'} {self.low:g}"
            bound += f" and at most {self.high:g}" if self.high is not None else ""
            what = f"{self.what} must be" if self.what else "must be"
            raise ConfigError(f"{key}={value}: {what} {bound}")


# The ranges of the harness's numeric keys (the defaults are in BASE_CONFIG). A method declares its own keys' ranges in
# ``Method.option_ranges``; any other number must be finite and not negative (every numeric option here is a count,
# rate, weight or scale).
RANGES: dict[str, Range] = {
    "train.lr": Range(0, what="the learning rate"),
    "train.momentum": Range(0, 1, "SGD momentum"),
    "train.weight_decay": Range(0, what="weight decay"),
    "train.adamw_weight_decay": Range(0, what="AdamW weight decay"),
    "train.eps": Range(0, what="the optimiser's eps", open_low=True),
    "train.epochs": Range(0, what="training epochs"),
    "train.min_steps": Range(0, what="the step floor"),
    "train.batch_size": Range(1, what="images per step"),
    "train.warmup_epochs": Range(0, what="warm-up epochs"),
    "train.warmup_lr": Range(0, what="the warm-up learning rate"),
    "train.rrc_scale_min": Range(0, 1, "RandomResizedCrop's smallest area fraction", open_low=True),
    "train.feature_passes": Range(0, what="augmented feature passes (0: one per epoch)"),
    "train.views": Range(1, 2, "augmented views per image"),
    "train.num_workers": Range(0, what="data-loading workers"),
    "train.checkpoint_every": Range(0, what="epochs between checkpoints"),
    "train.checkpoint_minutes": Range(0, what="minutes between checkpoints"),
    "eval.batch_size": Range(1, what="images per evaluation batch"),
}

_CHOICES = {"optimizer": ("sgd", "adam", "adamw"), "scheduler": ("cosine", "constant"), "scheduler_step": ("epoch", "iter"),
            "precision": PRECISIONS, "augment": ("rrc_flip", "randaugment", "none"),
            "fewshot_draw": ("coop", "tip")}  # fmt: skip


def validate(cfg: Mapping[str, Any], ranges: Mapping[str, Range] | None = None) -> None:
    """Reject values no training can use (a NaN, negative epochs, a zero batch, an unknown optimizer) before any run
    starts: the harness's :data:`RANGES`, the method's own ``ranges`` (``method.<key>``), and every other number
    finite and not negative."""
    for key, allowed in _CHOICES.items():
        value = cfg.get("train", {}).get(key)
        if value is not None and value not in allowed:
            raise ConfigError(f"train.{key}={value!r}: use one of {', '.join(allowed)}")
    declared = {**RANGES, **{f"method.{k}": r for k, r in (ranges or {}).items()}}
    for key, value in _numbers(cfg):
        if not math.isfinite(value):
            raise ConfigError(f"{key}={value}: must be a finite number")
        (declared.get(key.partition("[")[0]) or Range(0)).check(key, value)


def _numbers(node: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    """(dotted key, value) of every number in a config tree; list items as ``key[i]``."""
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield from _numbers(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from _numbers(v, f"{prefix}[{i}]")
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield prefix, node


def _valid_keys(cfg: Mapping[str, Any], prefix: str = "") -> str:
    keys = []
    for k, v in cfg.items():
        if isinstance(v, Mapping) and v:
            keys.append(_valid_keys(v, f"{prefix}{k}."))
        else:
            keys.append(f"{prefix}{k}")
    return ", ".join(keys)


# Harness keys added after results existed, with the value that reproduces the earlier behaviour: left out of the hash
# at that value, so upgrading never re-runs a finished sweep whose results it would not change (other values are
# hashed). A method declares its own such keys in ``Method.hash_neutral``.
HASH_NEUTRAL: dict[tuple[str, str], Any] = {
    ("train", "fewshot_draw"): "coop",
    ("train", "min_steps"): 0,
    ("train", "views"): 1,
    ("world", "data_version"): "4",  # the toy world every record was made in before data versions were hashed
}


def config_hash(method: str, cfg: Mapping[str, Any], data_version: str | None = None) -> str:
    """A short hash of everything in the config that can change results, and of a generated world's ``data_version``
    (so a new toy world never counts the old world's records as done)."""
    slim = copy.deepcopy(dict(cfg))
    cls = get_method(method)
    train = slim.get("train", {})
    if "feature_passes" in train and not cls.trains_on_augmented_features(cfg["train"]):
        # hashed at its old default where it cannot matter (deep methods, no augmentation: the toy suite), so that
        # making fresh augmentation the default re-ran only the runs it changes
        train["feature_passes"] = 10
    if train.get("optimizer") != "adamw":
        train.pop("adamw_weight_decay", None)  # read by AdamW only (and hashed where it always was: Tip-Adapter-F)
    if data_version is not None:
        slim["world"] = {"data_version": data_version}
    for section, key in NON_RESULT_KEYS:
        slim.get(section, {}).pop(key, None)
    for (section, key), neutral in {**HASH_NEUTRAL, **cls.hash_neutral}.items():
        if key in slim.get(section, {}) and slim[section][key] == neutral:
            del slim[section][key]
    if slim.get("world") == {}:
        del slim["world"]
    return digest({"method": method, "config": slim})[:8]
