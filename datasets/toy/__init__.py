"""The toy world: procedural images, a small CLIP pretrained on them, and datasets in the CoOp layout.

Importing this package registers the world with the harness like any plugin: its eleven dataset readers
(``DATASETS``), the ``toy`` suite (``SUITES``) and the ``toy-vit`` backbone builder (``BACKBONES``). Public API:
:func:`ensure_toy_data` (write the datasets into a cache folder, return the data root), ``TOY_SUITE``,
:func:`checkpoint_path` / :func:`load_toy_state_dict` (the shipped weights as an open_clip state dict) and
``bench.datasets.toy.cli.toy_app`` (``bench toy ...``).
"""

from bench.datasets.toy import data
from bench.datasets.toy.data import READERS, SPECS, TOY_SUITE, default_root, ensure_toy_data
from bench.datasets.toy.pretrain import ARCH, build_backbone, checkpoint_path, load_toy_state_dict, register_config
from bench.registry import BACKBONES, SUITES

register_config()
BACKBONES.register_module(name=ARCH, module=build_backbone)


@SUITES.register_module(name="toy")
def toy_suite():  # -> bench.sweep.suites.Suite (imported here: the sweep layer imports the datasets package)
    """The offline world: seven B2N datasets, toy_imagenet as the source, four shifted copies, the toy CLIP."""
    from bench.sweep.suites import Suite

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


__all__ = ["READERS", "SPECS", "TOY_SUITE", "checkpoint_path", "ensure_toy_data", "load_toy_state_dict", "toy_suite"]
