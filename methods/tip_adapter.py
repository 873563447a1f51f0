"""Tip-Adapter and Tip-Adapter-F (Zhang et al., ECCV 2022; gaopengcuhk/Tip-Adapter): a key-value cache of few-shot
features added to zero-shot CLIP.

Differences from the official code, on purpose: α/β (and Tip-F's epoch) are chosen on the **validation** split only
(the official ImageNet search and Tip-F's epoch selection use test, peers.md §4/§10), and the cache holds the training
classes only, so for classes without cache entries — the novel half of base-to-novel, the other datasets of
cross-dataset — **Tip-Adapter reduces to zero-shot CLIP**. The cache term is added only when *every* class of the
classifier has cache entries (matched by class name): the training classes themselves (base classes, ImageNet and
ImageNet-V2/-Sketch in domain generalisation) or a subset of them (ImageNet-A/-R's 200 classes); if any class has
none, no class gets a cache bonus and the prediction is zero-shot CLIP's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from bench.config import Range
from bench.errors import ConfigError
from bench.model.backbone import Backbone, normalize
from bench.registry import register_method

from .zeroshot import ZeroShotCLIP

if TYPE_CHECKING:
    from bench.model.context import FitContext

# configs/*.yaml (init_beta 1 everywhere): dataset -> (init_alpha, search_scale [beta, alpha]).
TIP_CONFIGS: dict[str, tuple[float, list[float]]] = {
    "caltech101": (3.0, [12.0, 5.0]),
    "dtd": (2.0, [13.0, 13.0]),
    "eurosat": (2.0, [12.0, 10.0]),
    "fgvc_aircraft": (5.0, [30.0, 30.0]),
    "food101": (1.17, [10.0, 10.0]),
    "imagenet": (1.17, [7.0, 3.0]),
    "oxford_flowers": (10.0, [50.0, 50.0]),
    "oxford_pets": (1.17, [7.0, 3.0]),
    "stanford_cars": (3.0, [20.0, 10.0]),
    "sun397": (1.17, [12.0, 10.0]),
    "ucf101": (3.0, [7.0, 3.0]),
}
DEFAULT_TIP = (1.17, [12.0, 10.0])  # datasets without an official config (toy suite): SUN397's, a middle setting


def cache_logits(features: Tensor, keys: Tensor, values: Tensor, beta: float | Tensor) -> Tensor:
    """``exp(-β(1 - f·Kᵀ))·V`` for L2-normalised features ``f`` (N, D), keys (M, D), one-hot values (M, C)."""
    affinity = features @ keys.t()
    return torch.exp(-beta * (1.0 - affinity)) @ values


def tip_logits(
    features: Tensor, text: Tensor, keys: Tensor, values: Tensor, alpha: float, beta: float, scale: float | Tensor
) -> Tensor:
    """``scale·f·Wᵀ + α·exp(-β(1 - f·Kᵀ))·V`` (main.py; the official ``scale`` is 100 = CLIP's logit scale)."""
    return scale * features @ text.t() + alpha * cache_logits(features, keys, values, beta)


def grid(scale: float, steps: int) -> list[float]:
    """utils.py ``search_hp``: ``[i·(scale-0.1)/steps + 0.1 for i < steps]``."""
    return [i * (scale - 0.1) / steps + 0.1 for i in range(steps)]


@torch.no_grad()
def search_alpha_beta(
    clip_logits: Tensor,
    affinity: Tensor,
    values: Tensor,
    labels: Tensor,
    betas: list[float],
    alphas: list[float],
) -> tuple[float, float, float]:
    """(α, β, accuracy %) maximising accuracy over the grid, first best in β-major order as ``search_hp``."""
    best = (-1.0, alphas[0], betas[0])
    for beta in betas:
        cache = torch.exp(-beta * (1.0 - affinity)) @ values
        a = torch.tensor(alphas, dtype=cache.dtype, device=cache.device).view(-1, 1, 1)
        acc = ((clip_logits.unsqueeze(0) + a * cache.unsqueeze(0)).argmax(-1) == labels).float().mean(-1) * 100
        i = int(acc.argmax())  # first maximum = smallest alpha, as the strict ">" of the official loop
        if acc[i].item() > best[0]:
            best = (acc[i].item(), alphas[i], beta)
    return best[1], best[2], best[0]


@register_method("tip_adapter")
class TipAdapter(ZeroShotCLIP):
    """Training-free cache model: keys = few-shot features (mean of 10 augmented passes), values = one-hot labels.

    For classes without cache entries (novel classes, other datasets) this is zero-shot CLIP (see module docstring).
    """

    frozen_image_encoder: ClassVar[bool] = True
    trains: ClassVar[bool] = False
    unseen_classes: ClassVar[str | None] = (
        "zero-shot CLIP: the cache term is added only when every class of the classifier has cache entries (matched "
        "by class name); if any class has none, no class gets it"
    )

    option_ranges: ClassVar[dict[str, Range]] = {
        "augment_passes": Range(1, what="augmented cache passes"),
        "search_step": Range(1, what="search grid steps"),
        "search_scale": Range(0, what="the search range", open_low=True),
    }

    @classmethod
    def default_config(cls, protocol: str, dataset: str) -> dict[str, Any]:
        init_alpha, scale = TIP_CONFIGS.get(dataset, DEFAULT_TIP)
        method = {
            # main_imagenet.py: ImageNet's 7-template ensemble; main.py: each dataset's own template. Decided by the
            # evaluated dataset (the shifted ImageNets share ImageNet's classes and take its 7).
            "ensemble": "imagenet",
            "own_template": False,  # imagenet.py's 7 templates only (the dataset's own is not added)
            "logit_scale": "100",  # main.py: clip_logits = 100. * f @ W; a number, or "model": the checkpoint's own
            "augment_passes": 10,  # augment_epoch: 10
            "init_alpha": init_alpha,
            "init_beta": 1.0,  # init_beta: 1
            "search": True,
            "search_scale": scale,  # [beta max, alpha max]
            "search_step": [200, 20],  # search_step: [200, 20]
        }
        # Cache/train transform: RandomResizedCrop(224, scale=(0.5, 1), bicubic) + flip (main.py).
        return {"method": method, "train": {"rrc_scale_min": 0.5}}

    def __init__(self, backbone: Backbone, cfg: dict[str, Any], n_cls: int = 0) -> None:
        super().__init__(backbone, cfg, n_cls)
        scale = str(cfg["method"]["logit_scale"])
        if scale != "model" and not scale.replace(".", "", 1).isdigit():
            raise ConfigError(f"method.logit_scale={scale!r}: use a positive number (the official 100) or model")
        self.fixed_scale = None if scale == "model" else float(scale)  # None: the checkpoint's own scale
        self.alpha = float(cfg["method"]["init_alpha"])
        self.beta = float(cfg["method"]["init_beta"])
        self.cache_classnames: list[str] = []
        self.register_buffer("cache_keys", torch.zeros(0, backbone.embed_dim))
        self.register_buffer("cache_values", torch.zeros(0, 0))

    # -- cache ---------------------------------------------------------------------------------------------------
    def _allocate(self, n_keys: int, n_cls: int) -> None:
        device = self.cache_values.device
        self.cache_keys = torch.zeros(n_keys, self.backbone.embed_dim, device=device)
        self.cache_values = torch.zeros(n_keys, n_cls, device=device)

    def keys(self) -> Tensor:
        return self.cache_keys

    def text_features(self) -> Tensor:
        """The text encoder is frozen: the class prompts are encoded once per class list."""
        return self.frozen_text_features()

    def cache_values_for_classes(self) -> Tensor | None:
        """The cache's one-hot values for the classifier's classes (matched by name), or ``None`` — zero-shot — when
        any class has no cache entries, so that no class gets a cache bonus the others cannot get."""
        if not len(self.cache_values):
            return None
        if self.classnames == self.cache_classnames:
            return self.cache_values
        index = {c: i for i, c in enumerate(self.cache_classnames)}
        if any(c not in index for c in self.classnames):
            return None
        return self.cache_values[:, [index[c] for c in self.classnames]]

    @torch.no_grad()
    def before_training(self, ctx: FitContext) -> None:
        passes = self.cfg["method"]["augment_passes"]
        feats = ctx.features(ctx.train, "rrc_flip", passes, scale_min=self.cfg["train"]["rrc_scale_min"])
        keys = normalize(torch.stack(feats).mean(0))  # build_cache_model: mean of the augmented passes, normalised
        labels = ctx.labels(ctx.train)
        self._allocate(len(keys), len(ctx.classnames))
        self.cache_keys.copy_(keys.to(self.cache_keys.device))
        self.cache_values.copy_(nn.functional.one_hot(labels, len(ctx.classnames)).float())
        self.cache_classnames = list(self.classnames)

    # -- logits --------------------------------------------------------------------------------------------------
    def logits_from_features(self, image_features: Tensor, text: Tensor | None = None) -> Tensor:
        f = normalize(image_features)
        text = normalize(self.text_features() if text is None else text)
        values = self.cache_values_for_classes()
        if values is None:  # exactly zero-shot CLIP's logits
            return self.backbone.logit_scale() * f @ text.t()
        return tip_logits(f, text, self.keys().float(), values, self.alpha, self.beta, self.clip_scale())

    def clip_scale(self) -> float | Tensor:
        """The multiplier of the CLIP logits: the official constant 100 (released CLIP's own scale) by default, so
        α keeps its meaning on a checkpoint with another scale; ``method.logit_scale=model`` uses the checkpoint's."""
        return self.backbone.logit_scale() if self.fixed_scale is None else self.fixed_scale

    # -- validation-only α/β search ------------------------------------------------------------------------------
    @torch.no_grad()
    def search(self, ctx: FitContext) -> None:
        m = self.cfg["method"]
        ctx.info.update({"alpha": self.alpha, "beta": self.beta, "search": "off"})
        if not m["search"]:
            return
        if not ctx.val:
            ctx.info["search"] = "skipped: empty validation split, initial alpha/beta kept"
            return
        was_training = self.training
        self.eval()
        f = normalize(ctx.features(ctx.val)[0].to(ctx.device))
        labels = ctx.labels(ctx.val).to(ctx.device)
        clip = self.clip_scale() * f @ normalize(self.text_features()).t()
        affinity = f @ self.keys().float().t()
        betas = grid(m["search_scale"][0], m["search_step"][0])
        alphas = grid(m["search_scale"][1], m["search_step"][1])
        self.alpha, self.beta, acc = search_alpha_beta(clip, affinity, self.cache_values, labels, betas, alphas)
        ctx.info.update({"alpha": self.alpha, "beta": self.beta, "search": "val", "val_accuracy": acc})
        self.train(was_training)

    def after_training(self, ctx: FitContext) -> None:
        self.search(ctx)

    # -- checkpointing: the cache's size depends on the data, so it is rebuilt from the checkpoint's shapes ----------
    def extra_state(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "beta": self.beta, "cache_classnames": self.cache_classnames}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.alpha = state.get("alpha", self.alpha)
        self.beta = state.get("beta", self.beta)
        self.cache_classnames = state.get("cache_classnames", [])

    def load_learned_state_dict(self, ckpt: dict[str, Any]) -> None:
        self._allocate(*ckpt["state"]["cache_values"].shape)
        super().load_learned_state_dict(ckpt)


@register_method("tip_adapter_f")
class TipAdapterF(TipAdapter):
    """Tip-Adapter-F: the cache keys become a learnable ``Linear(D, N·K)`` initialised from the cache, trained with CE.

    Epoch chosen by validation accuracy (the official code picks the best *test* epoch), then α/β searched on val.
    """

    trains: ClassVar[bool] = True
    parameter_note: ClassVar[str | None] = "N·K×D"  # shots × classes cache keys of dimension D: data-dependent

    @classmethod
    def default_config(cls, protocol: str, dataset: str) -> dict[str, Any]:
        cfg = super().default_config(protocol, dataset)
        cfg["train"].update(
            {
                "optimizer": "adamw",
                "lr": 0.001,  # configs/*.yaml lr: 0.001
                "eps": 1e-4,  # torch.optim.AdamW(..., eps=1e-4)
                "adamw_weight_decay": 0.01,  # PyTorch AdamW default, not overridden
                "epochs": 100 if dataset == "eurosat" else 20,  # train_epoch: 20 (EuroSAT 100)
                "batch_size": 256,  # train_loader_F batch_size 256, shuffled
                "scheduler": "cosine",
                "scheduler_step": "iter",  # CosineAnnealingLR(T_max=train_epoch * len(loader)), stepped per iter
                "warmup_epochs": 0,
                "augment": "rrc_flip",  # train_loader_F: a fresh crop and flip every epoch (feature_passes 0)
            }
        )
        cfg["method"]["select_epoch"] = True  # best epoch on val (official: on test)
        return cfg

    def __init__(self, backbone: Backbone, cfg: dict[str, Any], n_cls: int = 0) -> None:
        super().__init__(backbone, cfg, n_cls)
        self.adapter = nn.Parameter(torch.zeros(0, backbone.embed_dim))
        self._best: tuple[float, int, Tensor] | None = None

    def keys(self) -> Tensor:
        return self.adapter if len(self.adapter) else self.cache_keys

    def _allocate(self, n_keys: int, n_cls: int) -> None:
        super()._allocate(n_keys, n_cls)
        self.adapter = nn.Parameter(torch.zeros(n_keys, self.backbone.embed_dim, device=self.cache_keys.device))

    def before_training(self, ctx: FitContext) -> None:
        super().before_training(ctx)
        with torch.no_grad():
            self.adapter.copy_(self.cache_keys)  # adapter.weight = cache_keys.t()
        self._best = None

    def after_epoch(self, ctx: FitContext, epoch: int) -> None:
        if not self.cfg["method"]["select_epoch"] or not ctx.val:
            return
        acc = ctx.evaluate(self, ctx.val)
        if self._best is None or acc > self._best[0]:
            self._best = (acc, epoch + 1, self.adapter.detach().clone())

    def training_state(self) -> dict[str, Any]:
        return {"best": self._best}

    def load_training_state(self, state: dict[str, Any]) -> None:
        self._best = state.get("best")

    def after_training(self, ctx: FitContext) -> None:
        if self._best is not None:
            acc, epoch, weights = self._best
            with torch.no_grad():
                self.adapter.copy_(weights)
            ctx.info.update({"best_epoch": epoch, "best_epoch_val_accuracy": acc})
            self._best = None
        self.search(ctx)
