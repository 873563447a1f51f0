"""The decoded-image and feature caches at scale: written batch by batch, read batch by batch, same numbers."""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data import caches as C
from bench.data.caches import Caches, ImageStore, write_npy
from bench.data.dataset import Datum


def _items(folder: Path, n: int) -> list[Datum]:
    rng = np.random.default_rng(0)
    items = []
    for i in range(n):
        path = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (20 + i % 7, 24, 3), dtype=np.uint8)).save(path)
        items.append(Datum(str(path), i % 3, f"c{i % 3}"))
    return items


def test_streamed_image_cache_equals_the_whole_decoded_array(tmp_path: Path) -> None:
    items = _items(tmp_path, 150)  # 64 + 64 + 22: the last batch is short
    whole = np.concatenate([x.numpy() for x, *_ in C._loader(items, C.test_transform(16), 64, 0, 0)])  # the old build
    store = Caches(tmp_path / "cache", num_workers=0).images(items, 16)
    assert store.shape == whole.shape == (150, 3, 16, 16)
    np.testing.assert_array_equal(np.asarray(store), whole)
    np.testing.assert_array_equal(np.load(store.path), whole)  # a standard .npy file
    np.testing.assert_array_equal(torch.cat(list(store.batches(40))).numpy(), whole)
    assert [len(b) for b in store.batches(64)] == [64, 64, 22]


def test_the_image_cache_holds_one_batch_at_a_time(tmp_path: Path) -> None:
    """When batch k is produced, at most the batch before it is still alive (the writer's loop variable): memory does
    not grow with N (a list of batches + concatenate would keep all k)."""
    path = tmp_path / "x.npy"
    alive = []
    refs: list[weakref.ref] = []

    def batches():
        for k in range(5):
            alive.append(sum(r() is not None for r in refs))
            batch = np.full((10, 3, 4, 4), k, np.uint8)
            refs.append(weakref.ref(batch))
            yield batch
            del batch

    write_npy(path, (50, 3, 4, 4), batches())
    assert max(alive) <= 1
    assert np.asarray(ImageStore(path))[:, 0, 0, 0].tolist() == [k for k in range(5) for _ in range(10)]


def test_a_short_or_truncated_image_cache_is_refused(tmp_path: Path) -> None:
    from bench.errors import DataError

    with pytest.raises(DataError, match="gave 10 images, expected 20"):
        write_npy(tmp_path / "short.npy", (20, 3, 4, 4), [np.zeros((10, 3, 4, 4), np.uint8)])
    np.save(tmp_path / "ok.npy", np.zeros((4, 3, 4, 4), np.uint8))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "ok.npy").read_bytes()[:-1])
    with pytest.raises(ValueError, match="not a complete"):
        ImageStore(tmp_path / "cut.npy")


def test_features_fill_one_preallocated_tensor_equal_to_encoding_each_batch(tmp_path: Path, tiny_backbone) -> None:
    items = _items(tmp_path, 37)
    caches = Caches(tmp_path / "cache", num_workers=0)
    feats = caches.features(tiny_backbone, items, torch.device("cpu"), batch_size=16)[0]
    store = caches.images(items, tiny_backbone.image_size)
    from bench.data.caches import Normalizer

    norm = Normalizer(tiny_backbone, torch.device("cpu"))
    with torch.inference_mode():
        one_by_one = torch.cat([tiny_backbone.encode_image(norm(x)) for x in store.batches(16)])
    assert feats.shape == (37, tiny_backbone.embed_dim)
    torch.testing.assert_close(feats, one_by_one)


@pytest.mark.parametrize("views", [1, 2])
def test_training_without_augmentation_reads_the_same_images_from_the_store(tmp_path: Path, views: int) -> None:
    """``train.augment=none`` trains on the image store instead of decoding each epoch: the same shuffled batches,
    bit for bit (so records made either way are identical)."""
    items = _items(tmp_path, 23)
    store = Caches(tmp_path / "cache", num_workers=0).images(items, 16)
    decoded = C.ImageDataset(items, C.train_transform(16, "none"), views)
    stored = C.StoredImages(store, items, views)
    assert len(stored) == len(decoded) == 23

    def batches(data: torch.utils.data.Dataset) -> list:
        g = torch.Generator().manual_seed(3)
        return list(torch.utils.data.DataLoader(data, batch_size=4, shuffle=True, drop_last=True, generator=g))

    a, b = batches(decoded), batches(stored)
    assert len(a) == len(b) == 5
    for (xa, ya, ia), (xb, yb, ib) in zip(a, b):
        assert xb.dtype == torch.uint8 and xb.shape == xa.shape == ((4, 3, 16, 16) if views == 1 else (4, 2, 3, 16, 16))
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ia, ib)
    with pytest.raises(ValueError, match="holds 23 images for 22 items"):
        C.StoredImages(store, items[:22])
