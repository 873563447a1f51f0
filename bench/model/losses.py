"""Loss terms that several methods share, so that each is written once."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from bench.model.backbone import normalize


def consistency_loss(adapted: Tensor, frozen: Tensor, kind: str = "l1") -> Tensor:
    """Distance between adapted features and frozen CLIP's features of the same inputs, both L2-normalised.

    ``l1``: mean absolute difference (PromptSRC's self-regularisation, RMAdapter's Eq. 17); ``l2``: squared Euclidean
    distance per row, averaged over rows (KgCoOp's paper); ``cosine``: 1 − the mean cosine similarity of the rows
    (KgCoOp's and TCP's code; equals half of ``l2`` for unit vectors).
    """
    a, f = normalize(adapted), normalize(frozen)
    if kind == "l1":
        return F.l1_loss(a, f)
    if kind == "l2":
        return ((a - f) ** 2).sum(-1).mean()
    if kind == "cosine":
        return 1.0 - (a * f).sum(-1).mean()
    raise ValueError(f"consistency loss kind {kind!r}: use l1, l2 or cosine")
