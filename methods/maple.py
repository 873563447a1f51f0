"""MaPLe — Multi-modal Prompt Learning (Khattak et al., CVPR 2023; muzairkhattak/multimodal-prompt-learning)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar

from torch import Tensor, nn

from bench.config import Range, dassl_sgd
from bench.model.backbone import Backbone
from bench.model.deep_prompts import check_depth, deep_prompt_params, text_deep_prompt_fn, vision_deep_prompt_fn
from bench.model.method import Method
from bench.model.prompts import PromptedText
from bench.registry import register_method


@register_method("maple")
class MaPLe(Method):
    """Deep text prompts coupled to vision prompts by linear maps, in the first ``prompt_depth`` blocks of both towers.

    Text: ``[SOS][ctx(n_ctx)][of a CLASS .]`` with ``ctx`` initialised from "a photo"; blocks ``1..depth-1`` get their
    own text prompts at the same positions. Vision: ``proj(ctx)`` appended after the patch tokens before ``ln_pre``,
    replaced in blocks ``1..depth-1`` by ``proj_i(text_prompt_i)`` (trainers/maple.py, clip/model.py).
    """

    official_precision: ClassVar[str | None] = "fp16"  # configs/trainers/MaPLe/*.yaml: PREC fp16; CoPrompt inherits it
    # trainers/maple.py MultiModalPromptLearner: ctx comes from the (half) token embedding and proj is .half()'d, but
    # compound_prompts_text (torch.empty, float32) and compound_prompt_projections (nn.Linear, float32) are never
    # cast, so PREC fp16 trains them in float32 (the blocks .half() them on use). CoPrompt's code is the same.
    float32_learned: ClassVar[tuple[str, ...]] = ("deep_text", "deep_proj")

    option_ranges: ClassVar[dict[str, Range]] = {
        "n_ctx": Range(1, what="context tokens"),
        "prompt_depth": Range(1, what="prompted blocks"),
    }

    @classmethod
    def default_config(cls, protocol: str, dataset: str) -> dict[str, Any]:
        xd = protocol in ("cross_dataset", "domain_generalization")
        # trainers/maple.py + train.py extend_cfg: N_CTX 2, CTX_INIT "a photo of a"; PROMPT_DEPTH 9 for B2N
        # (vit_b16_c2_ep5_batch4_2ctx.yaml), 3 for cross-dataset/DG (vit_b16_c2_ep5_batch4_2ctx_cross_datasets.yaml).
        method = {"n_ctx": 2, "ctx_init": "a photo of a", "prompt_depth": 3 if xd else 9}
        # Both configs: SGD, batch 4, cosine, 1 warm-up epoch at constant 1e-5, fp16; lr 0.0035 / 5 epochs (B2N),
        # lr 0.0026 / 2 epochs (xd/DG). Few-shot: no published MaPLe config (PromptSRC issue #21); B2N's is used.
        train = dassl_sgd(0.0026 if xd else 0.0035, 2 if xd else 5, 4, precision="amp")
        return {"method": method, "train": train}

    @classmethod
    def tiny_options(cls, depth: int) -> dict[str, Any]:
        return {"prompt_depth": depth - 1}

    def __init__(self, backbone: Backbone, cfg: dict[str, Any], n_cls: int = 0) -> None:
        super().__init__(backbone, cfg, n_cls)
        m = cfg["method"]
        n_ctx, depth = m["n_ctx"], m["prompt_depth"]
        check_depth(depth, backbone, "method.prompt_depth")
        self.prompt = PromptedText(backbone, n_ctx, m["ctx_init"] or None)
        d_t, d_v = backbone.text_width, backbone.vision_width
        self.proj = nn.Linear(d_t, d_v)  # coupling function of the shallow prompt (512 -> 768)
        self.deep_text = deep_prompt_params(depth, n_ctx, d_t)  # compound_prompts_text: normal std 0.02
        # compound_prompt_projections = _get_clones(nn.Linear(512, 768), depth-1): deep copies of ONE initialisation
        single = nn.Linear(d_t, d_v)
        self.deep_proj = nn.ModuleList([copy.deepcopy(single) for _ in range(depth - 1)])

    def set_classnames(self, classnames: Sequence[str], template: str = "a photo of a {}.", dataset: str = "") -> None:
        super().set_classnames(classnames, template, dataset)
        self.prompt.set_classnames(classnames)

    def vision_prompts(self) -> tuple[Tensor, list[Tensor]]:
        """The shallow vision prompt ``proj(ctx)`` and the deep ones ``proj_i(text_prompt_i)``."""
        return self.proj(self.prompt.ctx), [f(p) for f, p in zip(self.deep_proj, self.deep_text)]

    def compute_text_features(self) -> Tensor:
        fn = text_deep_prompt_fn(list(self.deep_text))
        return self.backbone.encode_text(self.prompt.token_ids, embeddings=self.prompt.embeddings(), block_fn=fn)

    def encode_image(self, images: Tensor) -> Tensor:
        shallow, deep = self.vision_prompts()
        return self.backbone.encode_image(images, extra_tokens=shallow, block_fn=vision_deep_prompt_fn(deep))
