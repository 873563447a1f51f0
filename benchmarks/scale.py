"""Costs at the real benchmark's scale, on a SIMULATED data root: wall time and peak RSS per step.

    python benchmarks/scale.py [--work /work/scale-data] [--steps plan,report,...] [--n-test 50000] [--keep]

Writes (under ``--work``) a full-size simulated root (``bench data synth``: ImageNet's 1,000 classes and 1.28 M listed
training files, the 50k validation set, Sketch's 50,889, …; 16-px images), 25,000 synthetic records, and the
decoded-image caches of the test sets at 224 px (7.5 GB each; deleted at the end unless ``--keep``). Every step runs
in a fresh process and is timed from its start, imports included (the ``import`` row); wall time under load is
noisy, CPU time (user + system) much less; peak RSS is ``ru_maxrss``. Where
the model is not the point the backbone is ``scale-tiny-224`` (random weights, 224-px input, 12 narrow blocks per
tower, so the adapter methods' layer settings fit); CoCoOp's text encoder is ViT-B/16's (random weights).
``*-before`` rows run the code this branch replaced, reproduced below, at a size this machine survives. Accuracies here mean nothing (random weights, simulated data).
Targets (issue 23): peak RSS <= 4 GB per step at 224 px, planning <= 30 s, report over 25k records <= 10 s, record
lookup linear in the records checked.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ARCH = "scale-tiny-224"
TINY_224 = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 224, "layers": 12, "width": 64, "patch_size": 32, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 12},
}
N_RECORDS = 25_000


# ---------------------------------------------------------------------------------------------------------------------
# Helpers run inside a step's process


def _backbone(arch: str = ARCH) -> Any:
    import open_clip
    import torch

    from bench.model.backbone import get_backbone

    folder = Path(tempfile.mkdtemp())
    (folder / f"{ARCH}.json").write_text(json.dumps(TINY_224))
    open_clip.add_model_config(folder)
    return get_backbone(arch, "none", torch.device("cpu"))


def _test_items(root: Path, dataset: str, n: int | None) -> tuple[list, list[str], str]:
    from bench.sweep.runner import read_dataset

    reader, splits = read_dataset(dataset, str(root))
    return splits.test[:n], splits.classnames, reader.template


def _cli(*args: str) -> None:
    """A ``bench`` command in this process, its output discarded."""
    from bench.cli import app

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            app(list(args), standalone_mode=False)
        except SystemExit as e:
            if e.code:
                raise


def _old_images(items: list, size: int, path: Path) -> None:
    """``Caches.images``'s build before this branch (commit c849253): the whole array in memory, then saved."""
    import numpy as np

    from bench.data.caches import _loader, test_transform

    loader = _loader(items, test_transform(size), 64, 0, 0)
    arr = np.concatenate([x.numpy() for x, *_ in loader])
    np.save(path.open("wb"), arr.astype(np.uint8))


def _old_read(path: Path, batch_size: int = 256) -> None:
    """Evaluation's read of the image cache before this branch: slices of ``np.load(mmap_mode="r")``."""
    import numpy as np
    import torch

    arr = np.load(path, mmap_mode="r")
    for i in range(0, len(arr), batch_size):
        torch.from_numpy(np.array(arr[i : i + batch_size])).float().sum()


def _old_load_records(results: Any, suite: str | None = None, unreadable: list | None = None) -> Any:
    """``load_records`` before this branch (commit c849253): a ``Record`` built from every file, every time."""
    import pandas as pd

    from bench.errors import DataError
    from bench.report.tables import KEY, label_methods
    from bench.sweep.layout import ResultsLayout
    from bench.sweep.record import Record

    rows = []
    for path in ResultsLayout(results).records():
        try:
            r = Record.load(path)
        except DataError as e:
            if unreadable is not None:
                unreadable.append((str(path), str(e)))
            continue
        variant = " ".join(f"{k}={v}" for k, v in sorted((r.options or {}).items()))
        rows.append({**r.key(), "accuracy": r.accuracy, "train_dataset": r.train_dataset, "variant": variant})
    df = pd.DataFrame(rows, columns=[*KEY, "accuracy", "train_dataset", "variant"])
    if suite is not None:
        df = df[df["suite"] == suite]
    return label_methods(df)


