"""Which hand-written template each method uses when a model trained on one dataset is evaluated on another.

The official code rebuilds its model for the evaluated dataset (``cfg.DATASET.NAME`` is the target in an eval-only
run), so every per-dataset template follows the *evaluated* dataset. The table pins, for every registered method,
the exact texts it tokenizes to classify Oxford Pets' classes with an ImageNet-trained model (cross-dataset) and
ImageNet-Sketch's (domain generalisation).
"""

from __future__ import annotations

import pytest
from method_helpers import config

from bench.registry import get_method, method_names
from bench.sweep.runner import role

PETS = "a photo of a {}, a type of pet."
SEVEN = ["itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.", "a {} in a video game.",
         "art of the {}.", "a photo of the small {}."]  # fmt: skip
LEARNED = {"a photo of a {}."}  # a learned context initialised from "a photo of a", then the class name

# method -> (texts for Oxford Pets, texts for ImageNet-Sketch), with {} for the class name. Source lines:
EXPECTED: dict[str, tuple[set[str], set[str]]] = {
    # CoOp trainers/zsclip.py: CUSTOM_TEMPLATES[cfg.DATASET.NAME]
    "zeroshot": ({PETS}, {"a photo of a {}."}),
    # CLIP-Adapter clip_adapter.py: CUSTOM_TEMPLATES[cfg.DATASET.NAME]
    "clip_adapter": ({PETS}, {"a photo of a {}."}),
    # Tip-Adapter main.py: dataset.template; main_imagenet.py: imagenet.template (the 7) for ImageNet's classes
    "tip_adapter": ({PETS}, set(SEVEN)),
    "tip_adapter_f": ({PETS}, set(SEVEN)),
    # TCP trainers/tcp.py L159 CUSTOM_TEMPLATES_ori[cfg.DATASET.NAME], L177 CUSTOM_TEMPLATES[cfg.DATASET.NAME]
    "tcp": ({PETS, "X X X X {}, a type of pet."}, {"a photo of a {}.", "X X X X {}."}),
    # learned prompts: no dataset template at evaluation (KgCoOp's and CoPrompt's per-dataset texts feed the
    # training loss only; PromptSRC's 60 templates likewise)
    "coop": (LEARNED, LEARNED),
    "cocoop": (LEARNED, LEARNED),
    "kgcoop": (LEARNED, LEARNED),
    "maple": (LEARNED, LEARNED),
    "promptsrc": (LEARNED, LEARNED),
    "coprompt": (LEARNED, LEARNED),
    # MMA's fixed "a photo of a {}." (RMAdapter inherits it)
    "mma": (LEARNED, LEARNED),
    "rmadapter": (LEARNED, LEARNED),
}


def test_every_method_states_its_evaluation_template() -> None:
    built_in = {m for m in method_names() if get_method(m).__module__.startswith("bench.methods.")}  # not test plugins
    assert set(EXPECTED) == built_in, "add the new method's evaluation templates to EXPECTED"


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize(
    "target,template,which", [("oxford_pets", PETS, 0), ("imagenet_sketch", "a photo of a {}.", 1)]
)
def test_cross_dataset_evaluation_uses_the_evaluated_datasets_templates(tiny_backbone, name, target, template, which):
    cfg = config(name, "cross_dataset", "imagenet", **get_method(name).tiny_options(tiny_backbone.depth))
    method = get_method(name)(tiny_backbone, cfg, n_cls=2)
    method.set_classnames(["tench", "goldfish"], "a photo of a {}.", "imagenet")  # trained on ImageNet
    method.eval()
    seen: list[str] = []
    tokenize = tiny_backbone.tokenize

    def spy(texts):
        seen.extend(texts)
        return tokenize(texts)

    tiny_backbone.tokenize = spy
    try:
        method.set_classnames(["cat"], template, target)
        method.text_features()
    finally:
        del tiny_backbone.tokenize
    assert set(seen) == {t.format("cat") for t in EXPECTED[name][which]}


def test_generated_suites_name_the_real_dataset_each_one_plays() -> None:
    assert role("real", "oxford_pets") == "oxford_pets"
    assert role("toy", "toy_imagenet") == "imagenet"
    assert role("toy", "toy_imagenet_sketch") == "imagenet_sketch"
