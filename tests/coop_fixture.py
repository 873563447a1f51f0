"""A tiny ``$DATA`` folder in the exact CoOp layout, with real (small) images and split files.

``make_coop_data(root)`` writes the datasets named, each with ``n_classes`` classes whose images are a class colour
plus noise (so a model can learn them), the CoOp folder names, the ``split_zhou_*.json`` files, and the side files the
readers need (ImageNet ``classnames.txt`` and wnid folders, Pets annotations, FGVC lists, Flowers ``cat_to_name.json``).
Import it from tests as ``from coop_fixture import make_coop_data``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

SUPPORTED = (
    "dtd",
    "eurosat",
    "caltech101",
    "oxford_pets",
    "food101",
    "oxford_flowers",
    "fgvc_aircraft",
    "sun397",
    "ucf101",
    "stanford_cars",
    "imagenet",
    "imagenetv2",
    "imagenet_sketch",
    "imagenet_a",
    "imagenet_r",
)

DTD = ["banded", "blotchy", "braided", "bubbly", "bumpy", "chequered", "cobwebbed", "cracked", "crosshatched"]
EUROSAT = [
    ("AnnualCrop", "Annual Crop Land"),
    ("Forest", "Forest"),
    ("HerbaceousVegetation", "Herbaceous Vegetation Land"),
    ("Highway", "Highway or Road"),
    ("Industrial", "Industrial Buildings"),
    ("Pasture", "Pasture Land"),
    ("PermanentCrop", "Permanent Crop Land"),
    ("Residential", "Residential Buildings"),
    ("River", "River"),
    ("SeaLake", "Sea or Lake"),
]
CALTECH = [
    ("Faces", "face"),
    ("Leopards", "leopard"),
    ("Motorbikes", "motorbike"),
    ("accordion", "accordion"),
    ("airplanes", "airplane"),
    ("anchor", "anchor"),
    ("ant", "ant"),
    ("barrel", "barrel"),
    ("bass", "bass"),
]
PETS = ["Abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "Bengal", "Birman", "Bombay"]
FOOD = ["apple_pie", "baby_back_ribs", "baklava", "beef_carpaccio", "beef_tartare", "beet_salad", "beignets"]
FLOWERS = [
    "pink primrose",
    "hard-leaved pocket orchid",
    "canterbury bells",
    "sweet pea",
    "english marigold",
    "tiger lily",
]
AIRCRAFT = ["707-320", "727-200", "737-200", "737-300", "737-400", "737-500", "737-600", "A300B4"]
SUN = [
    ("a/abbey", "abbey"),
    ("a/apartment_building/outdoor", "outdoor apartment_building"),
    ("b/badlands", "badlands"),
    ("b/bakery/shop", "shop bakery"),
    ("c/campsite", "campsite"),
    ("k/kitchen", "kitchen"),
    ("o/office", "office"),
]
UCF = ["ApplyEyeMakeup", "ApplyLipstick", "Archery", "BabyCrawling", "BalanceBeam", "BandMarching", "BaseballPitch"]
CARS = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012", "Acura TL Type-S 2008"]
CARS += ["Acura TSX Sedan 2012", "Acura Integra Type R 2001", "Acura ZDX Hatchback 2012"]
IMAGENET_NAMES = ["tench", "goldfish", "great white shark", "tiger shark", "hammerhead shark", "electric ray"]
IMAGENET_NAMES += ["stingray", "rooster", "hen", "ostrich"]

SPLIT_FILES = {
    "dtd": "split_zhou_DescribableTextures.json",
    "eurosat": "split_zhou_EuroSAT.json",
    "caltech101": "split_zhou_Caltech101.json",
    "oxford_pets": "split_zhou_OxfordPets.json",
    "food101": "split_zhou_Food101.json",
    "oxford_flowers": "split_zhou_OxfordFlowers.json",
    "sun397": "split_zhou_SUN397.json",
    "ucf101": "split_zhou_UCF101.json",
    "stanford_cars": "split_zhou_StanfordCars.json",
}


class _Writer:
    """Writes small images fast: one colour per class, per-image noise, encoded by PIL."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.rng = size, np.random.default_rng(seed)

    def __call__(self, path: Path, label: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        hue = np.array([(label * 97) % 256, (label * 57 + 80) % 256, (label * 31 + 160) % 256], dtype=np.int16)
        noise = self.rng.integers(-40, 41, size=(self.size, self.size, 3), dtype=np.int16)
        arr = np.clip(hue + noise, 0, 255).astype(np.uint8)
        fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
        Image.fromarray(arr).save(path, fmt)


def _pick(pool: Sequence, n: int, name: str) -> list:
    if n > len(pool):
        raise ValueError(f"the {name} fixture has at most {len(pool)} classes, not {n}")
    return list(pool[:n])


def _split_dataset(
    ds: Path,
    image_dir: str,
    split_file: str,
    classes: Sequence[str],
    relpath: Callable[[int, int], str],
    counts: tuple[int, int, int],
    write: _Writer,
) -> dict[str, list[list]]:
    """Write images at ``image_dir/relpath(label, i)`` and the split json; return the split rows."""
    rows: dict[str, list[list]] = {"train": [], "val": [], "test": []}
    i = 0
    for label, cname in enumerate(classes):
        for split, n in zip(rows, counts, strict=True):
            for _ in range(n):
                rel = relpath(label, i)
                write(ds / image_dir / rel, label)
                rows[split].append([rel, label, cname])
                i += 1
    (ds / split_file).write_text(json.dumps(rows))
    return rows


def make_coop_data(
    root: Path,
    names: Sequence[str] = ("dtd", "eurosat", "caltech101"),
    n_classes: int = 6,
    train_per_class: int = 6,
    val_per_class: int = 2,
    test_per_class: int = 4,
    image_size: int = 32,
    seed: int = 0,
    imagenet_flat_val: bool = False,
) -> Path:
    """Write a CoOp-layout ``$DATA`` under ``root`` for ``names``; returns ``root``.

    ImageNet gets ``train_per_class`` train and ``test_per_class`` val images per class (val = test in CoOp); its
    variants use ``test_per_class`` images per class; ImageNet-A/-R cover all classes but the first (a subset, as the
    real 200-class sets do). ``imagenet_flat_val`` writes val flat with a ``LOC_val_solution.csv``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write = _Writer(image_size, seed)
    counts = (train_per_class, val_per_class, test_per_class)
    rnd = random.Random(seed)
    for name in names:
        if name not in SUPPORTED:
            raise ValueError(f"no fixture for {name!r}; supported: {', '.join(SUPPORTED)}")
        if name == "dtd":
            cls = _pick(DTD, n_classes, name)
            _split_dataset(root / "dtd", "images", SPLIT_FILES[name], cls, lambda y, i, c=cls: f"{c[y]}/{c[y]}_{i:04d}.jpg",
                           counts, write)  # fmt: skip
        elif name == "eurosat":
            cls = _pick(EUROSAT, n_classes, name)
            _split_dataset(root / "eurosat", "2750", SPLIT_FILES[name], [c for _, c in cls],
                           lambda y, i, c=cls: f"{c[y][0]}/{c[y][0]}_{i + 1}.jpg", counts, write)  # fmt: skip
        elif name == "caltech101":
            cls = sorted(_pick(CALTECH, n_classes, name))
            ds = root / "caltech-101"
            _split_dataset(ds, "101_ObjectCategories", SPLIT_FILES[name], [c for _, c in cls],
                           lambda y, i, c=cls: f"{c[y][0]}/image_{i + 1:04d}.jpg", counts, write)  # fmt: skip
            for ignored in ("BACKGROUND_Google", "Faces_easy"):  # present on disk, ignored by the reader
                for i in range(2):
                    write(ds / "101_ObjectCategories" / ignored / f"image_{i + 1:04d}.jpg", 99)
        elif name == "oxford_pets":
            cls = _pick(PETS, n_classes, name)
            rows = _split_dataset(root / "oxford_pets", "images", SPLIT_FILES[name], [c.lower() for c in cls],
                                  lambda y, i, c=cls: f"{c[y]}_{i + 1}.jpg", counts, write)  # fmt: skip
            ann = root / "oxford_pets" / "annotations"
            ann.mkdir(exist_ok=True)
            for fname, keys in (("trainval.txt", ("train", "val")), ("test.txt", ("test",))):
                lines = [f"{r[0][:-4]} {r[1] + 1} 1 {r[1] + 1}" for k in keys for r in rows[k]]
                (ann / fname).write_text("\n".join(sorted(lines)) + "\n")
        elif name == "food101":
            cls = _pick(FOOD, n_classes, name)
            _split_dataset(root / "food-101", "images", SPLIT_FILES[name], cls,
                           lambda y, i, c=cls: f"{c[y]}/{100000 + i}.jpg", counts, write)  # fmt: skip
        elif name == "oxford_flowers":
            cls = _pick(FLOWERS, n_classes, name)
            ds = root / "oxford_flowers"
            rows = _split_dataset(
                ds, "jpg", SPLIT_FILES[name], cls, lambda y, i: f"image_{i + 1:05d}.jpg", counts, write
            )
            (ds / "cat_to_name.json").write_text(json.dumps({str(i + 1): c for i, c in enumerate(cls)}))
            from scipy.io import savemat

            labels = sorted((int(r[0][6:11]), r[1] + 1) for k in rows for r in rows[k])
            savemat(ds / "imagelabels.mat", {"labels": np.array([[y for _, y in labels]])})
        elif name == "fgvc_aircraft":
            cls = _pick(AIRCRAFT, n_classes, name)
            ds = root / "fgvc_aircraft"
            (ds / "images").mkdir(parents=True, exist_ok=True)
            (ds / "variants.txt").write_text("\n".join(cls) + "\n")
            i = 0
            for split, n in zip(("train", "val", "test"), counts, strict=True):
                lines = []
                for label, cname in enumerate(cls):
                    for _ in range(n):
                        write(ds / "images" / f"{1000000 + i}.jpg", label)
                        lines.append(f"{1000000 + i} {cname}")
                        i += 1
                (ds / f"images_variant_{split}.txt").write_text("\n".join(lines) + "\n")
        elif name == "sun397":
            cls = _pick(SUN, n_classes, name)
            ds = root / "sun397"
            _split_dataset(ds, "SUN397", SPLIT_FILES[name], [c for _, c in cls],
                           lambda y, i, c=cls: f"{c[y][0]}/sun_{i:06d}.jpg", counts, write)  # fmt: skip
            (ds / "ClassName.txt").write_text("".join(f"/{f}\n" for f, _ in cls))
        elif name == "ucf101":
            cls = _pick(UCF, n_classes, name)
            ds = root / "ucf101"
            _split_dataset(ds, "UCF-101-midframes", SPLIT_FILES[name], ["_".join(_camel(c)) for c in cls],
                           lambda y, i, c=cls: f"{'_'.join(_camel(c[y]))}/v_{c[y]}_g{i:02d}_c01.jpg", counts,
                           write)  # fmt: skip
        elif name == "stanford_cars":
            cls = _pick(CARS, n_classes, name)
            ds = root / "stanford_cars"
            names_yf = [" ".join([c.split(" ")[-1], *c.split(" ")[:-1]]) for c in cls]
            per = sum(counts)
            _split_dataset(ds, "", SPLIT_FILES[name], names_yf,
                           lambda y, i, per=per: f"cars_{'test' if i % per >= per - test_per_class else 'train'}/{i + 1:05d}.jpg",
                           counts, write)  # fmt: skip
        elif name == "imagenet":
            _imagenet(root, n_classes, train_per_class, test_per_class, write, imagenet_flat_val, rnd)
        else:
            _imagenet_variant(root, name, n_classes, test_per_class, write)
    return root


def _camel(action: str) -> list[str]:
    import re

    return re.findall("[A-Z][^A-Z]*", action)


def _wnids(n: int) -> list[str]:
    return [f"n{1440764 + 1000 * i:08d}" for i in range(n)]


def _classnames_txt(path: Path, n: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    names = _pick(IMAGENET_NAMES, n, "imagenet")
    path.write_text("".join(f"{w} {c}\n" for w, c in zip(_wnids(n), names, strict=True)))


def _imagenet(root: Path, n: int, n_train: int, n_val: int, write: _Writer, flat_val: bool, rnd: random.Random) -> None:
    ds = root / "imagenet"
    _classnames_txt(ds / "classnames.txt", n)
    val_rows = []
    for label, wnid in enumerate(_wnids(n)):
        for i in range(n_train):
            write(ds / "images" / "train" / wnid / f"{wnid}_{i + 1}.JPEG", label)
        for _ in range(n_val):
            val_rows.append((wnid, label))
    rnd.shuffle(val_rows)  # real val files are not grouped by class
    csv_rows = ["ImageId,PredictionString"]
    for i, (wnid, label) in enumerate(val_rows):
        image_id = f"ILSVRC2012_val_{i + 1:08d}"
        sub = "" if flat_val else f"{wnid}/"
        write(ds / "images" / "val" / f"{sub}{image_id}.JPEG", label)
        csv_rows.append(f"{image_id},{wnid} 1 2 3 4")
    if flat_val:
        (ds / "LOC_val_solution.csv").write_text("\n".join(csv_rows) + "\n")


def _imagenet_variant(root: Path, name: str, n: int, n_test: int, write: _Writer) -> None:
    wnids = _wnids(n)
    if name == "imagenetv2":
        ds, folders = root / "imagenetv2", {str(i): i for i in range(n)}
        image_dir = ds / "imagenetv2-matched-frequency-format-val"
    elif name == "imagenet_sketch":
        ds = root / "imagenet-sketch"
        image_dir, folders = ds / "images", {w: i for i, w in enumerate(wnids)}
    else:
        ds = root / ("imagenet-adversarial" if name == "imagenet_a" else "imagenet-rendition")
        image_dir = ds / ("imagenet-a" if name == "imagenet_a" else "imagenet-r")
        folders = {w: i for i, w in enumerate(wnids) if i > 0}
        image_dir.mkdir(parents=True, exist_ok=True)
        (image_dir / "README.txt").write_text("ignored by the reader\n")
    _classnames_txt(ds / "classnames.txt", n)
    for folder, label in folders.items():
        for i in range(n_test):
            ext = "png" if name == "imagenet_r" else "jpg"
            write(image_dir / folder / f"{i + 1}.{ext}", label)


def split_counts(names: Sequence[str], n_classes: int = 6, train: int = 6, val: int = 2, test: int = 4) -> dict:
    """The (train, val, test) sizes ``make_coop_data`` produces with these arguments, per dataset."""
    out = {}
    for name in names:
        if name == "imagenet":
            out[name] = (n_classes * train, n_classes * test, n_classes * test)
        elif name in ("imagenetv2", "imagenet_sketch"):
            out[name] = (0, 0, n_classes * test)
        elif name in ("imagenet_a", "imagenet_r"):
            out[name] = (0, 0, (n_classes - 1) * test)
        else:
            out[name] = (n_classes * train, n_classes * val, n_classes * test)
    return out


__all__ = ["SUPPORTED", "make_coop_data", "split_counts"]
