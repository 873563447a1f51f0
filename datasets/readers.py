"""Readers of the 15 benchmark datasets in the CoOp ``$DATA`` layout.

Each reader accepts an existing CoOp data folder unchanged: same folder names, same ``split_zhou_*.json`` files,
same class-name rules as ``KaiyangZhou/CoOp:datasets/*.py`` (peers.md §8), so a user's labels and class names match
the published ones. Where a split file is missing, :meth:`build_split` rebuilds one by CoOp's rules (the base class
writes it and warns that numbers are then not comparable). ``read()`` never decodes images (ImageNet would take
minutes); ``bench data check`` does that.

ImageNet's ``val/`` may be in wnid class folders (CoOp's layout) or flat (``ILSVRC2012_val_00000001.JPEG`` ...) with
labels from one of, in this order: ``imagenet/LOC_val_solution.csv`` (Kaggle), torchvision's ``meta.bin``
(``imagenet/meta.bin`` or ``imagenet/images/meta.bin``), or the devkit folder
``imagenet/ILSVRC2012_devkit_t12/data/{meta.mat,ILSVRC2012_validation_ground_truth.txt}``.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

from bench.data.dataset import DatasetReader, DatasetSplits, Datum
from bench.errors import DataError
from bench.registry import DATASETS

# Splits built here use their own generator (CoOp used the run's seeded global ``random``), so one generated split
# file serves every seed, as a downloaded one does.
SPLIT_SEED = 1

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def listdir(path: Path) -> list[str]:
    """Non-hidden entries of ``path``, sorted (Dassl's ``listdir_nohidden``; sorted so builds are reproducible)."""
    try:
        return sorted(e for e in os.listdir(path) if not e.startswith("."))
    except FileNotFoundError:
        raise DataError(f"folder {path} not found; see `bench data prepare` for the expected layout") from None


def subdirs(path: Path) -> list[str]:
    """Sorted names of the non-hidden sub-folders of ``path``."""
    return [e for e in listdir(path) if (path / e).is_dir()]


def image_files(path: Path) -> list[str]:
    """Sorted names of the image files directly inside ``path`` (by suffix: no stat per file, ImageNet is big)."""
    return [e for e in listdir(path) if e.lower().endswith(IMAGE_SUFFIXES)]


def read_lines(path: Path, fix: str) -> list[str]:
    """Stripped non-empty lines of a text file; a missing file raises a DataError with ``fix``."""
    try:
        return [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]
    except FileNotFoundError:
        raise DataError(f"{path} not found; {fix}") from None


def split_per_class(
    groups: Iterable[tuple[int, str, list[str]]], rng: random.Random, p_trn: float, p_val: float, where: Path
) -> DatasetSplits:
    """Shuffle each class and cut it into train/val/test fractions (CoOp's ``read_and_split_data`` rule)."""
    train, val, test = [], [], []
    for label, cname, paths in groups:
        paths = list(paths)
        rng.shuffle(paths)
        n = len(paths)
        n_trn, n_val = round(n * p_trn), round(n * p_val)
        if n_trn <= 0 or n_val <= 0 or n - n_trn - n_val <= 0:
            raise DataError(f"class {cname!r} under {where} has only {n} images, too few to split 50/20/30")
        train += [Datum(p, label, cname) for p in paths[:n_trn]]
        val += [Datum(p, label, cname) for p in paths[n_trn : n_trn + n_val]]
        test += [Datum(p, label, cname) for p in paths[n_trn + n_val :]]
    return DatasetSplits(train, val, test)


def read_and_split_folders(
    image_dir: Path,
    rng: random.Random,
    p_trn: float = 0.5,
    p_val: float = 0.2,
    ignored: Sequence[str] = (),
    new_cnames: dict[str, str] | None = None,
) -> DatasetSplits:
    """CoOp's ``DTD.read_and_split_data``: class folders sorted → labels; 50/20/30 per class."""
    cats = [c for c in subdirs(image_dir) if c not in ignored]
    if not cats:
        raise DataError(f"no class folders under {image_dir}; see `bench data prepare` for the expected layout")
    new_cnames = new_cnames or {}
    groups = [
        (y, new_cnames.get(c, c), [str(image_dir / c / f) for f in image_files(image_dir / c)])
        for y, c in enumerate(cats)
    ]
    return split_per_class(groups, rng, p_trn, p_val, image_dir)


def split_trainval(
    trainval: Sequence[Datum], rng: random.Random, p_val: float = 0.2
) -> tuple[list[Datum], list[Datum]]:
    """CoOp's ``OxfordPets.split_trainval``: per class (first-occurrence order) ``round(p_val*n)`` items go to val."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i, d in enumerate(trainval):
        groups[d.label].append(i)
    train, val = [], []
    for label, idxs in groups.items():
        rng.shuffle(idxs)
        n_val = round(p_val * len(idxs))
        if n_val <= 0:
            raise DataError(f"class {label} has only {len(idxs)} train+val images, too few for a validation split")
        val += [trainval[i] for i in idxs[:n_val]]
        train += [trainval[i] for i in idxs[n_val:]]
    return train, val


class SplitFileReader(DatasetReader):
    """A dataset read from a ``split_zhou_*.json`` file, checked cheaply against the folders on disk."""

    def read_splits(self) -> DatasetSplits:
        if not self.image_path.is_dir():
            raise DataError(
                f"{self.name}: image folder {self.image_path} not found; run `bench data prepare {self.name}` "
                "or place the images there in the CoOp layout"
            )
        splits = super().read_splits()
        self.validate(splits)
        return splits

    def validate(self, splits: DatasetSplits) -> None:
        """Labels contiguous and consistent with class names; every folder the split file names exists."""
        split_path = self.dataset_path / (self.split_file or "")
        names: dict[int, str] = {}
        parents: set[Path] = set()
        for d in (*splits.train, *splits.val, *splits.test):
            if names.setdefault(d.label, d.classname) != d.classname:
                raise DataError(
                    f"split file {split_path} gives label {d.label} two class names ({names[d.label]!r}, "
                    f"{d.classname!r}); delete it to rebuild or download the published one"
                )
            parents.add(Path(d.impath).parent)
        if sorted(names) != list(range(len(names))):
            raise DataError(
                f"split file {split_path} has labels that are not 0..{len(names) - 1}; delete it to rebuild or "
                "download the published one"
            )
        missing = sorted(str(p) for p in parents if not p.is_dir())
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DataError(
                f"{self.name}: class folder {missing[0]}{more} named in split file {split_path} does not exist; "
                f"restore the images or delete the split file to rebuild it from the folders present"
            )

    def rng(self) -> random.Random:
        return random.Random(SPLIT_SEED)


# ---------------------------------------------------------------------------------------------------------------------
# Datasets with one folder per class, split 50/20/30 when no split file exists


@DATASETS.register_module(name="dtd")
class DescribableTextures(SplitFileReader):
    name = "dtd"
    dataset_dir = "dtd"
    image_dir = "images"
    split_file = "split_zhou_DescribableTextures.json"
    template = "{} texture."

    def build_split(self) -> DatasetSplits:
        return read_and_split_folders(self.image_path, self.rng())


@DATASETS.register_module(name="food101")
class Food101(SplitFileReader):
    name = "food101"
    dataset_dir = "food-101"
    image_dir = "images"
    split_file = "split_zhou_Food101.json"
    template = "a photo of {}, a type of food."

    def build_split(self) -> DatasetSplits:
        return read_and_split_folders(self.image_path, self.rng())


@DATASETS.register_module(name="caltech101")
class Caltech101(SplitFileReader):
    name = "caltech101"
    dataset_dir = "caltech-101"
    image_dir = "101_ObjectCategories"
    split_file = "split_zhou_Caltech101.json"
    template = "a photo of a {}."
    IGNORED: ClassVar[tuple[str, ...]] = ("BACKGROUND_Google", "Faces_easy")
    NEW_CNAMES: ClassVar[dict[str, str]] = {
        "airplanes": "airplane",
        "Faces": "face",
        "Leopards": "leopard",
        "Motorbikes": "motorbike",
    }

    def build_split(self) -> DatasetSplits:
        return read_and_split_folders(self.image_path, self.rng(), ignored=self.IGNORED, new_cnames=self.NEW_CNAMES)


@DATASETS.register_module(name="eurosat")
class EuroSAT(SplitFileReader):
    name = "eurosat"
    dataset_dir = "eurosat"
    image_dir = "2750"
    split_file = "split_zhou_EuroSAT.json"
    template = "a centered satellite photo of {}."
    NEW_CNAMES: ClassVar[dict[str, str]] = {
        "AnnualCrop": "Annual Crop Land",
        "Forest": "Forest",
        "HerbaceousVegetation": "Herbaceous Vegetation Land",
        "Highway": "Highway or Road",
        "Industrial": "Industrial Buildings",
        "Pasture": "Pasture Land",
        "PermanentCrop": "Permanent Crop Land",
        "Residential": "Residential Buildings",
        "River": "River",
        "SeaLake": "Sea or Lake",
    }

    def build_split(self) -> DatasetSplits:
        return read_and_split_folders(self.image_path, self.rng(), new_cnames=self.NEW_CNAMES)


# ---------------------------------------------------------------------------------------------------------------------
# Datasets with official train(val)/test lists


@DATASETS.register_module(name="oxford_pets")
class OxfordPets(SplitFileReader):
    name = "oxford_pets"
    dataset_dir = "oxford_pets"
    image_dir = "images"
    split_file = "split_zhou_OxfordPets.json"
    template = "a photo of a {}, a type of pet."

    def read_list(self, filename: str) -> list[Datum]:
        """``annotations/<file>`` lines ``<Breed_Name_123> <class id> <species> <breed id>``; breed lower-cased."""
        path = self.dataset_path / "annotations" / filename
        items = []
        for line in read_lines(path, "extract annotations.tar.gz into oxford_pets/ (bench data prepare oxford_pets)"):
            try:
                imname, label = line.split()[:2]
                breed = "_".join(imname.split("_")[:-1]).lower()
                items.append(Datum(str(self.image_path / f"{imname}.jpg"), int(label) - 1, breed))
            except ValueError:
                raise DataError(f"{path}: malformed line {line!r}; re-extract annotations.tar.gz") from None
        return items

    def build_split(self) -> DatasetSplits:
        train, val = split_trainval(self.read_list("trainval.txt"), self.rng())
        return DatasetSplits(train, val, self.read_list("test.txt"))


@DATASETS.register_module(name="oxford_flowers")
class OxfordFlowers(SplitFileReader):
    name = "oxford_flowers"
    dataset_dir = "oxford_flowers"
    image_dir = "jpg"
    split_file = "split_zhou_OxfordFlowers.json"
    template = "a photo of a {}, a type of flower."

    def build_split(self) -> DatasetSplits:
        from scipy.io import loadmat

        names_path = self.dataset_path / "cat_to_name.json"
        labels_path = self.dataset_path / "imagelabels.mat"
        try:
            lab2cname = json.loads(names_path.read_text())
            labels = loadmat(labels_path)["labels"][0]
        except FileNotFoundError as e:
            raise DataError(f"{e.filename} not found; run `bench data prepare oxford_flowers`") from None
        except (ValueError, KeyError) as e:
            raise DataError(f"{names_path} or {labels_path} is malformed ({e}); download it again") from None
        groups: dict[int, list[str]] = defaultdict(list)
        for i, y in enumerate(labels):
            groups[int(y)].append(str(self.image_path / f"image_{i + 1:05d}.jpg"))
        rows = [(y - 1, lab2cname[str(y)], paths) for y, paths in groups.items()]
        return split_per_class(rows, self.rng(), 0.5, 0.2, self.image_path)


@DATASETS.register_module(name="stanford_cars")
class StanfordCars(SplitFileReader):
    name = "stanford_cars"
    dataset_dir = "stanford_cars"
    image_dir = ""  # split paths are relative to stanford_cars/ (cars_train/..., cars_test/...)
    split_file = "split_zhou_StanfordCars.json"
    template = "a photo of a {}."

    @staticmethod
    def year_first(name: str) -> str:
        """CoOp moves the year to the front: ``AM General Hummer SUV 2000`` → ``2000 AM General Hummer SUV``."""
        words = name.split(" ")
        return " ".join([words[-1], *words[:-1]])

    def read_mat(self, image_dir: str, anno_file: str) -> list[Datum]:
        from scipy.io import loadmat

        try:
            annos = loadmat(self.dataset_path / anno_file)["annotations"][0]
            meta = loadmat(self.dataset_path / "devkit" / "cars_meta.mat")["class_names"][0]
        except FileNotFoundError as e:
            raise DataError(
                f"{e.filename} not found; see `bench data prepare stanford_cars` for manual steps"
            ) from None
        items = []
        for a in annos:
            label = int(a["class"][0, 0]) - 1
            path = self.dataset_path / image_dir / str(a["fname"][0])
            items.append(Datum(str(path), label, self.year_first(str(meta[label][0]))))
        return items

    def build_split(self) -> DatasetSplits:
        trainval = self.read_mat("cars_train", "devkit/cars_train_annos.mat")
        train, val = split_trainval(trainval, self.rng())
        return DatasetSplits(train, val, self.read_mat("cars_test", "cars_test_annos_withlabels.mat"))


@DATASETS.register_module(name="sun397")
class SUN397(SplitFileReader):
    name = "sun397"
    dataset_dir = "sun397"
    image_dir = "SUN397"
    split_file = "split_zhou_SUN397.json"
    template = "a photo of a {}."
    FIX: ClassVar[str] = "extract Partitions.zip into sun397/ (bench data prepare sun397)"

    @staticmethod
    def classname(folder: str) -> str:
        """``a/apartment_building/outdoor`` → ``outdoor apartment_building`` (letter dropped, parts reversed)."""
        return " ".join(folder.strip("/").split("/")[1:][::-1])

    def read_list(self, filename: str, cname2lab: dict[str, int]) -> list[Datum]:
        path = self.dataset_path / filename
        items = []
        for line in read_lines(path, self.FIX):
            imname = line.lstrip("/")
            folder = os.path.dirname(imname)
            if folder not in cname2lab:
                raise DataError(f"{path}: class {folder!r} is not in ClassName.txt; {self.FIX}")
            items.append(Datum(str(self.image_path / imname), cname2lab[folder], self.classname(folder)))
        return items

    def build_split(self) -> DatasetSplits:
        folders = [ln.lstrip("/") for ln in read_lines(self.dataset_path / "ClassName.txt", self.FIX)]
        cname2lab = {c: i for i, c in enumerate(folders)}
        train, val = split_trainval(self.read_list("Training_01.txt", cname2lab), self.rng())
        return DatasetSplits(train, val, self.read_list("Testing_01.txt", cname2lab))


@DATASETS.register_module(name="ucf101")
class UCF101(SplitFileReader):
    name = "ucf101"
    dataset_dir = "ucf101"
    image_dir = "UCF-101-midframes"
    split_file = "split_zhou_UCF101.json"
    template = "a photo of a person doing {}."
    FIX: ClassVar[str] = (
        "extract UCF101TrainTestSplits-RecognitionTask.zip into ucf101/ (see `bench data prepare ucf101`)"
    )

    @staticmethod
    def classname(action: str) -> str:
        """``ApplyEyeMakeup`` → ``Apply_Eye_Makeup`` (also the mid-frame folder name)."""
        return "_".join(re.findall("[A-Z][^A-Z]*", action))

    def read_list(self, filename: str, cname2lab: dict[str, int]) -> list[Datum]:
        path = self.dataset_path / "ucfTrainTestlist" / filename
        items = []
        for line in read_lines(path, self.FIX):
            action, video = line.split(" ")[0].split("/")
            if action not in cname2lab:
                raise DataError(f"{path}: action {action!r} is not in classInd.txt; {self.FIX}")
            cname = self.classname(action)
            items.append(Datum(str(self.image_path / cname / video.replace(".avi", ".jpg")), cname2lab[action], cname))
        return items

    def build_split(self) -> DatasetSplits:
        cname2lab = {}
        for line in read_lines(self.dataset_path / "ucfTrainTestlist" / "classInd.txt", self.FIX):
            label, action = line.split(" ")
            cname2lab[action] = int(label) - 1
        train, val = split_trainval(self.read_list("trainlist01.txt", cname2lab), self.rng())
        return DatasetSplits(train, val, self.read_list("testlist01.txt", cname2lab))


# ---------------------------------------------------------------------------------------------------------------------
# FGVC-Aircraft: the official variant lists, no split file


@DATASETS.register_module(name="fgvc_aircraft")
class FGVCAircraft(DatasetReader):
    name = "fgvc_aircraft"
    dataset_dir = "fgvc_aircraft"
    image_dir = "images"
    split_file = None
    template = "a photo of a {}, a type of aircraft."
    FIX: ClassVar[str] = "fgvc_aircraft/ must be the archive's data/ folder (bench data prepare fgvc_aircraft)"

    def read_list(self, filename: str, cname2lab: dict[str, int]) -> list[Datum]:
        path = self.dataset_path / filename
        items = []
        for line in read_lines(path, self.FIX):
            imname, *words = line.split(" ")
            cname = " ".join(words)
            if cname not in cname2lab:
                raise DataError(f"{path}: variant {cname!r} is not in variants.txt; {self.FIX}")
            items.append(Datum(str(self.image_path / f"{imname}.jpg"), cname2lab[cname], cname))
        return items

    def read_splits(self) -> DatasetSplits:
        if not self.image_path.is_dir():
            raise DataError(f"fgvc_aircraft: image folder {self.image_path} not found; {self.FIX}")
        classnames = read_lines(self.dataset_path / "variants.txt", self.FIX)
        cname2lab = {c: i for i, c in enumerate(classnames)}
        return DatasetSplits(
            *(self.read_list(f"images_variant_{s}.txt", cname2lab) for s in ("train", "val", "test")),
            classnames=classnames,
        )


# ---------------------------------------------------------------------------------------------------------------------
# ImageNet and its four test-only variants


def read_classnames(path: Path) -> dict[str, str]:
    """``classnames.txt``: lines ``<wnid> <class name ...>`` in file order."""
    fix = "download CoOp's classnames.txt there, or run `bench data prepare imagenet` (variants: copy imagenet's)"
    out = {}
    for line in read_lines(path, fix):
        wnid, _, cname = line.partition(" ")
        if not cname:
            raise DataError(f"{path}: malformed line {line!r}; expected `<wnid> <class name>`")
        out[wnid] = cname.strip()
    return out


def folder_items(image_dir: Path, folders: Sequence[str], names: Sequence[str]) -> list[Datum]:
    """One item per image file in each folder, labelled by its position in ``folders``."""
    return [
        Datum(str(image_dir / folder / f), label, names[label])
        for label, folder in enumerate(folders)
        for f in image_files(image_dir / folder)
    ]


@DATASETS.register_module(name="imagenet")
class ImageNet(DatasetReader):
    name = "imagenet"
    dataset_dir = "imagenet"
    image_dir = "images"
    split_file = None
    template = "a photo of a {}."
    draw_val: ClassVar[bool] = False  # CoOp draws few-shot train only; val (= test) is kept whole

    def classnames(self) -> dict[str, str]:
        return read_classnames(self.dataset_path / "classnames.txt")

    def read_splits(self) -> DatasetSplits:
        train_dir, val_dir = self.image_path / "train", self.image_path / "val"
        for d in (train_dir, val_dir):
            if not d.is_dir():
                raise DataError(
                    f"imagenet: {d} not found; extract ILSVRC2012 train/val there or run `bench data prepare imagenet`"
                )
        wnid2name = self.classnames()
        wnids = subdirs(train_dir)
        unknown = [w for w in wnids if w not in wnid2name]
        if unknown:
            raise DataError(
                f"imagenet: class folder {train_dir / unknown[0]} is not in {self.dataset_path / 'classnames.txt'}; "
                "use CoOp's classnames.txt (1000 wnids)"
            )
        names = [wnid2name[w] for w in wnids]
        train = folder_items(train_dir, wnids, names)
        val_wnids = subdirs(val_dir)
        if val_wnids:
            if val_wnids != wnids:
                extra = sorted(set(val_wnids) ^ set(wnids))
                raise DataError(
                    f"imagenet: class folders of {val_dir} and {train_dir} differ (e.g. {extra[0]}); "
                    "both need the same wnid folders"
                )
            test = folder_items(val_dir, wnids, names)
        else:
            test = self.flat_val(val_dir, wnids, names)
        return DatasetSplits(train, test, test, classnames=names)

    def flat_val(self, val_dir: Path, wnids: list[str], names: list[str]) -> list[Datum]:
        """Val images not in class folders: labels from the devkit/Kaggle files (see the module docstring)."""
        files = image_files(val_dir)
        if not files:
            raise DataError(f"imagenet: no images in {val_dir}; extract ILSVRC2012_img_val.tar there")
        file2wnid = self.val_labels(files)
        label = {w: i for i, w in enumerate(wnids)}
        out = []
        for f in files:
            wnid = file2wnid.get(f)
            if wnid is None or wnid not in label:
                raise DataError(f"imagenet: no label (or an unknown wnid {wnid}) for {val_dir / f} in the devkit files")
            out.append(Datum(str(val_dir / f), label[wnid], names[label[wnid]]))
        return out

    def val_labels(self, files: list[str]) -> dict[str, str]:
        d = self.dataset_path
        csv_path = d / "LOC_val_solution.csv"
        if csv_path.exists():
            with csv_path.open(newline="") as fh:
                return {f"{row['ImageId']}.JPEG": row["PredictionString"].split()[0] for row in csv.DictReader(fh)}
        for meta in (d / "meta.bin", self.image_path / "meta.bin"):
            if meta.exists():
                from torchvision.datasets.imagenet import load_meta_file

                val_wnids = load_meta_file(str(meta.parent), meta.name)[1]
                return dict(zip(files, val_wnids, strict=False))
        devkit = d / "ILSVRC2012_devkit_t12" / "data"
        if (devkit / "meta.mat").exists():
            from scipy.io import loadmat

            synsets = loadmat(devkit / "meta.mat", squeeze_me=True)["synsets"]
            idx2wnid = {int(s[0]): str(s[1]) for s in synsets if int(s[4]) == 0}
            gt = read_lines(devkit / "ILSVRC2012_validation_ground_truth.txt", "re-extract the devkit")
            return dict(zip(files, (idx2wnid[int(i)] for i in gt), strict=False))
        raise DataError(
            f"imagenet: {self.image_path / 'val'} is flat and no labels were found; put LOC_val_solution.csv, "
            f"meta.bin or ILSVRC2012_devkit_t12/ in {d}, or move val images into wnid folders (valprep.sh)"
        )


class ImageNetVariant(DatasetReader):
    """A test-only ImageNet target: labels from sorted wnid folders, names from its ``classnames.txt`` copy."""

    template = "a photo of a {}."
    test_only = True
    source = "imagenet"
    ignored: ClassVar[tuple[str, ...]] = ()

    def read_splits(self) -> DatasetSplits:
        if not self.image_path.is_dir():
            raise DataError(
                f"{self.name}: image folder {self.image_path} not found; see `bench data prepare {self.name}`"
            )
        cls_file = self.dataset_path / "classnames.txt"
        wnid2name = read_classnames(cls_file)
        folders = [f for f in subdirs(self.image_path) if f not in self.ignored]
        if not folders:
            raise DataError(f"{self.name}: no class folders under {self.image_path}")
        unknown = [f for f in folders if f not in wnid2name]
        if unknown:
            raise DataError(
                f"{self.name}: class folder {self.image_path / unknown[0]} is not in {cls_file}; "
                "copy imagenet/classnames.txt there"
            )
        names = [wnid2name[f] for f in folders]
        return DatasetSplits([], [], folder_items(self.image_path, folders, names), classnames=names)


@DATASETS.register_module(name="imagenetv2")
class ImageNetV2(ImageNetVariant):
    name = "imagenetv2"
    dataset_dir = "imagenetv2"
    image_dir = "imagenetv2-matched-frequency-format-val"

    def read_splits(self) -> DatasetSplits:
        """Folders are ``0..999``; folder ``str(i)`` is the i-th line of ``classnames.txt``."""
        if not self.image_path.is_dir():
            raise DataError(
                f"imagenetv2: image folder {self.image_path} not found; see `bench data prepare imagenetv2`"
            )
        names = list(read_classnames(self.dataset_path / "classnames.txt").values())
        missing = [str(i) for i in range(len(names)) if not (self.image_path / str(i)).is_dir()]
        if missing:
            raise DataError(
                f"imagenetv2: class folder {self.image_path / missing[0]} is missing ({len(missing)} of {len(names)}); "
                "re-extract imagenetv2-matched-frequency.tar.gz"
            )
        return DatasetSplits([], [], folder_items(self.image_path, [str(i) for i in range(len(names))], names), names)


@DATASETS.register_module(name="imagenet_sketch")
class ImageNetSketch(ImageNetVariant):
    name = "imagenet_sketch"
    dataset_dir = "imagenet-sketch"
    image_dir = "images"


@DATASETS.register_module(name="imagenet_a")
class ImageNetA(ImageNetVariant):
    name = "imagenet_a"
    dataset_dir = "imagenet-adversarial"
    image_dir = "imagenet-a"
    ignored = ("README.txt",)


@DATASETS.register_module(name="imagenet_r")
class ImageNetR(ImageNetVariant):
    name = "imagenet_r"
    dataset_dir = "imagenet-rendition"
    image_dir = "imagenet-r"
    ignored = ("README.txt",)
