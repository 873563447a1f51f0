"""The backbone wrapper: exact equality with open_clip, the QuickGELU trap, and clear errors for missing weights."""

from __future__ import annotations

import open_clip
import pytest
import torch
from open_clip.transformer import QuickGELU

from bench.errors import BenchError, ConfigError
from bench.model import backbone as bb


def test_block_level_encoders_equal_open_clip(tiny_backbone):
    x = torch.randn(3, 3, 32, 32)
    ids = tiny_backbone.tokenize(["a photo of a cat.", "dog", "a b c d e"])
    assert torch.allclose(tiny_backbone.encode_image(x), tiny_backbone.model.encode_image(x), atol=1e-6)
    assert torch.allclose(tiny_backbone.encode_text(ids), tiny_backbone.model.encode_text(ids), atol=1e-6)


def test_block_fn_sees_every_block_and_extra_tokens_are_appended(tiny_backbone):
    seen = []

    def hook(layer, x, block):
        seen.append((layer, x.shape[1]))
        return block(x)

    tiny_backbone.encode_image(torch.randn(2, 3, 32, 32), extra_tokens=torch.zeros(2, 64), block_fn=hook)
    assert seen == [(i, 1 + 16 + 2) for i in range(4)]  # CLS + 4x4 patches + 2 prompts


@pytest.mark.parametrize("k", [0, 1, 3, 4])
def test_image_tower_split_at_any_block_equals_the_whole(tiny_backbone, k):
    """``image_tokens(upto=k)`` then ``encode_image_from(k)``: the same features, ``block_fn`` sees blocks k.. only."""
    x = torch.randn(2, 3, 32, 32)
    seen = []

    def hook(layer, t, block):
        seen.append(layer)
        return block(t)

    split = tiny_backbone.encode_image_from(tiny_backbone.image_tokens(x, upto=k), k, block_fn=hook)
    torch.testing.assert_close(split, tiny_backbone.encode_image(x), rtol=0, atol=1e-6)
    assert seen == list(range(k, 4))


def test_backbone_is_frozen(tiny_backbone):
    assert not any(p.requires_grad for p in tiny_backbone.parameters())
    tiny_backbone.train()
    assert not tiny_backbone.training


def test_openai_tag_needs_quick_gelu():
    # open_clip's ViT-B-16 config uses GELU and only warns with the openai tag: the loader must follow the tag.
    assert bb.quick_gelu_for("ViT-B-16", "openai") is True
    assert bb.quick_gelu_for("ViT-B-16", "laion2b_s34b_b88k") is False
    assert bb.quick_gelu_for("ViT-B-16-quickgelu", "none") is True


def test_loader_builds_quick_gelu_model_for_a_quick_gelu_tag(monkeypatch, tmp_path):
    """The real create path (tag → download → load) with a local file standing in for the download."""
    reference = open_clip.create_model("bench-tiny", pretrained=None, force_quick_gelu=True)
    ckpt = tmp_path / "weights.pt"
    torch.save(reference.state_dict(), ckpt)
    cfg = {"url": "https://example.invalid/w.pt", "quick_gelu": True}
    monkeypatch.setattr(open_clip, "get_pretrained_cfg", lambda arch, tag: cfg if tag == "fake" else {})
    monkeypatch.setattr(open_clip.factory, "get_pretrained_cfg", lambda arch, tag: cfg if tag == "fake" else {})
    monkeypatch.setattr(open_clip.factory, "download_pretrained", lambda c, cache_dir=None: str(ckpt))
    model = bb.create_model("bench-tiny", "fake")
    acts = [m for m in model.modules() if isinstance(m, QuickGELU)]
    assert len(acts) == 8  # one per block, both towers
    x = torch.randn(1, 3, 32, 32)
    assert torch.allclose(model.encode_image(x), reference.encode_image(x))


def test_missing_weights_give_one_clear_error(monkeypatch):
    def offline(cfg, cache_dir=None):
        raise OSError("network is unreachable")

    monkeypatch.setattr(open_clip.factory, "download_pretrained", offline)
    with pytest.raises(BenchError) as e:
        bb.create_model("ViT-B-16", "openai", cache_dir="/nonexistent/cache")
    msg = str(e.value)
    assert "ViT-B-16/openai" in msg and "/nonexistent/cache" in msg and "--pretrained PATH" in msg


def test_unknown_backbone_and_tag():
    with pytest.raises(ConfigError, match="unknown backbone"):
        bb.create_model("ViT-Z-99", "none")
    with pytest.raises(ConfigError, match="no pretrained tag"):
        bb.create_model("ViT-B-16", "nonsense_tag")


def test_text_is_cut_after_the_last_end_of_text_token_exactly(vitb16):
    ids = vitb16.tokenize(["a photo of a cat.", "a photo of a much longer class name, a type of pet."])
    assert vitb16._text_length(ids) == int(ids.argmax(-1).max()) + 1 < 77
    assert torch.allclose(vitb16.encode_text(ids), vitb16.model.encode_text(ids), atol=1e-5)
