"""The toy world: deterministic generator, a pretraining step that learns, the shipped checkpoint, the datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.datasets.toy import TOY_SUITE, checkpoint_path, ensure_toy_data, load_toy_state_dict
from bench.datasets.toy import generator as gen
from bench.datasets.toy.data import READERS, SPEC_BY_NAME, SPECS, ToySpec, write_dataset

# Measured with the shipped checkpoint (datasets/toy/README.md): zero-shot all-class accuracy on toy_colors.
TOY_COLORS_ZERO_SHOT = 35.8  # all 12 classes, under the tungsten camera
MARGIN = 8.0


def test_generator_is_deterministic_per_seed() -> None:
    a = [gen.sample_pair(np.random.default_rng(5)) for _ in range(2)]
    b = gen.sample_pair(np.random.default_rng(5))
    c = gen.sample_pair(np.random.default_rng(6))
    assert np.array_equal(np.asarray(a[0][0]), np.asarray(b[0])) and a[0][1] == b[1]
    assert not np.array_equal(np.asarray(b[0]), np.asarray(c[0]))
    assert b[0].size == (gen.IMAGE_SIZE, gen.IMAGE_SIZE)


@pytest.mark.parametrize("style", gen.STYLES)
def test_every_style_renders(style: str) -> None:
    rng = np.random.default_rng(0)
    img = gen.render(rng, gen.sample_scene(rng, {style: 1.0}, distractors=1))
    assert img.mode == "RGB" and np.asarray(img).std() > 5


def test_group_scenes_are_hard_negatives() -> None:
    """A group shares what is easy to see (colour, scene, style) and differs in shape."""
    group = gen.group_scenes(np.random.default_rng(3), 6)
    assert len({(s.colour, s.scene, s.style) for s in group}) == 1
    assert len({s.shape for s in group}) == 6


def test_clear_scenes_and_attribute_labels() -> None:
    """The curriculum's clear photos are what they claim; labels index :data:`ATTRIBUTES` in order."""
    rng = np.random.default_rng(0)
    scenes = [gen.sample_clear_scene(rng) for _ in range(40)]
    assert all(s.style == "photo" and s.count <= 2 and s.size != "small" and s.clutter <= 0.1 for s in scenes)
    assert len({s.shape for s in scenes}) > 6  # only the nuisance is reduced, not the content
    for s in scenes[:5]:
        labels = gen.attribute_labels(s)
        assert [vals[i] for vals, i in zip(gen.ATTRIBUTES.values(), labels, strict=True)] == [
            getattr(s, name) for name in gen.ATTRIBUTES
        ]


def test_pair_stream_gives_the_same_batches_whatever_the_workers() -> None:
    from bench.datasets.toy.pretrain import PairStream

    def batches(workers: int) -> list[torch.Tensor]:
        loader = torch.utils.data.DataLoader(PairStream(0, 2, 0, 5, group=2), batch_size=None, num_workers=workers)
        return [tokens for _images, tokens, _labels in loader]

    one, two = batches(0), batches(2)
    assert len(two) == 5 and all(torch.equal(a, b) for a, b in zip(one, two, strict=True))


