"""``bench data prepare`` and ``bench data check``: get the 15 datasets into the CoOp layout and verify them.

prepare: archives are fetched resumably (HTTP Range, checksum, rich progress bar) into ``$DATA/.sources/<name>/`` where
torchvision's dataset class looks for them; the torchvision class verifies and extracts them; relative symlinks then
expose the files under CoOp's folder names; the CoOp split file is fetched from its published location (table
``SPLIT_URLS``), or, when unreachable, built by CoOp's rules with a loud warning. Where no automatic path exists the
exact manual steps are printed (``MANUAL``).

check: per dataset, found or not, images per split against the published CoOp counts, missing or unreadable images,
class-folder mismatches; a rich table and a non-zero exit if a requested dataset is unusable. ``preflight`` is the
cheap version ``bench run`` calls before starting.

Network access is confined to :func:`fetch` (and :func:`torchvision_build`), so tests replace them or point the URL
tables at a loopback server.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from bench.datasets.base import DatasetReader, DatasetSplits
from bench.errors import BenchError, DataError
from bench.plan import REAL

console = Console(stderr=True)

# The 15 datasets of the benchmark, in the order of the papers' tables.
BENCHMARK = (*REAL.datasets, *REAL.domain_generalization)

# ---------------------------------------------------------------------------------------------------------------------
# Data tables (edit here when a link moves)


def _drive(file_id: str) -> str:
    """The direct-download form of a Google Drive file (works without a cookie for small files)."""
    return f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t"


# CoOp's published split files (``KaiyangZhou/CoOp:DATASETS.md`` Drive links), tried in order.
SPLIT_URLS: dict[str, list[str]] = {
    "caltech101": [_drive("1hyarUivQE36mY6jSomru6Fjd-JzwcCzN")],
    "oxford_pets": [_drive("1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs")],
    "stanford_cars": [_drive("1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT")],
    "oxford_flowers": [_drive("1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT")],
    "food101": [_drive("1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl")],
    "sun397": [_drive("1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq")],
    "dtd": [_drive("1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x")],
    "eurosat": [_drive("1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o")],
    "ucf101": [_drive("1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y")],
}

# Other small files of CoOp's DATASETS.md: (dataset, file under the dataset folder) -> URLs.
EXTRA_URLS: dict[tuple[str, str], list[str]] = {
    ("oxford_flowers", "cat_to_name.json"): [_drive("1AkcxCXeK_RCGCEC_GvmWxjcjaNhu-at0")],
    ("imagenet", "classnames.txt"): [_drive("1-61f_ol79pViBFDG_IDlUQSwoLcn2XXF")],
}


@dataclass(frozen=True)
class Resource:
    """An archive fetched into ``$DATA/.sources/<dataset>/<path>``, where torchvision's class expects it."""

    url: str
    path: str
    md5: str | None = None


# URLs and md5 sums as in torchvision 0.29's dataset classes (if they drift, torchvision simply downloads itself).
ARCHIVES: dict[str, list[Resource]] = {
    "dtd": [
        Resource(
            "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz",
            "dtd/dtd-r1.0.1.tar.gz",
            "fff73e5086ae6bdbea199a49dfb8a4c1",
        )
    ],
    "food101": [
        Resource(
            "http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz", "food-101.tar.gz", "85eeb15f3717b99a5da872d97d918f87"
        )
    ],
    "oxford_pets": [
        Resource(
            "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
            "oxford-iiit-pet/images.tar.gz",
            "5c4f3ee8e5d25df40f4fd59a7f44e54c",
        ),
        Resource(
            "https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",
            "oxford-iiit-pet/annotations.tar.gz",
            "95a8c909bbe2e81eed6a22bccdf3f68f",
        ),
    ],
    "oxford_flowers": [
        Resource(
            "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz",
            "flowers-102/102flowers.tgz",
            "52808999861908f626f3c1f4e79d11fa",
        ),
        Resource(
            "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/imagelabels.mat",
            "flowers-102/imagelabels.mat",
            "e0620be6f572b9609742df49c70aed4d",
        ),
        Resource(
            "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/setid.mat",
            "flowers-102/setid.mat",
            "a5357ecc9cb78c4bef273ce3793fc85c",
        ),
    ],
    "fgvc_aircraft": [
        Resource(
            "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz",
            "fgvc-aircraft-2013b.tar.gz",
        )
    ],
    "eurosat": [
        Resource(
            "https://huggingface.co/datasets/torchgeo/eurosat/resolve/c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip",
            "eurosat/EuroSAT.zip",
            "c8fa014336c82ac7804f0398fcb19387",
        )
    ],
    "sun397": [
        Resource(
            "http://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz",
            "SUN397.tar.gz",
            "8ca2778205c41d23104230ba66911c7a",
        )
    ],
    "caltech101": [
        Resource(
            "https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip",
            "caltech101/caltech-101.zip",
            "3138e1922a9193bfa496528edbbc45d0",
        )
    ],
}

