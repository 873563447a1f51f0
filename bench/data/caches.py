"""Images to tensors, fast: CLIP preprocessing, a decoded-once uint8 store for evaluation, and a feature cache.

Test images are decoded, resized (shorter side, bicubic) and centre-cropped once into a uint8 array on disk, so
evaluation is bound by the model, not JPEG decoding. Methods that keep the image encoder frozen reuse image features
across methods and seeds; every cache key holds what changes the features (backbone, pretrained tag, preprocessing,
augmentation pass and its seed, the exact file list).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from bench.data.dataset import Datum
from bench.errors import DataError
from bench.io import atomic_write, digest, lock, set_aside
from bench.precision import autocast
from bench.progress import Advance, no_progress, phase

if TYPE_CHECKING:  # the model layer sits above this one
    from bench.model.backbone import Backbone

BICUBIC = T.InterpolationMode.BICUBIC
V = TypeVar("V")


def test_transform(size: int) -> T.Compose:
    """CLIP's test preprocessing, without normalisation (done on the device): resize shorter side + centre crop."""
    return T.Compose([T.Resize(size, interpolation=BICUBIC), T.CenterCrop(size), T.PILToTensor()])


def train_transform(size: int, augment: str = "rrc_flip", scale_min: float = 0.08) -> T.Compose:
    """Dassl's ``random_resized_crop`` + ``random_flip`` (CoOp, MaPLe, MMA); ``randaugment``: resize to size×size and
    RandAugment(2, 10) (CoPrompt's ``["randaugment", "normalize"]``; torchvision's, not Dassl's own op list);
    ``none`` = the test transform."""
    if augment == "none":
        return test_transform(size)
    if augment == "randaugment":
        return T.Compose([T.Resize((size, size), interpolation=BICUBIC), T.RandAugment(2, 10), T.PILToTensor()])
    if augment != "rrc_flip":
        raise ValueError(f"unknown augmentation {augment!r}; use rrc_flip, randaugment or none")
    return T.Compose(
        [
            T.RandomResizedCrop(size, scale=(scale_min, 1.0), interpolation=BICUBIC),
            T.RandomHorizontalFlip(),
            T.PILToTensor(),
        ]
    )


def load_image(path: str) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"image {path} not found; check the split file or run `bench data check`") from None
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"image {path} is unreadable ({e}); replace it and run `bench data check`") from None


class ImageDataset(Dataset):
    """(uint8 image tensor, label, index) triples for a list of items; with ``views=k``, k independent transforms of
    the same image stacked as (k, C, H, W) (Dassl's ``K_TRANSFORMS``)."""

    def __init__(self, items: Sequence[Datum], transform: T.Compose, views: int = 1) -> None:
        self.items, self.transform, self.views = list(items), transform, views

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Tensor, int, int]:
        d = self.items[i]
        img = load_image(d.impath)
        if self.views == 1:
            return self.transform(img), d.label, i
        return torch.stack([self.transform(img) for _ in range(self.views)]), d.label, i


class StoredImages(Dataset):
    """:class:`ImageDataset`'s triples read from an :class:`ImageStore` of the same items: training without
    augmentation sees the test-preprocessed images every epoch, so they are decoded once (identical tensors)."""

    def __init__(self, store: ImageStore, items: Sequence[Datum], views: int = 1) -> None:
        if len(store) != len(items):
            raise ValueError(f"{store.path} holds {len(store)} images for {len(items)} items")
        self.store, self.labels, self.views = store, [d.label for d in items], views

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, int, int]:
        img = torch.from_numpy(self.store.read(i, i + 1)[0])
        return (img if self.views == 1 else torch.stack([img] * self.views)), self.labels[i], i