@pytest.fixture
def one_thread():
    """One torch thread: on a shared 2-core machine, two-thread barriers spin against other processes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_a_few_pretraining_steps_lower_the_loss(one_thread: None) -> None:
    from bench.datasets.toy.pretrain import clip_loss, create_toy_model, make_batch

    torch.manual_seed(0)
    model = create_toy_model()
    images, tokens, labels = make_batch(0, 0, 16, clear=0.5)
    assert images.shape == (16, 3, 64, 64) and labels.shape == (16, len(gen.ATTRIBUTES))
    batch = (images, tokens)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with torch.no_grad():
        before = float(clip_loss(model, *batch))
    for _ in range(8):
        loss = clip_loss(model, *batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(clip_loss(model, *batch))
    assert after < before - 0.3


def test_compact_checkpoint_round_trips(tmp_path: Path) -> None:
    from bench.datasets.toy.pretrain import compact_state_dict, create_toy_model

    model = create_toy_model()
    with torch.no_grad():
        model.token_embedding.weight[[7, 320]] += 1.0
    torch.save(compact_state_dict(model), tmp_path / "c.pt")
    state = load_toy_state_dict(tmp_path / "c.pt")
    ref = model.state_dict()
    assert state.keys() == ref.keys()
    assert torch.equal(state["token_embedding.weight"][:7], ref["token_embedding.weight"][:7])
    assert torch.allclose(state["token_embedding.weight"], ref["token_embedding.weight"], atol=1e-3)


def _tiny(spec: ToySpec) -> ToySpec:
    from dataclasses import replace

    return replace(spec, n_train=2 if spec.n_train else 0, n_val=1 if spec.n_val else 0, n_test=2)


def test_generated_dataset_has_coop_split_file_and_reads(tmp_path: Path) -> None:
    for name in ("toy_colors", "toy_imagenet_sketch"):
        spec = _tiny(SPEC_BY_NAME[name])
        folder = write_dataset(spec, tmp_path)
        raw = json.loads((folder / spec.split_file).read_text())
        assert set(raw) == {"train", "val", "test"}
        for rel, label, classname in raw["test"]:
            assert (folder / "images" / rel).is_file() and spec.classnames[label] == classname
        splits = READERS[name](tmp_path).read()
        assert len(splits.test) == 2 * len(spec.classnames)
        assert splits.classnames == spec.classnames
        # same bytes on a second write: generation is a pure function of (dataset, split, index)
        first = (folder / "images" / raw["test"][0][0]).read_bytes()
        write_dataset(spec, tmp_path / "again")
        assert (tmp_path / "again" / name / "images" / raw["test"][0][0]).read_bytes() == first


def test_suite_and_readers_are_consistent() -> None:
    from bench.registry import get_dataset

    assert TOY_SUITE["source"] == "toy_imagenet" and len(TOY_SUITE["domain_generalization"]) == 4
    assert len(TOY_SUITE["base2novel"]) >= 7
    for spec in SPECS:
        cls = get_dataset(spec.name)
        assert cls.template.count("{}") == 1 and cls.split_file == spec.split_file
        assert len(spec.classnames) * spec.n_test >= 200  # >= 100 test images in each of base and novel
        if spec.test_only:
            assert cls.source == "toy_imagenet" and spec.classnames == SPEC_BY_NAME["toy_imagenet"].classnames


def test_shipped_checkpoint_loads_and_zero_shots(tmp_path: Path, one_thread: None) -> None:
    import open_clip

    from bench.datasets.toy.pretrain import with_conv_stem
    from bench.datasets.toy.zeroshot import zero_shot_report

    assert checkpoint_path().is_file() and checkpoint_path().stat().st_size < 20e6
    model = with_conv_stem(open_clip.create_model("toy-vit", pretrained=None))
    model.load_state_dict(load_toy_state_dict())
    model.eval()
    root = ensure_toy_data(tmp_path, names=["toy_colors"])
    acc = zero_shot_report(model, root, ["toy_colors"])["toy_colors"]["all"]
    assert acc >= TOY_COLORS_ZERO_SHOT - MARGIN, acc


@pytest.mark.slow
def test_attribute_probe_sees_what_pretraining_taught(one_thread: None) -> None:
    """The shipped image tower decodes colour and shape far better than the same architecture untrained."""
    from bench.datasets.toy.pretrain import create_toy_model
    from bench.datasets.toy.zeroshot import attribute_probe, load_toy_model

    trained = attribute_probe(load_toy_model(), n=600, steps=150)
    untrained = attribute_probe(create_toy_model().eval(), n=600, steps=150)
    assert trained["colour"] > untrained["colour"] + 20, (trained, untrained)
    # shape: 60.8 vs 9.0 with 1,600 images (README); the old patchify checkpoint read 11.5
    assert trained["shape"] > untrained["shape"] + 25, (trained, untrained)
    # scene (the background) is plain to any features, trained or not: the probe itself must find it
    assert trained["scene"] > trained["scene_majority"] + 30 and untrained["scene"] > untrained["scene_majority"] + 30


def test_a_toy_checkpoint_file_loads_as_pretrained_weights() -> None:
    """`--pretrained FILE` with a `bench toy pretrain` output gives the same weights as the shipped `toy` tag."""
    from bench.model.backbone import create_model

    by_tag = create_model("toy-vit", "toy").state_dict()
    by_file = create_model("toy-vit", str(checkpoint_path())).state_dict()
    assert by_tag.keys() == by_file.keys()
    assert all(torch.equal(by_tag[k], by_file[k]) for k in by_tag)


@pytest.mark.parametrize("name", ["toy_colors", "toy_scenes", "toy_imagenet_sketch"])
def test_camera_datasets_are_the_plain_render_through_the_camera(name: str) -> None:
    """The domain-gap datasets: the same scene as without the camera, post-processed by exactly that camera."""
    from dataclasses import replace

    from bench.datasets.toy.data import CAMERAS, render_item

    spec = SPEC_BY_NAME[name]
    assert spec.camera in CAMERAS
    classname = next(c for c in spec.classnames if c.startswith("red")) if spec.test_only else spec.classnames[0]
    plain = np.asarray(render_item(replace(spec, camera=None), classname, [1, 2, 3]), np.float32)
    seen = np.asarray(render_item(spec, classname, [1, 2, 3]))
    expected = np.clip(CAMERAS[spec.camera](plain), 0, 255).astype(np.uint8)
    assert np.array_equal(seen, expected)
    if spec.camera == "graphite":  # the sketch's ink keeps half its saturation (the paper stays white)
        saturation = lambda a: a.max(-1) - a.min(-1)  # noqa: E731
        assert saturation(plain).max() > 50
        assert np.allclose(saturation(seen.astype(np.float32)), 0.5 * saturation(plain), atol=1.5)
    else:
        assert np.abs(seen.astype(np.float32) - plain).mean() > 20  # a real shift, not a no-op


def test_a_dataset_from_an_older_data_version_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bumping DATA_VERSION rebuilds every dataset a sweep needs, one at a time as sweeps ask for them."""
    from bench.datasets.toy import data

    monkeypatch.setattr(data, "SPECS", [_tiny(SPEC_BY_NAME[n]) for n in ("toy_colors", "toy_counts")])
    monkeypatch.setattr(data, "SPEC_BY_NAME", {s.name: s for s in data.SPECS})
    data.ensure_toy_data(tmp_path)
    data_version_before = data.DATA_VERSION
    monkeypatch.setattr(data, "DATA_VERSION", "test-next")
    data.ensure_toy_data(tmp_path, names=["toy_colors"])  # toy_counts' old folder is still there
    assert (tmp_path / "toy_colors" / data.VERSION_FILE).read_text() == "test-next"
    assert (tmp_path / "toy_counts" / data.VERSION_FILE).read_text() == data_version_before
    data.ensure_toy_data(tmp_path, names=["toy_counts"])
    assert (tmp_path / "toy_counts" / data.VERSION_FILE).read_text() == "test-next"
    assert (tmp_path / ".complete-vtest-next.json").exists()


