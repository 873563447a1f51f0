"""Evaluation throughput: the harness's path from the decoded-image cache against a bare ``encode_image`` loop.

    python benchmarks/eval_throughput.py [--backbone ViT-B-16] [--device cuda] [--n 4096] [--batch-size 256]

The harness path is what a frozen-encoder evaluation runs (``Caches._encode``: read uint8 batches from the image
store, copy, normalise, encode under ``autocast``); the bare loop encodes one resident, normalised batch ``n /
batch`` times under the same autocast. Goal (issue 23): the harness within 10 % of the bare loop on a GPU. Images are
random JPEGs; weights random (``--pretrained none``): a speed figure only. Prints one line of key=value pairs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.data.caches import Caches, Normalizer, autocast
from bench.data.dataset import Datum
from bench.model.backbone import get_backbone
from bench.model.device import synchronize


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="ViT-B-16")
    p.add_argument("--pretrained", default="none")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=8, help="decoding processes for the (untimed) cache build")
    args = p.parse_args()
    device = torch.device(args.device)
    backbone = get_backbone(args.backbone, args.pretrained, device)
    size, bs = backbone.image_size, args.batch_size
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        items = []
        for i in range(64):  # 64 distinct files, listed n times over: decoding is not what is measured
            path = Path(tmp) / f"{i}.jpg"
            Image.fromarray(rng.integers(0, 255, (size + 32, size + 32, 3), dtype=np.uint8)).save(path)
            items.append(path)
        items = [Datum(str(items[i % 64]), 0, "x") for i in range(args.n)]
        caches = Caches(Path(tmp) / "cache", num_workers=args.workers if device.type == "cuda" else 0)
        caches.images(items, size)  # the decoded-image cache, built once (untimed, as a sweep builds it once)
        x = Normalizer(backbone, device)(torch.from_numpy(np.asarray(caches.images(items[:bs], size))))

        def bare() -> None:
            with autocast(device):
                for _ in range(0, args.n, bs):
                    backbone.encode_image(x)

        def harness() -> None:
            caches._encode(backbone, items, device, None, 0, 0.08, bs)

        rates = {}
        for name, fn in (("bare", bare), ("harness", harness), ("bare", bare), ("harness", harness)):  # 2nd: warm
            synchronize(device)
            t0 = time.perf_counter()
            fn()
            synchronize(device)
            rates[name] = args.n / (time.perf_counter() - t0)
    gap = 100 * (rates["bare"] / rates["harness"] - 1)
    print(f"backbone={args.backbone}/{args.pretrained} device={device} n={args.n} batch={bs} "
          f"bare_img_s={rates['bare']:.0f} harness_img_s={rates['harness']:.0f} harness_slower_pct={gap:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
