"""Parameter counts on ViT-B/16 and RMAdapter's options on the tiny backbone."""

from __future__ import annotations

import pytest
import torch
from method_helpers import build, images

import bench.cli.listing
from bench.errors import ConfigError
from bench.model.method import Batch

# The papers' arithmetic for ViT-B/16 (peers.md §3, §5.1, §6; rmadapter.md §1.10).
MMA_PARAMS = 674_560
REC_PARAMS = 354_816  # 2-layer r→r→d decoder with biases on 8 layers of both towers
EXPECTED = {
    "coop": 2_048,
    "maple": 3_555_072,
    "mma": MMA_PARAMS,
    "clip_adapter": 131_072,
    "rmadapter": MMA_PARAMS + REC_PARAMS,
    "tip_adapter": 0,
    "cocoop": 2_048 + (512 * 32 + 32) + (32 * 512 + 512),  # ctx + meta-net 512→32→512 (trainers/cocoop.py): 35,360
    "kgcoop": 2_048,  # only the context trains (trainers/kgcoop.py freezes everything without "ctx" in its name)
    "promptsrc": 9 * 4 * 512 + 9 * 4 * 768,  # depth 9 x 4 tokens in both towers (PromptSRC README: 46K): 46,080
    "tcp": 4 * 512 + (512 * 128 + 128) + (128 * 2048 + 2048),  # ctx + 512→128→4·512 net (trainers/tcp.py): 331,904
    # DTD (constants.py: depth 12, 2 tokens): MaPLe's prompts + 11 deep ones + 2 adapters 512→128→512 without bias
    "coprompt": 2 * 512 + (512 * 768 + 768) + 11 * (2 * 512 + 512 * 768 + 768) + 2 * 2 * 512 * 128,  # 5,002,240
}


@pytest.fixture
def tiny(tiny_backbone):
    return tiny_backbone  # conftest's session-wide bench-tiny (4 blocks, random weights)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_vit_b16_parameter_counts(vitb16, name):
    assert build(name, vitb16, n_cls=5, tiny=False).num_trainable() == EXPECTED[name]


@pytest.mark.parametrize(
    "options,added",
    [
        ({"reconstruct": "none"}, 0),
        ({"reconstruct": "text"}, 8 * (32 * 32 + 32 + 32 * 512 + 512)),
        ({"reconstruct": "visual"}, 8 * (32 * 32 + 32 + 32 * 768 + 768)),
        ({"rec_layers": 1}, 8 * (32 * 768 + 768 + 32 * 512 + 512)),
        ({"rec_layers": 3}, REC_PARAMS + 16 * (32 * 32 + 32)),
        ({"sharing": "up"}, 8 * (768 * 32 + 32 + 512 * 32 + 32 + 2 * (32 * 32 + 32))),
        ({"sharing": "independent"}, REC_PARAMS + 8 * (768 * 32 + 32 + 512 * 32 + 32)),
        ({"shared_layer": False}, REC_PARAMS - 8 * (32 * 32 + 32)),  # Eq. 9: no cross-modal r×r layer
    ],
)
def test_rmadapter_ablation_sizes(vitb16, options, added):
    assert build("rmadapter", vitb16, n_cls=5, tiny=False, **options).num_trainable() == MMA_PARAMS + added


def test_maple_cross_dataset_depth(vitb16):
    from method_helpers import config

    from bench.registry import get_method

    cfg = config("maple", protocol="cross_dataset", dataset="imagenet")
    assert cfg["method"]["prompt_depth"] == 3 and cfg["train"]["lr"] == 0.0026 and cfg["train"]["epochs"] == 2
    assert get_method("maple")(vitb16, cfg).num_trainable() == 3 * 395_008


def test_list_methods_counts(vitb16, monkeypatch):
    monkeypatch.setattr(bench.cli.listing, "load_backbone", lambda arch, pretrained: vitb16)
    rows = {r[0]: r[1] for r in bench.cli.listing.count_parameters("ViT-B-16", [*EXPECTED, "tip_adapter_f"])}
    assert {k: int(v.replace(",", "")) for k, v in rows.items() if k != "tip_adapter_f"} == EXPECTED
    assert "N·K" in rows["tip_adapter_f"]


def test_adapter_layers_outside_the_backbone_are_a_config_error(tiny):
    with pytest.raises(ConfigError, match="adapter_start"):
        build("mma", tiny, tiny=False)
    with pytest.raises(ConfigError, match="prompt_depth"):
        build("maple", tiny, tiny=False)


# The training contract of every method (gradients, checkpoints, class lists) is tests/test_method_contract.py.


def _batch(method, backbone) -> Batch:
    labels = torch.tensor([0, 1, 4])
    if method.frozen_image_encoder:
        return Batch(labels=labels, features=torch.randn(3, backbone.embed_dim))
    return Batch(labels=labels, images=images(backbone))


# -- RMAdapter -----------------------------------------------------------------------------------------------------------

ALL_TERMS = {"ce", "rec_visual", "rec_text", "con_image", "con_text"}


