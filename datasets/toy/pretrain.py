"""Contrastive pretraining of the toy CLIP on the generator's image/caption pairs, and the shipped-checkpoint format.

The shipped file holds every tensor of the open_clip ``toy-vit`` state dict in fp16 except the 49408-row token
embedding: only the rows that pretraining changed (the toy vocabulary) are stored, with their indices. The other rows
never receive a gradient and are excluded from weight decay, so they stay at :func:`base_token_embedding`, a fixed
function of the width that :func:`load_toy_state_dict` rebuilds. That keeps the file at a few MB.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

ARCH = "toy-vit"
CHECKPOINT = Path(__file__).parent / "toy_vit.pt"
_EMBED_KEY = "token_embedding.weight"
_EMBED_SEED = 20240917


def checkpoint_path() -> Path:
    """The shipped toy CLIP checkpoint (compact format; load it with :func:`load_toy_state_dict`)."""
    return CHECKPOINT


def base_token_embedding(vocab: int, width: int) -> Tensor:
    """The token-embedding rows pretraining never touches: open_clip's init (normal, std 0.02) from a fixed seed."""
    g = torch.Generator().manual_seed(_EMBED_SEED)
    return torch.randn(vocab, width, generator=g) * 0.02


def load_toy_state_dict(path: str | Path | None = None) -> dict[str, Tensor]:
    """The full open_clip state dict of the toy CLIP (float32), rebuilt from the compact checkpoint."""
    return expand_compact(torch.load(path or CHECKPOINT, map_location="cpu", weights_only=True))


def is_compact(blob: object) -> bool:
    """Whether a loaded file is in the compact toy format (the output of :func:`compact_state_dict`)."""
    return isinstance(blob, dict) and str(blob.get("format", "")).startswith("adaptbench-toy-clip")


def expand_compact(blob: dict) -> dict[str, Tensor]:
    """The full float32 state dict from a loaded compact checkpoint (token-embedding rows put back on the base)."""
    state = {k: v.float() for k, v in blob["state_dict"].items()}
    vocab, width = blob["vocab_size"], blob["text_width"]
    emb = base_token_embedding(vocab, width)
    emb[blob["token_rows"].long()] = blob["token_values"].float()
    state[_EMBED_KEY] = emb
    return state