# SUN397's official partitions: only needed to build a split when the published one cannot be fetched.
SUN397_PARTITIONS = Resource("https://vision.princeton.edu/projects/2010/SUN/download/Partitions.zip", "Partitions.zip")

# torchvision class and the keyword arguments that make it download + extract into ``root``.
TORCHVISION: dict[str, tuple[str, dict]] = {
    "dtd": ("DTD", {}),
    "food101": ("Food101", {}),
    "oxford_pets": ("OxfordIIITPet", {}),
    "oxford_flowers": ("Flowers102", {}),
    "fgvc_aircraft": ("FGVCAircraft", {}),
    "eurosat": ("EuroSAT", {}),
    "sun397": ("SUN397", {}),
    "caltech101": ("Caltech101", {}),
}

# Where torchvision leaves the files (under .sources/<name>/) → the CoOp path under the dataset folder ("" = the
# dataset folder itself). The first entry is the one that must exist.
LINKS: dict[str, list[tuple[str, str]]] = {
    "dtd": [("dtd/dtd/images", "images"), ("dtd/dtd/labels", "labels"), ("dtd/dtd/imdb", "imdb")],
    "food101": [("food-101/images", "images"), ("food-101/meta", "meta")],
    "oxford_pets": [("oxford-iiit-pet/images", "images"), ("oxford-iiit-pet/annotations", "annotations")],
    "oxford_flowers": [
        ("flowers-102/jpg", "jpg"),
        ("flowers-102/imagelabels.mat", "imagelabels.mat"),
        ("flowers-102/setid.mat", "setid.mat"),
    ],
    "fgvc_aircraft": [("fgvc-aircraft-2013b/data", "")],
    "eurosat": [("eurosat/2750", "2750")],
    "sun397": [("SUN397", "SUN397"), ("SUN397/ClassName.txt", "ClassName.txt")],
    "caltech101": [("caltech101/101_ObjectCategories", "101_ObjectCategories")],
}

# Published CoOp split sizes (train, val, test): CoOp paper's dataset table; ImageNet train = ILSVRC-2012 train;
# ImageNet val is the 50k val set, used as test (CoOp uses it as val too). None = unknown (not checked).
PUBLISHED_COUNTS: dict[str, tuple[int | None, int | None, int | None]] = {
    "imagenet": (1_281_167, 50_000, 50_000),
    "caltech101": (4_128, 1_649, 2_465),
    "oxford_pets": (2_944, 736, 3_669),
    "stanford_cars": (6_509, 1_635, 8_041),
    "oxford_flowers": (4_093, 1_633, 2_463),
    "food101": (50_500, 20_200, 30_300),
    "fgvc_aircraft": (3_334, 3_333, 3_333),
    "sun397": (15_880, 3_970, 19_850),
    "dtd": (2_820, 1_128, 1_692),
    "eurosat": (13_500, 5_400, 8_100),
    "ucf101": (7_639, 1_898, 3_783),
    "imagenetv2": (0, 0, 10_000),
    "imagenet_sketch": (0, 0, 50_889),
    "imagenet_a": (0, 0, 7_500),
    "imagenet_r": (0, 0, 30_000),
}

