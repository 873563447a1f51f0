"""Registers the toy world with the harness like any plugin: its eleven dataset readers (``DATASETS``), the ``toy``
suite (``SUITES``) and the ``toy-vit`` backbone builder (``BACKBONES``). The registries import this module on demand
(``bench.registry.ON_DEMAND``): on a name their locations do not register, or a listing of every name."""

from bench.datasets.toy import data
from bench.datasets.toy.data import TOY_SUITE, default_root, ensure_toy_data
from bench.datasets.toy.pretrain import register_config
from bench.registry import SUITES
from bench.sweep.suites import Suite

register_config()  # toy-vit: open_clip's config and the BACKBONES builder


@SUITES.register_module(name="toy")
def toy_suite() -> Suite:
    """The offline world: seven B2N datasets, toy_imagenet as the source, four shifted copies, the toy CLIP."""
    t = TOY_SUITE
    return Suite(
        name="toy",
        datasets=tuple(t["base2novel"]),
        source=t["source"],
        cross_dataset=tuple(t["cross_dataset"]),
        domain_generalization=tuple(t["domain_generalization"]),
        backbone=t["backbone"],
        pretrained=t["pretrained"],
        overrides=t["overrides"],
        roles=t["roles"],
        default_root=default_root,
        prepare=ensure_toy_data,
        data_version=data.DATA_VERSION,
    )
