"""The ``Method`` contract: what a few-shot adaptation method provides to the harness.

A method is an ``nn.Module`` around the frozen :class:`~bench.model.backbone.Backbone`. It owns its learnable parts, its
default hyper-parameters per protocol and its loss; the harness owns data, the training loop, optimiser, schedule,
precision, evaluation and results. To add a method, subclass ``Method`` in one file under ``methods/`` (or a
``--plugin`` file) and register it with ``@register_method("mymethod")``; docs/adding-a-method.md is the guide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.config import Range
from bench.model.backbone import Backbone, normalize
from bench.model.context import FitContext
from bench.precision import Precision


@dataclass
class Batch:
    """One training batch: images (deep methods) or cached frozen image features, and labels."""

    labels: Tensor
    images: Tensor | None = None
    features: Tensor | None = None
    images2: Tensor | None = None  # a second augmented view of the same images (``train.views=2``: CoPrompt)
    index: Tensor | None = None  # positions of the batch's items in ``ctx.train`` (for per-item cached targets)


class Method(nn.Module):
    """Base class of every method. Subclasses set ``name`` via the registry and override what they change."""

    name: ClassVar[str] = ""
    # True: the image encoder is untouched, so the harness may train and evaluate on cached image features.
    frozen_image_encoder: ClassVar[bool] = False
    # False: nothing is trained by gradient descent (zero-shot CLIP, training-free Tip-Adapter).
    trains: ClassVar[bool] = True
    # `bench list methods` shows this instead of a count when the size depends on the data (Tip-Adapter-F's cache).
    parameter_note: ClassVar[str | None] = None
    # The precision of the official runs (``train.precision`` values); None where there is no official code.
    official_precision: ClassVar[str | None] = None
    # Learned tensors (name prefixes, e.g. "deep_text") that the official fp16 mode keeps in float32: they were made
    # after CLIP's convert_weights and never cast (MaPLe's compound prompts and their projections); train.precision=fp16
    # holds every other learned tensor in half (bench.model.trainer.cast_learned).
    float32_learned: ClassVar[tuple[str, ...]] = ()
    # Ranges of this method's numeric ``method.*`` keys, beside their defaults; undeclared numbers must be finite and
    # not negative (bench.config.validate).
    option_ranges: ClassVar[dict[str, Range]] = {}
    # Keys this method added after results existed, with the value that reproduces its earlier behaviour: left out of
    # the config hash at that value (bench.config.config_hash), so adding an option never re-runs a finished sweep.
    hash_neutral: ClassVar[dict[tuple[str, str], Any]] = {}
    # None: the learned parts are class-agnostic, so any class names get learned logits. A method whose learned state
    # is per training class (a cache, a classifier head) says here what it does for classes it has not trained on.
    unseen_classes: ClassVar[str | None] = None

    def __init__(self, backbone: Backbone, cfg: dict[str, Any], n_cls: int = 0) -> None:
        super().__init__()
        self.backbone = backbone
        self.cfg = cfg
        self.n_cls = n_cls  # classes of the training set (class-specific parameters need it up front)
        self.classnames: list[str] = []
        self.template = "a photo of a {}."
        self.dataset = ""  # the dataset the classes come from (its role on generated suites): per-dataset templates
        self._text_cache: Tensor | None = None
        self._frozen_text: Tensor | None = None

    # -- configuration -------------------------------------------------------------------------------------------
    @classmethod
    def default_config(cls, protocol: str, dataset: str) -> dict[str, Any]:
        """This method's hyper-parameters for ``protocol`` when training on ``dataset`` (merged over BASE_CONFIG)."""
        return {}

    @classmethod
    def tiny_options(cls, depth: int) -> dict[str, Any]:
        """``method.*`` overrides that fit a small backbone with ``depth`` blocks per tower and need no user files:
        what the tests' tiny backbone uses in place of the paper's layer choices (the contract test checks them)."""
        return {}

    @classmethod
    def trains_on_augmented_features(cls, train: Mapping[str, Any]) -> bool:
        """Whether training reads cached features of augmented passes (``train.feature_passes`` matters)."""
        return cls.frozen_image_encoder and cls.trains and train.get("augment") != "none"

    @classmethod
    def check_config(cls, cfg: dict[str, Any]) -> None:
        """Raise :class:`~bench.errors.ConfigError` for a config this method cannot run, before any run starts: the
        files it reads (CoPrompt's descriptions), choices and keys that depend on each other."""

    @classmethod
    def departures(cls, cfg: dict[str, Any], device_type: str = "cuda") -> list[str]:
        """Where ``cfg`` run on ``device_type`` departs from the official code in ways the published numbers depend on:
        records carry these, and the report prints them so that nobody compares such a row with a paper by accident."""
        train, out = cfg["train"], []
        name, official = train["precision"], cls.official_precision
        if official and (name != official or device_type != "cuda"):
            where = "" if device_type == "cuda" else f" on {device_type}, {Precision(name, device_type).compute}"
            out.append(f"precision {name}{where} (official: {official} on GPU)")
        if cls.trains_on_augmented_features(train) and train.get("feature_passes"):
            out.append(f"{train['feature_passes']} cached augmented passes cycled (official: a fresh one every epoch)")
        return out

    # -- classes -------------------------------------------------------------------------------------------------
    def set_classnames(self, classnames: Sequence[str], template: str = "a photo of a {}.", dataset: str = "") -> None:
        """Point the classifier at ``classnames`` (base, novel or another dataset's classes).

        ``template`` is that dataset's hand-written prompt and ``dataset`` its name (on a generated suite, the real
        dataset it plays): as in the official code, where a cross-dataset evaluation rebuilds the model for the
        evaluated dataset (``cfg.DATASET.NAME``), every per-dataset choice follows the *evaluated* dataset.
        """
        self.classnames = [c.replace("_", " ") for c in classnames]
        self.template = template
        self.dataset = dataset
        self._text_cache = None
        self._frozen_text = None

    def prompts(self) -> list[str]:
        return [self.template.format(c) for c in self.classnames]

    def encode_template(self, template: str) -> Tensor:
        """Frozen CLIP's (unnormalised) features of ``template`` filled with each class name."""
        return self.backbone.encode_text(self.backbone.tokenize([template.format(c) for c in self.classnames]))

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.trainable_parameters())

    def train(self, mode: bool = True) -> Method:
        self._text_cache = None
        return super().train(mode)

    # -- forward -------------------------------------------------------------------------------------------------
    def text_features(self) -> Tensor:
        """Class text features; computed once per class list at evaluation, every step in training."""
        if self.training:
            return self.compute_text_features()
        if self._text_cache is None:
            self._text_cache = self.compute_text_features()
        return self._text_cache

    def compute_text_features(self) -> Tensor:
        return self.zero_shot_text_features()

    def zero_shot_text_features(self) -> Tensor:
        """Frozen CLIP's features of the hand-written prompts (``template`` filled with each class name)."""
        return self.encode_template(self.template)

    @torch.no_grad()
    def frozen_text_features(self) -> Tensor:
        """:meth:`zero_shot_text_features`, computed once per class list: the classifier of methods whose text side
        is frozen (CLIP-Adapter, Tip-Adapter) and the target of consistency losses (RMAdapter, KgCoOp, PromptSRC)."""
        if self._frozen_text is None:
            self._frozen_text = self.zero_shot_text_features()
        return self._frozen_text

    def encode_image(self, images: Tensor) -> Tensor:
        return self.backbone.encode_image(images)

    def logits_from_features(self, image_features: Tensor, text: Tensor | None = None) -> Tensor:
        """``logit_scale · cos(image, text)``; ``text`` defaults to :meth:`text_features` (pass it to reuse it)."""
        text = self.text_features() if text is None else text
        return self.backbone.logit_scale() * normalize(image_features) @ normalize(text).t()

    def forward(self, images: Tensor | None = None, features: Tensor | None = None) -> Tensor:
        """Class logits for images, or for frozen image features when ``frozen_image_encoder``."""
        if features is None:
            features = self.encode_image(images)
        return self.logits_from_features(features)

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        """Named loss terms; the harness back-propagates their sum."""
        return {"ce": F.cross_entropy(self(batch.images, batch.features), batch.labels)}

    # -- optional hooks ------------------------------------------------------------------------------------------
    def before_training(self, ctx: FitContext) -> None:
        """Called once before the first epoch (e.g. Tip-Adapter builds its cache here)."""

    def after_epoch(self, ctx: FitContext, epoch: int) -> None:
        """Called after each epoch."""

    def after_training(self, ctx: FitContext) -> None:
        """Called once after training (e.g. validation-only hyper-parameter search)."""

    def extra_state(self) -> dict[str, Any]:
        """State to checkpoint beyond trainable parameters and persistent buffers (e.g. chosen hyper-parameters)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def training_state(self) -> dict[str, Any]:
        """What ``after_epoch`` carries from one epoch to the next (e.g. a running average), for mid-run resume."""
        return {}

    def load_training_state(self, state: dict[str, Any]) -> None:
        pass

    # -- checkpointing: only what the method learned, never the frozen backbone -----------------------------------
    def learned_state_dict(self) -> dict[str, Any]:
        state = {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}
        return {"state": state, "extra": self.extra_state()}

    def load_learned_state_dict(self, ckpt: dict[str, Any]) -> None:
        missing, unexpected = self.load_state_dict(ckpt["state"], strict=False)
        missing = [k for k in missing if not k.startswith("backbone.")]
        if missing or unexpected:
            raise RuntimeError(f"checkpoint does not match the method: missing {missing}, unexpected {unexpected}")
        self.load_extra_state(ckpt.get("extra", {}))


@torch.no_grad()
def init_from_text(backbone: Backbone, text: str, n: int) -> Tensor:
    """Embeddings of the first ``n`` word tokens of ``text`` (CoOp/MaPLe context initialisation)."""
    ids = backbone.tokenize([text])
    return backbone.token_embedding(ids)[0, 1 : 1 + n].detach().clone()
