"""Zero-shot CLIP and CoOp: prompt layout, parameter counts, gradients only where expected."""

from __future__ import annotations

import pytest
import torch

from bench.config import BASE_CONFIG, deep_merge
from bench.errors import ConfigError
from bench.model.method import Batch
from bench.registry import get_method


def build(name, backbone, protocol="base2novel", dataset="dtd", n_cls=3, **method):
    cls = get_method(name)
    cfg = deep_merge(BASE_CONFIG, cls.default_config(protocol, dataset))
    cfg["method"].update(method)
    m = cls(backbone, cfg, n_cls=n_cls)
    m.set_classnames(["golden retriever", "cat", "tabby_cat"][:n_cls], "a photo of a {}.")
    return m


def test_coop_parameter_counts_equal_the_paper(vitb16):
    assert build("coop", vitb16).num_trainable() == 4 * 512 == 2048  # B2N: "a photo of a"
    assert build("coop", vitb16, "domain_generalization").num_trainable() == 16 * 512
    assert build("coop", vitb16, "few_shot", csc=True, ctx_init="", n_cls=3).num_trainable() == 3 * 16 * 512


def test_coop_initialisation_reproduces_the_hand_written_prompt(tiny_backbone):
    coop, zs = build("coop", tiny_backbone), build("zeroshot", tiny_backbone)
    coop.eval(), zs.eval()
    assert torch.allclose(coop.text_features(), zs.text_features(), atol=1e-5)


@pytest.mark.parametrize("position", ["end", "middle", "front"])
def test_class_token_positions(tiny_backbone, position):
    m = build("coop", tiny_backbone, ctx_init="", n_ctx=4, class_token_position=position)
    p = m.prompt
    emb = p.embeddings()
    assert emb.shape == (3, 77, tiny_backbone.text_width)
    name = tiny_backbone.token_embedding(tiny_backbone.tokenize(["golden retriever."]))[0, 1:3]  # 2 name tokens
    start = {"end": 5, "middle": 3, "front": 1}[position]
    assert torch.allclose(emb[0, start : start + 2], name)
    ctx_at = {"end": [1, 2, 3, 4], "middle": [1, 2, 5, 6], "front": [3, 4, 5, 6]}[position]
    assert torch.allclose(emb[0, ctx_at], p.ctx)
    # EOT stays where the token ids say, so pooling reads the right token
    assert p.token_ids[0].argmax().item() == 1 + 4 + 2 + 1


def test_only_context_gets_gradients_and_backbone_is_untouched(tiny_backbone):
    m = build("coop", tiny_backbone)
    before = {k: v.clone() for k, v in tiny_backbone.state_dict().items()}
    opt = torch.optim.SGD(m.trainable_parameters(), lr=0.1)
    m.train()
    feats = torch.randn(4, tiny_backbone.embed_dim)
    loss = sum(m.loss(Batch(labels=torch.tensor([0, 1, 2, 0]), features=feats)).values())
    loss.backward()
    assert [n for n, p in m.named_parameters() if p.grad is not None] == ["prompt.ctx"]
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in tiny_backbone.state_dict().items())


def test_one_context_is_evaluated_on_other_classes(tiny_backbone):
    m = build("coop", tiny_backbone)
    m.eval()
    m.set_classnames(["a", "b", "c", "d", "e"])
    assert m(features=torch.randn(2, tiny_backbone.embed_dim)).shape == (2, 5)


def test_zeroshot_ensemble_averages_templates(tiny_backbone):
    m = build("zeroshot", tiny_backbone, ensemble=True)
    m.eval()
    f = m.text_features()
    assert f.shape == (3, tiny_backbone.embed_dim) and torch.allclose(f.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert m.num_trainable() == 0


@pytest.mark.parametrize("method,ensemble", [("zeroshot", "all"), ("tip_adapter", "imagenet")])
def test_imagenet_ensembles_exactly_the_seven_templates_other_datasets_add_their_own(tiny_backbone, method, ensemble):
    """CoOp's ZeroshotCLIP2 adds CUSTOM_TEMPLATES[dataset] except on ImageNet; Tip-Adapter's ImageNet uses the 7."""
    from bench.model.backbone import normalize
    from bench.model.templates import IMAGENET_TEMPLATES_SELECT

    seven = [
        "itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
        "a {} in a video game.", "art of the {}.", "a photo of the small {}.",
    ]  # fmt: skip
    assert seven == IMAGENET_TEMPLATES_SELECT
    m = build(method, tiny_backbone, dataset="imagenet", ensemble=ensemble)
    m.set_classnames(["cat", "dog"], "a photo of a {}.", "imagenet")
    assert m.templates() == seven
    if method == "zeroshot":
        m.set_classnames(["cat"], "{} texture.", "dtd")
        assert m.templates() == [*seven, "{} texture."]
        m.set_classnames(["cat"], "a photo of a {}.", "imagenet_sketch")  # CUSTOM_TEMPLATES['ImageNetSketch'] added
        assert m.templates() == [*seven, "a photo of a {}."]
        assert build(method, tiny_backbone, dataset="dtd").templates() == ["a photo of a {}."]
    m.set_classnames(["cat", "dog"], "a photo of a {}.", "imagenet")
    tok = tiny_backbone.tokenize
    expected = normalize(
        torch.stack(
            [normalize(tiny_backbone.encode_text(tok([t.format(c) for c in ["cat", "dog"]]))) for t in seven]
        ).mean(0)
    )
    assert torch.allclose(m.zero_shot_text_features(), expected, atol=1e-6)


def test_ensemble_takes_earlier_booleans_and_names_bad_values(tiny_backbone):
    from bench.methods.zeroshot import ensemble_choice

    assert [ensemble_choice(v) for v in (True, "False", "imagenet", "ALL")] == ["all", "none", "imagenet", "all"]
    with pytest.raises(ConfigError, match="method.ensemble='seven'"):
        build("zeroshot", tiny_backbone, ensemble="seven")
