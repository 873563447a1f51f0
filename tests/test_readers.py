"""Dataset readers on the generated CoOp-layout fixture: layout, class-name rules, splits, few-shot draws, errors."""

from __future__ import annotations

import json
import random
import shutil
from collections import defaultdict
from pathlib import Path

import pytest
from coop_fixture import SUPPORTED, make_coop_data, split_counts

from bench.data.dataset import Datum, dassl_fewshot, subsample_classes, subset_classnames, tip_fewshot
from bench.datasets import readers
from bench.errors import DataError
from bench.registry import get_dataset

ALL15 = [
    "imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101", "fgvc_aircraft", "sun397",
    "dtd", "eurosat", "ucf101", "imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r",
]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_coop_data(tmp_path_factory.mktemp("data"), SUPPORTED)


def read(name: str, root: Path):
    return get_dataset(name)(root).read()


def test_all_15_registered_with_coop_attributes() -> None:
    for name in ALL15:
        cls = get_dataset(name)
        assert cls.name == name
    assert get_dataset("dtd").split_file == "split_zhou_DescribableTextures.json"
    assert get_dataset("dtd").template == "{} texture."
    assert get_dataset("eurosat").template == "a centered satellite photo of {}."
    assert get_dataset("ucf101").template == "a photo of a person doing {}."
    assert get_dataset("caltech101").dataset_dir == "caltech-101"
    assert get_dataset("imagenet_a").dataset_dir == "imagenet-adversarial"
    assert get_dataset("imagenet").draw_val is False
    for v in ("imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r"):
        assert get_dataset(v).test_only and get_dataset(v).source == "imagenet"
    assert get_dataset("dtd").draw_val is True


def test_few_shot_split_draws_val_per_reader(tmp_path: Path) -> None:
    """DTD (Dassl) draws min(shots, 4) val images per class; ImageNet (CoOp) keeps its val list whole."""
    from bench.config import BASE_CONFIG
    from bench.sweep.plan import RunSpec
    from bench.sweep.runner import fewshot_split, read_dataset

    root = make_coop_data(tmp_path / "data", ["dtd", "imagenet"], n_classes=4, train_per_class=8, val_per_class=6)
    sizes = {}
    for name in ("dtd", "imagenet"):
        spec = RunSpec("zeroshot", "real", name, "all", 1, 8, "bench-tiny", "none", BASE_CONFIG, "h", [], str(root),
                       str(tmp_path / "res"))  # fmt: skip
        reader, splits = read_dataset(name, str(root))
        train, val, split_hash = fewshot_split(spec, reader, splits)
        assert len(train) == 4 * 8 and len(split_hash) == 16
        assert fewshot_split(spec, reader, splits) == (train, val, split_hash)  # stored once, read back the same
        sizes[name] = (len(val), len(splits.val))
    assert sizes["dtd"] == (4 * 4, 4 * 6)
    assert sizes["imagenet"][0] == sizes["imagenet"][1]


@pytest.mark.parametrize("name", SUPPORTED)
def test_reader_on_fixture(data: Path, name: str) -> None:
    splits = read(name, data)
    assert (len(splits.train), len(splits.val), len(splits.test)) == split_counts([name])[name]
    for d in (*splits.train, *splits.val, *splits.test):
        assert Path(d.impath).is_file(), d.impath
        assert splits.classnames[d.label] == d.classname


def test_class_name_rules(data: Path) -> None:
    assert "face" in read("caltech101", data).classnames  # renamed; BACKGROUND_Google/Faces_easy ignored
    assert not {"Faces_easy", "BACKGROUND_Google", "Faces"} & set(read("caltech101", data).classnames)
    assert read("eurosat", data).classnames[0] == "Annual Crop Land"
    assert read("oxford_pets", data).classnames[0] == "abyssinian"
    assert read("stanford_cars", data).classnames[0] == "2000 AM General Hummer SUV"
    assert readers.StanfordCars.year_first("Acura TL Type-S 2008") == "2008 Acura TL Type-S"
    assert readers.SUN397.classname("/a/apartment_building/outdoor") == "outdoor apartment_building"
    assert readers.UCF101.classname("ApplyEyeMakeup") == "Apply_Eye_Makeup"
    fgvc = read("fgvc_aircraft", data)
    assert fgvc.classnames[:2] == ["707-320", "727-200"]
    a = read("imagenet_a", data)
    assert a.classnames == ["goldfish", "great white shark", "tiger shark", "hammerhead shark", "electric ray"]
    assert sorted({d.label for d in a.test}) == list(range(5))  # label = index in sorted wnid folders
    v2 = read("imagenetv2", data)
    assert v2.classnames[0] == "tench" and all(Path(d.impath).parent.name == str(d.label) for d in v2.test)