def test_rmadapter_predictions_do_not_depend_on_the_reconstruction_branch(tiny):
    m = build("rmadapter", tiny)
    x = images(tiny)
    m.eval()
    with torch.no_grad():
        full = m(x)
        m.rec = None
        without = m(x)
        mma = build("mma", tiny)
        mma.load_state_dict(m.state_dict())
        mma.eval()
        assert torch.equal(full, without) and torch.equal(full, mma(x))


def test_rmadapter_loss_terms_present_and_positive(tiny):
    m = build("rmadapter", tiny)
    m.train()
    terms = m.loss(_batch(m, tiny))
    assert set(terms) == ALL_TERMS
    assert all(torch.isfinite(v) and v > 0 for v in terms.values())


@pytest.mark.parametrize(
    "options,absent",
    [
        ({"lambda_rec_visual": 0.0}, {"rec_visual"}),
        ({"lambda_rec_text": 0.0}, {"rec_text"}),
        ({"lambda_con_image": 0.0}, {"con_image"}),
        ({"lambda_con_text": 0.0}, {"con_text"}),
        ({"consistency": False}, {"con_image", "con_text"}),
        ({"reconstruct": "text"}, {"rec_visual"}),
        ({"reconstruct": "visual"}, {"rec_text"}),
        ({"reconstruct": "none"}, {"rec_visual", "rec_text"}),
        ({"reconstruct": "none", "consistency": False}, {"rec_visual", "rec_text", "con_image", "con_text"}),
    ],
)
def test_rmadapter_each_weight_switches_its_term_off(tiny, monkeypatch, options, absent):
    m = build("rmadapter", tiny, **options)
    calls = {"image": 0, "rec": 0}
    encode_image, rec_loss = tiny.encode_image_from, type(m.rec).loss if m.rec is not None else None

    def count_image(*a, **k):
        calls["image"] += 1
        return encode_image(*a, **k)

    monkeypatch.setattr(tiny, "encode_image_from", count_image)
    if rec_loss is not None:

        def count_rec(self, *a, **k):
            calls["rec"] += 1
            return rec_loss(self, *a, **k)

        monkeypatch.setattr(type(m.rec), "loss", count_rec)
    m.train()
    terms = m.loss(_batch(m, tiny))
    assert set(terms) == ALL_TERMS - absent
    # switched-off terms are not computed: no frozen image pass, no decoder pass
    assert calls["image"] == (1 if "con_image" in absent else 2)
    assert calls["rec"] == len({"rec_visual", "rec_text"} - absent)


def test_rmadapter_without_its_additions_is_mma(tiny):
    rm = build("rmadapter", tiny, reconstruct="none", consistency=False)
    mma = build("mma", tiny)
    assert rm.state_dict().keys() == mma.state_dict().keys()
    mma.load_state_dict(rm.state_dict())
    batch = _batch(rm, tiny)
    rm.train(), mma.train()
    torch.testing.assert_close(rm.loss(batch)["ce"], mma.loss(batch)["ce"])


def test_rmadapter_weights_scale_their_terms(tiny):
    batch = _batch(build("rmadapter", tiny), tiny)
    a = build("rmadapter", tiny).loss(batch)
    b = build("rmadapter", tiny, lambda_rec_visual=2.0, lambda_con_text=50.0).loss(batch)
    torch.testing.assert_close(b["rec_visual"], 2 * a["rec_visual"])
    torch.testing.assert_close(b["con_text"], 2 * a["con_text"])
    torch.testing.assert_close(b["ce"], a["ce"])


def test_rmadapter_rejects_unknown_options(tiny):
    with pytest.raises(ConfigError, match="reconstruct"):
        build("rmadapter", tiny, reconstruct="all")
    with pytest.raises(ConfigError, match="sharing"):
        build("rmadapter", tiny, sharing="both")


# -- defaults from the papers ------------------------------------------------------------------------------------------


def test_default_configs():
    from method_helpers import config

    mma = config("mma", "base2novel", "imagenet")
    assert mma["train"]["batch_size"] == 128 and mma["train"]["lr"] == 0.0015 and mma["train"]["warmup_epochs"] == 0
    assert config("mma", "base2novel", "dtd")["train"]["batch_size"] == 16
    rm = config("rmadapter", "base2novel", "dtd")
    assert rm["train"] == config("mma", "base2novel", "dtd")["train"]
    assert (rm["method"]["lambda_con_image"], rm["method"]["lambda_con_text"]) == (10.0, 25.0)
    maple = config("maple")
    assert (maple["method"]["prompt_depth"], maple["train"]["lr"], maple["train"]["batch_size"]) == (9, 0.0035, 4)
    tipf = config("tip_adapter_f")
    assert tipf["train"]["optimizer"] == "adamw" and tipf["train"]["scheduler_step"] == "iter"
    assert tipf["train"]["rrc_scale_min"] == 0.5 and tipf["train"]["eps"] == 1e-4
    assert config("clip_adapter")["method"]["ratio"] == 0.2
