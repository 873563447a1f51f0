"""A self-contained zero-shot check of a toy CLIP on the toy datasets (the figures quoted in the README and tests).

It deliberately does not go through the harness: it is how the toy world itself is validated (above chance, below
ceiling, style shifts hurt), independent of the runner's code.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from bench.datasets.toy import generator as gen
from bench.datasets.toy.data import READERS, SPEC_BY_NAME
from bench.datasets.toy.pretrain import clip_pixels, create_toy_model, load_toy_state_dict
from bench.progress import phase


def load_toy_model(path: str | Path | None = None) -> nn.Module:
    """The shipped (or given) toy CLIP as an open_clip model in eval mode."""
    model = create_toy_model()
    model.load_state_dict(load_toy_state_dict(path))
    return model.eval()


@torch.inference_mode()
def encode_images(model: nn.Module, paths: list[str], batch_size: int = 256) -> Tensor:
    """L2-normalised image features (64x64 PNGs, CLIP mean/std: the harness' test preprocessing at 64 px)."""
    feats = []
    for i in range(0, len(paths), batch_size):
        arr = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths[i : i + batch_size]])
        feats.append(F.normalize(model.encode_image(clip_pixels(arr)), dim=-1))
    return torch.cat(feats)


@torch.inference_mode()
def encode_prompts(model: nn.Module, template: str, classnames: list[str]) -> Tensor:
    import open_clip

    tokens = open_clip.tokenize([template.format(c) for c in classnames])
    return F.normalize(model.encode_text(tokens), dim=-1)


def _acc(img: Tensor, labels: Tensor, txt: Tensor) -> float:
    return float(((img @ txt.T).argmax(1) == labels).float().mean() * 100)


def zero_shot_report(model: nn.Module, root: Path, names: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Per dataset: base/novel/HM accuracy (CoOp's split) for trainable datasets, all-class accuracy for each."""
    out: dict[str, dict[str, float]] = {}
    names = names or list(READERS)
    with phase(f"zero-shot accuracy on {len(names)} toy datasets", len(names)) as done:
        for name in names:
            out[name] = _zero_shot(model, root, name)
            done(1)
    return out


def _zero_shot(model: nn.Module, root: Path, name: str) -> dict[str, float]:
    spec = SPEC_BY_NAME[name]
    splits = READERS[name](root).read()
    classnames = spec.classnames
    img = encode_images(model, [d.impath for d in splits.test])
    labels = torch.tensor([d.label for d in splits.test])
    txt = encode_prompts(model, spec.template, classnames)
    res = {"all": _acc(img, labels, txt), "chance_all": 100 / len(classnames)}
    if not spec.test_only:
        m = math.ceil(len(classnames) / 2)
        b, n = labels < m, labels >= m
        res["base"] = _acc(img[b], labels[b], txt[:m])
        res["novel"] = _acc(img[n], labels[n] - m, txt[m:])
        res["hm"] = 2 * res["base"] * res["novel"] / max(res["base"] + res["novel"], 1e-9)
        res["chance_base"], res["chance_novel"] = 100 / m, 100 / (len(classnames) - m)
    return res


def linear_probe_gain(model: nn.Module, root: Path, name: str, shots: int = 16, seed: int = 1) -> dict[str, float]:
    """Base accuracy of a 16-shot logistic probe initialised at the zero-shot weights: a rough ceiling on how much
    few-shot adaptation can gain over zero-shot on the base classes."""
    spec = SPEC_BY_NAME[name]
    splits = READERS[name](root).read()
    m = math.ceil(len(spec.classnames) / 2)
    rng = np.random.default_rng(seed)
    train = [d for d in splits.train if d.label < m]
    by_label: dict[int, list] = {}
    for d in train:
        by_label.setdefault(d.label, []).append(d)
    few = [d for items in by_label.values() for d in rng.permutation(np.array(items, dtype=object))[:shots]]
    test = [d for d in splits.test if d.label < m]
    xtr = encode_images(model, [d.impath for d in few])
    ytr = torch.tensor([d.label for d in few])
    xte = encode_images(model, [d.impath for d in test])
    yte = torch.tensor([d.label for d in test])
    w0 = encode_prompts(model, spec.template, spec.classnames[:m])
    w = w0.clone().requires_grad_(True)
    opt = torch.optim.AdamW([w], lr=1e-2, weight_decay=0.0)
    scale = float(model.logit_scale.detach().exp())
    for _ in range(200):
        loss = F.cross_entropy(scale * xtr @ F.normalize(w, dim=-1).T, ytr)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {"zero_shot": _acc(xte, yte, w0), "probe": _acc(xte, yte, F.normalize(w.detach(), dim=-1))}


ATTRIBUTES = tuple(gen.ATTRIBUTES)


def attribute_probe(
    model: nn.Module, n: int = 2400, seed: int = 123, steps: int = 300, clear: bool = False
) -> dict[str, float]:
    """Held-out accuracy of a many-shot linear probe for each scene attribute, on pretraining-distribution images.

    Why: it says what the image tower *sees*, independent of text. An attribute the probe cannot decode is one no
    adaptation method can recover on the toy datasets (the cause of a flat few-shot column), and it tells whether a
    new checkpoint is worth a sweep. 3/4 of the ``n`` images train the probe (standardised features, AdamW), 1/4 test.
    ``clear`` probes on clear photos (:func:`~.generator.sample_clear_scene`) instead of the full crawl.
    """
    rng = np.random.default_rng(seed)
    if clear:
        scenes = [gen.sample_clear_scene(rng) for _ in range(n)]
    else:
        scenes = [gen.sample_scene(rng, gen.PRETRAIN_STYLE_P) for _ in range(n)]
    arr = np.stack([np.asarray(gen.render(rng, s)) for s in scenes])
    x = clip_pixels(arr)
    with torch.inference_mode():
        f = torch.cat([model.encode_image(x[i : i + 256]) for i in range(0, n, 256)]).float()
    cut = n * 3 // 4
    f = (f - f[:cut].mean(0)) / (f[:cut].std(0) + 1e-6)
    labels = torch.tensor([gen.attribute_labels(s) for s in scenes])
    out: dict[str, float] = {}
    for i, attr in enumerate(ATTRIBUTES):
        y = labels[:, i]
        torch.manual_seed(seed)
        head = nn.Linear(f.shape[1], len(gen.ATTRIBUTES[attr]))
        opt = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=1e-2)
        for _ in range(steps):
            loss = F.cross_entropy(head(f[:cut]), y[:cut])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            out[attr] = float((head(f[cut:]).argmax(1) == y[cut:]).float().mean() * 100)
        majority = float(torch.bincount(y[cut:]).max() / (n - cut) * 100)
        out[f"{attr}_majority"] = majority
    return out
