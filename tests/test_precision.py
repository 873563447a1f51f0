"""``train.precision``: what each value does on CPU and CUDA (checked on the CPU), and the official fp16 mode run for real
on the CPU: CLIP converted as OpenAI's ``convert_weights``, learned tensors in half, updated in half, no loss scaling."""

from __future__ import annotations

import pytest
import torch
from method_helpers import CLASSNAMES, config
from open_clip.transformer import LayerNormFp32

from bench.model.backbone import load_backbone
from bench.model.method import Batch
from bench.model.trainer import build_optimizer, cast_learned
from bench.precision import Precision
from bench.registry import get_method

F16, BF16, F32 = torch.float16, torch.bfloat16, torch.float32


@pytest.mark.parametrize(
    "name,device,autocast,weights,scaler",
    [
        ("fp32", "cuda", None, F32, False),
        ("amp", "cuda", F16, F32, True),  # fp16 autocast over float32 weights needs loss scaling
        ("amp", "cpu", None, F32, False),  # CPU float16 is slow: amp means float32 there
        ("bf16", "cuda", BF16, F32, False),
        ("bf16", "cpu", BF16, F32, False),
        ("fp16", "cuda", F16, F16, False),  # the official PREC fp16 has no GradScaler
        ("fp16", "cpu", F16, F16, False),
    ],
)
def test_what_each_precision_does_on_each_device(name, device, autocast, weights, scaler):
    p = Precision(name, device)
    assert (p.autocast_dtype, p.weights_dtype, p.loss_scaling) == (autocast, weights, scaler)


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="use one of amp, bf16, fp16, fp32"):
        Precision("fp8", "cuda")


def test_cpu_bf16_autocast_runs_matmuls_in_bf16():
    with Precision("bf16", "cpu").autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == BF16
    with Precision("amp", "cpu").autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == F32


@pytest.fixture(scope="module")
def half_backbone():
    return load_backbone("bench-tiny", "none").convert_to_half()


def test_half_backbone_is_converted_as_openais_convert_weights(tiny_backbone, half_backbone):
    m = half_backbone.model
    dtypes = {name: p.dtype for name, p in m.named_parameters()}
    assert dtypes["visual.conv1.weight"] == F16 and dtypes["text_projection"] == F16 and dtypes["visual.proj"] == F16
    assert dtypes["transformer.resblocks.0.attn.in_proj_weight"] == F16
    assert dtypes["transformer.resblocks.0.mlp.c_fc.weight"] == F16
    # kept in float32, as CLIP's convert_weights leaves them
    for name in ("token_embedding.weight", "positional_embedding", "visual.class_embedding", "logit_scale",
                 "ln_final.weight", "visual.ln_pre.weight", "transformer.resblocks.0.ln_1.weight"):  # fmt: skip
        assert dtypes[name] == F32, name
    assert isinstance(m.ln_final, LayerNormFp32)  # CLIP's LayerNorm: computes in float32, returns half
    assert half_backbone.dtype == F16 and half_backbone.fingerprint != tiny_backbone.fingerprint
    x = torch.randn(2, 3, half_backbone.image_size, half_backbone.image_size)
    assert half_backbone.encode_image(x).dtype == F16  # no autocast needed: inputs are cast to the weights' dtype
    assert half_backbone.encode_text(half_backbone.tokenize(["a photo of a cat."])).dtype == F16
    torch.testing.assert_close(
        half_backbone.encode_image(x).float(), tiny_backbone.encode_image(x), atol=0.05, rtol=0.05
    )


@pytest.mark.parametrize("name", ["coop", "tcp", "clip_adapter", "maple", "mma"])
def test_fp16_step_keeps_every_learned_tensor_half_and_updates_it(half_backbone, name):
    cfg = config(name, **get_method(name).tiny_options(half_backbone.depth))
    cfg["train"]["precision"] = "fp16"
    torch.manual_seed(0)
    method = get_method(name)(half_backbone, cfg, n_cls=len(CLASSNAMES))
    method.set_classnames(CLASSNAMES)
    cast_learned(method, F16)
    params = method.trainable_parameters()
    dtypes = {n: p.dtype for n, p in method.named_parameters() if p.requires_grad}
    kept = {n for n in dtypes if n.startswith(method.float32_learned)} if method.float32_learned else set()
    assert params and {dtypes[n] for n in dtypes if n not in kept} == {F16}
    assert {dtypes[n] for n in kept} <= {F32}  # what the official code never casts (MaPLe's deep prompts)
    assert {p.dtype for p in half_backbone.parameters()} == {F16, F32}  # the backbone is never cast further
    before = [p.detach().clone() for p in params]
    opt = build_optimizer(params, {**cfg["train"], "lr": 0.5})
    method.train()
    g = torch.Generator().manual_seed(0)
    if method.frozen_image_encoder:
        batch = Batch(labels=torch.tensor([0, 1]), features=torch.randn(2, half_backbone.embed_dim, generator=g))
    else:
        size = half_backbone.image_size
        batch = Batch(labels=torch.tensor([0, 1]), images=torch.randn(2, 3, size, size, generator=g))
    with Precision("fp16", "cpu").autocast():
        loss = sum(method.loss(batch).values())
    assert torch.isfinite(loss)
    loss.backward()
    opt.step()
    # the optimiser updated the half tensors in place (no master copy)
    assert {n: p.dtype for n, p in method.named_parameters() if p.requires_grad} == dtypes
    assert any(not torch.equal(a, p) for a, p in zip(before, params))


