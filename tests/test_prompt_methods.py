"""Exact formulas of the prompt learners added on the shared mechanics: CoCoOp's per-image shift, KgCoOp's penalty."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from method_helpers import CLASSNAMES, build, images

from bench.model.backbone import normalize
from bench.model.losses import consistency_loss
from bench.model.method import Batch
from bench.model.templates import OPENAI_IMAGENET_TEMPLATES


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


# -- PromptSRC -----------------------------------------------------------------------------------------------------------


def test_promptsrc_cross_dataset_size_and_gaussian_weights(vitb16):
    from method_helpers import config

    from bench.methods.promptsrc import PromptSRC, gpa_weights

    cfg = config("promptsrc", protocol="cross_dataset", dataset="imagenet")
    assert PromptSRC(vitb16, cfg).num_trainable() == 3 * 4 * 512 + 3 * 4 * 768  # 15,360
    w = gpa_weights(20, 15, 1)  # B2N: epochs 13-17 carry the weight, epoch 15 the most (PromptSRC's self.gauss)
    assert sum(w) == pytest.approx(1) and max(range(20), key=w.__getitem__) == 14
    assert [round(x, 3) for x in w[12:17]] == [0.054, 0.242, 0.399, 0.242, 0.054]


def test_promptsrc_loss_terms_are_the_codes(tiny_backbone):
    m = build("promptsrc", tiny_backbone)
    m.train()
    x = images(tiny_backbone)
    labels = torch.tensor([0, 2, 4])
    terms = m.loss(Batch(labels=labels, images=x))
    assert set(terms) == {"ce", "con_text", "con_image", "kl"}
    with torch.no_grad():
        image, text = m.encode_image(x), m.compute_text_features()
        frozen_image = tiny_backbone.encode_image(x)
        frozen_text = torch.stack(
            [tiny_backbone.encode_text(tiny_backbone.tokenize([t.format(c.replace("_", " ")) for c in CLASSNAMES]))
             for t in OPENAI_IMAGENET_TEMPLATES]
        ).mean(0)  # fmt: skip
        scale = tiny_backbone.logit_scale()
        logits = scale * normalize(image) @ normalize(text).t()
        frozen_logits = scale * normalize(frozen_image) @ normalize(frozen_text).t()
        p, q = frozen_logits.softmax(1), logits.softmax(1)
        kl = (p * (p.log() - q.log())).sum() / logits.numel()  # KL(frozen || adapted), summed / (B x C)
        torch.testing.assert_close(terms["kl"], kl, rtol=1e-4, atol=1e-6)
        l1_text = (normalize(text) - normalize(frozen_text)).abs().mean()
        torch.testing.assert_close(terms["con_text"], 25 * l1_text, rtol=1e-4, atol=1e-6)
        l1_image = (normalize(image) - normalize(frozen_image)).abs().mean()
        torch.testing.assert_close(terms["con_image"], 10 * l1_image, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(terms["ce"], F.cross_entropy(logits, labels), rtol=1e-4, atol=1e-6)


def test_promptsrc_evaluates_the_gaussian_average_of_its_epochs(tiny_backbone):
    from bench.methods.promptsrc import gpa_weights

    m = build("promptsrc", tiny_backbone, gpa_mean=2.0, gpa_std=1.0)
    m.cfg["train"]["epochs"] = 3
    snapshots = []
    for epoch in range(3):
        with torch.no_grad():
            for p in m.trainable_parameters():
                p.add_(torch.randn_like(p))
        snapshots.append([p.detach().clone() for p in m.trainable_parameters()])
        m.after_epoch(None, epoch)
    m.after_training(None)
    w = gpa_weights(3, 2.0, 1.0)
    for i, p in enumerate(m.trainable_parameters()):
        torch.testing.assert_close(p.detach(), sum(w[e] * snapshots[e][i] for e in range(3)))


# -- TCP -------------------------------------------------------------------------------------------------------------------


def test_class_tokens_replace_the_context_positions_at_one_block_only():
    from bench.model.deep_prompts import insert_at_layer_fn

    x = torch.randn(3, 7, 4)
    tokens = torch.randn(3, 2, 4)  # one pair of tokens per sequence (class)
    fn = insert_at_layer_fn(2, tokens, start=1)
    seen = []
    for layer in range(4):
        fn(layer, x, lambda t: seen.append(t) or t)
    assert all(torch.equal(seen[i], x) for i in (0, 1, 3))
    torch.testing.assert_close(seen[2][:, 1:3], tokens)
    assert torch.equal(seen[2][:, :1], x[:, :1]) and torch.equal(seen[2][:, 3:], x[:, 3:])


def test_tcp_tokens_come_from_each_classes_frozen_features_and_the_penalty_is_kgcoops(tiny_backbone):
    m = build("tcp", tiny_backbone)
    m.train()
    batch = Batch(labels=torch.tensor([0, 4]), features=torch.randn(2, tiny_backbone.embed_dim))
    terms = m.loss(batch)
    text, frozen = m.text_features(), m.frozen_text_features()
    torch.testing.assert_close(terms["tcp"], 8.0 * (1 - F.cosine_similarity(text, frozen, dim=-1).mean()))
    # the class-aware tokens matter: zeroing the net's output changes every class's features
    with torch.no_grad():
        m.meta_net.linear2.weight.zero_()
        m.meta_net.linear2.bias.zero_()
    assert not torch.allclose(m.text_features(), text)
    # novel classes get their own tokens through the same net: the prompts are rebuilt from their names
    m.set_classnames(["zebra", "kite"], "{} texture.", "dtd")
    assert m.text_features().shape == (2, tiny_backbone.embed_dim)
    text = tiny_backbone.tokenizer.decode(m.prompt.token_ids[0].tolist())
    assert text.startswith("<start_of_text>x x x x zebra texture .")  # DTD's suffix after 4 context tokens


# -- CoPrompt --------------------------------------------------------------------------------------------------------


def test_coprompt_consistency_uses_one_description_draw_and_the_second_view(tiny_backbone, tmp_path):
    import json

    from bench.errors import ConfigError

    path = tmp_path / "dtd_prompt.json"
    sentences = {c.replace("_", " "): [f"a {c} seen from afar.", f"a close view of a {c}."] for c in CLASSNAMES}
    path.write_text(json.dumps(sentences))
    m = build("coprompt", tiny_backbone, descriptions=str(path))
    m.train()
    x, x2 = images(tiny_backbone, seed=0), images(tiny_backbone, seed=1)
    batch = Batch(labels=torch.tensor([0, 1, 2]), images=x, images2=x2)
    torch.manual_seed(5)
    k = int(torch.randint(2, ()))
    torch.manual_seed(5)
    terms = m.loss(batch)
    with torch.no_grad():
        text, image = m.compute_text_features(), m.encode_image(x)
        target = normalize(tiny_backbone.encode_text(tiny_backbone.tokenize([s[k] for s in sentences.values()])))
        frozen_second = tiny_backbone.encode_image(x2)  # frozen CLIP sees the *other* view
    lam = m.cfg["method"]["consistency_weight"]
    torch.testing.assert_close(terms["con_text"], lam * (1 - F.cosine_similarity(text, target, dim=-1).mean()))
    torch.testing.assert_close(terms["con_image"], lam * (1 - F.cosine_similarity(image, frozen_second).mean()))
    # the adapters blend into the prompted features: 0.2 of the text adapter, 0.1 of the image adapter
    assert m.cfg["method"]["text_ratio"] == 0.2 and m.cfg["method"]["image_ratio"] == 0.1
    bad = build("coprompt", tiny_backbone, descriptions=str(tmp_path / "none.json"))
    with pytest.raises(ConfigError, match="ShuvenduRoy/CoPrompt"):
        bad.loss(batch)
