"""Suites (benchmark worlds), and which suite and data root a sweep uses.

A :class:`Suite` names the datasets of each protocol, the backbone, and the config overrides of that world. The real
benchmark is defined here; other worlds register a factory in ``SUITES`` (the toy world does, from
``bench.datasets.toy``), so the core never imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.data.root import checked_root, resolve_root
from bench.errors import ConfigError
from bench.registry import DATASETS, SUITES, get, names


@dataclass(frozen=True)
class Suite:
    """The datasets and backbone of one benchmark world (the real benchmark or the offline toy one)."""

    name: str
    datasets: tuple[str, ...]  # base-to-novel and few-shot datasets (the source first)
    source: str  # cross-dataset / domain-generalisation training set
    cross_dataset: tuple[str, ...]
    domain_generalization: tuple[str, ...]
    backbone: str
    pretrained: str
    # Config overrides in this suite, keyed by "*" (every method), method, or "method:protocol" (applied in that order).
    overrides: dict[str, Any] = field(default_factory=dict)
    # Datasets that play a real dataset's role for method defaults (the toy source gets ImageNet's settings).
    roles: dict[str, str] = field(default_factory=dict)
    # Generated worlds: where their data lives by default, and how to write the datasets a sweep needs.
    default_root: Callable[[], Path] | None = None
    prepare: Callable[[Path, list[str]], Path] | None = None
    # A generated world's version: part of every run's config hash, so records of an older world are never reused.
    data_version: str | None = None

    def override_keys(self, method: str, protocol: str) -> tuple[str, ...]:
        return ("*", method, f"{method}:{protocol}")

    def with_datasets(self, names: Sequence[str]) -> Suite:
        """This suite plus the named datasets it does not list that no suite owns (a reader registered by
        ``--plugin``): a train/test one joins base-to-novel, few-shot and the cross-dataset targets, a test-only one
        the domain-generalisation targets. So a new dataset runs on the real benchmark without a Suite of its own."""
        listed = _listed(self)
        extra = [n for n in dict.fromkeys(names) if n not in listed]
        if not extra:
            return self
        DATASETS.import_from_location()
        owned = {d for name in suite_names() for d in _listed(get_suite(name))}
        foreign = [n for n in extra if n in owned or n not in DATASETS.module_dict]
        if foreign:
            raise ConfigError(
                f"dataset(s) {', '.join(sorted(foreign))} are not in the {self.name} suite; valid: {', '.join(listed)}, "
                "or a dataset your --plugin registers (README: Adding a dataset)"
            )
        train = tuple(n for n in extra if not DATASETS.module_dict[n].test_only)
        test = tuple(n for n in extra if DATASETS.module_dict[n].test_only)
        return replace(
            self, datasets=self.datasets + train, cross_dataset=self.cross_dataset + train,
            domain_generalization=self.domain_generalization + test,
        )  # fmt: skip


def _listed(suite: Suite) -> tuple[str, ...]:
    return (*suite.datasets, *suite.domain_generalization)


_REAL_DATASETS = (
    "imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101",
    "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101",
)  # fmt: skip
REAL_DG = ("imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r")


@SUITES.register_module(name="real")
def real_suite() -> Suite:
    """The papers' benchmark: 11 datasets, ImageNet as the source, its four shifted test sets, CLIP ViT-B/16."""
    return Suite(
        name="real",
        datasets=_REAL_DATASETS,
        source="imagenet",
        cross_dataset=_REAL_DATASETS[1:],
        domain_generalization=REAL_DG,
        backbone="ViT-B-16",
        pretrained="openai",
    )


REAL = real_suite()


def get_suite(name: str) -> Suite:
    return get(SUITES, name)()


def suite_names() -> list[str]:
    return names(SUITES)


def resolve_data_root(data_root: str | Path | None, suite: str | None) -> tuple[Suite, Path]:
    """The suite and its data folder (:func:`bench.data.root.resolve_root`, the suite's own folder last).

    With no suite named: the real benchmark when a data root is given, else the offline toy suite.
    """
    the_suite = get_suite(suite or ("real" if resolve_root(data_root) else "toy"))
    root = resolve_root(data_root, the_suite.default_root)
    return the_suite, checked_root(root, may_create=the_suite.prepare is not None)  # generated worlds write theirs
