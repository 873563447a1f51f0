"""``bench data synth``: a simulated data root with the real benchmark's class counts and split sizes and tiny images.

What it is for: measuring what the harness costs at the real scale (planning, few-shot draws on 1.28 M listed ImageNet
files, caches for 50k test images, reports over tens of thousands of records) on a machine without the datasets.
Every dataset is written in the CoOp layout that ``bench.datasets.readers`` reads, unchanged: the same folders, split
files, class lists. The images are not real: each class has a few ``size``-px JPEGs of one colour, and every file
a split lists is a hard link to one of them (ImageNet's 1.28 M files take directory entries, not 1.28 M inodes).
The root carries ``SYNTHETIC.md`` saying so; accuracy on it means nothing.

The root is built in a sibling ``<root>.partial-<pid>`` folder and renamed into place when complete, so an
interruption never leaves a root that looks whole.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from bench.data.arrange import reader_for
from bench.data.tables import BENCHMARK, PUBLISHED_CLASSES, PUBLISHED_COUNTS
from bench.errors import DataError

IMAGES_PER_CLASS = 4  # distinct files per class; hard links to one inode stay far below ext4's 65,000 limit
SPLITS = ("train", "val", "test")
MARKER = "SYNTHETIC.md"
IMAGENET_VARIANTS = ("imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r")


def per_class(total: int, n_cls: int) -> list[int]:
    """``total`` images spread over ``n_cls`` classes as evenly as possible (the first classes get one more)."""
    return [total // n_cls + (i < total % n_cls) for i in range(n_cls)]


def split_sizes(name: str, scale: float) -> tuple[int, int, int]:
    """The published (train, val, test) sizes times ``scale``; a non-empty split keeps at least one image per class."""
    n_cls = PUBLISHED_CLASSES[name]
    return tuple(max(n_cls, round(n * scale)) if n else 0 for n in PUBLISHED_COUNTS[name])  # type: ignore[return-value]


def wnids() -> list[str]:
    """Synthetic WordNet ids (``s00000000`` …): the real ones are not needed, only 1,000 distinct folder names."""
    return [f"s{i:08d}" for i in range(PUBLISHED_CLASSES["imagenet"])]


def imagenet_classnames() -> list[str]:
    """CLIP's 1,000 ImageNet class names (as open_clip ships them), so prompts have realistic token counts."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    return list(IMAGENET_CLASSNAMES)


class _Writer:
    """Writes one class's few distinct JPEGs under ``root/.synth`` and hard-links the listed files to them."""

    def __init__(self, root: Path, size: int) -> None:
        self.root, self.size = root, size
        self.rng = np.random.default_rng(0)

    def sources(self, dataset: str, label: int) -> list[str]:
        folder = self.root / ".synth" / dataset
        folder.mkdir(parents=True, exist_ok=True)
        colour = self.rng.integers(0, 256, 3)
        out = []
        for k in range(IMAGES_PER_CLASS):
            noise = self.rng.integers(-24, 25, (self.size, self.size, 3))
            pixels = np.clip(colour + noise, 0, 255).astype(np.uint8)
            path = folder / f"{label:04d}_{k}.jpg"
            Image.fromarray(pixels).save(path, quality=75)
            out.append(str(path))
        return out

    @staticmethod
    def link(sources: Sequence[str], folder: Path, names: Sequence[str]) -> None:
        """Each of ``names`` in ``folder`` as a hard link to one of ``sources`` (a copy where links are refused)."""
        folder.mkdir(parents=True, exist_ok=True)
        base = str(folder)
        for i, name in enumerate(names):
            src, dest = sources[i % len(sources)], os.path.join(base, name)
            try:
                os.link(src, dest)
            except OSError:  # a file system without hard links
                shutil.copyfile(src, dest)


def _split_file_dataset(w: _Writer, name: str, scale: float) -> None:
    """A dataset read from its ``split_zhou_*.json``: class folders under the image folder, the split file beside."""
    reader = reader_for(name, w.root)
    n_cls = PUBLISHED_CLASSES[name]
    counts = [per_class(n, n_cls) if n else [0] * n_cls for n in split_sizes(name, scale)]
    split: dict[str, list] = {s: [] for s in SPLITS}
    for label in range(n_cls):
        folder, cname = f"class_{label:03d}", f"{name} class {label}"
        names = [f"{s}_{j:06d}.jpg" for s, c in zip(SPLITS, counts) for j in range(c[label])]
        w.link(w.sources(name, label), reader.image_path / folder, names)
        i = 0
        for s, c in zip(SPLITS, counts):
            split[s] += [[f"{folder}/{n}", label, cname] for n in names[i : i + c[label]]]
            i += c[label]
    assert reader.split_file is not None
    (reader.dataset_path / reader.split_file).write_text(json.dumps(split))