def compact_state_dict(model: nn.Module, meta: dict | None = None) -> dict:
    """The shipped format: fp16 tensors, token embedding reduced to the rows that differ from the base init."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    emb = state.pop(_EMBED_KEY).float()
    base = base_token_embedding(*emb.shape)
    rows = torch.nonzero((emb != base).any(dim=1)).flatten()
    return {
        "format": "adaptbench-toy-clip-v1",
        "arch": ARCH,
        "state_dict": {k: v.half() if v.is_floating_point() else v for k, v in state.items()},
        "vocab_size": emb.shape[0],
        "text_width": emb.shape[1],
        "token_rows": rows.int(),
        "token_values": emb[rows].half(),
        "meta": meta or {},
    }


class ConvStem(nn.Sequential):
    """Three 3x3 stride-2 convolutions (BatchNorm, ReLU) and a 1x1 projection in place of ViT's patchify layer.

    Why: a patchify ViT trained from scratch on the toy crawl did not learn shape in hundreds of CPU steps even with
    shape labels (README, measured); early convolutions make ViTs learn far faster from little data (Xiao et al.,
    "Early Convolutions Help Transformers See Better", 2021). The output grid equals the patch grid (stride 8), so the
    transformer, its tokens and every method's hooks are unchanged.
    """

    def __init__(self, width: int, patch_size: int = 8) -> None:
        if patch_size != 8:
            raise ValueError("ConvStem has a stride of 8; the toy-vit config must keep patch_size 8")
        chans = [3, width // 4, width // 2, width]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans, chans[1:], strict=False):
            layers += [nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        super().__init__(*layers, nn.Conv2d(width, width, 1))


def with_conv_stem(model: nn.Module) -> nn.Module:
    """``model`` with its vision patchify layer (``visual.conv1``) replaced by a :class:`ConvStem` (in place)."""
    visual = model.visual
    visual.conv1 = ConvStem(visual.transformer.width, visual.patch_size[0])
    return model


def create_toy_model(init_seed: int = 0) -> nn.Module:
    """A freshly initialised toy CLIP: open_clip ``toy-vit`` with a conv stem, token embedding at its base init."""
    import open_clip

    register_config()
    from bench.model.backbone import quiet_open_clip

    with torch.random.fork_rng(devices=[]), quiet_open_clip():
        torch.manual_seed(init_seed)
        model = with_conv_stem(open_clip.create_model(ARCH, pretrained=None))
    emb = model.token_embedding.weight
    with torch.no_grad():
        emb.copy_(base_token_embedding(*emb.shape))
    return model


def register_config() -> None:
    """Make ``toy-vit`` known to open_clip (its config ships beside this file) and its builder (the conv stem, the
    ``toy`` weights) to ``BACKBONES``, always together: a process that knew the name from open_clip alone would build
    it as a plain open_clip model, or refuse the ``toy`` tag."""
    import open_clip

    from bench.registry import BACKBONES

    open_clip.add_model_config(Path(__file__).parent / "toy-vit.json")
    BACKBONES.register_module(name=ARCH, module=build_backbone, force=True)


def build_backbone(arch: str, pretrained: str) -> nn.Module:
    """The ``BACKBONES`` builder of ``toy-vit``: open_clip's model with the conv stem, then the weights ``pretrained``:
    ``toy`` (the shipped checkpoint), a file (compact or a plain state dict), or ``none`` (random, a fixed function of
    the architecture)."""
    from bench.errors import ConfigError
    from bench.model.backbone import load_weights, random_model

    register_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = with_conv_stem(random_model(arch))
    if pretrained == "none":
        return model
    path = CHECKPOINT if pretrained == "toy" else Path(pretrained)
    if not path.is_file():
        raise ConfigError(
            f"{arch} weights {pretrained!r}: use toy (the shipped checkpoint), none, or a checkpoint file"
        )
    load_weights(model, arch, path, _read_toy_weights)
    return model


def _read_toy_weights(path: str | Path) -> dict[str, Tensor]:
    """A compact toy checkpoint (expanded) or a plain state dict."""
    from bench.model.backbone import load_state_dict_file

    blob = torch.load(path, map_location="cpu", weights_only=True)
    return expand_compact(blob) if is_compact(blob) else load_state_dict_file(path)


# ---------------------------------------------------------------------------------------------------------------------
# Data


class PairStream(torch.utils.data.IterableDataset):
    """Batches of (images, token ids, attribute labels) where batch ``i`` is a pure function of ``(seed, i)`` and the
    curriculum, whatever the workers."""

    def __init__(
        self, seed: int, batch_size: int, start: int, stop: int, group: int = 1, clear: tuple[float, float] = (0, 0)
    ) -> None:
        super().__init__()
        self.seed, self.batch_size, self.start, self.stop, self.group = seed, batch_size, start, stop, group
        self.clear = clear

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        info = torch.utils.data.get_worker_info()
        first, step = (0, 1) if info is None else (info.id, info.num_workers)  # the loader interleaves workers in order
        for i in range(self.start + first, self.stop, step):
            t = i / max(1, self.stop - 1)
            clear = self.clear[0] + (self.clear[1] - self.clear[0]) * t
            yield make_batch(self.seed, i, self.batch_size, self.group, clear)


def make_batch(
    seed: int, index: int, batch_size: int, group: int = 1, clear: float = 0.0
) -> tuple[Tensor, Tensor, Tensor]:
    """Batch ``index`` of the pretraining stream: CLIP-normalised images, tokenized captions and the scenes'
    attribute labels ``(batch, len(ATTRIBUTES))``.

    Each pair is a clear photo (:func:`~.generator.sample_clear_scene`) with probability ``clear``, else a scene of
    the full crawl; ``group > 1`` builds the batch from groups of that many hard negatives instead.
    """
    import open_clip

    from bench.datasets.toy import generator as gen

    rng = np.random.default_rng([seed, index, 7])
    scenes: list[gen.Scene] = []
    while len(scenes) < batch_size:
        if group > 1:
            scenes += gen.group_scenes(rng, min(group, batch_size - len(scenes)))
        elif clear and rng.random() < clear:
            scenes.append(gen.sample_clear_scene(rng))
        else:
            scenes.append(gen.sample_scene(rng, gen.PRETRAIN_STYLE_P))
    images, captions = [], []
    for s in scenes:
        images.append(np.asarray(gen.render(rng, s)))
        captions.append(gen.caption(rng, s))
    labels = torch.tensor([gen.attribute_labels(s) for s in scenes])
    return clip_pixels(np.stack(images)), open_clip.tokenize(captions), labels


def clip_pixels(images: np.ndarray) -> Tensor:
    """A uint8 ``(N, H, W, 3)`` stack as the model's input: ``(N, 3, H, W)`` float, CLIP mean/std (no resize: the toy
    images are already at the model's 64 px)."""
    import open_clip

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