def test_fp16_keeps_maples_deep_prompts_float32_as_the_official_code_does(half_backbone):
    """trainers/maple.py: ctx (from the half token embedding) and proj (.half()) are half under PREC fp16; the compound
    prompts and their projections are made in float32 after convert_weights and never cast."""
    cfg = config("maple", **get_method("maple").tiny_options(half_backbone.depth))
    cfg["train"]["precision"] = "fp16"
    method = get_method("maple")(half_backbone, cfg, n_cls=len(CLASSNAMES))
    assert len(method.deep_text) > 0 and len(method.deep_proj) > 0
    cast_learned(method, F16)
    assert method.prompt.ctx.dtype == F16 and method.proj.weight.dtype == F16
    assert {p.dtype for p in [*method.deep_text, *method.deep_proj.parameters()]} == {F32}
    method.set_classnames(CLASSNAMES)
    size = half_backbone.image_size
    with Precision("fp16", "cpu").autocast():
        logits = method(images=torch.randn(2, 3, size, size))
    assert logits.shape == (2, len(CLASSNAMES)) and torch.isfinite(logits).all()


def test_fp16_updates_round_as_the_official_half_parameters_do():
    """The official fp16 mode's known effect: an update below half a unit in the last place of a half weight is lost,
    where amp's float32 master weights keep it."""
    half = torch.nn.Parameter(torch.ones(4, dtype=F16))
    full = torch.nn.Parameter(torch.ones(4))
    for p in (half, full):
        opt = torch.optim.SGD([p], lr=1e-4)
        p.grad = torch.ones_like(p)
        opt.step()
    assert torch.equal(half, torch.ones(4, dtype=F16)) and torch.all(full < 1)


def test_cast_learned_leaves_the_backbone_and_float32_runs_alone(tiny_backbone):
    method = get_method("coop")(tiny_backbone, config("coop"), n_cls=len(CLASSNAMES))
    cast_learned(method, F32)
    assert method.prompt.ctx.dtype == F32
    cast_learned(method, F16)
    assert method.prompt.ctx.dtype == F16
    assert {p.dtype for p in tiny_backbone.parameters()} == {F32}


@pytest.mark.parametrize(
    "name,precision,passes,device,expected",
    [
        ("coop", "amp", 0, "cuda", ["precision amp (official: fp16 on GPU)"]),
        ("coop", "fp16", 0, "cuda", []),
        ("coop", "fp16", 10, "cuda", ["10 cached augmented passes cycled (official: a fresh one every epoch)"]),
        ("kgcoop", "fp16", 0, "cpu", ["precision fp16 on cpu, float16 (official: fp16 on GPU)"]),
        ("mma", "amp", 0, "cuda", []),
        ("mma", "amp", 0, "cpu", ["precision amp on cpu, float32 (official: amp on GPU)"]),
        ("maple", "fp16", 10, "cuda", []),  # a deep method decodes fresh images every epoch anyway
        ("rmadapter", "bf16", 0, "cuda", []),  # no official code to depart from
        ("clip_adapter", "fp32", 0, "cuda", []),
    ],
)
def test_records_name_their_departures_from_the_official_settings(name, precision, passes, device, expected):
    cfg = config(name)
    cfg["train"].update(precision=precision, feature_passes=passes, augment="rrc_flip")
    assert get_method(name).departures(cfg, device) == expected


@pytest.mark.e2e
def test_an_fp16_run_end_to_end_on_the_cpu(tmp_path):
    from coop_fixture import make_coop_data
    from typer.testing import CliRunner

    from bench.cli import app
    from bench.sweep.record import Record

    data = make_coop_data(tmp_path / "data", names=["dtd"])
    args = ["run", "--data-root", data, "--results", tmp_path / "res", "--backbone", "bench-tiny", "--pretrained",
            "none", "--seeds", "1", "--shots", "2", "--method", "coop", "--protocol", "base2novel", "--datasets", "dtd",
            "--cfg-options",
            "train.epochs=2", "train.precision=fp16", "train.augment=rrc_flip"]  # fmt: skip
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    recs = [Record.load(p) for p in (tmp_path / "res" / "records").rglob("*.json")]
    assert {r.subset for r in recs} == {"base", "novel"} and all(r.train_steps > 0 for r in recs)
    assert recs[0].departures == ["precision fp16 on cpu, float16 (official: fp16 on GPU)"]
    (ckpt,) = (tmp_path / "res" / "checkpoints").rglob("*.pt")
    state = torch.load(ckpt, weights_only=True)["method"]["state"]
    assert state["prompt.ctx"].dtype == F16  # learned and saved in half, as the official fp16 runs
