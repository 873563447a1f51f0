"""RMAdapter (Lin et al., AAAI 2026, arXiv 2512.06811): MMA + a reconstruction branch + consistency with frozen CLIP.

No public code exists; shared/reference/rmadapter.md §1 gives the equations and §5 the open choices. Each open choice
is a named option under ``method`` whose default is the best-supported guess; the paper's ablations are config-only:

* Table 4 — ``reconstruct=none consistency=false`` (= MMA), ``reconstruct=none`` (constraints only),
  ``reconstruct=text``, ``reconstruct=visual``, ``reconstruct=both`` (RMAdapter).
* Table 5 — ``sharing=independent | up | down`` (RMAdapter: shared down-projection).
* Table 6 — ``rec_layers=1 | 2 | 3`` (RMAdapter: 2).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.errors import ConfigError
from bench.model.adapters import ReconstructionBranch, Tap
from bench.model.backbone import Backbone, normalize
from bench.model.losses import consistency_loss
from bench.model.method import Batch
from bench.registry import register_method

from .mma import MMA, mma_config

RECONSTRUCT = {"both": ("visual", "text"), "visual": ("visual",), "text": ("text",), "none": ()}


@register_method("rmadapter")
class RMAdapter(MMA):
    """Reconstruction-based Multi-Modal Adapter: MMA's adapters whose down-projection also feeds a local auto-encoder.

    Training loss ``L = L_ce + λ3·|x^a − x|₁ + λ4·|w^a − w|₁ + λ1·Σ_ℓ‖h_ℓ − rec(h_ℓ)‖² + λ2·(text)`` (Eqs. 11–18),
    with ``h_ℓ`` the adapter input ``ln_1(x)`` and ``x``/``w`` frozen-CLIP features of the same augmented image and
    the same prompts. Inference uses only the adaptation branch (identical to MMA's forward).
    """

    @classmethod
    def default_config(cls, protocol: str, dataset: str) -> dict[str, Any]:
        cfg = mma_config(protocol, dataset)  # §2.3 guess: MMA's optimisation, layers, r, α and prompt
        cfg["method"].update(
            {
                # Which towers reconstruct (Table 4 rows); "both" is RMAdapter.
                "reconstruct": "both",
                # Consistency with frozen CLIP (Eq. 17); false + reconstruct=none is exactly MMA (Table 4 row 1).
                "consistency": True,
                # Table 5: the rec branch shares the adapter's down-projection (Eqs. 8–10).
                "sharing": "down",
                # Table 6: linear layers code→d in the decoder (Eq. 10: r→r→d).
                "rec_layers": 2,
                # §5.3 guess: "local" loss — reconstruct ln_1(x) from a detached copy, so L_rec never reaches
                # earlier blocks (Fig. 3: "without the need for layer-wise backpropagation").
                "rec_detach_input": True,
                # §5.6 guess: Eq. 11 sums over layers; each layer's term is the mean squared error.
                "rec_layer_reduction": "sum",
                # λ1 (visual), λ2 (text): not published (supplementary unavailable); 1.0 is a neutral start to sweep.
                # Note: with α's gradient-scale trick the CE/consistency gradients reach the adapters ×1/α, L_rec's
                # do not, so its pull on the shared down-projection is relatively weak at λ ~ 1.
                "lambda_rec_visual": 1.0,
                "lambda_rec_text": 1.0,
                # λ3 (image), λ4 (text): PromptSRC's IMAGE_LOSS_WEIGHT 10 / TEXT_LOSS_WEIGHT 25 (§5.1 guess), L1 with
                # mean reduction on L2-normalised features (§5.6).
                "lambda_con_image": 10.0,
                "lambda_con_text": 25.0,
                # §5.6 guess: text consistency over all class embeddings (PromptSRC) | "label": the batch's classes.
                "con_text_classes": "all",
            }
        )
        return cfg

    def __init__(self, backbone: Backbone, cfg: dict[str, Any], n_cls: int = 0) -> None:
        super().__init__(backbone, cfg, n_cls)
        m = cfg["method"]
        if m["reconstruct"] not in RECONSTRUCT:
            raise ConfigError(f"method.reconstruct={m['reconstruct']!r}; use one of {', '.join(RECONSTRUCT)}")
        if m["con_text_classes"] not in ("all", "label"):
            raise ConfigError(f"method.con_text_classes={m['con_text_classes']!r}; use all or label")
        towers = RECONSTRUCT[m["reconstruct"]]
        self.rec = (
            ReconstructionBranch(
                self.adapter, towers, m["rec_layers"], m["sharing"], m["rec_detach_input"], m["activation"]
            )
            if towers
            else None
        )

    def _weight(self, key: str, tower: str) -> float:
        """λ of a reconstruction term; 0 when that tower does not reconstruct."""
        return float(self.cfg["method"][key]) if self.rec is not None and tower in self.rec.towers else 0.0

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        m = self.cfg["method"]
        lam_rv, lam_rt = self._weight("lambda_rec_visual", "visual"), self._weight("lambda_rec_text", "text")
        lam_ci = float(m["lambda_con_image"]) if m["consistency"] else 0.0
        lam_ct = float(m["lambda_con_text"]) if m["consistency"] else 0.0
        taps_v: list[Tap] | None = [] if lam_rv else None
        taps_t: list[Tap] | None = [] if lam_rt else None

        image = self.encode_image_adapted(batch.images, taps_v)
        text = self.encode_text_adapted(taps_t)
        img_n, txt_n = normalize(image), normalize(text)
        logits = self.backbone.logit_scale() * img_n @ txt_n.t()
        terms = {"ce": F.cross_entropy(logits, batch.labels)}
        if lam_rv:
            terms["rec_visual"] = lam_rv * self.rec.loss(self.adapter, "visual", taps_v, m["rec_layer_reduction"])
        if lam_rt:
            terms["rec_text"] = lam_rt * self.rec.loss(self.adapter, "text", taps_t, m["rec_layer_reduction"])
        if lam_ci:
            with torch.no_grad():
                frozen_img = self.backbone.encode_image(batch.images)  # same augmented image (§5.7)
            terms["con_image"] = lam_ci * consistency_loss(image, frozen_img)
        if lam_ct:
            frozen_txt = self.frozen_text_features()
            if m["con_text_classes"] == "label":
                idx = batch.labels.unique()
                terms["con_text"] = lam_ct * consistency_loss(text[idx], frozen_txt[idx])
            else:
                terms["con_text"] = lam_ct * consistency_loss(text, frozen_txt)
        return terms