_VARIANT_STEPS = (
    "copy (or let this command copy) $DATA/imagenet/classnames.txt to $DATA/{dir}/classnames.txt, then rerun "
    "`bench data check {name}`."
)
MANUAL: dict[str, str] = {
    "imagenet": (
        "ImageNet needs an image-net.org account. Either (a) put ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar and "
        "ILSVRC2012_devkit_t12.tar.gz in $DATA/imagenet/images/ and rerun `bench data prepare imagenet` (torchvision "
        "extracts them into images/train/<wnid>/ and images/val/<wnid>/), or (b) link existing folders: "
        "`ln -s /path/to/train $DATA/imagenet/images/train; ln -s /path/to/val $DATA/imagenet/images/val` "
        "(val may be flat if $DATA/imagenet/ holds LOC_val_solution.csv, meta.bin or ILSVRC2012_devkit_t12/). "
        "classnames.txt is fetched from CoOp's Drive link, else written from open_clip's CLIP class names."
    ),
    "stanford_cars": (
        "The Stanford Cars links are dead and torchvision cannot download it. Get cars_train/, cars_test/, devkit/ "
        "and cars_test_annos_withlabels.mat (e.g. from a Kaggle mirror that keeps the original file names "
        "00001.jpg ...; check that devkit/cars_meta.mat exists) into $DATA/stanford_cars/, then rerun "
        "`bench data prepare stanford_cars` to fetch split_zhou_StanfordCars.json."
    ),
    "ucf101": (
        "Download UCF-101-midframes.zip (CoOp's Drive file id 10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O: "
        "https://drive.google.com/file/d/10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O) and unzip it into $DATA/ucf101/ so that "
        "$DATA/ucf101/UCF-101-midframes/Apply_Eye_Makeup/... exists, then rerun `bench data prepare ucf101` to fetch "
        "split_zhou_UCF101.json."
    ),
    "imagenetv2": (
        "Download imagenetv2-matched-frequency.tar.gz (https://github.com/modestyachts/ImageNetV2) and extract it "
        "into $DATA/imagenetv2/ (giving imagenetv2-matched-frequency-format-val/0..999/); "
        + _VARIANT_STEPS.format(dir="imagenetv2", name="imagenetv2")
    ),
    "imagenet_sketch": (
        "Download ImageNet-Sketch (https://github.com/HaohanWang/ImageNet-Sketch) and extract it into "
        "$DATA/imagenet-sketch/ (giving images/<wnid>/); "
        + _VARIANT_STEPS.format(dir="imagenet-sketch", name="imagenet_sketch")
    ),
    "imagenet_a": (
        "Download imagenet-a.tar (https://github.com/hendrycks/natural-adv-examples) and extract it into "
        "$DATA/imagenet-adversarial/ (giving imagenet-a/<wnid>/); "
        + _VARIANT_STEPS.format(dir="imagenet-adversarial", name="imagenet_a")
    ),
    "imagenet_r": (
        "Download imagenet-r.tar (https://github.com/hendrycks/imagenet-r) and extract it into "
        "$DATA/imagenet-rendition/ (giving imagenet-r/<wnid>/); "
        + _VARIANT_STEPS.format(dir="imagenet-rendition", name="imagenet_r")
    ),
}


