"""Exact formulas of the prompt learners added on the shared mechanics: CoCoOp's per-image shift, KgCoOp's penalty."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from method_helpers import CLASSNAMES, build

from bench.model.backbone import normalize
from bench.model.losses import consistency_loss
from bench.model.method import Batch


def test_context_shift_adds_one_vector_to_every_context_token(tiny_backbone):
    coop = build("coop", tiny_backbone)
    shift = torch.randn(2, tiny_backbone.text_width)
    emb = coop.prompt.embeddings(shift)
    plain = coop.prompt.embeddings()
    assert emb.shape == (2, *plain.shape)
    n = coop.prompt.n_ctx
    for b in range(2):
        torch.testing.assert_close(emb[b, :, 1 : 1 + n], plain[:, 1 : 1 + n] + shift[b])
        torch.testing.assert_close(emb[b, :, :1], plain[:, :1])
        torch.testing.assert_close(emb[b, :, 1 + n :], plain[:, 1 + n :])


def test_cocoop_logits_are_coop_logits_with_each_images_shifted_context(tiny_backbone):
    m = build("cocoop", tiny_backbone)
    m.eval()
    f = torch.randn(3, tiny_backbone.embed_dim)
    with torch.no_grad():
        logits = m(features=f)
        for i in range(3):
            shift = m.meta_net(normalize(f[i : i + 1]))[0]
            ctx = m.prompt.ctx.data.clone()
            m.prompt.ctx.data += shift  # CoOp with this image's context
            text = m.backbone.encode_text(m.prompt.token_ids, embeddings=m.prompt.embeddings())
            m.prompt.ctx.data = ctx
            expected = m.backbone.logit_scale() * normalize(f[i : i + 1]) @ normalize(text).t()
            torch.testing.assert_close(logits[i : i + 1], expected, rtol=1e-4, atol=1e-4)


def test_cocoop_meta_net_gets_gradients_through_the_text_encoder(tiny_backbone):
    m = build("cocoop", tiny_backbone)
    m.train()
    loss = sum(m.loss(Batch(labels=torch.tensor([0, 3]), features=torch.randn(2, tiny_backbone.embed_dim))).values())
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.meta_net.parameters())


def test_kgcoop_penalty_is_zero_at_the_hand_crafted_prompt_and_weighted(tiny_backbone):
    # context "a photo of a" + the template "a photo of a {}.": the learned prompt IS the frozen one at init
    m = build("kgcoop", tiny_backbone, kg_template="a photo of a {}.")
    m.train()
    batch = Batch(labels=torch.tensor([0, 1]), features=torch.randn(2, tiny_backbone.embed_dim))
    terms = m.loss(batch)
    assert set(terms) == {"ce", "kg"} and abs(terms["kg"].item()) < 1e-5
    with torch.no_grad():
        m.prompt.ctx.add_(0.05 * torch.randn_like(m.prompt.ctx))
    text, frozen = m.text_features(), m.frozen_text_features()
    cos = F.cosine_similarity(text, frozen, dim=-1).mean()
    torch.testing.assert_close(m.loss(batch)["kg"], 8.0 * (1 - cos))
    # the code's 1 - cos is half the paper's squared L2 distance of unit vectors
    torch.testing.assert_close(consistency_loss(text, frozen, "cosine"), 0.5 * consistency_loss(text, frozen, "l2"))
    assert len(frozen) == len(CLASSNAMES)