def test_imagenet_labels_follow_sorted_wnids_and_val_is_test(data: Path) -> None:
    s = read("imagenet", data)
    wnids = sorted(p.name for p in (data / "imagenet/images/train").iterdir())
    assert all(Path(d.impath).parent.name == wnids[d.label] for d in s.train)
    assert s.val == s.test


def test_imagenet_flat_val_from_loc_csv(tmp_path: Path) -> None:
    root = make_coop_data(tmp_path, ["imagenet"], imagenet_flat_val=True)
    flat = read("imagenet", root)
    ref = read("imagenet", make_coop_data(tmp_path / "ref", ["imagenet"]))
    assert sorted((Path(d.impath).name, d.label) for d in flat.test) == sorted(
        (Path(d.impath).name, d.label) for d in ref.test
    )
    (root / "imagenet/LOC_val_solution.csv").unlink()
    with pytest.raises(DataError, match="flat and no labels"):
        read("imagenet", root)


def test_fewshot_matches_dassl_algorithm() -> None:
    """An independent re-implementation of Dassl's generate_fewshot_dataset with the global ``random`` module."""
    rng = random.Random(123)
    items = [Datum(f"/x/{i}.jpg", rng.randrange(7), "") for i in range(300)]
    val = [Datum(f"/v/{i}.jpg", rng.randrange(7), "") for i in range(60)]
    items = [Datum(d.impath, d.label, f"c{d.label}") for d in items]

    def dassl(data: list[Datum], k: int) -> list[Datum]:
        by_label: dict[int, list[Datum]] = defaultdict(list)
        for d in data:
            by_label[d.label].append(d)
        out: list[Datum] = []
        for group in by_label.values():
            out.extend(random.sample(group, k) if len(group) >= k else group)
        return out

    for seed in (1, 2, 3):
        for shots in (1, 4, 16):
            random.seed(seed)
            want_train = dassl(items, shots)
            want_val = dassl(val, min(shots, 4))
            got_train, got_val = dassl_fewshot(items, val, shots, seed)
            assert got_train == want_train and got_val == want_val
    random.seed(5)
    train_only = dassl(items, 16)
    assert dassl_fewshot(items, val, 16, 5, draw_val=False) == (train_only, val)


def test_tip_draw_is_tip_adapters_seed_one_draw_with_replacement() -> None:
    """Tip-Adapter: ``random.seed(1)`` then per class ``sample`` (``choices`` when a class is short); val untouched."""
    rng = random.Random(7)
    items = [Datum(f"/x/{i}.jpg", y, f"c{y}") for i, y in enumerate(rng.choices(range(5), k=40))]
    items += [Datum("/x/rare.jpg", 5, "c5")]  # one image: drawn 4 times with replacement
    val = [Datum(f"/v/{i}.jpg", i % 6, f"c{i % 6}") for i in range(30)]
    random.seed(1)
    by_label: dict[int, list[Datum]] = defaultdict(list)
    for d in items:
        by_label[d.label].append(d)
    want = [x for g in by_label.values() for x in (random.sample(g, 4) if len(g) >= 4 else random.choices(g, k=4))]
    train, kept_val = tip_fewshot(items, val, 4)
    assert train == want and kept_val == val
    assert [d.impath for d in train if d.label == 5] == ["/x/rare.jpg"] * 4


def test_tip_draw_option_is_seed_independent_and_stored_apart(tmp_path: Path) -> None:
    from bench.sweep.plan import RunSpec
    from bench.sweep.runner import fewshot_split, read_dataset

    root = make_coop_data(tmp_path / "data", ["dtd"], n_classes=4, train_per_class=8, val_per_class=6)
    reader, splits = read_dataset("dtd", str(root))

    def draw(seed: int, kind: str) -> tuple:
        cfg = {"train": {"fewshot_draw": kind}}
        spec = RunSpec("tip_adapter", "real", "dtd", "all", seed, 4, "bench-tiny", "none", cfg, "h", [], str(root),
                       str(tmp_path / "res"))  # fmt: skip
        return fewshot_split(spec, reader, splits)

    assert draw(1, "tip") == draw(2, "tip") != draw(1, "coop")
    assert draw(1, "coop") != draw(2, "coop")
    assert len(draw(1, "tip")[1]) == len(splits.val)  # validation is not drawn
    stored = sorted(p.name for p in (tmp_path / "res/splits/real/dtd").glob("*.json"))
    assert stored == ["shot4_seed1.json", "shot4_seed2.json", "shot4_tip.json"]