# ---------------------------------------------------------------------------------------------------------------------
# Downloads


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, dest: Path, md5: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``, resuming a ``dest.part`` left by an interrupted run; verify ``md5``.

    A complete ``dest`` with the right checksum is kept as is. Servers that ignore ``Range`` restart the file.
    """
    dest = Path(dest)
    if dest.exists() and (md5 is None or md5sum(dest) == md5):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    pos = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "adaptbench"}
    if pos:
        headers["Range"] = f"bytes={pos}-"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
            if pos and resp.status != 206:
                pos = 0  # no resume support: start over
            length = resp.headers.get("Content-Length")
            total = int(length) + pos if length else None
            with (
                part.open("ab" if pos else "wb") as fh,
                Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    TimeRemainingColumn(),
                    console=console,
                    transient=True,
                ) as bar,
            ):
                task = bar.add_task(dest.name, total=total, completed=pos)
                while block := resp.read(1 << 20):
                    fh.write(block)
                    bar.advance(task, len(block))
    except urllib.error.HTTPError as e:
        if e.code != 416 or not pos:  # 416: the .part file is already complete
            raise DataError(
                f"download of {url} failed (HTTP {e.code}); retry, or fetch it by hand into {dest}"
            ) from None
    except (urllib.error.URLError, OSError) as e:
        raise DataError(f"download of {url} failed ({e}); rerun to resume, or fetch it by hand into {dest}") from None
    if md5 is not None and md5sum(part) != md5:
        part.unlink()
        raise DataError(f"{url}: checksum mismatch for {dest.name} (expected md5 {md5}); the partial file was deleted")
    os.replace(part, dest)
    return dest


def fetch_first(urls: Sequence[str], dest: Path, validate: Callable[[Path], None] | None = None) -> bool:
    """Try each URL in turn; keep the first download that ``validate`` accepts. Returns whether one succeeded."""
    for url in urls:
        tmp = dest.with_name(dest.name + ".download")
        try:
            fetch(url, tmp)
            if validate is not None:
                validate(tmp)
        except (DataError, ValueError, KeyError, TypeError) as e:
            console.print(f"[yellow]could not use {url}: {e}[/]")
            tmp.unlink(missing_ok=True)
            continue
        os.replace(tmp, dest)
        return True
    return False


def _valid_split(path: Path) -> None:
    raw = json.loads(Path(path).read_text())
    for key in ("train", "val", "test"):
        if not raw[key] or len(raw[key][0]) != 3:
            raise ValueError(f"not a CoOp split file (no {key!r} rows)")


def fetch_split(name: str, dest: Path) -> bool:
    """Fetch CoOp's published split file of ``name`` to ``dest``; False if no source was reachable."""
    return fetch_first(SPLIT_URLS.get(name, []), dest, _valid_split)


def torchvision_build(name: str, src: Path) -> None:
    """Let torchvision's dataset class verify and extract the archives in ``src`` (downloading any still missing)."""
    import torchvision.datasets as tvd

    cls_name, kwargs = TORCHVISION[name]
    try:
        getattr(tvd, cls_name)(root=str(src), download=True, **kwargs)
    except Exception as e:  # torchvision raises RuntimeError/URLError/... with its own message
        raise DataError(f"torchvision {cls_name} could not prepare {src} ({e}); rerun to resume") from None


# ---------------------------------------------------------------------------------------------------------------------
# prepare


def _reader(name: str, root: Path) -> DatasetReader:
    from bench.registry import get_dataset

    return get_dataset(name)(root)


def link(src: Path, dest: Path) -> None:
    """A relative symlink ``dest`` → ``src`` (so the data root can move); an existing ``dest`` is kept."""
    if dest.exists() or dest.is_symlink():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(src, dest.parent), dest)


def arrange(name: str, src: Path, dataset_path: Path) -> None:
    """Expose torchvision's extracted files under CoOp's names with symlinks (no copies)."""
    for i, (rel_src, rel_dest) in enumerate(LINKS[name]):
        s = src / rel_src
        if not s.exists():
            if i == 0:
                raise DataError(f"{name}: expected {s} after extraction; delete {src} and rerun the prepare")
            continue
        link(s, dataset_path / rel_dest if rel_dest else dataset_path)


def warn_generated(name: str, path: Path) -> None:
    console.print(
        Panel(
            f"CoOp's published split file for [bold]{name}[/] could not be fetched, so {path.name} was BUILT by "
            "CoOp's rules. Results on it are NOT comparable with published numbers. Download the published file "
            f"(links in KaiyangZhou/CoOp DATASETS.md) to {path} and delete split_fewshot caches to fix this.",
            title="WARNING: generated split",
            border_style="red",
        )
    )


