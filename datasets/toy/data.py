"""The toy datasets: specs, on-demand generation into a cache folder in the CoOp layout, and their readers.

Each dataset pins the attribute it classifies and samples every other attribute as nuisance, so the same toy CLIP
faces shape, colour, texture, count, scene and fine-grained (texture + shape) recognition, a 48-class "toy ImageNet"
(colour + shape) and four style-shifted copies of it that play ImageNet-V2/-Sketch/-A/-R. Images are a pure function
of (dataset, split, index), so every machine writes byte-identical PNGs and split files.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.data.dataset import DatasetReader
from bench.datasets.toy import generator as gen
from bench.progress import no_progress, phase
from bench.registry import DATASETS

DATA_VERSION = "5"  # bump when the generator or the specs change: cached folders are then rebuilt
_DATA_SEED = 1_000_003  # distinct from any pretraining seed stream
IMAGE_DIR = "images"
VERSION_FILE = "toy_version.txt"  # inside each dataset folder: the DATA_VERSION it was written with

Attrs = Callable[[str, np.random.Generator], dict]


@dataclass(frozen=True)
class ToySpec:
    """One toy dataset: its class names, how a class pins scene attributes, sizes, style and prompt template."""

    name: str
    split_name: str  # CamelCase part of split_zhou_<...>.json
    classnames: list[str]
    template: str
    attrs: Attrs
    n_train: int = 20
    n_val: int = 5
    n_test: int = 20
    style_p: dict[str, float] = field(default_factory=lambda: {"photo": 1.0})
    test_only: bool = False
    source: str | None = None
    camera: str | None = None  # a post-processing the pretraining crawl never saw (a domain gap): see CAMERAS

    @property
    def split_file(self) -> str:
        return f"split_zhou_{self.split_name}.json"


def _pick(rng: np.random.Generator, options: list) -> object:
    return options[rng.integers(len(options))]


def _combos(first: list[str], second: list[str], n: int, salt: int) -> list[str]:
    """``n`` distinct "first second" class names in a fixed shuffled order (base/novel = halves of it)."""
    pairs = [f"{a} {b}" for a in first for b in second]
    order = np.random.default_rng(salt).permutation(len(pairs))
    return [pairs[i] for i in order[:n]]


_TEXTURED = [t for t in gen.TEXTURES if t != "solid"]
_IMAGENET_CLASSES = _combos(list(gen.COLOURS), gen.SHAPES, 48, salt=11)
_OBJECT_CLASSES = _combos(_TEXTURED, gen.SHAPES, 20, salt=12)
# Noun phrases, as every real benchmark's class names are: a bare numeral ("three") in a generic prompt ("a photo of a
# three.") is as foreign to the toy CLIP as to any CLIP, and left methods with one fixed prompt (MMA) at chance.
# Busy photos of small objects keep zero-shot below the ceiling ("one object" in clear photos reads ~96 %).
_COUNT_CLASSES = ["one object"] + [f"{w} objects" for w in gen.COUNT_WORDS[1:]]


def _colour_shape(c: str, rng: np.random.Generator) -> dict:
    colour, shape = c.split(" ")
    return {"colour": colour, "shape": shape}


def _few(rng: np.random.Generator) -> int:
    return int(_pick(rng, [1, 1, 1, 2, 3]))


def _v2(c: str, rng: np.random.Generator) -> dict:
    """ImageNet-V2-like: the same kind of photos, collected a bit differently (busier, smaller, the odd stray
    object) — a mild shift, not a new domain."""
    return {
        **_colour_shape(c, rng),
        "clutter": float(rng.uniform(0.6, 1.0)),
        "size": _pick(rng, ["small", "small", "medium"]),
        "count": int(_pick(rng, [1, 2, 3, 4])),
        "distractors": int(rng.random() < 0.35),
    }


def _hard(c: str, rng: np.random.Generator) -> dict:
    """ImageNet-A-like: small targets among distractor objects, heavy clutter."""
    return {
        **_colour_shape(c, rng),
        "clutter": 1.0,
        "size": _pick(rng, ["small", "medium"]),
        "count": 1,
        "distractors": int(rng.integers(1, 4)),
    }


SPECS: list[ToySpec] = [
    ToySpec(
        "toy_shapes",
        "ToyShapes",
        list(gen.SHAPES),
        "a photo of a {} shape.",
        lambda c, rng: {"shape": c, "count": _few(rng)},
    ),
    ToySpec(
        "toy_colors",
        "ToyColors",
        list(gen.COLOURS),
        "a photo of a {} object.",
        lambda c, rng: {"colour": c, "count": _few(rng)},
        camera="tungsten",  # colours under a warm cast: a domain gap where zero-shot confuses neighbouring hues
    ),
    ToySpec(
        "toy_textures",
        "ToyTextures",
        list(gen.TEXTURES),
        "a photo of a {} pattern.",
        lambda c, rng: {"texture": c, "count": 1, "size": _pick(rng, ["medium", "large", "large"])},
        n_test=30,
    ),
    ToySpec(
        "toy_counts",
        "ToyCounts",
        _COUNT_CLASSES,
        "a photo of {}.",
        lambda c, rng: {
            "count": _COUNT_CLASSES.index(c) + 1,
            "size": _pick(rng, ["small", "small", "medium"]),
            "clutter": float(rng.uniform(0.5, 1.0)),
        },
        n_test=40,
    ),
    ToySpec(
        "toy_scenes",
        "ToyScenes",
        list(gen.SCENES),
        "a photo of a {} scene.",
        lambda c, rng: {"scene": c, "count": _few(rng)},
        n_test=24,
        camera="haze",  # the toy EuroSAT: a high-altitude sensor looking through haze, which pretraining never saw
    ),
    ToySpec(
        "toy_objects",
        "ToyObjects",
        _OBJECT_CLASSES,
        "a photo of a {}.",
        lambda c, rng: {
            "texture": c.split(" ")[0],
            "shape": c.split(" ")[1],
            "count": _few(rng),
            "size": _pick(rng, ["medium", "large"]),
        },
    ),
    ToySpec("toy_imagenet", "ToyImageNet", _IMAGENET_CLASSES, "a photo of a {}.", _colour_shape),
    ToySpec(
        "toy_imagenet_v2",
        "ToyImageNetV2",
        _IMAGENET_CLASSES,
        "a photo of a {}.",
        _v2,
        n_train=0,
        n_val=0,
        n_test=12,
        test_only=True,
        source="toy_imagenet",
    ),
    ToySpec(
        "toy_imagenet_sketch",
        "ToyImageNetSketch",
        _IMAGENET_CLASSES,
        "a photo of a {}.",
        _colour_shape,
        n_train=0,
        n_val=0,
        n_test=12,
        style_p={"sketch": 1.0},
        camera="graphite",
        test_only=True,
        source="toy_imagenet",
    ),
    ToySpec(
        "toy_imagenet_a",
        "ToyImageNetA",
        _IMAGENET_CLASSES,
        "a photo of a {}.",
        _hard,
        n_train=0,
        n_val=0,
        n_test=12,
        style_p={"photo": 0.5, "noisy": 0.5},
        test_only=True,
        source="toy_imagenet",
    ),
    ToySpec(
        "toy_imagenet_r",
        "ToyImageNetR",
        _IMAGENET_CLASSES,
        "a photo of a {}.",
        _colour_shape,
        n_train=0,
        n_val=0,
        n_test=12,
        style_p={"cartoon": 0.4, "painting": 0.3, "lowres": 0.3},
        test_only=True,
        source="toy_imagenet",
    ),
]
SPEC_BY_NAME = {s.name: s for s in SPECS}

TOY_SUITE: dict = dict(  # the fields of bench.sweep.suites.Suite (registered by register.py)
    base2novel=[s.name for s in SPECS if not s.test_only],
    source="toy_imagenet",
    cross_dataset=[s.name for s in SPECS if not s.test_only and s.name != "toy_imagenet"],
    domain_generalization=[s.name for s in SPECS if s.test_only],
    backbone="toy-vit",
    pretrained="toy",
    # The toy source plays ImageNet: methods use their ImageNet settings on it (CoOp 50 epochs, MMA batch 128).
    # Its shifted copies play ImageNet's: evaluation-time template rules (Tip-Adapter's ImageNet ensemble) follow them.
    roles={
        "toy_imagenet": "imagenet",
        "toy_imagenet_v2": "imagenetv2",
        "toy_imagenet_sketch": "imagenet_sketch",
        "toy_imagenet_a": "imagenet_a",
        "toy_imagenet_r": "imagenet_r",
    },  # fmt: skip
    # toy-vit has 6 blocks per tower, not 12: the papers' layer choices mapped to the same relative depth.
    # MMA's adapter scale α: 0.1, the default of MMA's code (clip/model.py), not its yaml's 0.001. At 0.001 the toy's
    # adapters are inert: 30 SGD steps move the toy's logits by 0.001 (measured), so MMA equals zero-shot and RMAdapter
    # equals MMA. A likely cause, not verified: toy-vit is 128 wide with 65 tokens, ViT-B/16 768 wide with 197.
    # Every method trains without augmentation here: RandomResizedCrop from 8 % of the area keeps 18 of 64 pixels, which
    # often crops a toy object away. Measured on B2N, 3 seeds (average base): crop scale 0.08 → 0.5 → none moved CoOp
    # 72.4 → 75.4 → 79.5 and MaPLe 70.0 → 73.5 → 80.8; MMA, RMAdapter, the Tip-Adapters moved under a point.
    # Every training takes at least 100 optimiser steps (train.min_steps; the epochs are raised, the schedule stays the
    # paper's shape): the toy's base sets have 3-24 classes, so 5-epoch methods (MMA, RMAdapter) took 15-50
    # steps, which on the real benchmark happens only on EuroSAT (Oxford Pets and DTD give MMA 95 and 120, by its config).
    overrides={
        "*": {"train": {"augment": "none", "min_steps": 100}},
        "mma": {"method": {"adapter_start": 3, "adapter_end": 6, "adapter_scale": 0.1}},  # MMA: blocks 5-12 of 12
        "mma:cross_dataset": {"method": {"adapter_start": 4}},  # MMA xd/DG: blocks 9-12 of 12
        "mma:domain_generalization": {"method": {"adapter_start": 4}},
        "rmadapter": {"method": {"adapter_start": 3, "adapter_end": 6, "adapter_scale": 0.1}},
        "rmadapter:cross_dataset": {"method": {"adapter_start": 4}},
        "rmadapter:domain_generalization": {"method": {"adapter_start": 4}},
        "maple": {"method": {"prompt_depth": 5}},  # MaPLe B2N: depth 9 of 12
        "maple:cross_dataset": {"method": {"prompt_depth": 2}},  # MaPLe xd/DG: depth 3 of 12
        "maple:domain_generalization": {"method": {"prompt_depth": 2}},
        "promptsrc": {"method": {"text_depth": 5, "vision_depth": 5}},  # PromptSRC B2N: depth 9 of 12
        "promptsrc:cross_dataset": {"method": {"text_depth": 2, "vision_depth": 2}},  # xd/DG: depth 3 of 12
        "promptsrc:domain_generalization": {"method": {"text_depth": 2, "vision_depth": 2}},
        "tcp": {"method": {"insert_layer": 4}},  # TCP: class-aware tokens at the input of block 8 of 12 (0-based)
        # CoPrompt: depth 9 of 12 (B2N default) → 5; ImageNet's 12 of 12 (its cross-dataset/DG source) → 6
        # ... and no LLM descriptions exist for toy classes (toy_imagenet plays ImageNet, whose file it would ask for)
        "coprompt": {"method": {"prompt_depth": 5, "descriptions": "templates"}},
        "coprompt:cross_dataset": {"method": {"prompt_depth": 6}},
        "coprompt:domain_generalization": {"method": {"prompt_depth": 6}},
    },
)


# ---------------------------------------------------------------------------------------------------------------------
# Generation


def _folder(classname: str) -> str:
    return classname.replace(" ", "_")


def _items(spec: ToySpec) -> dict[str, list[tuple[str, int, str, list[int]]]]:
    """Per split: (relative path, label, class name, rng key) of every image; the key makes the image reproducible."""
    salt = zlib.crc32(spec.name.encode())
    out: dict[str, list[tuple[str, int, str, list[int]]]] = {}
    for s_idx, (split, n) in enumerate((("train", spec.n_train), ("val", spec.n_val), ("test", spec.n_test))):
        rows = []
        for label, c in enumerate(spec.classnames):
            for i in range(n):
                rows.append((f"{_folder(c)}/{split}_{i:04d}.png", label, c, [_DATA_SEED, salt, s_idx, label, i]))
        out[split] = rows
    return out


def _tungsten(img: np.ndarray) -> np.ndarray:
    """Uncorrected tungsten light: a strong warm cast (blue suppressed), as a camera without white balance records."""
    return img * np.array([1.0, 0.8, 0.45], np.float32) + np.array([25.0, 10.0, 0.0], np.float32)


def _haze(img: np.ndarray) -> np.ndarray:
    """Aerial haze, as a high-altitude sensor records it: contrast falls to 45 % under a bluish-grey airlight. Every
    scene keeps its hues and patterns, faintly (the features still carry the class), unlike a false-colour palette,
    which re-maps hues so that no shared prompt can undo it (measured: datasets/toy/README.md)."""
    return img * 0.45 + np.array([140.0, 150.0, 170.0], np.float32)


def _graphite(img: np.ndarray) -> np.ndarray:
    """Half-faded coloured pencil: the sketch's ink keeps half its saturation (ImageNet-Sketch is greyscale; the toy's
    classes are colour + shape, so a fully grey copy would erase half of every class). At 0.5 the copy's zero-shot
    accuracy is 0.69× the source's, as for real CLIP (ImageNet-Sketch 46.2 / ImageNet 66.7; toy 52.4 / 76.4)."""
    lum = (img @ np.array([0.3, 0.59, 0.11], np.float32))[..., None]
    return lum + 0.5 * (img - lum)


