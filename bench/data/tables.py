"""The data tables of ``bench data prepare`` / ``check``: where each dataset's files and CoOp split live, the published
split sizes, and the manual steps where no automatic path exists. Edit here when a link moves."""

from __future__ import annotations

from dataclasses import dataclass

# The 15 datasets of the benchmark, in the order of the papers' tables.
BENCHMARK = (
    "imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101",
    "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101",
    "imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r",
)  # fmt: skip


def _drive(file_id: str) -> str:
    """The direct-download form of a Google Drive file (works without a cookie for small files)."""
    return f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t"


# CoOp's published split files (``KaiyangZhou/CoOp:DATASETS.md`` Drive links), tried in order.
SPLIT_URLS: dict[str, list[str]] = {
    "caltech101": [_drive("1hyarUivQE36mY6jSomru6Fjd-JzwcCzN")],
    "oxford_pets": [_drive("1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs")],
    "stanford_cars": [_drive("1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT")],
    "oxford_flowers": [_drive("1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT")],
    "food101": [_drive("1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl")],
    "sun397": [_drive("1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq")],
    "dtd": [_drive("1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x")],
    "eurosat": [_drive("1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o")],
    "ucf101": [_drive("1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y")],
}

# Other small files of CoOp's DATASETS.md: (dataset, file under the dataset folder) -> URLs.
EXTRA_URLS: dict[tuple[str, str], list[str]] = {
    ("oxford_flowers", "cat_to_name.json"): [_drive("1AkcxCXeK_RCGCEC_GvmWxjcjaNhu-at0")],
    ("imagenet", "classnames.txt"): [_drive("1-61f_ol79pViBFDG_IDlUQSwoLcn2XXF")],
}


@dataclass(frozen=True)
class Resource:
    """An archive fetched into ``$DATA/.sources/<dataset>/<path>``, where torchvision's class expects it."""

    url: str
    path: str
    checksum: str | None = None  # md5 (as torchvision pins it) or sha256


# URLs and md5 sums as in torchvision 0.29's dataset classes (if they drift, torchvision simply downloads itself), over
# https where torchvision still says http (Food-101, SUN397: both hosts serve https), with an md5 for every archive.
ARCHIVES: dict[str, list[Resource]] = {
    "dtd": [
        Resource(
            "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz",
            "dtd/dtd-r1.0.1.tar.gz",
            "fff73e5086ae6bdbea199a49dfb8a4c1",
        )
    ],
    "food101": [
        Resource(
            "https://data.vision.ee.ethz.ch/cvl/food-101.tar.gz", "food-101.tar.gz", "85eeb15f3717b99a5da872d97d918f87"
        )
    ],
    "oxford_pets": [
        Resource(
            "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
            "oxford-iiit-pet/images.tar.gz",
            "5c4f3ee8e5d25df40f4fd59a7f44e54c",
        ),
        Resource(
            "https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",
            "oxford-iiit-pet/annotations.tar.gz",
            "95a8c909bbe2e81eed6a22bccdf3f68f",
        ),
    ],
    "oxford_flowers": [
        Resource(
            "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz",
            "flowers-102/102flowers.tgz",
            "52808999861908f626f3c1f4e79d11fa",
        ),
        Resource(
            "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/imagelabels.mat",
            "flowers-102/imagelabels.mat",
            "e0620be6f572b9609742df49c70aed4d",
        ),
        Resource(
            "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/setid.mat",
            "flowers-102/setid.mat",
            "a5357ecc9cb78c4bef273ce3793fc85c",
        ),
    ],
    "fgvc_aircraft": [
        Resource(
            "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz",
            "fgvc-aircraft-2013b.tar.gz",
            "d4acdd33327262359767eeaa97a4f732",  # torchvision has none; the md5 other loaders pin for this file
        )
    ],
    "eurosat": [
        Resource(
            "https://huggingface.co/datasets/torchgeo/eurosat/resolve/c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip",
            "eurosat/EuroSAT.zip",
            "c8fa014336c82ac7804f0398fcb19387",
        )
    ],
    "sun397": [
        Resource(
            "https://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz",
            "SUN397.tar.gz",
            "8ca2778205c41d23104230ba66911c7a",
        )
    ],
    "caltech101": [
        Resource(
            "https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip",
            "caltech101/caltech-101.zip",
            "3138e1922a9193bfa496528edbbc45d0",
        )
    ],
}

# SUN397's official partitions: only needed to build a split when the published one cannot be fetched.
SUN397_PARTITIONS = Resource(
    "https://vision.princeton.edu/projects/2010/SUN/download/Partitions.zip",
    "Partitions.zip",
    "e3311ea5f812d4cc6faef194688343d1111f6cd6f70f2c62f393c2b8d6ba1ec9",  # sha256, as torchvision's prototype pins it
)

# torchvision class and the keyword arguments that make it download + extract into ``root``.
TORCHVISION: dict[str, tuple[str, dict]] = {
    "dtd": ("DTD", {}),
    "food101": ("Food101", {}),
    "oxford_pets": ("OxfordIIITPet", {}),
    "oxford_flowers": ("Flowers102", {}),
    "fgvc_aircraft": ("FGVCAircraft", {}),
    "eurosat": ("EuroSAT", {}),
    "sun397": ("SUN397", {}),
    "caltech101": ("Caltech101", {}),
}

