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


def create_toy_model(init_seed: int = 0) -> nn.Module:
    """A freshly initialised ``toy-vit`` open_clip model with the token embedding at its fixed base init."""
    import open_clip

    open_clip.add_model_config(Path(__file__).resolve().parents[2] / "bench" / "model_configs")
    _register_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        model = open_clip.create_model(ARCH, pretrained=None)
    emb = model.token_embedding.weight
    with torch.no_grad():
        emb.copy_(base_token_embedding(*emb.shape))
    return model


def _register_config() -> None:
    """Make ``toy-vit`` known to open_clip (the installed package ships the config in ``bench/model_configs``)."""
    import open_clip

    import bench

    open_clip.add_model_config(Path(bench.__file__).parent / "model_configs")


# ---------------------------------------------------------------------------------------------------------------------
# Data


class PairStream(torch.utils.data.IterableDataset):
    """Batches of (images, token ids) where batch ``i`` is a pure function of ``(seed, i)``, whatever the workers."""

    def __init__(self, seed: int, batch_size: int, start: int, stop: int, group: int = 1) -> None:
        super().__init__()
        self.seed, self.batch_size, self.start, self.stop, self.group = seed, batch_size, start, stop, group

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        info = torch.utils.data.get_worker_info()
        first, step = (0, 1) if info is None else (info.id, info.num_workers)  # the loader interleaves workers in order
        for i in range(self.start + first, self.stop, step):
            yield make_batch(self.seed, i, self.batch_size, self.group)


def make_batch(seed: int, index: int, batch_size: int, group: int = 1) -> tuple[Tensor, Tensor]:
    """Batch ``index`` of the pretraining stream: CLIP-normalised images and tokenized captions.

    ``group > 1`` builds the batch from groups of that many hard negatives (:func:`~.generator.sample_group`).
    """
    import open_clip

    from bench.datasets.toy.generator import sample_group, sample_pair

    rng = np.random.default_rng([seed, index, 7])
    images, captions = [], []
    while len(images) < batch_size:
        pairs = [sample_pair(rng)] if group <= 1 else sample_group(rng, min(group, batch_size - len(images)))
        for im, cap in pairs:
            images.append(np.asarray(im))
            captions.append(cap)
    return clip_pixels(np.stack(images)), open_clip.tokenize(captions)


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


def clip_loss(model: nn.Module, images: Tensor, tokens: Tensor) -> Tensor:
    """Symmetric InfoNCE over the batch (CLIP's loss)."""
    img = F.normalize(model.encode_image(images), dim=-1)
    txt = F.normalize(encode_text_short(model, tokens), dim=-1)
    logits = model.logit_scale.exp().clamp(max=100) * img @ txt.T
    target = torch.arange(len(images), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


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
    steps: int = 1200,
    batch_size: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 0.05,
    warmup: int = 100,
    group: int = 1,
    threads: int | None = None,
    save_every: int = 0,
    workers: int = 1,
    device: str = "cpu",
    log: Callable[[str], None] = print,
    log_every: int = 50,
) -> list[float]:
    """Pretrain the toy CLIP from scratch for ``steps`` AdamW steps (cosine schedule); returns the loss per step.

    Same seed + same ``steps``/``batch_size``/``group`` → the same data stream and initialisation. ``out`` (if given)
    receives the compact checkpoint; ``save_every`` also writes ``<out>.step<N>.pt`` along the way. ``device="cuda"``
    trains on a GPU (the data is still generated on CPU workers; raise ``workers`` to keep up).
    """
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = create_toy_model(init_seed=seed).to(device)
    model.train()
    opt = torch.optim.AdamW(_param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.98), eps=1e-6)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    stream = PairStream(seed, batch_size, 0, steps, group)
    loader = torch.utils.data.DataLoader(
        stream, batch_size=None, num_workers=workers, prefetch_factor=4 if workers else None
    )
    losses: list[float] = []
    t0 = time.time()
    for step, (images, tokens) in enumerate(loader):
        loss = clip_loss(model, images.to(device), tokens.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if log_every and (step % log_every == 0 or step == steps - 1):
            recent = float(np.mean(losses[-log_every:]))
            log(
                f"step {step + 1}/{steps} loss {recent:.3f} scale {model.logit_scale.exp().item():.1f} "
                f"lr {sched.get_last_lr()[0]:.2e} elapsed {time.time() - t0:.0f}s"
            )
        if out is not None and save_every and (step + 1) % save_every == 0 and step + 1 < steps:
            _save(model, Path(out).with_suffix(f".step{step + 1}.pt"), {"step": step + 1})
    if out is not None:
        meta = {
            "seed": seed,
            "steps": steps,
            "batch_size": batch_size,
            "lr": lr,
            "weight_decay": weight_decay,
            "warmup": warmup,
            "group": group,
            "final_loss": float(np.mean(losses[-50:])),
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
    batch = tuple(t.to(device) for t in make_batch(0, 0, batch_size))
    t0 = time.time()
    for i in range(probe + 1):
        if i == 1:
            t0 = time.time()
        loss = clip_loss(model, *batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    float(loss)  # waits for the device
    per_step = (time.time() - t0) / probe
    t1 = time.time()
    make_batch(0, 1, batch_size)
    per_step += (time.time() - t1) * 0.5  # data is made in a worker, partly overlapped with compute
    return max(10, int(minutes * 60 / per_step))