# Dataset-only renderings: the EuroSAT-like domain gaps (zero-shot struggles, the features still carry the class) and
# the sketch copy's faded ink.
CAMERAS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"tungsten": _tungsten, "haze": _haze,
                                                          "graphite": _graphite}  # fmt: skip


def render_item(spec: ToySpec, classname: str, key: list[int]):  # -> PIL.Image.Image
    """The image of one dataset item (a pure function of the spec, class and key)."""
    from dataclasses import replace

    from PIL import Image

    rng = np.random.default_rng(key)
    scene = gen.sample_scene(rng, spec.style_p)
    fixed = spec.attrs(classname, rng)
    img = gen.render(rng, replace(scene, **fixed))
    if spec.camera is None:
        return img
    out = CAMERAS[spec.camera](np.asarray(img, np.float32))
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGB")


def _remove_dead_temp_folders(root: Path) -> None:
    """Delete the ``.tmp-<dataset>-<pid>`` folders of generations whose process is gone (killed mid-write)."""
    from bench.io import pid_is_dead

    for folder in root.glob(".tmp-*-*"):
        pid = folder.name.rsplit("-", 1)[-1]
        if pid.isdigit() and pid_is_dead(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def write_dataset(spec: ToySpec, root: Path) -> Path:
    """Write one dataset under ``root/<name>`` atomically: built in a temp folder, split file last, then renamed."""
    final = root / spec.name
    tmp = root / f".tmp-{spec.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    items = _items(spec)
    for split_rows in items.values():
        for rel, _label, c, key in split_rows:
            path = tmp / IMAGE_DIR / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            render_item(spec, c, key).save(path, optimize=False, compress_level=1)
    split = {k: [[rel, label, c] for rel, label, c, _key in rows] for k, rows in items.items()}
    (tmp / spec.split_file).write_text(json.dumps(split))
    (tmp / VERSION_FILE).write_text(DATA_VERSION)
    (tmp / "classnames.txt").write_text("".join(f"{_folder(c)} {c}\n" for c in spec.classnames))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def _write_named(name: str, root: Path) -> Path:
    """:func:`write_dataset` by name (specs hold lambdas, which do not pickle into worker processes)."""
    return write_dataset(SPEC_BY_NAME[name], root)


def default_root() -> Path:
    """``$BENCH_TOY_ROOT`` or ``~/.cache/adaptbench/toy``, then ``v<DATA_VERSION>``: a new generator writes a new
    folder, so a sweep of another adaptbench version reading the old one never sees it deleted under it."""
    base = Path(os.environ.get("BENCH_TOY_ROOT") or Path.home() / ".cache" / "adaptbench" / "toy").expanduser()
    return base / f"v{DATA_VERSION}"


def ensure_toy_data(root: Path | None = None, names: list[str] | None = None) -> Path:
    """Generate the toy datasets into ``root`` unless already there; returns the data root (the ``$DATA`` folder).

    Safe to call from many processes at once: a file lock serialises generation, each dataset appears by an atomic
    rename, and a version marker makes later calls return immediately.
    """
    from bench.io import atomic_write_text, lock

    root = Path(root).expanduser() if root else default_root()
    wanted = [SPEC_BY_NAME[n] for n in (names or [s.name for s in SPECS]) if n in SPEC_BY_NAME]  # not a plugin's
    marker = root / f".complete-v{DATA_VERSION}.json"

    def done(spec: ToySpec) -> bool:
        """Written by this DATA_VERSION (a folder from an older version is rebuilt, even when others are current)."""
        version = root / spec.name / VERSION_FILE
        return (
            (root / spec.name / spec.split_file).exists() and version.exists() and version.read_text() == DATA_VERSION
        )

    if marker.exists() and all(done(s) for s in wanted):
        return root
    root.mkdir(parents=True, exist_ok=True)
    with lock(root / ".generate"):
        _remove_dead_temp_folders(root)
        todo = [spec for spec in wanted if not done(spec)]
        workers = min(len(todo), os.cpu_count() or 1, 4)
        what = f"generating {len(todo)} toy datasets ({sum(map(dataset_size, todo))} images) in {root}"
        with phase(what, len(todo)) if todo else contextlib.nullcontext(no_progress) as advance:
            if workers > 1:
                from concurrent.futures import ProcessPoolExecutor

                with ProcessPoolExecutor(workers) as pool:
                    for _ in pool.map(_write_named, [spec.name for spec in todo], [root] * len(todo)):
                        advance(1)
            else:
                for spec in todo:
                    write_dataset(spec, root)
                    advance(1)
        if names is None or all(done(s) for s in SPECS):
            atomic_write_text(marker, json.dumps({"version": DATA_VERSION, "datasets": [s.name for s in SPECS]}))
    return root


def dataset_size(spec: ToySpec) -> int:
    return len(spec.classnames) * (spec.n_train + spec.n_val + spec.n_test)


def base_novel_test_counts(spec: ToySpec) -> tuple[int, int]:
    """Test images in the base and novel halves (CoOp: base = first ceil(n/2) labels)."""
    m = math.ceil(len(spec.classnames) / 2)
    return m * spec.n_test, (len(spec.classnames) - m) * spec.n_test


# ---------------------------------------------------------------------------------------------------------------------
# Readers


class ToyDatasetReader(DatasetReader):
    """Reader of a generated toy dataset (plain CoOp layout: ``images/<class>/*.png`` + ``split_zhou_*.json``)."""

    image_dir = IMAGE_DIR


def _make_reader(spec: ToySpec) -> type[DatasetReader]:
    cls = type(
        "".join(p.capitalize() for p in spec.name.split("_")),
        (ToyDatasetReader,),
        {
            "__doc__": f"Toy dataset {spec.name}: {len(spec.classnames)} classes, template {spec.template!r}.",
            "__module__": __name__,
            "name": spec.name,
            "dataset_dir": spec.name,
            "split_file": spec.split_file,
            "template": spec.template,
            "test_only": spec.test_only,
            "source": spec.source,
        },
    )
    DATASETS.register_module(name=spec.name, module=cls)
    return cls


READERS: dict[str, type[DatasetReader]] = {spec.name: _make_reader(spec) for spec in SPECS}