def _flowers_names(dataset_path: Path) -> None:
    """cat_to_name.json from CoOp's link, else from torchvision's Flowers102 class list (label order)."""
    dest = dataset_path / "cat_to_name.json"
    if dest.exists() or fetch_first(EXTRA_URLS[("oxford_flowers", "cat_to_name.json")], dest):
        return
    from torchvision.datasets import Flowers102

    names = getattr(Flowers102, "classes", None)
    if not names:
        raise DataError(f"{dest} is missing and could not be fetched; download CoOp's cat_to_name.json there")
    dest.write_text(json.dumps({str(i + 1): c for i, c in enumerate(names)}, indent=1))
    console.print(f"[yellow]warning:[/] wrote {dest} from torchvision's Flowers102 class names (CoOp's link failed)")


def _imagenet_classnames(reader: DatasetReader) -> None:
    """classnames.txt from CoOp's link, else from open_clip's CLIP names paired with the sorted wnid folders."""
    dest = reader.dataset_path / "classnames.txt"
    if dest.exists() or fetch_first(EXTRA_URLS[("imagenet", "classnames.txt")], dest):
        return
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    train = reader.image_path / "train"
    wnids = sorted(e.name for e in os.scandir(train) if e.is_dir()) if train.is_dir() else []
    if len(wnids) != len(IMAGENET_CLASSNAMES):
        raise DataError(f"{dest} is missing and could not be fetched; download CoOp's classnames.txt there")
    dest.write_text("".join(f"{w} {c}\n" for w, c in zip(wnids, IMAGENET_CLASSNAMES, strict=True)))
    console.print(f"[yellow]warning:[/] wrote {dest} from open_clip's ImageNet class names (the CLIP notebook's)")


