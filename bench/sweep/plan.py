"""The run plan: method × protocol × dataset × seed × shots × backbone → RunSpecs (each protocol's trainings and
evaluations are its own: ``bench.sweep.protocols``).

A :class:`RunSpec` is one training (or none, for zero-shot) and the evaluations that use it. Cross-dataset and
domain-generalisation runs that share a training (same method, config, source, seed) are merged into one RunSpec,
so the ImageNet model is trained once per seed and evaluated on every target. A run is done when all its records
exist; planning skips done evaluations unless ``force``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.config import BASE_CONFIG, apply_options, config_hash, deep_merge, validate
from bench.errors import ConfigError
from bench.registry import get_method
from bench.sweep.layout import ResultsLayout
from bench.sweep.protocols import get_protocol
from bench.sweep.record import KEY, record_ok
from bench.sweep.suites import Suite


@dataclass(frozen=True)
class EvalSpec:
    protocol: str
    dataset: str
    subset: str  # all | base | novel


@dataclass
class RunSpec:
    """One training and its evaluations. Everything a worker needs; picklable for process pools and Slurm."""

    method: str
    suite: str
    train_dataset: str
    train_subset: str
    seed: int
    shots: int
    backbone: str
    pretrained: str
    config: dict[str, Any]
    config_hash: str
    evals: list[EvalSpec]
    data_root: str
    results: str
    options: dict[str, Any] = field(default_factory=dict)  # the user's --cfg-options: the variant name in reports
    plugins: list[str] = field(default_factory=list)  # imported by every worker before the run (extra methods)
    loggers: list[str] = field(default_factory=list)  # --logger: tensorboard / wandb mirrors of metrics.jsonl

    @property
    def backbone_tag(self) -> str:
        tag = Path(self.pretrained).stem if os.sep in self.pretrained else self.pretrained
        return re.sub(r"[^A-Za-z0-9._-]", "_", f"{self.backbone}__{tag}")

    @property
    def label(self) -> str:
        return f"{self.method} {self.train_dataset}/{self.train_subset} seed {self.seed} shots {self.shots}"

    @property
    def layout(self) -> ResultsLayout:
        return ResultsLayout(self.results)

    def record_path(self, ev: EvalSpec) -> Path:
        return self.layout.record(self, ev)

    def checkpoint_path(self) -> Path:
        return self.layout.checkpoint(self)

    def pending(self, heal: bool = True) -> list[EvalSpec]:
        """Evaluations without a record that loads (a damaged record is redone, not counted as done; ``heal`` moves
        it aside now, with a warning)."""
        return [ev for ev in self.evals if not record_ok(self.record_path(ev), heal)]

    def record_keys(self) -> list[dict[str, Any]]:
        """The record key (``record.KEY``) of each evaluation: what a plan file lists."""
        own = {"method": self.method, "config_hash": self.config_hash, "suite": self.suite, "seed": self.seed,
               "shots": self.shots, "backbone": self.backbone, "pretrained": self.pretrained}  # fmt: skip
        return [{k: {**own, "protocol": ev.protocol, "dataset": ev.dataset, "subset": ev.subset}[k] for k in KEY}
                for ev in self.evals]  # fmt: skip


def resolve_config(
    method: str, protocol: str, dataset: str, suite: Suite, options: dict[str, Any],
    origins: dict[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """BASE_CONFIG ← method defaults for (protocol, dataset) ← suite overrides ← ``--config`` / ``--cfg-options``
    (``options``; ``origins`` says which key came from a file, for the error message)."""
    cls = get_method(method)
    cfg = deep_merge(BASE_CONFIG, cls.default_config(protocol, suite.roles.get(dataset, dataset)))
    for key in suite.override_keys(method, protocol):
        cfg = deep_merge(cfg, suite.overrides.get(key, {}))
    cfg = apply_options(cfg, options, origins)
    validate(cfg, cls.option_ranges)
    return cfg


def plan(
    methods: list[str],
    protocols: list[str],
    suite: Suite,
    seeds: list[int],
    shots: list[int] | None,
    data_root: Path,
    results: Path,
    datasets: list[str] | None = None,
    backbone: str | None = None,
    pretrained: str | None = None,
    options: dict[str, Any] | None = None,
    origins: dict[str, str] | None = None,
) -> list[RunSpec]:
    """All RunSpecs of the sweep (done ones included; use :meth:`RunSpec.pending`)."""
    options = options or {}
    backbone = backbone or suite.backbone
    pretrained = pretrained or suite.pretrained
    suite = suite.with_datasets(datasets or ())  # a --plugin's own datasets join the suite's protocols

    runs: dict[tuple, RunSpec] = {}
    # a config depends on (method, protocol, training set) only: resolved once and shared (read-only) by every seed
    # and shot count, so planning stays linear and fast in the number of seeds
    resolved: dict[tuple[str, str, str], tuple[dict[str, Any], str, dict[str, Any]]] = {}

    def add(method: str, protocol: str, train: str, subset: str, seed: int, k: int, evals: list[EvalSpec]) -> None:
        if (method, protocol, train) not in resolved:
            cfg = resolve_config(method, protocol, train, suite, options, origins)
            variant = _variant(method, protocol, train, suite, options, origins, cfg)
            resolved[method, protocol, train] = (cfg, config_hash(method, cfg, suite.data_version), variant)
        cfg, h, variant = resolved[method, protocol, train]
        key = (method, h, train, subset, seed, k)
        if key in runs:
            runs[key].evals.extend(e for e in evals if e not in runs[key].evals)
        else:
            runs[key] = RunSpec(
                method, suite.name, train, subset, seed, k, backbone, pretrained, cfg, h, list(evals),
                str(data_root), str(results), variant,
            )  # fmt: skip

    for method in methods:
        for protocol in map(get_protocol, protocols):
            for seed in seeds:
                for t in protocol.trainings(suite, datasets):
                    evals = [EvalSpec(protocol.name, d, subset) for d, subset in t.evals]
                    for k in shots or protocol.shots:
                        add(method, protocol.name, t.dataset, t.subset, seed, k, evals)
    return list(runs.values())


def _variant(
    method: str, protocol: str, train: str, suite: Suite, options: dict[str, Any], origins: dict[str, str] | None,
    cfg: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """The options that name the variant in reports: every ``--cfg-options`` key, and the keys of a ``--config`` file
    that differ from the defaults (a file saved by ``bench config show`` holds every key)."""
    shown = _as_resolved(options, cfg)
    if not origins:
        return shown
    defaults = _as_resolved(options, resolve_config(method, protocol, train, suite, {}))
    return {k: v for k, v in shown.items() if k not in origins or defaults[k] != v}


def _as_resolved(options: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    """The user's options with the values the config took (``train.augment=none`` stays the word, not ``None``)."""
    out = {}
    for key, value in options.items():
        node: Any = cfg
        for part in key.split("."):
            node = node.get(part, value) if isinstance(node, dict) else value
        out[key] = node
    return out


def parse_ints(value: str, what: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--{what} {value!r}: expected comma-separated integers like 1,2,3") from None