class Normalizer:
    """uint8 images → normalised float on the device (CLIP mean/std), done in one fused op per batch."""

    def __init__(self, backbone: Backbone, device: torch.device) -> None:
        self.mean = torch.tensor(backbone.mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(backbone.std, device=device).view(1, 3, 1, 1) * 255
        self.device = device

    def __call__(self, images: Tensor) -> Tensor:
        return (images.to(self.device, non_blocking=True).float() - self.mean) / self.std


def _loader(items: Sequence[Datum], transform: T.Compose, batch_size: int, num_workers: int, seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(
        ImageDataset(items, transform), batch_size=batch_size, shuffle=False, num_workers=num_workers, generator=g
    )


def files_fingerprint(items: Sequence[Datum]) -> str:
    """What identifies the images on disk: each path with its size and modification time, so a dataset rewritten in
    place (a regenerated toy world, a fixed image) never reads the cache of the old files. Computed once per process
    and item list (50k stats on a network file system take seconds)."""
    paths = [d.impath for d in items]
    key = digest(paths)
    if key not in _FINGERPRINTS:
        rows = []
        for path in paths:
            try:
                st = Path(path).stat()
                rows.append((path, st.st_size, st.st_mtime_ns))
            except OSError:
                rows.append((path, -1, -1))  # the loader names the missing file
        _FINGERPRINTS[key] = digest(rows)
    return _FINGERPRINTS[key]


_FINGERPRINTS: dict[str, str] = {}


class ImageStore:
    """A uint8 ``.npy`` file of shape (N, 3, S, S), read batch by batch with plain file reads.

    Not a memory map: the pages a map touches count in the process's resident memory, so one pass over ImageNet's
    50k test images (7.5 GB at 224 px) through ``np.load(mmap_mode="r")`` peaked at 8.4 GB RSS (benchmarks/scale.py).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with self.path.open("rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, fortran_order, dtype = read_header(fh)
            self.offset = fh.tell()
        size = self.offset + int(np.prod(shape))
        if dtype != np.uint8 or fortran_order or len(shape) != 4 or self.path.stat().st_size != size:
            raise ValueError(f"{self.path} is not a complete uint8 image store")
        self.shape: tuple[int, ...] = tuple(shape)

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Images ``start:stop`` as a fresh array (one read call)."""
        stop = min(stop, len(self))
        row = int(np.prod(self.shape[1:]))
        out = np.empty((max(stop - start, 0), *self.shape[1:]), np.uint8)
        with self.path.open("rb") as fh:
            fh.seek(self.offset + start * row)
            fh.readinto(memoryview(out).cast("B"))
        return out

    def batches(self, batch_size: int) -> Iterator[Tensor]:
        for i in range(0, len(self), batch_size):
            yield torch.from_numpy(self.read(i, i + batch_size))

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        """All images in memory (small stores and tests only)."""
        arr = self.read(0, len(self))
        return arr if dtype is None else arr.astype(dtype)


def write_npy(path: Path, shape: tuple[int, ...], batches: Iterable[np.ndarray]) -> None:
    """Write a uint8 ``.npy`` file of ``shape`` from consecutive batches, one batch in memory at a time."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": shape}
    n = 0
    with path.open("wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        for batch in batches:
            fh.write(np.ascontiguousarray(batch, dtype=np.uint8).data)
            n += len(batch)
    if n != shape[0]:
        raise DataError(f"image cache {path}: the loader gave {n} images, expected {shape[0]}")


class Caches:
    """The on-disk caches under one folder: decoded test images and frozen image features, keyed by the files'
    identity (:func:`files_fingerprint`) and, for features, the backbone's weights (``Backbone.fingerprint``)."""

    def __init__(self, root: str | Path, num_workers: int = 4) -> None:
        self.root = Path(root)
        self.num_workers = num_workers

    # -- decoded images ------------------------------------------------------------------------------------------
    def images(self, items: Sequence[Datum], size: int) -> ImageStore:
        """The test-preprocessed images as a uint8 (N, 3, size, size) store on disk, decoded on first use.

        Written batch by batch as the loader decodes them, so building ImageNet's 50k test images (7.5 GB at 224 px)
        holds one batch in memory, not the whole array.
        """
        key = digest({"files": files_fingerprint(items), "size": size, "tf": "resize-centercrop-bicubic"})
        path = self.root / "images" / f"{key}.npy"
        shape = (len(items), 3, size, size)

        def build() -> Callable[[Path], None]:
            loader = _loader(items, test_transform(size), 64, self.num_workers, 0)
            what = f"decoding {len(items)} images at {size} px (cached for every method)"

            def decoded(done: Advance) -> Iterator[np.ndarray]:
                for x, *_ in loader:
                    yield x.numpy()
                    done(len(x))

            def write(tmp: Path) -> None:
                with phase(what, len(items)) as done:
                    write_npy(tmp, shape, decoded(done))

            return write

        def load(p: Path) -> ImageStore | None:
            store = ImageStore(p)
            return store if store.shape == shape else None

        return _cached(path, build, load)

    # -- frozen image features -----------------------------------------------------------------------------------
    @torch.inference_mode()
    def features(
        self,
        backbone: Backbone,
        items: Sequence[Datum],
        device: torch.device,
        augment: str | None = None,
        passes: int = 1,
        seed: int = 0,
        scale_min: float = 0.08,
        batch_size: int = 256,
        first: int = 0,
        build_only: bool = False,
    ) -> list[Tensor]:
        """Frozen image features, one (N, D) float tensor per pass (CPU).

        ``augment=None``: test preprocessing (one pass, from the image store). Otherwise ``passes`` augmented passes
        from pass ``first`` on, each seeded by ``(seed, pass)``, so a pass is the same tensor for every method that
        asks for it. ``build_only``: make sure the files exist and return nothing (many passes, read one at a time).
        """
        spec = {"backbone": backbone.name, "weights": backbone.fingerprint, "size": backbone.image_size,
                "augment": augment, "scale_min": scale_min}  # fmt: skip
        base = digest({**spec, "files": files_fingerprint(items)})
        tags = ["test"] if augment is None else [f"{augment}-s{seed}-p{p}" for p in range(first, first + passes)]
        paths = [self.root / "features" / f"{base}-{tag}.pt" for tag in tags]
        todo = sum(not path.exists() for path in paths)
        what = (f"encoding {len(items)} images with {backbone.name}" if augment is None
                else f"encoding {todo} augmented pass{'es' * (todo > 1)} ({augment}) of {len(items)} images with "
                     f"{backbone.name}")  # fmt: skip

        def load(f: Path) -> Tensor | None:
            t = torch.load(f, map_location="cpu", weights_only=True)
            return t if isinstance(t, Tensor) and t.shape == (len(items), backbone.embed_dim) else None

        out = []
        with phase(what, todo * len(items)) if todo else contextlib.nullcontext(no_progress) as done:
            for p, path in enumerate(paths, start=first):

                def build(p: int = p) -> Callable[[Path], None]:
                    feats = self._encode(backbone, items, device, augment, seed * 1000 + p, scale_min, batch_size, done)
                    return lambda tmp: torch.save(feats, tmp)

                if build_only and path.exists():
                    continue
                value = _cached(path, build, load)
                if not build_only:
                    out.append(value)
        return out

    def _encode(
        self,
        backbone: Backbone,
        items: Sequence[Datum],
        device: torch.device,
        augment: str | None,
        seed: int,
        scale_min: float,
        batch_size: int,
        done: Advance,
    ) -> Tensor:
        norm = Normalizer(backbone, device)
        if augment is None:
            batches: Iterable[Tensor] = self.images(items, backbone.image_size).batches(batch_size)
        else:
            torch.manual_seed(seed)  # augmentation randomness in the main process (num_workers=0)
            tf = train_transform(backbone.image_size, augment, scale_min)
            batches = (x for x, *_ in _loader(items, tf, batch_size, self.num_workers, seed))
        feats = torch.empty(len(items), backbone.embed_dim)  # filled in place: no list of batches + cat (2x memory)
        i = 0
        with autocast(device):
            for x in batches:
                feats[i : i + len(x)] = backbone.encode_image(norm(x)).float().cpu()
                i += len(x)
                done(len(x))
        return feats


def _cached(path: Path, build: Callable[[], Callable[[Path], None]], load: Callable[[Path], V | None]) -> V:
    """``load(path)``, building the file first if it is missing: once, under a lock, into a temp file renamed into
    place (``build()`` returns the writer; a streaming writer fills the temp file as it computes: an exception removes
    it, and one left by ``kill -9`` carries its writer's pid, so the next sweep removes it). A file that does not
    load — truncated, foreign, the wrong shape (``load`` returns None) — is set aside and rebuilt once."""
    for _ in range(2):
        if not path.exists():
            with lock(path):
                if not path.exists():
                    atomic_write(path, build())
        try:
            value = load(path)
        except Exception:  # unreadable: rebuild
            value = None
        if value is not None:
            return value
        set_aside(path)
    raise DataError(f"cache file {path} could not be rebuilt; delete its folder and run again")
