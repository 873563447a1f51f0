"""What fresh augmentation costs the frozen-image-encoder methods: image-encoder passes per base-to-novel run.

The official loaders draw a fresh crop and flip for every image in every epoch, so a method trains on ``epochs``
augmented passes of its few-shot set. adaptbench caches each pass once (``train.feature_passes=0``, the default) and
every method of the same draw and seed reuses it; ``train.feature_passes=10`` caches 10 and cycles them. The figures
come from the methods' own default configs and the datasets' class counts (16 shots, base = the first half of the
classes); seconds are at an *assumed* image-encoder throughput, stated in the output (``--img-per-s``).

    python benchmarks/feature_passes.py [--img-per-s 2500]
"""

from __future__ import annotations

import argparse
import math

from tabulate import tabulate

from bench.config import BASE_CONFIG, deep_merge
from bench.registry import get_method

CLASSES = {"imagenet": 1000, "caltech101": 100, "oxford_pets": 37, "stanford_cars": 196, "oxford_flowers": 102,
           "food101": 101, "fgvc_aircraft": 100, "sun397": 397, "dtd": 47, "eurosat": 10, "ucf101": 101}  # fmt: skip
METHODS = ("coop", "cocoop", "kgcoop", "tcp", "clip_adapter", "tip_adapter_f")


def passes(method: str, dataset: str, cycled: int | None) -> tuple[int, float]:
    """(passes, RandomResizedCrop scale) of one base-to-novel training of ``method`` on ``dataset``."""
    cfg = deep_merge(BASE_CONFIG, get_method(method).default_config("base2novel", dataset))["train"]
    n = cfg["epochs"] if not cycled else min(cycled, cfg["epochs"])
    return n, cfg["rrc_scale_min"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--img-per-s", type=float, default=2500.0, help="assumed ViT-B/16 image-encoder throughput")
    args = ap.parse_args()
    rows, totals = [], {"fresh": 0, "cycled": 0, "shared": 0}
    for ds, n_cls in CLASSES.items():
        n_train = 16 * math.ceil(n_cls / 2)
        row = [ds, n_train]
        by_scale: dict[float, int] = {}
        for m in METHODS:
            fresh, scale = passes(m, ds, None)
            cycled, _ = passes(m, ds, 10)
            row.append(f"{fresh} / {cycled}")
            totals["fresh"] += fresh * n_train
            totals["cycled"] += cycled * n_train
            by_scale[scale] = max(by_scale.get(scale, 0), fresh)  # the longest schedule's passes cover the others'
        shared = sum(by_scale.values()) * n_train
        totals["shared"] += shared
        row.append(f"{shared:,}")
        rows.append(row)
    print(tabulate(rows, ["dataset", "train images", *METHODS, "fresh, shared by the 6"], tablefmt="github"))
    print("\ncells: passes per run, fresh (official, default) / cycled (train.feature_passes=10)")
    s = args.img_per_s
    print(f"\nimage-encoder forwards for one seed of the six methods' B2N (assumed {s:,.0f} img/s, not measured):")
    for name, label in [("fresh", "fresh, each method encoding its own"), ("shared", "fresh, cached and shared"),
                        ("cycled", "10 cycled per method")]:  # fmt: skip
        print(f"  {label:38s} {totals[name]:>12,}  ≈ {totals[name] / s / 3600:.2f} GPU-hours")


if __name__ == "__main__":
    main()