def test_base_novel_split_and_relabel(data: Path) -> None:
    s = read("dtd", data)  # 6 classes → base 0..2, novel 3..5
    base = subsample_classes(s.test, "base")
    novel = subsample_classes(s.test, "novel")
    assert sorted({d.label for d in base}) == [0, 1, 2] and sorted({d.label for d in novel}) == [0, 1, 2]
    assert {d.classname for d in novel} == set(s.classnames[3:])
    assert subset_classnames(s.classnames, "novel") == s.classnames[3:]
    assert all(subset_classnames(s.classnames, "novel")[d.label] == d.classname for d in novel)


@pytest.mark.parametrize("name", ["dtd", "eurosat", "caltech101", "oxford_pets", "oxford_flowers", "sun397"])
def test_missing_split_file_is_rebuilt_by_coop_rules(tmp_path: Path, name: str) -> None:
    root = make_coop_data(tmp_path, [name], n_classes=4, train_per_class=5, val_per_class=2, test_per_class=3)
    reader = get_dataset(name)(root)
    split = reader.dataset_path / reader.split_file
    published = json.loads(split.read_text())
    if name == "sun397":  # official partitions are needed to rebuild SUN397
        rows = published["train"] + published["val"]
        (reader.dataset_path / "Training_01.txt").write_text("".join(f"/{r[0]}\n" for r in rows))
        (reader.dataset_path / "Testing_01.txt").write_text("".join(f"/{r[0]}\n" for r in published["test"]))
    split.unlink()
    s = reader.read()
    assert split.exists()
    n = len(published["train"]) + len(published["val"]) + len(published["test"])
    assert len(s.train) + len(s.val) + len(s.test) == n
    assert sorted(s.classnames) == sorted({r[2] for r in published["train"]})
    per_class = defaultdict(int)
    for d in s.val:
        per_class[d.label] += 1
    # 50/20/30 of 10 images per class, or round(0.2 * 7) of the official train+val list
    assert set(per_class.values()) == ({1} if name in ("oxford_pets", "sun397") else {2})
    assert get_dataset(name)(root).read().train == s.train  # the written file reads back identically


def test_missing_and_malformed_split_file_errors(tmp_path: Path) -> None:
    root = make_coop_data(tmp_path, ["dtd", "fgvc_aircraft"])
    split = root / "dtd" / "split_zhou_DescribableTextures.json"
    split.write_text("{not json")
    with pytest.raises(DataError, match="malformed"):
        read("dtd", root)
    split.write_text(json.dumps({"train": [["a/b.jpg", 0]], "val": [], "test": []}))
    with pytest.raises(DataError, match="split_zhou_DescribableTextures.json"):
        read("dtd", root)
    (root / "fgvc_aircraft" / "variants.txt").unlink()
    with pytest.raises(DataError, match="variants.txt"):
        read("fgvc_aircraft", root)


def test_class_folder_mismatch(tmp_path: Path) -> None:
    root = make_coop_data(tmp_path, ["eurosat", "imagenet", "imagenet_sketch", "imagenetv2"])
    shutil.rmtree(root / "eurosat" / "2750" / "Forest")
    with pytest.raises(DataError, match=r"Forest.*split_zhou_EuroSAT.json"):
        read("eurosat", root)
    shutil.rmtree(next((root / "imagenet/images/val").iterdir()))
    with pytest.raises(DataError, match="differ"):
        read("imagenet", root)
    (root / "imagenet-sketch/images/n99999999").mkdir()
    with pytest.raises(DataError, match="n99999999.*classnames.txt"):
        read("imagenet_sketch", root)
    shutil.rmtree(root / "imagenetv2/imagenetv2-matched-frequency-format-val/3")
    with pytest.raises(DataError, match="3"):
        read("imagenetv2", root)


def test_missing_folders_and_classnames(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data root"):
        read("dtd", tmp_path / "nope")
    root = make_coop_data(tmp_path / "d", ["dtd", "imagenet_r"])
    with pytest.raises(DataError, match="bench data prepare eurosat"):
        read("eurosat", root)
    shutil.rmtree(root / "dtd" / "images")
    with pytest.raises(DataError, match="image folder"):
        read("dtd", root)
    (root / "imagenet-rendition" / "classnames.txt").unlink()
    with pytest.raises(DataError, match="classnames.txt"):
        read("imagenet_r", root)