def test_a_new_data_version_gets_its_own_default_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another adaptbench version (another DATA_VERSION) never rebuilds the folder a running sweep reads."""
    from bench.datasets.toy import data

    monkeypatch.setenv("BENCH_TOY_ROOT", str(tmp_path))
    monkeypatch.setattr(data, "SPECS", [_tiny(SPEC_BY_NAME["toy_colors"])])
    monkeypatch.setattr(data, "SPEC_BY_NAME", {s.name: s for s in data.SPECS})
    old = data.ensure_toy_data(data.default_root())
    image = next((old / "toy_colors").rglob("*.png"))
    stamp = image.stat().st_mtime_ns
    monkeypatch.setattr(data, "DATA_VERSION", "test-next")
    new = data.ensure_toy_data(data.default_root())
    assert new == tmp_path / "vtest-next" and old == tmp_path / f"v{data_version_of(old)}" and new != old
    assert image.exists() and image.stat().st_mtime_ns == stamp  # the old world is untouched


def test_records_of_an_older_toy_world_are_never_counted_as_done(monkeypatch: pytest.MonkeyPatch) -> None:
    """The toy data version is part of every toy run's config hash (version 4, the world before it was hashed, adds
    nothing, so earlier records keep their hashes)."""
    from bench.config import config_hash
    from bench.datasets.toy import data
    from bench.sweep.plan import plan
    from bench.sweep.suites import get_suite

    def hashes() -> set[str]:
        suite = get_suite("toy")
        runs = plan(["coop"], ["base2novel"], suite, [1], [16], Path("/nowhere"), Path("/tmp/r"), ["toy_shapes"])
        return {r.config_hash for r in runs}

    now = hashes()
    (run,) = plan(["coop"], ["base2novel"], get_suite("toy"), [1], [16], Path("/n"), Path("/r"), ["toy_shapes"])
    assert data.DATA_VERSION != "4" or now == {config_hash("coop", run.config)}
    monkeypatch.setattr(data, "DATA_VERSION", "test-next")
    assert hashes().isdisjoint(now)


def data_version_of(root: Path) -> str:
    return (root / "toy_colors" / "toy_version.txt").read_text()


def test_every_method_builds_with_the_toy_suites_settings_for_every_protocol() -> None:
    """The toy suite's overrides fit toy-vit's 6 blocks for every method and protocol, and need no external files."""
    from bench.model.backbone import load_backbone
    from bench.registry import get_method, method_names
    from bench.sweep.plan import resolve_config
    from bench.sweep.protocols import protocol_names
    from bench.sweep.suites import get_suite

    suite = get_suite("toy")
    backbone = load_backbone(suite.backbone, suite.pretrained)
    for name in method_names():
        for protocol in protocol_names():
            for dataset in (suite.source, suite.datasets[1]):
                cfg = resolve_config(name, protocol, dataset, suite, {})
                assert cfg["train"]["augment"] == "none"
                get_method(name)(backbone, cfg, n_cls=4)  # raises on a depth or layer outside the backbone
                if name == "coprompt":
                    assert cfg["method"]["descriptions"] == "templates"


def test_temp_folders_of_dead_generations_are_removed(tmp_path: Path) -> None:
    import os

    dead = tmp_path / ".tmp-toy_colors-999999999"  # no such pid
    alive = tmp_path / f".tmp-toy_shapes-{os.getpid()}"
    for folder in (dead, alive):
        (folder / "images").mkdir(parents=True)
    ensure_toy_data(tmp_path, names=["toy_counts"])
    assert not dead.exists() and alive.exists() and (tmp_path / "toy_counts").is_dir()


def test_knowing_toy_vit_from_open_clip_means_knowing_its_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that made ``toy-vit`` known to open_clip (``bench toy pretrain`` does, before any registry lookup)
    builds it with the conv stem and the ``toy`` tag, not as a plain open_clip model that refuses the tag."""
    from bench.datasets.toy.pretrain import ConvStem, register_config
    from bench.model.backbone import create_model
    from bench.registry import BACKBONES

    monkeypatch.delitem(BACKBONES.module_dict, "toy-vit")  # as in a process that never loaded the toy registrations
    register_config()
    assert isinstance(create_model("toy-vit", "toy").visual.conv1, ConvStem)
