"""Learnable text prompts: context vectors inserted into the token embeddings of class prompts (CoOp, MaPLe).

The class-dependent parts (token ids, the SOS embedding and everything after the context) are rebuilt by
:meth:`PromptedText.set_classnames`, so one trained context is evaluated on base, novel or another dataset's classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from bench.model.backbone import Backbone
from bench.model.method import init_from_text


class PromptedText(nn.Module):
    """``[SOS][ctx_1..ctx_n][rest of prefix][CLASS][.][EOS]`` with learnable ``ctx`` (CoOp's PromptLearner).

    Args:
        backbone: the frozen CLIP.
        n_ctx: number of learnable context tokens.
        init: prompt prefix whose first ``n_ctx`` word embeddings initialise the context (e.g. "a photo of a");
            ``None`` = random init (normal, std 0.02) with placeholder words.
        position: where the class name goes relative to the context: ``end`` | ``middle`` | ``front``.
        class_specific: one context per class (CoOp's CSC); then the class list cannot change size.
        n_cls: number of classes, for ``class_specific``.
        suffix: what follows the context, with ``{}`` for the class name (TCP: "{}, a type of pet.").
    """

    def __init__(
        self,
        backbone: Backbone,
        n_ctx: int,
        init: str | None = None,
        position: str = "end",
        class_specific: bool = False,
        n_cls: int = 0,
        suffix: str = "{}.",
    ) -> None:
        super().__init__()
        if position not in ("end", "middle", "front"):
            raise ValueError(f"class token position must be end, middle or front, not {position!r}")
        self.backbone = [backbone]  # a list: not a submodule, so it is never saved with the prompt
        self.n_ctx, self.position, self.class_specific, self.suffix_template = n_ctx, position, class_specific, suffix
        if init:
            words = init.replace("_", " ").split()
            if n_ctx > len(words):
                raise ValueError(f"n_ctx={n_ctx} exceeds the {len(words)} words of the initialisation {init!r}")
            if position != "end" and n_ctx != len(words):
                raise ValueError("middle/front class positions need the whole prefix to be learnable")
            self.prefix_text = " ".join(words)
            ctx = init_from_text(backbone, self.prefix_text, n_ctx)
        else:
            self.prefix_text = " ".join(["X"] * n_ctx)
            ctx = torch.empty(n_ctx, backbone.text_width)
            nn.init.normal_(ctx, std=0.02)
        if class_specific:
            ctx = ctx.unsqueeze(0).repeat(n_cls, 1, 1)
        self.ctx = nn.Parameter(ctx)
        self.register_buffer("token_ids", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("sos", torch.zeros(0), persistent=False)
        self.register_buffer("suffix", torch.zeros(0), persistent=False)
        self.name_lens: list[int] = []

    @torch.no_grad()
    def set_classnames(self, classnames: Sequence[str], suffix: str | None = None) -> None:
        """Rebuild the class-dependent tokens; ``suffix`` replaces what follows the context (TCP: per dataset)."""
        if suffix is not None:
            self.suffix_template = suffix
        if self.class_specific and len(classnames) != self.ctx.shape[0]:
            raise ValueError("class-specific context cannot be evaluated on a different set of classes")
        backbone = self.backbone[0]
        names = [c.replace("_", " ") for c in classnames]
        ids = backbone.tokenize([f"{self.prefix_text} {self.suffix_template.format(c)}" for c in names])
        emb = backbone.token_embedding(ids)
        self.token_ids, self.sos, self.suffix = ids, emb[:, :1].clone(), emb[:, 1 + self.n_ctx :].clone()
        self.name_lens = [len(backbone.tokenizer.encode(c)) for c in names] if self.position != "end" else []

    def embeddings(self, shift: Tensor | None = None) -> Tensor:
        """Prompt token embeddings ``(n_cls, length, width)``.

        ``shift`` (B, width): a per-image offset added to every context vector (CoCoOp's meta-net output); the
        result is then ``(B, n_cls, length, width)``, one prompt set per image.
        """
        n_cls = self.token_ids.shape[0]
        if shift is not None:
            if self.class_specific or self.position != "end":
                raise ValueError("a per-image context shift needs a shared context with the class name at the end")
            ctx = self.ctx.to(self.suffix.dtype).unsqueeze(0) + shift.to(self.suffix.dtype).unsqueeze(1)
            b = ctx.shape[0]
            return torch.cat(
                [self.sos.expand(b, -1, -1, -1), ctx.unsqueeze(1).expand(-1, n_cls, -1, -1),
                 self.suffix.expand(b, -1, -1, -1)], dim=2,
            )  # fmt: skip
        ctx = self.ctx if self.class_specific else self.ctx.unsqueeze(0).expand(n_cls, -1, -1)
        ctx = ctx.to(self.suffix.dtype)
        if self.position == "end":
            return torch.cat([self.sos, ctx, self.suffix], dim=1)
        rows = []
        half = self.n_ctx // 2
        for i, n in enumerate(self.name_lens):
            name, rest = self.suffix[i : i + 1, :n], self.suffix[i : i + 1, n:]
            c = ctx[i : i + 1]
            parts = [c[:, :half], name, c[:, half:], rest] if self.position == "middle" else [name, c, rest]
            rows.append(torch.cat([self.sos[i : i + 1], *parts], dim=1))
        return torch.cat(rows, dim=0)
