"""The CLIP backbone: open_clip models exposed block by block, so methods add prompts or adapters without copying them.

``Backbone.encode_image`` / ``encode_text`` run the frozen towers with two optional hooks:
``extra_tokens`` (vision tokens appended after the patch tokens, before ``ln_pre``: MaPLe) and ``block_fn``
(wraps every transformer block: deep prompts, parallel adapters). A hook gets ``(layer, x, block)`` where ``layer`` is
the 0-based block index, ``x`` the block input (batch first) and ``block(x)`` runs the frozen block.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import LayerNorm, LayerNormFp32, text_global_pool
from torch import Tensor, nn

from bench.errors import BenchError, ConfigError
from bench.progress import phase
from bench.registry import BACKBONES, find

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"
open_clip.add_model_config(MODEL_CONFIG_DIR)

BlockFn = Callable[[int, Tensor, Callable[[Tensor], Tensor]], Tensor]


def quick_gelu_for(arch: str, pretrained: str) -> bool:
    """Whether the weights of ``arch``/``pretrained`` were trained with QuickGELU.

    OpenAI's CLIP used QuickGELU; open_clip's ``ViT-B-16`` config uses GELU and only *warns* when combined with the
    ``openai`` tag, giving silently wrong features. The pretrained config's ``quick_gelu`` flag is the truth.
    """
    if arch.endswith("-quickgelu"):
        return True
    if pretrained == "none" or os.path.isfile(pretrained):
        return False
    return bool((open_clip.get_pretrained_cfg(arch, pretrained) or {}).get("quick_gelu", False))


def _open_clip_cache_hint(arch: str, tag: str, cache_dir: str | None) -> str:
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    where = []
    if cfg.get("hf_hub"):
        hf_home = os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface"))
        where.append(f"Hugging Face cache {hf_home}/hub (repo {cfg['hf_hub'].rstrip('/')})")
    if cfg.get("url"):
        where.append(f"{cache_dir or os.path.expanduser('~/.cache/clip')} (from {cfg['url']})")
    return " or ".join(where) or "open_clip's cache"


def create_model(arch: str, pretrained: str = "openai", cache_dir: str | None = None) -> nn.Module:
    """Build the open_clip model for ``arch`` with weights ``pretrained`` (an open_clip tag, a file, or ``none``).

    Architectures registered in ``BACKBONES`` (e.g. the toy world's ``toy-vit``) are built by their own builder,
    which also knows their extra weight sources (``toy``).
    """
    # an open_clip architecture never imports the worlds that register builders on demand (toy-vit: the toy world)
    builder = BACKBONES.module_dict.get(arch) if arch in open_clip.list_models() else find(BACKBONES, arch)
    if builder is not None:
        return builder(arch, pretrained)
    if arch not in open_clip.list_models():
        raise ConfigError(f"unknown backbone {arch!r}; see open_clip.list_models() (e.g. ViT-B-16, toy-vit)")
    quick = quick_gelu_for(arch, pretrained)
    if pretrained == "none":
        return random_model(arch, quick)
    if os.path.isfile(pretrained):
        model = random_model(arch, quick)
        load_weights(model, arch, pretrained, load_state_dict_file)
        return model
    if not open_clip.get_pretrained_cfg(arch, pretrained):
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
        raise ConfigError(f"backbone {arch!r} has no pretrained tag {pretrained!r}; valid: {tags}, none or a file")
    try:
        return open_clip.create_model(arch, pretrained=pretrained, force_quick_gelu=quick, cache_dir=cache_dir)
    except Exception as e:  # network, missing file, corrupt download: all one message
        raise BenchError(
            f"cannot load pretrained weights {arch}/{pretrained} ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            f"open_clip looks in {_open_clip_cache_hint(arch, pretrained, cache_dir)} — download them there on a "
            f"machine with network, or pass --pretrained PATH to a state-dict file"
        ) from None


def random_model(arch: str, quick_gelu: bool = False) -> nn.Module:
    """open_clip's ``arch`` with random weights that are a fixed function of the architecture (seed 0)."""
    with torch.random.fork_rng(devices=[]), quiet_open_clip():
        torch.manual_seed(0)
        return open_clip.create_model(arch, pretrained=None, force_quick_gelu=quick_gelu)


@contextlib.contextmanager
def quiet_open_clip() -> Iterator[None]:
    """Silence open_clip's "initialized randomly" warning where random or local weights are intended."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def load_weights(model: nn.Module, arch: str, path: str | Path, read: Callable[[str | Path], dict]) -> None:
    """``model.load_state_dict(read(path))``; a file that is not a state dict of ``arch`` is one clear error."""
    try:
        state = read(path)
        if not isinstance(state, dict):
            raise ValueError("not a state dict")
        model.load_state_dict(state)
    except Exception as e:  # unpickling refused, random bytes, another architecture's or a method's checkpoint
        reason = (str(e).splitlines() or [type(e).__name__])[0][:160]
        raise ConfigError(f"--pretrained {path} is not a weights file of {arch} ({reason})") from None


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """A state dict from ``path`` (a plain one or a ``{"state_dict": ...}`` checkpoint), as float32 tensors."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


class Backbone(nn.Module):
    """A frozen open_clip CLIP with block-level access to both towers.

    Attributes that methods use: ``vision_width``, ``text_width``, ``embed_dim``, ``vision_blocks``, ``text_blocks``,
    ``image_size``, ``mean``, ``std``; methods: ``tokenize``, ``token_embedding``, ``encode_image``, ``encode_text``,
    ``logit_scale``.
    """

    def __init__(self, model: nn.Module, arch: str, pretrained: str) -> None:
        super().__init__()
        if not hasattr(model, "visual") or not hasattr(model.visual, "conv1"):
            raise ConfigError(f"backbone {arch!r} is not a ViT CLIP; adaptbench needs open_clip ViT models")
        self.model = model
        self.arch, self.pretrained = arch, pretrained
        self.tokenizer = open_clip.get_tokenizer(arch)
        visual = model.visual
        self.vision_blocks = visual.transformer.resblocks
        self.text_blocks = model.transformer.resblocks
        self.vision_width = visual.transformer.width
        self.text_width = model.transformer.width
        self.embed_dim = model.text_projection.shape[-1]
        size = visual.image_size
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.mean = tuple(getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN)
        self.std = tuple(getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> Backbone:
        return super().train(False)  # frozen: dropout and patch dropout stay off

    @property
    def name(self) -> str:
        return f"{self.arch}/{self.pretrained}"

    @property
    def depth(self) -> int:
        """Blocks per tower (the shallower tower's): where deep prompts and parallel adapters may go."""
        return min(len(self.vision_blocks), len(self.text_blocks))

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the converted weights (float16 in the official fp16 mode): inputs are cast to it, as CLIP's
        ``x.type(self.dtype)``."""
        proj = self.model.text_projection  # converted with the linear layers (the toy's stem has no conv1.weight)
        return (proj.weight if isinstance(proj, nn.Linear) else proj).dtype

    def convert_to_half(self) -> Backbone:
        """OpenAI CLIP's ``convert_weights``, the model of the official fp16 runs: linear, conv, attention and the
        projections in float16 (open_clip's ``convert_weights_to_lp``), LayerNorm computing in float32 and returning
        half (CLIP's own ``LayerNorm``), token/positional/class embeddings and the logit scale kept float32."""
        open_clip.convert_weights_to_lp(self.model, torch.float16)
        for m in self.model.modules():
            if type(m) is LayerNorm:
                m.__class__ = LayerNormFp32  # same parameters; forward computes in float32
        self.__dict__.pop("fingerprint", None)
        return self

    @functools.cached_property
    def fingerprint(self) -> str:
        """A digest of the weights (every tensor's name, shape and a strided sample of its values, and their dtype when
        not float32): feature caches key on it, so a checkpoint rewritten at the same path or tag, or the same weights
        run in half, never reuse the old features."""
        h = hashlib.sha256()
        if self.dtype != torch.float32:  # OpenAI's weights are fp16 values: only the dtype tells the features apart
            h.update(str(self.dtype).encode())
        for name, t in self.model.state_dict().items():
            flat = t.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 4096)].float().cpu().numpy().tobytes()
            h.update(f"{name}{tuple(t.shape)}".encode())
            h.update(sample)
        return h.hexdigest()[:16]

    def logit_scale(self) -> Tensor:
        return self.model.logit_scale.exp()

    # -- text --------------------------------------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> Tensor:
        return self.tokenizer(list(texts)).to(self.model.logit_scale.device)

    def token_embedding(self, token_ids: Tensor) -> Tensor:
        return self.model.token_embedding(token_ids)

    def encode_text(
        self,
        token_ids: Tensor,
        embeddings: Tensor | None = None,
        block_fn: BlockFn | None = None,
        full_length: bool = False,
    ) -> Tensor:
        """Text features (unnormalised) for ``token_ids``; ``embeddings`` replaces the token embeddings (prompts).

        With CLIP's causal mask and end-of-text pooling, positions after the last EOT token cannot change the result,
        so the sequence is cut there (12 of 77 positions for 'a photo of a cat.'): exact, and far less text work.
        ``full_length`` runs all positions anyway (for a ``block_fn`` that reads the padding, e.g. a loss over them).
        """
        m = self.model
        x = (self.token_embedding(token_ids) if embeddings is None else embeddings).to(self.dtype)
        mask = m.attn_mask
        n = token_ids.shape[1] if full_length else self._text_length(token_ids)
        if n < x.shape[1]:
            token_ids, x = token_ids[:, :n], x[:, :n]
            mask = mask[:n, :n] if mask is not None else None
        x = x + m.positional_embedding[: x.shape[1]].to(x.dtype)
        x = self._run_blocks(x, m.transformer, self.text_blocks, block_fn, attn_mask=mask)
        x = m.ln_final(x)
        x = text_global_pool(x, token_ids, m.text_pool_type, eos_token_id=getattr(m, "text_eos_id", None))
        proj = m.text_projection
        return proj(x) if isinstance(proj, nn.Linear) else x @ proj

    def _text_length(self, token_ids: Tensor) -> int:
        """Positions the result depends on: up to the last EOT (argmax pooling under a causal mask), else all."""
        m = self.model
        if m.attn_mask is None or m.text_pool_type != "argmax":
            return token_ids.shape[1]
        return int(token_ids.argmax(dim=-1).max()) + 1

    # -- image -------------------------------------------------------------------------------------------------------
    def encode_image(
        self, images: Tensor, extra_tokens: Tensor | None = None, block_fn: BlockFn | None = None
    ) -> Tensor:
        """Image features (unnormalised); ``extra_tokens`` (n, width) are appended after the patch tokens."""
        return self.encode_image_from(self.image_tokens(images, extra_tokens), 0, block_fn)

    def image_tokens(self, images: Tensor, extra_tokens: Tensor | None = None, upto: int = 0) -> Tensor:
        """The token sequence entering block ``upto`` of the image tower (stem, ``ln_pre``, then blocks ``< upto``).

        A method whose frozen and adapted passes share their lower blocks runs them once (RMAdapter's frozen target).
        """
        v = self.model.visual
        x = v.conv1(images.to(self.dtype))
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = v.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        if extra_tokens is not None:
            x = torch.cat([x, extra_tokens.to(x.dtype).expand(x.shape[0], -1, -1)], dim=1)
        x = v.ln_pre(x)
        return self._run_blocks(x, v.transformer, self.vision_blocks, None, stop=upto)

    def encode_image_from(self, tokens: Tensor, start: int, block_fn: BlockFn | None = None) -> Tensor:
        """Finish the image tower from ``tokens`` entering block ``start`` (see :meth:`image_tokens`)."""
        v = self.model.visual
        x = self._run_blocks(tokens, v.transformer, self.vision_blocks, block_fn, start=start)
        pooled, _ = v._pool(x)
        return pooled @ v.proj if v.proj is not None else pooled

    @staticmethod
    def _run_blocks(
        x: Tensor,
        transformer: nn.Module,
        blocks: nn.ModuleList,
        block_fn: BlockFn | None,
        attn_mask: Tensor | None = None,
        start: int = 0,
        stop: int | None = None,
    ) -> Tensor:
        """Blocks ``start..stop-1`` (all by default); ``block_fn`` receives each block's absolute index."""
        batch_first = getattr(transformer, "batch_first", True)
        for i in range(start, len(blocks) if stop is None else stop):
            blk = blocks[i]
            if batch_first:

                def run(t: Tensor, blk: nn.Module = blk) -> Tensor:
                    return blk(t, attn_mask=attn_mask)
            else:

                def run(t: Tensor, blk: nn.Module = blk) -> Tensor:
                    return blk(t.transpose(0, 1), attn_mask=attn_mask).transpose(0, 1)

            x = block_fn(i, x, run) if block_fn is not None else run(x)
        return x


def load_backbone(arch: str, pretrained: str = "openai", cache_dir: str | None = None) -> Backbone:
    """Create the frozen backbone ``arch``/``pretrained`` (see :func:`create_model`)."""
    return Backbone(create_model(arch, pretrained, cache_dir), arch, pretrained)


def normalize(x: Tensor) -> Tensor:
    return F.normalize(x.float(), dim=-1)


_BACKBONES: dict[tuple[str, str, str, bool], Backbone] = {}


def get_backbone(arch: str, pretrained: str, device: torch.device, half: bool = False) -> Backbone:
    """The frozen backbone, reused across the runs of one process (one at a time: GPU memory); ``half``: converted
    for the official fp16 mode (:meth:`Backbone.convert_to_half`)."""
    key = (arch, pretrained, str(device), half)
    if key not in _BACKBONES:
        _BACKBONES.clear()  # one at a time: GPU memory
        with phase(f"loading the backbone {arch} ({pretrained} weights) on {device}"):
            backbone = load_backbone(arch, pretrained)
            _BACKBONES[key] = (backbone.convert_to_half() if half else backbone).to(device)
    return _BACKBONES[key]


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"
