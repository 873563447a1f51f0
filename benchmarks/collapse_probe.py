"""Where a trained prompt learner's prediction collapsed: text side, image side, or neither (issue 22).

For each run of a finished sweep (``bench run ... --results DIR``) this rebuilds the method as the runner does, loads
its checkpoint (or keeps the untrained initialisation with ``--init``) and prints, on the run's own training images:

* ``txt_cos``: the mean pairwise cosine of the class text features (1.0 = every class has the same text feature);
* ``img_cos``: the mean pairwise cosine of the image features (1.0 = every image has the same feature);
* ``logit_sd``: the mean over images of the std of the logits across classes (0 = a uniform prediction);
* ``acc``, ``ce``: training accuracy and cross-entropy at the model's logit scale;
* ``pred``: how many training images each class receives.

    python benchmarks/collapse_probe.py --results /work/res-probe-maple1 --method maple --seeds 1,2,3 \
        --datasets toy_scenes [--cfg-options train.lr=0.00035] [--pretrained FILE] [--init]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.config import parse_cfg_options
from bench.data.caches import Caches, Normalizer
from bench.datasets.base import subsample_classes, subset_classnames
from bench.model.backbone import get_backbone
from bench.model.trainer import cast_learned, resolve_schedule, seed_everything
from bench.precision import Precision
from bench.registry import get_method
from bench.sweep.plan import plan
from bench.sweep.runner import fewshot_split, read_dataset, role
from bench.sweep.suites import resolve_data_root


def _pairwise_cos(x: torch.Tensor) -> float:
    x = F.normalize(x.float(), dim=-1)
    s = x @ x.t()
    n = len(x)
    return ((s.sum() - s.diagonal().sum()) / (n * (n - 1))).item()


@torch.no_grad()
def probe(spec, device: torch.device, init: bool) -> dict[str, object]:
    reader, splits = read_dataset(spec.train_dataset, spec.data_root)
    train, _, _ = fewshot_split(spec, reader, splits)
    train = subsample_classes(train, spec.train_subset, range(len(splits.classnames)))
    names = subset_classnames(splits.classnames, spec.train_subset)
    precision = Precision(spec.config["train"]["precision"], device.type)
    backbone = get_backbone(spec.backbone, spec.pretrained, device, half=precision.weights_dtype == torch.float16)
    seed_everything(spec.seed)
    config = resolve_schedule(spec.config, len(train))
    method = get_method(spec.method)(backbone, config, n_cls=len(names)).to(device)
    cast_learned(method, precision.weights_dtype)
    method.set_classnames(names, reader.template, role(spec.suite, spec.train_dataset))
    if not init:
        ckpt = torch.load(spec.checkpoint_path(), map_location=device, weights_only=True)
        method.load_learned_state_dict(ckpt["method"])
    method.eval()
    caches = Caches(spec.layout.cache_dir, 0)
    norm = Normalizer(backbone, device)
    labels = torch.tensor([d.label for d in train], device=device)
    with precision.autocast():
        text = method.text_features().float()
        if method.frozen_image_encoder:  # per-image text (CoCoOp): the method's own logits on the features
            img = caches.features(backbone, train, device)[0].to(device).float()
            logits = method(features=img).float()
        else:
            batches = caches.images(train, backbone.image_size).batches(256)
            img = torch.cat([method.encode_image(norm(x)).float() for x in batches])
            logits = method.logits_from_features(img, text).float()
    pred = logits.argmax(-1)
    return {
        "txt_cos": round(_pairwise_cos(text), 4) if text.dim() == 2 else None,
        "img_cos": round(_pairwise_cos(img), 4),
        "logit_sd": round(logits.std(-1).mean().item(), 3),
        "acc": round(100 * (pred == labels).float().mean().item(), 1),
        "ce": round(F.cross_entropy(logits, labels).item(), 3),
        "pred": torch.bincount(pred, minlength=len(names)).tolist(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, required=True)
    ap.add_argument("--method", required=True)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--datasets", default="toy_scenes")
    ap.add_argument("--cfg-options", nargs="*", default=[])
    ap.add_argument("--pretrained", default=None, help="as bench run --pretrained (default: the suite's)")
    ap.add_argument("--init", action="store_true", help="the untrained initialisation, not the checkpoint")
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    suite, root = resolve_data_root(None, "toy")
    specs = plan([a.method], ["base2novel"], suite, [int(s) for s in a.seeds.split(",")], None, root, a.results,
                 a.datasets.split(","), pretrained=a.pretrained, options=parse_cfg_options(a.cfg_options))  # fmt: skip
    for spec in specs:
        print(spec.label, "init" if a.init else "trained", probe(spec, torch.device("cpu"), a.init), flush=True)


if __name__ == "__main__":
    main()