# Where torchvision leaves the files (under .sources/<name>/) → the CoOp path under the dataset folder ("" = the
# dataset folder itself). The first entry is the one that must exist.
LINKS: dict[str, list[tuple[str, str]]] = {
    "dtd": [("dtd/dtd/images", "images"), ("dtd/dtd/labels", "labels"), ("dtd/dtd/imdb", "imdb")],
    "food101": [("food-101/images", "images"), ("food-101/meta", "meta")],
    "oxford_pets": [("oxford-iiit-pet/images", "images"), ("oxford-iiit-pet/annotations", "annotations")],
    "oxford_flowers": [
        ("flowers-102/jpg", "jpg"),
        ("flowers-102/imagelabels.mat", "imagelabels.mat"),
        ("flowers-102/setid.mat", "setid.mat"),
    ],
    "fgvc_aircraft": [("fgvc-aircraft-2013b/data", "")],
    "eurosat": [("eurosat/2750", "2750")],
    "sun397": [("SUN397", "SUN397"), ("SUN397/ClassName.txt", "ClassName.txt")],
    "caltech101": [("caltech101/101_ObjectCategories", "101_ObjectCategories")],
}

# Published CoOp split sizes (train, val, test): CoOp paper's dataset table; ImageNet train = ILSVRC-2012 train;
# ImageNet val is the 50k val set, used as test (CoOp uses it as val too). None = unknown (not checked).
PUBLISHED_COUNTS: dict[str, tuple[int | None, int | None, int | None]] = {
    "imagenet": (1_281_167, 50_000, 50_000),
    "caltech101": (4_128, 1_649, 2_465),
    "oxford_pets": (2_944, 736, 3_669),
    "stanford_cars": (6_509, 1_635, 8_041),
    "oxford_flowers": (4_093, 1_633, 2_463),
    "food101": (50_500, 20_200, 30_300),
    "fgvc_aircraft": (3_334, 3_333, 3_333),
    "sun397": (15_880, 3_970, 19_850),
    "dtd": (2_820, 1_128, 1_692),
    "eurosat": (13_500, 5_400, 8_100),
    "ucf101": (7_639, 1_898, 3_783),
    "imagenetv2": (0, 0, 10_000),
    "imagenet_sketch": (0, 0, 50_889),
    "imagenet_a": (0, 0, 7_500),
    "imagenet_r": (0, 0, 30_000),
}

# Classes per dataset (CoOp paper's dataset table; ImageNet-A/-R cover 200 of ImageNet's classes).
PUBLISHED_CLASSES: dict[str, int] = {
    "imagenet": 1000, "caltech101": 100, "oxford_pets": 37, "stanford_cars": 196, "oxford_flowers": 102,
    "food101": 101, "fgvc_aircraft": 100, "sun397": 397, "dtd": 47, "eurosat": 10, "ucf101": 101,
    "imagenetv2": 1000, "imagenet_sketch": 1000, "imagenet_a": 200, "imagenet_r": 200,
}  # fmt: skip

_VARIANT_STEPS = (
    "copy (or let this command copy) $DATA/imagenet/classnames.txt to $DATA/{dir}/classnames.txt, then rerun "
    "`bench data check {name}`."
)
MANUAL: dict[str, str] = {
    "imagenet": (
        "ImageNet needs an image-net.org account. Either (a) put ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar and "
        "ILSVRC2012_devkit_t12.tar.gz in $DATA/imagenet/images/ and rerun `bench data prepare imagenet` (torchvision "
        "extracts them into images/train/<wnid>/ and images/val/<wnid>/), or (b) link existing folders: "
        "`ln -s /path/to/train $DATA/imagenet/images/train; ln -s /path/to/val $DATA/imagenet/images/val` "
        "(val may be flat if $DATA/imagenet/ holds LOC_val_solution.csv, meta.bin or ILSVRC2012_devkit_t12/). "
        "classnames.txt is fetched from CoOp's Drive link, else written from open_clip's CLIP class names."
    ),
    "stanford_cars": (
        "The Stanford Cars links are dead and torchvision cannot download it. Get cars_train/, cars_test/, devkit/ "
        "and cars_test_annos_withlabels.mat (e.g. from a Kaggle mirror that keeps the original file names "
        "00001.jpg ...; check that devkit/cars_meta.mat exists) into $DATA/stanford_cars/, then rerun "
        "`bench data prepare stanford_cars` to fetch split_zhou_StanfordCars.json."
    ),
    "ucf101": (
        "Download UCF-101-midframes.zip (CoOp's Drive file id 10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O: "
        "https://drive.google.com/file/d/10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O) and unzip it into $DATA/ucf101/ so that "
        "$DATA/ucf101/UCF-101-midframes/Apply_Eye_Makeup/... exists, then rerun `bench data prepare ucf101` to fetch "
        "split_zhou_UCF101.json."
    ),
    "imagenetv2": (
        "Download imagenetv2-matched-frequency.tar.gz (https://github.com/modestyachts/ImageNetV2) and extract it "
        "into $DATA/imagenetv2/ (giving imagenetv2-matched-frequency-format-val/0..999/); "
        + _VARIANT_STEPS.format(dir="imagenetv2", name="imagenetv2")
    ),
    "imagenet_sketch": (
        "Download ImageNet-Sketch (https://github.com/HaohanWang/ImageNet-Sketch) and extract it into "
        "$DATA/imagenet-sketch/ (giving images/<wnid>/); "
        + _VARIANT_STEPS.format(dir="imagenet-sketch", name="imagenet_sketch")
    ),
    "imagenet_a": (
        "Download imagenet-a.tar (https://github.com/hendrycks/natural-adv-examples) and extract it into "
        "$DATA/imagenet-adversarial/ (giving imagenet-a/<wnid>/); "
        + _VARIANT_STEPS.format(dir="imagenet-adversarial", name="imagenet_a")
    ),
    "imagenet_r": (
        "Download imagenet-r.tar (https://github.com/hendrycks/imagenet-r) and extract it into "
        "$DATA/imagenet-rendition/ (giving imagenet-r/<wnid>/); "
        + _VARIANT_STEPS.format(dir="imagenet-rendition", name="imagenet_r")
    ),
}