def _records(results: Path, root: Path) -> str:
    """25,000 synthetic records (the full grid's keys over as many seeds as needed) and their plan file."""
    from bench.data.tables import PUBLISHED_CLASSES
    from bench.sweep.record import Record
    from bench.sweep.runner import versions

    seeds = list(range(1, math.ceil(N_RECORDS / _evals_per_seed(root, results)) + 1))
    specs = _grid(seeds, root, results)
    vers, n = versions(), 0
    for s in specs:
        for ev in s.evals:
            n_cls = PUBLISHED_CLASSES[ev.dataset]
            n_cls = math.ceil(n_cls / 2) if ev.subset == "base" else n_cls // 2 if ev.subset == "novel" else n_cls
            acc = 50.0 + (hash((s.method, ev.dataset, ev.subset, s.seed)) % 4000) / 100
            r = Record(
                s.method, ev.protocol, s.suite, ev.dataset, ev.subset, s.train_dataset, s.train_subset, s.seed,
                s.shots, s.backbone, s.pretrained, False, s.config_hash, s.options, acc,
                {f"class {i}": acc for i in range(n_cls)}, 1000, 16 * n_cls, 2048, {"train_s": 1.0, "eval_s": 1.0},
                100, {"ce": 1.0}, {}, None, "0" * 16, "0" * 16, s.config, vers, "synthetic", "2026-01-01T00:00:00",
            )  # fmt: skip
            path = s.record_path(ev)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(r.to_dict(), indent=1, default=str))
            n += 1
    s0 = specs[0].layout
    s0.write_plan(k for s in specs for k in s.record_keys())
    return f"{n} records, seeds 1..{len(seeds)}"


def _grid(seeds: list[int], root: Path, results: Path) -> list:
    """The full paper grid (every method, base-to-novel + cross-dataset + DG) for ``seeds``."""
    from bench.registry import METHODS, parse_names
    from bench.sweep.plan import plan
    from bench.sweep.protocols import parse_protocols
    from bench.sweep.suites import REAL

    return plan(parse_names("all", METHODS), parse_protocols("all"), REAL, seeds, None, root, results)


def _evals_per_seed(root: Path, results: Path) -> int:
    return sum(len(s.evals) for s in _grid([1], root, results))


def _lookup(results: Path, root: Path, n_seeds: int) -> str:
    """``RunSpec.pending`` over the grid for seeds 1..n_seeds (every record present): per-record cost."""
    specs = _grid(list(range(1, n_seeds + 1)), root, results)
    t0 = time.perf_counter()
    left = sum(len(s.pending(heal=False)) for s in specs)
    n = sum(len(s.evals) for s in specs)
    return f"{n} records checked, {left} missing, {1e6 * (time.perf_counter() - t0) / n:.0f} us/record"


def _evaluate(method_name: str, items: list, names: list[str], template: str, arch: str = ARCH, bs: int = 256) -> str:
    import torch

    from bench.config import BASE_CONFIG, deep_merge
    from bench.data.caches import Caches
    from bench.model.context import evaluate
    from bench.registry import get_method

    backbone = _backbone(arch)
    cls = get_method(method_name)
    cfg = deep_merge(BASE_CONFIG, cls.default_config("cross_dataset", "imagenet"))
    torch.manual_seed(0)
    method = cls(backbone, cfg, n_cls=len(names))
    caches = Caches(WORK / "cache", num_workers=0)
    acc, _ = evaluate(method, items, names, template, backbone, torch.device("cpu"), caches, bs, "fp32")
    return f"{len(items)} images, {len(names)} classes, accuracy {acc:.2f} (random weights)"


# ---------------------------------------------------------------------------------------------------------------------
# The steps


