"""The registries of methods and datasets (mmengine ``Registry``), looked up by lowercase name."""

from __future__ import annotations

from mmengine.registry import Registry

from bench.errors import ConfigError

# ``locations`` makes mmengine import the modules that register themselves, instead of side-effect imports.
METHODS = Registry("method", scope="bench", locations=["bench.methods"])
DATASETS = Registry("dataset", scope="bench", locations=["bench.datasets"])


def _names(registry: Registry) -> list[str]:
    registry.import_from_location()
    return sorted(registry.module_dict)


def method_names() -> list[str]:
    return _names(METHODS)


def dataset_names() -> list[str]:
    return _names(DATASETS)


def get(registry: Registry, name: str) -> type:
    """The class registered as ``name``; an unknown name raises a ConfigError listing the valid ones."""
    registry.import_from_location()
    cls = registry.module_dict.get(name.lower())
    if cls is None:
        valid = ", ".join(sorted(registry.module_dict))
        raise ConfigError(f"unknown {registry.name} {name!r}; valid names: {valid}")
    return cls


def get_method(name: str) -> type:
    return get(METHODS, name)


def get_dataset(name: str) -> type:
    return get(DATASETS, name)


def parse_names(value: str, registry: Registry) -> list[str]:
    """Split a comma list (or ``all``) into registered names, validating each."""
    names = _names(registry) if value.strip().lower() == "all" else [v.strip().lower() for v in value.split(",") if v]
    for name in names:
        get(registry, name)
    return names
