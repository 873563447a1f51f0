"""The core's data types: :class:`Datum`, :class:`DatasetSplits`, the :class:`DatasetReader` contract (the CoOp/Dassl
layout), few-shot draws and the base/novel split.

The readers themselves (``datasets/``, the toy world) subclass :class:`DatasetReader` and register by name; the core
finds them through :data:`bench.registry.DATASETS` and never imports them. A reader turns an existing CoOp ``$DATA``
folder into :class:`DatasetSplits`; nothing here copies or converts images. The few-shot draw reproduces Dassl's ``generate_fewshot_dataset`` for a seed, so that the same seed picks the same
images as the published numbers, and is stored as portable JSON (paths relative to the data root) with a hash.
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from rich.console import Console

from bench.data.root import checked_root
from bench.errors import DataError

_console = Console(stderr=True)


@dataclass(frozen=True)
class Datum:
    """One labelled image: absolute path, integer label, class name (Dassl's ``Datum``)."""

    impath: str
    label: int
    classname: str


@dataclass
class DatasetSplits:
    """The train/val/test lists of a dataset and its class names ordered by label."""

    train: list[Datum]
    val: list[Datum]
    test: list[Datum]
    classnames: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.classnames:
            self.classnames = classnames_of(self.train or self.test)


def classnames_of(items: Sequence[Datum]) -> list[str]:
    """Class names ordered by label, as Dassl's ``get_lab2cname`` builds them."""
    names: dict[int, str] = {}
    for d in items:
        names.setdefault(d.label, d.classname)
    return [names[k] for k in sorted(names)]


class DatasetReader:
    """Base class of a dataset reader; subclasses register with ``@DATASETS.register_module(name=...)``.

    Subclasses set the class attributes; the default :meth:`read_splits` reads ``split_file``.
    ``root`` is the data root (``$DATA``); ``self.dataset_dir`` the dataset's folder inside it.
    """

    name: ClassVar[str] = ""
    dataset_dir: ClassVar[str] = ""  # folder under $DATA (CoOp's ``dataset_dir``)
    image_dir: ClassVar[str] = ""  # folder under dataset_dir that split paths are relative to
    split_file: ClassVar[str | None] = None  # e.g. "split_zhou_DescribableTextures.json"
    template: ClassVar[str] = "a photo of a {}."  # CoOp's CUSTOM_TEMPLATES entry
    test_only: ClassVar[bool] = False  # ImageNet-V2/-Sketch/-A/-R: evaluation targets only
    source: ClassVar[str | None] = None  # the dataset whose class names a test-only variant shares
    draw_val: ClassVar[bool] = True  # Dassl draws min(shots, 4) val images per class; False keeps the val list whole

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        self.dataset_path = self.root / self.dataset_dir
        self.image_path = self.dataset_path / self.image_dir

    def check_root(self) -> None:
        checked_root(self.root)
        if not self.dataset_path.is_dir():
            raise DataError(
                f"{self.name}: folder {self.dataset_path} not found; run `bench data prepare {self.name}` "
                f"or place the dataset there in the CoOp layout"
            )

    def read(self) -> DatasetSplits:
        """Read the dataset; raises :class:`DataError` with the file and the fix on any problem."""
        self.check_root()
        splits = self.read_splits()
        if not splits.test:
            raise DataError(f"{self.name}: the test split under {self.dataset_path} is empty")
        return splits

    def read_splits(self) -> DatasetSplits:
        if self.split_file is None:
            raise NotImplementedError(f"{type(self).__name__} must implement read_splits()")
        path = self.dataset_path / self.split_file
        if not path.exists():
            splits = self.build_split()
            write_split_json(path, splits, self.image_path)
            _console.print(
                f"[yellow]warning:[/] {path} was missing; built a split by CoOp's rules and wrote it. "
                "Numbers will NOT be comparable to published ones; use the published split file for that."
            )
            return splits
        return read_split_json(path, self.image_path)

    def validate(self, splits: DatasetSplits) -> None:
        """Dataset-specific checks of ``splits`` for `bench data check` (raise DataError); none by default."""

    def build_split(self) -> DatasetSplits:
        """Build a split by CoOp's rules when the split file is missing (override per dataset)."""
        raise DataError(
            f"{self.name}: split file {self.dataset_path / (self.split_file or '?')} is missing; "
            f"download it (see `bench data prepare {self.name}`)"
        )


def read_split_json(path: Path, image_root: Path) -> DatasetSplits:
    """Read a ``split_zhou_*.json`` file: ``{"train"|"val"|"test": [[relpath, label, classname], ...]}``."""
    try:
        raw = json.loads(Path(path).read_text())
        splits = {}
        for key in ("train", "val", "test"):
            splits[key] = [Datum(str(image_root / p), int(y), str(c)) for p, y, c in raw[key]]
    except FileNotFoundError:
        raise DataError(f"split file {path} not found") from None
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(
            f"split file {path} is malformed ({type(e).__name__}: {e}); expected "
            '{"train": [[relative_path, label, classname], ...], "val": [...], "test": [...]}; '
            "delete it to rebuild or download the published one"
        ) from None
    return DatasetSplits(splits["train"], splits["val"], splits["test"])


def write_split_json(path: Path, splits: DatasetSplits, image_root: Path) -> None:
    """Write a split in CoOp's format (paths relative to ``image_root``), atomically."""
    from bench.io import atomic_write_text

    def rel(items: list[Datum]) -> list[list]:
        return [[str(Path(d.impath).relative_to(image_root)), d.label, d.classname] for d in items]

    data = {"train": rel(splits.train), "val": rel(splits.val), "test": rel(splits.test)}
    atomic_write_text(path, json.dumps(data))


# ---------------------------------------------------------------------------------------------------------------------
# Few-shot draws (Dassl) and base/novel split (CoOp's ``subsample_classes``)


def split_by_label(items: Sequence[Datum]) -> dict[int, list[Datum]]:
    """Group items by label in first-occurrence order, as Dassl's ``split_dataset_by_label``."""
    groups: dict[int, list[Datum]] = defaultdict(list)
    for d in items:
        groups[d.label].append(d)
    return groups


def fewshot(items: Sequence[Datum], num_shots: int, rng: random.Random, repeat: bool = False) -> list[Datum]:
    """Dassl's ``generate_fewshot_dataset`` for one data source: ``num_shots`` items per class.

    ``rng`` plays the role of Python's global ``random`` after ``random.seed(seed)``; classes are visited in
    first-occurrence order and each draws ``rng.sample(items, num_shots)`` (all items if fewer, unless ``repeat``).
    """
    if num_shots < 1:
        return list(items)
    out: list[Datum] = []
    for group in split_by_label(items).values():
        if len(group) >= num_shots:
            out.extend(rng.sample(group, num_shots))
        elif repeat:
            out.extend(rng.choices(group, k=num_shots))
        else:
            out.extend(group)
    return out


def dassl_fewshot(
    train: Sequence[Datum], val: Sequence[Datum], num_shots: int, seed: int, draw_val: bool = True
) -> tuple[list[Datum], list[Datum]]:
    """The few-shot train and val sets CoOp builds for ``seed``: train K shots, then val ``min(K, 4)`` shots.

    Same order of random calls as CoOp's dataset classes after Dassl's ``set_random_seed(seed)``; ImageNet
    (``draw_val=False``) draws train only and keeps its val list.
    """
    rng = random.Random(seed)
    train_k = fewshot(train, num_shots, rng)
    val_k = fewshot(val, min(num_shots, 4), rng) if draw_val else list(val)
    return train_k, val_k


TIP_DRAW_SEED = 1  # Tip-Adapter's main.py: random.seed(1) before building the dataset, whatever the run


def tip_fewshot(train: Sequence[Datum], val: Sequence[Datum], num_shots: int) -> tuple[list[Datum], list[Datum]]:
    """Tip-Adapter's own draw (``main.py``): ``random.seed(1)`` whatever the run's seed, ``num_shots`` per class with
    replacement for classes that have fewer (its ``generate_fewshot_dataset(repeat=True)``); validation is not drawn."""
    return fewshot(train, num_shots, random.Random(TIP_DRAW_SEED), repeat=True), list(val)


def subsample_classes(items: Sequence[Datum], subset: str, labels: Sequence[int] | None = None) -> list[Datum]:
    """CoOp's base/novel split: base = first ceil(n/2) labels, novel = the rest, relabelled from 0.

    ``labels`` is the full label set (defaults to the labels present in ``items``); ``subset`` is ``all``, ``base``
    or ``novel``.
    """
    if subset == "all":
        return list(items)
    all_labels = sorted(set(labels if labels is not None else (d.label for d in items)))
    m = math.ceil(len(all_labels) / 2)
    if subset == "base":
        chosen = all_labels[:m]
    elif subset == "novel":
        chosen = all_labels[m:]
    else:
        raise ValueError(f"subset must be all, base or novel, not {subset!r}")
    relabel = {y: i for i, y in enumerate(chosen)}
    return [Datum(d.impath, relabel[d.label], d.classname) for d in items if d.label in relabel]


def subset_classnames(classnames: Sequence[str], subset: str) -> list[str]:
    """The class names of a base/novel/all subset, in the relabelled order."""
    m = math.ceil(len(classnames) / 2)
    return {"all": list(classnames), "base": list(classnames[:m]), "novel": list(classnames[m:])}[subset]


# ---------------------------------------------------------------------------------------------------------------------
# Portable storage of a draw


def items_to_json(items: Sequence[Datum], root: Path) -> list[list]:
    """Items as ``[path relative to the data root, label, classname]`` (portable across machines)."""
    out = []
    for d in items:
        p = Path(d.impath)
        try:
            p = p.relative_to(root)
        except ValueError:
            pass
        out.append([p.as_posix(), d.label, d.classname])
    return out


def items_from_json(rows: list[list], root: Path) -> list[Datum]:
    return [Datum(str(root / p), int(y), str(c)) for p, y, c in rows]