def step(name: str, args: argparse.Namespace) -> str:  # noqa: C901 (one branch per step, flat on purpose)
    root, res = WORK / "root", WORK / "results"
    empty = WORK / "results-empty"
    n = args.n_test
    if name == "import":
        import bench.cli  # noqa: F401

        return "import bench.cli (torch, open_clip, pandas): the floor of every bench command"
    if name == "synth":
        if root.exists():
            return "exists (reused)"
        _cli("data", "synth", str(root), "--size", "16", "--scale", str(args.synth_scale))
        train = root / "imagenet/images/train"
        return f"{sum(len(os.listdir(train / d)) for d in os.listdir(train)):,} ImageNet train files"
    if name == "plan":
        _cli(
            "run",
            "--method",
            "all",
            "--protocol",
            "all",
            "--dry-run",
            "--data-root",
            str(root),
            "--results",
            str(empty),
        )
        return "bench run --method all --protocol all --dry-run (no records)"
    if name == "records":
        shutil.rmtree(res, ignore_errors=True)
        return _records(res, root)
    if name == "plan-25k":
        _cli(
            "run", "--method", "all", "--protocol", "all", "--dry-run", "--data-root", str(root), "--results", str(res)
        )
        return "the same dry run beside 25k records (seeds 1,2,3 all done)"
    if name in ("lookup-5k", "lookup-25k"):
        want = 5_000 if name == "lookup-5k" else N_RECORDS
        return _lookup(res, root, max(1, want // _evals_per_seed(root, res)))
    if name == "report-before":
        import bench.report.tables as tables

        tables.load_records = _old_load_records
        _cli("report", "--results", str(res))
        return "bench report, 25k records, the old loader"
    if name == "report-cold":
        (res / "cache" / "records-index.json").unlink(missing_ok=True)
        _cli("report", "--results", str(res))
        return "bench report, 25k records, no index yet"
    if name == "report-warm":
        _cli("report", "--results", str(res))
        return "bench report, 25k records, index written by the run before"
    if name == "draw":
        from bench.sweep.plan import plan
        from bench.sweep.runner import fewshot_split, read_dataset
        from bench.sweep.suites import REAL

        spec = plan(["coop"], ["cross_dataset"], REAL, [1], None, root, WORK / "results-draw")[0]
        reader, splits = read_dataset("imagenet", str(root))
        train, val, _ = fewshot_split(spec, reader, splits)
        return f"read {len(splits.train):,} train items; drew {len(train):,} (16 shots x 1,000 classes)"
    if name.startswith("images-before"):
        items, *_ = _test_items(root, "imagenet", args.n_before)
        with tempfile.TemporaryDirectory(dir=WORK) as tmp:
            _old_images(items, 224, Path(tmp) / "x.npy")
        return f"old build, {len(items):,} images (7.5 GB x2 projected at 50k)"
    if name == "images":
        from bench.data.caches import Caches

        items, *_ = _test_items(root, "imagenet", n)
        store = Caches(WORK / "cache", num_workers=0).images(items, 224)
        return f"{len(store):,} images, {store.path.stat().st_size / 2**30:.1f} GiB on disk"
    if name == "read-before":
        from bench.data.caches import Caches

        items, *_ = _test_items(root, "imagenet", n)
        _old_read(Caches(WORK / "cache", num_workers=0).images(items, 224).path)
        return "one pass over the store through np.load(mmap_mode='r')"
    if name == "read":
        from bench.data.caches import Caches

        items, *_ = _test_items(root, "imagenet", n)
        for x in Caches(WORK / "cache", num_workers=0).images(items, 224).batches(256):
            x.float().sum()
        return "one pass over the store, ImageStore.batches(256)"
    if name == "features":
        import torch

        from bench.data.caches import Caches

        items, *_ = _test_items(root, "imagenet", n)
        feats = Caches(WORK / "cache", num_workers=0).features(_backbone(), items, torch.device("cpu"))[0]
        return f"features {tuple(feats.shape)} from the image store"
    if name == "eval-imagenet-zeroshot":
        return _evaluate("zeroshot", *_test_items(root, "imagenet", n))
    if name == "eval-imagenet-coop":
        return _evaluate("coop", *_test_items(root, "imagenet", n))
    if name == "eval-sketch-coop":
        return _evaluate("coop", *_test_items(root, "imagenet_sketch", None if n >= 50_000 else n))
    if name == "eval-imagenet-mma":
        return _evaluate("mma", *_test_items(root, "imagenet", n)) + ", from the image store"
    if name == "eval-sketch-mma":
        return _evaluate("mma", *_test_items(root, "imagenet_sketch", None if n >= 50_000 else n)) + ", image store"
    if name in ("cocoop-before", "cocoop"):
        import bench.methods.cocoop as cocoop

        if name == "cocoop-before":
            cocoop.TEXT_SEQUENCES = 10**9  # the whole batch x classes in one call, as before this branch
        items, names, template = _test_items(root, "imagenet", None)
        items = items[:: len(items) // args.cocoop_images][: args.cocoop_images]
        return _evaluate("cocoop", items, names, template, "ViT-B-16", args.cocoop_images) + ", ViT-B/16 text encoder"
    raise SystemExit(f"unknown step {name}")


STEPS = ["import", "synth", "plan", "records", "plan-25k", "lookup-5k", "lookup-25k", "report-before", "report-cold",
         "report-warm", "draw",
         "images-before", "images", "read-before", "read", "features", "eval-imagenet-zeroshot", "eval-imagenet-coop",
         "eval-sketch-coop", "eval-imagenet-mma", "eval-sketch-mma", "cocoop-before", "cocoop"]  # fmt: skip
WORK = Path("/work/scale-data")


def main() -> None:
    global WORK
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=WORK)
    p.add_argument("--steps", default=",".join(STEPS))
    p.add_argument("--n-test", type=int, default=50_000, help="ImageNet test images for the cache/eval steps")
    p.add_argument("--n-before", type=int, default=5_000, help="images for the old (whole-array) cache build")
    p.add_argument("--cocoop-images", type=int, default=8)
    p.add_argument("--synth-scale", type=float, default=1.0, help="scale of the simulated root (1.0: the real sizes)")
    p.add_argument("--keep", action="store_true", help="keep the image caches (7.5 GB each)")
    p.add_argument("--run-step", help=argparse.SUPPRESS)
    args = p.parse_args()
    WORK = args.work.absolute()
    if args.run_step:  # a child: one step, one JSON line
        t0 = time.perf_counter()
        note = step(args.run_step, args)
        use = resource.getrusage(resource.RUSAGE_SELF)
        cpu = use.ru_utime + use.ru_stime
        out = {"step": args.run_step, "s": time.perf_counter() - t0, "cpu_s": cpu, "rss_mb": use.ru_maxrss / 1024}
        print(json.dumps({**out, "note": note}))
        return
    WORK.mkdir(parents=True, exist_ok=True)
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} · load: {os.getloadavg()} · {os.cpu_count()} CPUs · work {WORK}")
    print(f"{'step':24} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12}  note")
    base = [sys.executable, __file__, "--work", str(WORK), "--n-test", str(args.n_test), "--n-before",
            str(args.n_before), "--cocoop-images", str(args.cocoop_images), "--synth-scale", str(args.synth_scale)]  # fmt: skip
    for name in args.steps.split(","):
        out = subprocess.run([*base, "--run-step", name], capture_output=True, text=True)
        if out.returncode:
            tail = (out.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{name:24} {'failed':>8} {'':>8} {'':>12}  exit {out.returncode}: {tail[:120]}", flush=True)
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name:24} {r['s']:8.1f} {r['cpu_s']:8.1f} {r['rss_mb']:12.0f}  {r['note']}", flush=True)
    print(f"# done {time.strftime('%H:%M:%S')} · load: {os.getloadavg()}")
    if not args.keep:
        shutil.rmtree(WORK / "cache", ignore_errors=True)


if __name__ == "__main__":
    main()
