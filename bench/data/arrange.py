"""``bench data prepare``: fetch a dataset's archives into ``$DATA/.sources/<name>/`` where torchvision's class looks
for them, let torchvision verify and extract them, expose the files under CoOp's folder names with relative symlinks,
and fetch the CoOp split file (or build one by CoOp's rules, with a loud warning). Where no automatic path exists the
exact manual steps are printed (``MANUAL``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from bench.data import fetch as net
from bench.data.dataset import DatasetReader
from bench.data.tables import ARCHIVES, BENCHMARK, EXTRA_URLS, LINKS, MANUAL, SUN397_PARTITIONS, TORCHVISION
from bench.errors import DataError

console = Console(stderr=True)


def reader_for(name: str, root: Path) -> DatasetReader:
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
    if dest.exists() or net.fetch_first(EXTRA_URLS[("oxford_flowers", "cat_to_name.json")], dest):
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
    if dest.exists() or net.fetch_first(EXTRA_URLS[("imagenet", "classnames.txt")], dest):
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
    reader = reader_for(name, root)
    if name == "imagenet":
        return _prepare_imagenet(reader)
    if reader.test_only:
        return _prepare_variant(reader, name)

    if not reader.image_path.is_dir() and name in TORCHVISION:
        src = root / ".sources" / name
        if not (src / LINKS[name][0][0]).exists():
            for res in ARCHIVES.get(name, []):
                console.print(f"fetching {res.url}")
                net.fetch(res.url, src / res.path, res.checksum)
            net.torchvision_build(name, src)
        arrange(name, src, reader.dataset_path)
    if not reader.image_path.is_dir():
        console.print(Panel(MANUAL.get(name, f"place {name} in {reader.dataset_path}"), title=f"{name}: manual steps",
                            border_style="yellow"))  # fmt: skip
        return False

    if name == "oxford_flowers":
        _flowers_names(reader.dataset_path)
    if reader.split_file is not None:
        split_path = reader.dataset_path / reader.split_file
        if not split_path.exists() and not net.fetch_split(name, split_path):
            if name == "sun397" and not (reader.dataset_path / "Training_01.txt").exists():
                from torchvision.datasets.utils import extract_archive

                part = net.fetch(
                    SUN397_PARTITIONS.url, root / ".sources" / name / SUN397_PARTITIONS.path, SUN397_PARTITIONS.checksum
                )
                extract_archive(str(part), str(reader.dataset_path))
                for f in ("Training_01.txt", "Testing_01.txt"):  # the zip may hold a Partitions/ folder
                    if (reader.dataset_path / "Partitions" / f).exists():
                        link(reader.dataset_path / "Partitions" / f, reader.dataset_path / f)
            reader.read()  # builds the split by CoOp's rules and writes it
            warn_generated(name, split_path)
    reader.read()
    console.print(f"[green]{name} is ready[/] in {reader.dataset_path}")
    return True