# ---------------------------------------------------------------------------------------------------------------------
# Training


TRAIN_CONTEXT = 32  # captions are <= 26 tokens; the causal mask makes the EOT feature independent of later positions


def encode_text_short(model: nn.Module, tokens: Tensor, length: int = TRAIN_CONTEXT) -> Tensor:
    """``model.encode_text`` on the first ``length`` positions only: the same features for texts shorter than that
    (attention is causal and pooling takes the EOT token), at a fraction of the cost of all 77 positions."""
    from open_clip.transformer import text_global_pool

    if bool((tokens[:, length:] != 0).any()):
        return model.encode_text(tokens)  # a longer text: the full context
    tokens = tokens[:, :length]
    x = model.token_embedding(tokens) + model.positional_embedding[:length]
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    return x @ model.text_projection


def clip_loss(model: nn.Module, images: Tensor, tokens: Tensor, image_features: Tensor | None = None) -> Tensor:
    """Symmetric InfoNCE over the batch (CLIP's loss)."""
    feats = model.encode_image(images) if image_features is None else image_features
    img = F.normalize(feats, dim=-1)
    txt = F.normalize(encode_text_short(model, tokens), dim=-1)
    logits = model.logit_scale.exp().clamp(max=100) * img @ txt.T
    target = torch.arange(len(images), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


class AttributeHeads(nn.Module):
    """Linear heads from the image embedding to each scene attribute: the auxiliary supervised loss of pretraining.

    Why: the generator knows every image's labels, and direct supervision is the fastest signal for a small image
    tower to learn shape, texture and count (the contrastive loss alone is mostly solved by colour and scene). Like
    a LiT-style supervised phase, but joint with the contrastive loss. The heads are not part of the checkpoint.
    """

    def __init__(self, dim: int) -> None:
        from bench.datasets.toy.generator import ATTRIBUTES

        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(dim, len(v)) for v in ATTRIBUTES.values())

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        """The sum of the attributes' cross-entropies (a sum, not a mean: each attribute gets a full-weight signal)."""
        losses = [F.cross_entropy(h(features), labels[:, i]) for i, h in enumerate(self.heads)]
        return torch.stack(losses).sum()


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """open_clip's rule (no decay on gains, biases, logit scale), plus none on the token embedding: rows
    that no caption uses must stay exactly at their base init so the checkpoint can omit them."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.ndim < 2 or "ln" in name or "bias" in name or "logit_scale" in name or name == _EMBED_KEY:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def pretrain(
    out: Path | None = None,
    seed: int = 0,
    steps: int = 4000,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    warmup: int = 100,
    group: int = 1,
    aux_weight: float = 1.0,
    clear_start: float = 0.9,
    clear_end: float = 0.3,
    threads: int | None = None,
    save_every: int = 0,
    workers: int = 1,
    device: str = "cpu",
    final_logit_scale: float | None = 100.0,
    log: Callable[[str], None] = print,
    log_every: int = 50,
) -> list[float]:
    """Pretrain the toy CLIP from scratch for ``steps`` AdamW steps (cosine schedule); returns the loss per step.

    The loss is CLIP's InfoNCE plus ``aux_weight`` × the summed cross-entropies of linear attribute heads on the image
    embedding (:class:`AttributeHeads`); the share of clear photos in the stream falls linearly from ``clear_start``
    to ``clear_end`` (a curriculum, :func:`~.generator.sample_clear_scene`). Same seed + same
    ``steps``/``batch_size``/``group``/curriculum → the same data stream and initialisation. ``out`` (if given)
    receives the compact checkpoint; ``save_every`` also writes ``<out>.step<N>.pt`` along the way. ``device="cuda"``
    trains on a GPU (the data is still generated on CPU workers; raise ``workers`` to keep up).

    ``final_logit_scale``: the logit scale written to the checkpoint (``None``: the trained one). CLIP's is 100 (the
    clamp its training reaches) and the papers' hyper-parameters assume it; a short toy run ends lower (36.7 for the
    shipped one). The scale never changes a zero-shot prediction, only how sharply adaptation's cross-entropy pulls.
    """
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = create_toy_model(init_seed=seed).to(device)
    model.train()
    heads = AttributeHeads(model.text_projection.shape[-1]).to(device)
    groups = _param_groups(model, weight_decay)
    groups[0]["params"] = groups[0]["params"] + list(heads.parameters())
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    stream = PairStream(seed, batch_size, 0, steps, group, (clear_start, clear_end))
    loader = torch.utils.data.DataLoader(
        stream, batch_size=None, num_workers=workers, prefetch_factor=4 if workers else None
    )
    losses: list[float] = []
    aux_losses: list[float] = []
    t0 = time.time()
    for step, (images, tokens, labels) in enumerate(loader):
        images = images.to(device)
        feats = model.encode_image(images)
        loss = clip_loss(model, images, tokens.to(device), feats)
        losses.append(float(loss.detach()))
        if aux_weight:
            aux = heads(feats, labels.to(device))
            aux_losses.append(float(aux.detach()))
            loss = loss + aux_weight * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if log_every and (step % log_every == 0 or step == steps - 1):
            recent = float(np.mean(losses[-log_every:]))
            aux_recent = float(np.mean(aux_losses[-log_every:])) if aux_losses else 0.0
            log(
                f"step {step + 1}/{steps} loss {recent:.3f} aux {aux_recent:.3f} "
                f"scale {model.logit_scale.exp().item():.1f} "
                f"lr {sched.get_last_lr()[0]:.2e} elapsed {time.time() - t0:.0f}s"
            )
        if out is not None and save_every and (step + 1) % save_every == 0 and step + 1 < steps:
            _save(model, Path(out).with_suffix(f".step{step + 1}.pt"), {"step": step + 1})
    trained_scale = float(model.logit_scale.exp())
    if final_logit_scale is not None:
        with torch.no_grad():
            model.logit_scale.fill_(math.log(final_logit_scale))
    if out is not None:
        meta = {
            "seed": seed,
            "steps": steps,
            "batch_size": batch_size,
            "lr": lr,
            "weight_decay": weight_decay,
            "warmup": warmup,
            "group": group,
            "aux_weight": aux_weight,
            "clear_start": clear_start,
            "clear_end": clear_end,
            "trained_logit_scale": trained_scale,
            "final_logit_scale": final_logit_scale,
            "final_loss": float(np.mean(losses[-50:])),
            "final_aux_loss": float(np.mean(aux_losses[-50:])) if aux_losses else None,
            "wall_s": round(time.time() - t0, 1),
            "torch": str(torch.__version__),
        }
        _save(model, Path(out), meta)
        log(f"wrote {out} ({Path(out).stat().st_size / 1e6:.1f} MB) in {time.time() - t0:.0f}s")
    return losses


def _save(model: nn.Module, out: Path, meta: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    torch.save(compact_state_dict(model, meta), tmp)
    tmp.replace(out)


def estimate_steps(
    minutes: float, batch_size: int, threads: int | None = None, probe: int = 5, device: str = "cpu"
) -> int:
    """How many steps fit in ``minutes`` on this machine, from timing a few steps (for ``--minutes``)."""
    if threads:
        torch.set_num_threads(threads)
    model = create_toy_model().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images, tokens, _labels = (t.to(device) for t in make_batch(0, 0, batch_size))
    t0 = time.time()
    for i in range(probe + 1):
        if i == 1:
            t0 = time.time()
        loss = clip_loss(model, images, tokens)
        opt.zero_grad()
        loss.backward()
        opt.step()
    float(loss)  # waits for the device
    per_step = (time.time() - t0) / probe
    t1 = time.time()
    make_batch(0, 1, batch_size)
    per_step += (time.time() - t1) * 0.5  # data is made in a worker, partly overlapped with compute
    return max(10, int(minutes * 60 / per_step))
