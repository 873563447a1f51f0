"""Protocols: what a sweep trains and evaluates, and how the report tables it.

A :class:`Protocol` declares the classes a model trains on, the datasets and class subsets it is evaluated on (given
the suite), the default shots, whether ``--protocol all`` includes it, and its table (title and layout). The papers'
four are registered here; another is one class registered the same way (``@register_protocol``), from a ``--plugin``
file too, and the plan and the report need no change for it (docs/adding-a-protocol.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from bench.errors import ConfigError
from bench.registry import PROTOCOLS, get, register_protocol

if TYPE_CHECKING:
    from bench.sweep.suites import Suite


@dataclass(frozen=True)
class TableLayout:
    """The cell fields a table puts down its rows and across its columns (``dataset``, ``label`` = the method,
    ``metric``, ``shots``)."""

    rows: tuple[str, ...]
    columns: tuple[str, ...]

    @property
    def by_shots(self) -> bool:
        """Shot counts are an axis of the table (else runs at several shot counts get separate labels)."""
        return "shots" in (*self.rows, *self.columns)


BASE_NOVEL = TableLayout(("dataset",), ("label", "metric"))  # a dataset per row; Base, Novel, HM per method
ACROSS_DATASETS = TableLayout(("label",), ("dataset",))  # a method per row; a dataset per column, then the Average
BY_SHOTS = TableLayout(("dataset", "label"), ("shots",))  # a dataset and method per row; a shot count per column


@dataclass(frozen=True)
class Training:
    """One training set of a protocol and the (dataset, class subset) evaluations of the model trained on it."""

    dataset: str
    subset: str
    evals: tuple[tuple[str, str], ...]


class Protocol:
    """How a sweep trains and evaluates, declared once for the plan and the report.

    By default each of the suite's datasets (``targets``) trains a model that is evaluated on that dataset. With
    ``transfer``, one model per seed trains on the suite's source and is evaluated on the source and every target;
    the report shows the source and averages the targets. Evaluating on ``("base", "novel")`` makes the report's
    Base, Novel and HM (per dataset, and the HM of the averaged Base and Novel); ``layout`` must then have a
    ``metric`` axis (``BASE_NOVEL``). Every other protocol reports accuracy.
    """

    name: ClassVar[str] = ""  # set by @register_protocol
    title: ClassVar[str] = ""  # the report table's title
    train_subset: ClassVar[str] = "all"  # the classes a model trains on: all | base (the first half of the labels)
    eval_subsets: ClassVar[tuple[str, ...]] = ("all",)  # the class subsets each dataset is evaluated on
    shots: ClassVar[tuple[int, ...]] = (16,)  # shots per class when --shots is not given
    transfer: ClassVar[bool] = False
    in_all: ClassVar[bool] = True  # part of `--protocol all` (what the papers report)
    layout: ClassVar[TableLayout] = ACROSS_DATASETS

    @property
    def base_novel(self) -> bool:
        """Evaluated on base and novel classes: the report computes HM."""
        return set(self.eval_subsets) == {"base", "novel"}

    def targets(self, suite: Suite) -> tuple[str, ...]:
        """The datasets evaluated (a transfer protocol's source aside): by default the suite's own datasets."""
        return suite.datasets

    def datasets(self, suite: Suite) -> tuple[str, ...]:
        """Every dataset this protocol uses on ``suite``, in the report's order (a transfer protocol's source
        first)."""
        return (suite.source, *self.targets(suite)) if self.transfer else self.targets(suite)

    def trainings(self, suite: Suite, datasets: Sequence[str] | None = None) -> list[Training]:
        """The trainings of one seed and shot count; ``datasets`` (``--datasets``) keeps the named targets (a transfer
        protocol's source always stays: its model is the one evaluated)."""
        targets = [d for d in self.targets(suite) if datasets is None or d in datasets]
        if self.transfer:
            evals = tuple((d, s) for d in (suite.source, *targets) for s in self.eval_subsets)
            return [Training(suite.source, self.train_subset, evals)]
        return [Training(d, self.train_subset, tuple((d, s) for s in self.eval_subsets)) for d in targets]


@register_protocol("base2novel")
class BaseToNovel(Protocol):
    """Train on each dataset's base classes; evaluate on its base and its novel classes (CoCoOp's protocol)."""

    title = (
        "Base-to-novel generalisation (Base, Novel: means over seeds; HM of the means; Average: HM of the averaged "
        "Base and Novel)"
    )
    train_subset = "base"
    eval_subsets = ("base", "novel")
    layout = BASE_NOVEL


@register_protocol("cross_dataset")
class CrossDataset(Protocol):
    """Train on the source (ImageNet) with all its classes; evaluate on the other datasets."""

    title = "Cross-dataset transfer (accuracy; Average = mean of the targets)"
    transfer = True

    def targets(self, suite: Suite) -> tuple[str, ...]:
        return suite.cross_dataset


@register_protocol("domain_generalization")
class DomainGeneralization(Protocol):
    """The cross-dataset source model, evaluated on the source's shifted test sets (ImageNet-V2, -Sketch, -A, -R)."""

    title = "Domain generalisation (accuracy; Average = mean of the targets)"
    transfer = True

    def targets(self, suite: Suite) -> tuple[str, ...]:
        return suite.domain_generalization


@register_protocol("few_shot")
class FewShot(Protocol):
    """Train and evaluate on all classes of each dataset at 1, 2, 4, 8 and 16 shots (CoOp's protocol)."""

    title = "Few-shot accuracy"
    shots = (1, 2, 4, 8, 16)
    in_all = False
    layout = BY_SHOTS


def get_protocol(name: str) -> Protocol:
    """The protocol registered as ``name``; an unknown name raises a ConfigError listing the valid ones."""
    return get(PROTOCOLS, name)()


def protocol_names() -> list[str]:
    """Every registered protocol, in registration order (the papers' four first, then plugins')."""
    PROTOCOLS.import_from_location()
    return list(PROTOCOLS.module_dict)


def transfer_protocols() -> list[str]:
    """The protocols whose model trains on the suite's source (the report shows the source beside the targets)."""
    return [name for name in protocol_names() if get_protocol(name).transfer]


def parse_protocols(value: str) -> list[str]:
    """Split a comma list of protocol names (``all``: those with ``in_all``), validating each."""
    names = protocol_names()
    out: list[str] = []
    for p in (p.strip().lower() for p in value.split(",") if p.strip()):
        for q in [n for n in names if get_protocol(n).in_all] if p == "all" else [p]:
            if q not in names:
                raise ConfigError(f"unknown protocol {q!r}; valid: {', '.join(names)}, all")
            if q not in out:
                out.append(q)
    return out