def _prepare_imagenet(reader: DatasetReader) -> bool:
    images = reader.image_path
    if not ((images / "train").is_dir() and (images / "val").is_dir()):
        archives = [images / f for f in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")]
        if not all(a.exists() for a in archives):
            console.print(Panel(MANUAL["imagenet"], title="imagenet: manual steps", border_style="yellow"))
            return False
        from torchvision.datasets import ImageNet as TVImageNet

        for split in ("train", "val"):
            try:
                TVImageNet(root=str(images), split=split)
            except RuntimeError as e:
                raise DataError(f"imagenet: torchvision could not parse the archives in {images} ({e})") from None
    _imagenet_classnames(reader)
    return True


def _prepare_variant(reader: DatasetReader, name: str) -> bool:
    if not reader.image_path.is_dir():
        console.print(Panel(MANUAL[name], title=f"{name}: manual steps", border_style="yellow"))
        return False
    dest = reader.dataset_path / "classnames.txt"
    source = reader.root / "imagenet" / "classnames.txt"
    if not dest.exists():
        if not source.exists():
            raise DataError(f"{dest} is missing; run `bench data prepare imagenet` first, then rerun this")
        shutil.copyfile(source, dest)
    return True


def prepare(name: str, root: str | Path) -> bool:
    """Get dataset ``name`` into the CoOp layout under ``root``; True if it is ready, False if manual steps remain."""
    name = name.lower()
    root = Path(root).expanduser()
    if name not in BENCHMARK:
        from bench.registry import get_dataset

        get_dataset(name)  # unknown name → ConfigError listing the valid ones
        raise DataError(f"{name} has nothing to prepare (it is generated by the project); use `bench data check`")
    root.mkdir(parents=True, exist_ok=True)
    reader = _reader(name, root)
    if name == "imagenet":
        return _prepare_imagenet(reader)
    if reader.test_only:
        return _prepare_variant(reader, name)

    if not reader.image_path.is_dir() and name in TORCHVISION:
        src = root / ".sources" / name
        if not (src / LINKS[name][0][0]).exists():
            for res in ARCHIVES.get(name, []):
                console.print(f"fetching {res.url}")
                fetch(res.url, src / res.path, res.md5)
            torchvision_build(name, src)
        arrange(name, src, reader.dataset_path)
    if not reader.image_path.is_dir():
        console.print(Panel(MANUAL.get(name, f"place {name} in {reader.dataset_path}"), title=f"{name}: manual steps",
                            border_style="yellow"))  # fmt: skip
        return False

    if name == "oxford_flowers":
        _flowers_names(reader.dataset_path)
    if reader.split_file is not None:
        split_path = reader.dataset_path / reader.split_file
        if not split_path.exists() and not fetch_split(name, split_path):
            if name == "sun397" and not (reader.dataset_path / "Training_01.txt").exists():
                from torchvision.datasets.utils import extract_archive

                part = fetch(SUN397_PARTITIONS.url, root / ".sources" / name / SUN397_PARTITIONS.path)
                extract_archive(str(part), str(reader.dataset_path))
                for f in ("Training_01.txt", "Testing_01.txt"):  # the zip may hold a Partitions/ folder
                    if (reader.dataset_path / "Partitions" / f).exists():
                        link(reader.dataset_path / "Partitions" / f, reader.dataset_path / f)
            reader.read()  # builds the split by CoOp's rules and writes it
            warn_generated(name, split_path)
    reader.read()
    console.print(f"[green]{name} is ready[/] in {reader.dataset_path}")
    return True


# ---------------------------------------------------------------------------------------------------------------------
# check and preflight


@dataclass
class CheckRow:
    """One dataset's line of ``bench data check``."""

    dataset: str
    found: bool = False
    counts: tuple[int, int, int] | None = None
    expected: tuple[int | None, int | None, int | None] = (None, None, None)
    classes: int = 0
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """A run can use it: found, readable splits, every image present and decodable."""
        return self.found and not self.errors and not self.missing and not self.unreadable

    @property
    def status(self) -> str:
        if not self.found:
            return "missing"
        if not self.usable:
            return "unusable"
        differs = self.warnings or any(self.count_matches(i) is False for i in range(3))
        return "differs" if differs else "ok"

    def count_matches(self, i: int) -> bool | None:
        """Whether split ``i`` matches the published count; None when unknown."""
        if self.counts is None or self.expected[i] is None:
            return None
        return self.counts[i] == self.expected[i]


def image_ok(path: str) -> bool | None:
    """True if the image decodes fully, None if it is missing, False if unreadable (truncated, not an image)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.draft("RGB", (64, 64))  # JPEG: decode at reduced scale, still reads every byte
            img.load()
        return True
    except FileNotFoundError:
        return None
    except Exception:
        return False


def _scan_images(paths: list[str], decode: bool, label: str) -> tuple[list[str], list[str]]:
    """(missing, unreadable) among ``paths``; decoding runs on a thread pool behind a progress bar."""
    if not decode:
        return [p for p in paths if not os.path.exists(p)], []
    missing, bad = [], []
    with (
        ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 2) * 2)) as pool,
        Progress(console=console, transient=True) as bar,
    ):
        task = bar.add_task(f"checking {label}", total=len(paths))
        for p, ok in zip(paths, pool.map(image_ok, paths, chunksize=64), strict=True):
            if ok is None:
                missing.append(p)
            elif not ok:
                bad.append(p)
            bar.advance(task)
    return missing, bad


def check_one(name: str, root: Path, decode: bool = True) -> CheckRow:
    """Check one dataset without modifying anything (a missing split file is built in memory only)."""
    row = CheckRow(name, expected=PUBLISHED_COUNTS.get(name, (None, None, None)))
    try:
        reader = _reader(name, root)
        reader.check_root()
    except BenchError as e:
        row.errors.append(str(e))
        return row
    row.found = True
    splits: DatasetSplits | None = None
    try:
        if reader.split_file is not None and not (reader.dataset_path / reader.split_file).exists():
            if not reader.image_path.is_dir():
                raise DataError(f"{name}: image folder {reader.image_path} not found")
            row.warnings.append(f"{reader.split_file} missing: run `bench data prepare {name}` for the published one")
            splits = reader.build_split()
            getattr(reader, "validate", lambda s: None)(splits)
        else:
            splits = reader.read()
    except BenchError as e:
        row.errors.append(str(e))
    if splits is None:
        return row
    row.counts = (len(splits.train), len(splits.val), len(splits.test))
    row.classes = len(splits.classnames)
    paths = sorted({d.impath for d in (*splits.train, *splits.val, *splits.test)})
    row.missing, row.unreadable = _scan_images(paths, decode, name)
    return row


def check(names: Iterable[str], root: str | Path, decode: bool = True) -> list[CheckRow]:
    """Check each dataset; never raises for a bad dataset (its row says what is wrong)."""
    root = Path(root).expanduser()
    return [check_one(n.lower(), root, decode) for n in names]


def _fmt_count(row: CheckRow, i: int) -> str:
    if row.counts is None:
        return "-"
    exp = row.expected[i]
    match = row.count_matches(i)
    if match is None:
        return f"{row.counts[i]} (published: unknown)"
    return f"{row.counts[i]}" if match else f"[yellow]{row.counts[i]} ≠ {exp}[/]"


def render(rows: Sequence[CheckRow]) -> Table:
    """The rich table of ``bench data check``."""
    colour = {"ok": "green", "differs": "yellow", "unusable": "red", "missing": "red"}
    table = Table(title="bench data check")
    for col in ("dataset", "status", "classes", "train", "val", "test", "missing", "unreadable", "problems"):
        table.add_column(col, overflow="fold")
    for r in rows:
        problems = [*r.errors, *r.warnings]
        problems += [f"missing: {p}" for p in r.missing[:3]] + [f"unreadable: {p}" for p in r.unreadable[:3]]
        table.add_row(
            r.dataset,
            f"[{colour[r.status]}]{r.status}[/]",
            str(r.classes) if r.found else "-",
            *(_fmt_count(r, i) for i in range(3)),
            str(len(r.missing)),
            str(len(r.unreadable)),
            "\n".join(problems),
        )
    return table


def preflight(names: Iterable[str], root: str | Path) -> None:
    """Cheap check before ``bench run``: folders, split files, class folders and that every image file exists.

    Raises :class:`DataError` naming the file and the fix; images are not decoded (``bench data check`` does that).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist; pass --data-root or set $BENCH_DATA")
    for name in names:
        reader = _reader(name.lower(), root)
        splits = reader.read()
        for items in (splits.train, splits.val, splits.test):
            missing = [d.impath for d in items if not os.path.exists(d.impath)]
            if missing:
                more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
                raise DataError(
                    f"{name}: image {missing[0]}{more} listed in the split is missing; restore it or run "
                    f"`bench data check {name}`"
                )


# ---------------------------------------------------------------------------------------------------------------------
# CLI: mounted as ``bench data``

data_app = typer.Typer(help="Get the benchmark datasets into the CoOp layout and check them.", no_args_is_help=True)

RootOpt = Annotated[
    Path | None, typer.Option("--root", envvar="BENCH_DATA", help="data root ($DATA); default $BENCH_DATA")
]


def _root(root: Path | None) -> Path:
    if root is None:
        raise DataError("no data root: pass --root or set $BENCH_DATA")
    return root


def _fail(e: BenchError) -> typer.Exit:
    console.print(f"[red]error:[/] {e}")
    return typer.Exit(2)


@data_app.command("prepare")
def prepare_cmd(
    name: Annotated[str, typer.Argument(help="dataset, e.g. dtd (see `bench list datasets`)")],
    root: RootOpt = None,
) -> None:
    """Download/arrange one dataset and obtain its CoOp split file; prints manual steps where needed."""
    try:
        ready = prepare(name, _root(root))
    except BenchError as e:
        raise _fail(e) from None
    if not ready:
        raise typer.Exit(1)


@data_app.command("check")
def check_cmd(
    names: Annotated[list[str] | None, typer.Argument(help="datasets to check (default: all 15)")] = None,
    root: RootOpt = None,
    quick: Annotated[bool, typer.Option("--quick", help="only check that files exist; do not decode them")] = False,
) -> None:
    """Found, split sizes vs CoOp's, missing/unreadable images, class folders; exit 1 if one is unusable."""
    try:
        root = _root(root)
        if not root.is_dir():
            raise DataError(f"data root {root} does not exist; pass --root or set $BENCH_DATA")
        rows = check(names or BENCHMARK, root, decode=not quick)
    except BenchError as e:
        raise _fail(e) from None
    Console().print(render(rows))
    # Named datasets must all be usable; with no names, only the datasets present count (absent ones are listed).
    if any(not r.usable and (names or r.found) for r in rows):
        raise typer.Exit(1)
