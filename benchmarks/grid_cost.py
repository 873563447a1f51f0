"""An ESTIMATE of the paper grid's cost on one H100: GPU-hours per method for base-to-novel (11 datasets x 3 seeds)
and cross-dataset + domain generalisation (one ImageNet model per seed, 14 targets), from FLOP counts.

    python benchmarks/grid_cost.py [--tflops 200] [--deep-step-ms 25] [--text-step-ms 8]

Not a measurement. Inputs: each method's own schedule (epochs, batch, augmentation passes: ``default_config``, as a
real run resolves it), the published split sizes and class counts (``bench.data.tables``), and these assumptions:

* ViT-B/16 at 224 px: 35.2 GFLOP per image forward (17.6 GMAC); text encoder: 6.0 GFLOP per 77-token prompt.
* Frozen weights: a backward pass costs one forward (activation gradients only, no weight gradients).
* ``--tflops``: sustained fp16 throughput on one H100 (default 200 TFLOP/s, ~20 % of its 989 dense peak: small
  batches, attention and normalisation kernels). Evaluation runs at the same rate (-> ~5,700 img/s).
* A training step never takes less than ``--deep-step-ms`` when it back-propagates through the image encoder, or
  ``--text-step-ms`` through the text encoder only (kernel launches dominate at the papers' batch sizes of 1-16).
* Extra frozen forwards per training image: PromptSRC, CoPrompt and RMAdapter compare with frozen CLIP's feature of
  the augmented image (one more image forward); CoPrompt encodes a second view (``train.views=2``).

Frozen-encoder methods (zero-shot, CoOp, CoCoOp, KgCoOp, TCP, CLIP-Adapter, Tip-Adapter) train and evaluate on cached
image features: the cache costs ``feature_passes`` forwards per training image once per seed's draw, and the test
features once per dataset, shared by every such method and seed (the shared row). The "no cache" column is what they
would cost encoding every image at every epoch and evaluation. Replace the assumptions with ``benchmarks/gpu_check.sh``'s
measured figures when a GPU has run it.
"""

from __future__ import annotations

import argparse
import math

from bench.data.tables import PUBLISHED_CLASSES, PUBLISHED_COUNTS
from bench.registry import METHODS, get_method, parse_names
from bench.sweep.plan import resolve_config
from bench.sweep.suites import REAL

IMG, TXT = 35.2e9, 6.0e9  # FLOP per image forward / per prompt forward (ViT-B/16)
SEEDS = 3
EXTRA_IMAGE_FORWARDS = {"promptsrc": 1, "coprompt": 1, "rmadapter": 1}
LEARNED_TEXT = {"coop", "cocoop", "kgcoop", "maple", "promptsrc", "tcp", "mma", "rmadapter", "coprompt"}


def train_cost(method: str, protocol: str, dataset: str, n_cls: int, a: argparse.Namespace) -> tuple[float, float]:
    """Seconds of one training (with the feature cache, without it) on ``n_cls`` classes, 16 shots."""
    cls = get_method(method)
    cfg = resolve_config(method, protocol, dataset, REAL, {})["train"]
    if not cls.trains:
        return 0.0, 0.0
    n_train, bs, epochs = 16 * n_cls, cfg["batch_size"], cfg["epochs"]
    steps = epochs * (n_train // bs if n_train >= bs else 1)
    views = cfg.get("views", 1)
    text = 0.0
    if method in LEARNED_TEXT:
        prompts = bs * n_cls if method == "cocoop" else n_cls  # CoCoOp: one prompt set per image
        text = 2 * prompts * TXT
    if cls.frozen_image_encoder:
        step_flop, floor = text, a.text_step_ms / 1e3 if text else a.head_step_ms / 1e3
        cache = cfg["feature_passes"] * n_train * IMG / a.flops  # augmented passes, once per draw
        no_cache = epochs * n_train * IMG / a.flops
    else:
        step_flop = bs * IMG * (2 * views + EXTRA_IMAGE_FORWARDS.get(method, 0)) + text
        floor, cache, no_cache = a.deep_step_ms / 1e3, 0.0, 0.0
    per_step = max(step_flop / a.flops, floor)
    return steps * per_step + cache, steps * per_step + no_cache


def eval_cost(method: str, n_test: int, n_cls: int, a: argparse.Namespace) -> tuple[float, float]:
    """Seconds of one evaluation (with the feature cache, without it)."""
    cls = get_method(method)
    image = n_test * IMG / a.flops
    if method == "cocoop":  # per-image prompts: the text encoder runs for every test image and class
        return n_test * n_cls * TXT / a.flops, image + n_test * n_cls * TXT / a.flops
    return (0.0, image) if cls.frozen_image_encoder else (image, image)


def grid(method: str, a: argparse.Namespace) -> dict[str, float]:
    b2n = [0.0, 0.0]
    for d in REAL.datasets:
        c, n_test = PUBLISHED_CLASSES[d], PUBLISHED_COUNTS[d][2] or 0
        t = train_cost(method, "base2novel", d, math.ceil(c / 2), a)
        e = eval_cost(method, n_test, math.ceil(c / 2), a)  # base + novel halves: the test set once, ~half the classes
        for i in range(2):
            b2n[i] += SEEDS * (t[i] + e[i])
    t = train_cost(method, "cross_dataset", "imagenet", 1000, a)
    xd = [SEEDS * t[0], SEEDS * t[1]]
    for d in (REAL.source, *REAL.cross_dataset, *REAL.domain_generalization):
        e = eval_cost(method, PUBLISHED_COUNTS[d][2] or 0, PUBLISHED_CLASSES[d], a)
        xd = [xd[0] + SEEDS * e[0], xd[1] + SEEDS * e[1]]
    return {"b2n": b2n[0] / 3600, "xd": xd[0] / 3600, "no_cache": (b2n[1] + xd[1]) / 3600}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tflops", type=float, default=200.0)
    p.add_argument("--deep-step-ms", type=float, default=25.0)
    p.add_argument("--text-step-ms", type=float, default=8.0)
    p.add_argument("--head-step-ms", type=float, default=1.0, help="steps on cached features only (adapters)")
    a = p.parse_args()
    a.flops = a.tflops * 1e12
    print(f"ESTIMATE, one H100, ViT-B/16, {SEEDS} seeds; {a.tflops:.0f} TFLOP/s sustained, step floors "
          f"{a.deep_step_ms:.0f} ms (image backward) / {a.text_step_ms:.0f} ms (text backward)\n")  # fmt: skip
    print("| method | image encoder | B2N GPU-h | XD + DG GPU-h | total GPU-h | without the feature cache |")
    print("|---|---|---:|---:|---:|---:|")
    total = 0.0
    for m in parse_names("all", METHODS):
        g = grid(m, a)
        frozen = get_method(m).frozen_image_encoder
        no_cache = f"{g['no_cache']:.1f}" if frozen else "-"
        total += g["b2n"] + g["xd"]
        print(f"| {m} | {'frozen (cached features)' if frozen else 'adapted'} | {g['b2n']:.1f} | {g['xd']:.1f} | "
              f"{g['b2n'] + g['xd']:.1f} | {no_cache} |")  # fmt: skip
    shared = sum(PUBLISHED_COUNTS[d][2] or 0 for d in (*REAL.datasets, *REAL.domain_generalization)) * IMG / a.flops
    print(f"| test features, every dataset once (shared by the frozen-encoder methods) | | | | {shared / 3600:.2f} | |")
    print(f"| **all methods** | | | | **{total + shared / 3600:.0f}** | |")


if __name__ == "__main__":
    main()