def _fgvc_aircraft(w: _Writer, name: str, scale: float) -> None:
    """FGVC-Aircraft: ``variants.txt`` and ``images_variant_<split>.txt`` lists over one flat image folder."""
    reader = reader_for(name, w.root)
    n_cls = PUBLISHED_CLASSES[name]
    variants = [f"variant {i}" for i in range(n_cls)]
    counts = [per_class(n, n_cls) for n in split_sizes(name, scale)]
    lines: dict[str, list[str]] = {s: [] for s in SPLITS}
    for label in range(n_cls):
        names = [f"{label:03d}{s[:2]}{j:05d}" for s, c in zip(SPLITS, counts) for j in range(c[label])]
        w.link(w.sources(name, label), reader.image_path, [f"{n}.jpg" for n in names])
        i = 0
        for s, c in zip(SPLITS, counts):
            lines[s] += [f"{n} {variants[label]}" for n in names[i : i + c[label]]]
            i += c[label]
    (reader.dataset_path / "variants.txt").write_text("\n".join(variants) + "\n")
    for s in SPLITS:
        (reader.dataset_path / f"images_variant_{s}.txt").write_text("\n".join(lines[s]) + "\n")


def _classnames_txt(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{w} {c}\n" for w, c in zip(wnids(), imagenet_classnames())))


def _imagenet(w: _Writer, name: str, scale: float) -> None:
    """ImageNet: ``classnames.txt`` and wnid class folders under ``images/train`` and ``images/val`` (val = test)."""
    reader = reader_for(name, w.root)
    n_train, _, n_test = split_sizes(name, scale)
    train, test = per_class(n_train, 1000), per_class(n_test, 1000)
    _classnames_txt(reader.dataset_path / "classnames.txt")
    for label, wnid in enumerate(wnids()):
        src = w.sources(name, label)
        w.link(src, reader.image_path / "train" / wnid, [f"{wnid}_{j}.JPEG" for j in range(train[label])])
        w.link(src, reader.image_path / "val" / wnid, [f"val_{wnid}_{j}.JPEG" for j in range(test[label])])


def _imagenet_variant(w: _Writer, name: str, scale: float) -> None:
    """A test-only ImageNet target: its own ``classnames.txt`` copy and one folder per class it covers (-A/-R: 200,
    every fifth synthetic wnid; -V2: folders ``0``…``999``)."""
    reader = reader_for(name, w.root)
    n_cls = PUBLISHED_CLASSES[name]
    _classnames_txt(reader.dataset_path / "classnames.txt")
    step = len(wnids()) // n_cls
    counts = per_class(split_sizes(name, scale)[2], n_cls)
    for i in range(n_cls):
        folder = str(i) if name == "imagenetv2" else wnids()[i * step]
        w.link(w.sources(name, i), reader.image_path / folder, [f"{name}_{i}_{j}.jpg" for j in range(counts[i])])


def _writer_for(name: str) -> Callable[[_Writer, str, float], None]:
    if name == "imagenet":
        return _imagenet
    if name in IMAGENET_VARIANTS:
        return _imagenet_variant
    if name == "fgvc_aircraft":
        return _fgvc_aircraft
    return _split_file_dataset


def synth(
    root: str | Path,
    datasets: Sequence[str] = BENCHMARK,
    size: int = 16,
    scale: float = 1.0,
    on_dataset: Callable[[str], None] | None = None,
) -> Path:
    """Write a simulated CoOp data root at ``root`` (which must not exist or be empty); returns it.

    ``scale`` shrinks every split (at least one image per class is kept); class counts are always the real ones.
    """
    root = Path(root).expanduser().absolute()
    names = [d.strip().lower() for d in datasets]
    unknown = [d for d in names if d not in BENCHMARK]
    if unknown:
        raise DataError(
            f"unknown dataset(s) {', '.join(unknown)} for `bench data synth`; valid: {', '.join(BENCHMARK)}"
        )
    if not 0 < scale <= 1:
        raise DataError(f"--scale {scale}: use a fraction of the real sizes in (0, 1]")
    if not 1 <= size <= 512:
        raise DataError(f"--size {size}: use an image side between 1 and 512 pixels")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise DataError(f"{root} exists and is not an empty folder; `bench data synth` writes a new root only")
    stage = root.with_name(f"{root.name}.partial-{os.getpid()}")
    try:
        writer = _Writer(stage, size)
        for name in names:
            if on_dataset:
                on_dataset(name)
            _writer_for(name)(writer, name, scale)
        (stage / MARKER).write_text(
            f"# Simulated data root (bench data synth --size {size} --scale {scale})\n\n"
            "Real class counts and split sizes, tiny single-colour images hard-linked many times. For measuring the "
            "harness's costs at scale; accuracies on it mean nothing.\n"
        )
        if root.exists():
            root.rmdir()  # empty, checked above
        stage.rename(root)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return root
