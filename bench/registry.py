"""The registries (mmengine ``Registry``): methods, protocols, datasets, suites and backbone builders, looked up by
lowercase name.

Each registry names the modules whose import registers its entries (``locations``), so the core never imports a
method, a dataset reader or the toy world by name: ``bench.methods`` discovers every module in ``methods/`` and
``bench.datasets.readers`` registers the CoOp readers. The toy world (its datasets, its suite and its backbone) costs
torch, open_clip and its image generator to import, so it registers on demand: when a lookup misses or every name is
listed (:data:`ON_DEMAND`), never for a real-benchmark lookup.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from mmengine.registry import Registry

from bench.errors import ConfigError

METHODS = Registry("method", scope="bench", locations=["bench.methods"])
# How a sweep trains and evaluates, and how the report tables it (``bench.sweep.protocols.Protocol`` classes): the
# papers' four live in the core; more register the same way, from a ``--plugin``. Kept in registration order.
PROTOCOLS = Registry("protocol", scope="bench", locations=["bench.sweep.protocols"])
DATASETS = Registry("dataset", scope="bench", locations=["bench.datasets.readers"])
# Benchmark worlds (``bench.sweep.suites.Suite`` factories): "real" lives in the core, "toy" registers on demand.
SUITES = Registry("suite", scope="bench")
# Architectures that an open_clip config alone cannot build: ``builder(arch, pretrained) -> nn.Module``.
BACKBONES = Registry("backbone", scope="bench")
# Registry name -> modules imported by a lookup that its locations do not answer, or by a listing of every name.
ON_DEMAND = {registry.name: ["bench.datasets.toy.register"] for registry in (DATASETS, SUITES, BACKBONES)}

T = TypeVar("T", bound=type)


def register_method(name: str) -> Callable[[T], T]:
    """Class decorator: register a :class:`~bench.model.method.Method` under ``name`` and set ``cls.name``."""
    return _register(METHODS, "register_method", name)


def register_protocol(name: str) -> Callable[[T], T]:
    """Class decorator: register a :class:`~bench.sweep.protocols.Protocol` under ``name`` and set ``cls.name``."""
    return _register(PROTOCOLS, "register_protocol", name)


def _register(registry: Registry, decorator: str, name: str) -> Callable[[T], T]:
    """Register a class under ``name`` and set ``cls.name``; a name taken by another class is a ConfigError (the same
    class imported again, from a reloaded module, is fine)."""

    def deco(cls: T) -> T:
        taken = registry.module_dict.get(name)
        same = taken is not None and (taken.__module__, taken.__qualname__) == (cls.__module__, cls.__qualname__)
        if taken is not None and not same:
            raise ConfigError(
                f"{registry.name} name {name!r} is taken by {taken.__module__}.{taken.__qualname__}; register "
                f"{cls.__qualname__} under another name, e.g. @{decorator}({name + '_v2'!r})"
            )
        cls.name = name  # type: ignore[attr-defined]
        registry.register_module(name=name, module=cls, force=taken is not None)
        return cls

    return deco


def _import_all(registry: Registry) -> None:
    registry.import_from_location()
    for module in ON_DEMAND.get(registry.name, []):
        importlib.import_module(module)


def names(registry: Registry) -> list[str]:
    """Every registered name, sorted (the on-demand worlds included)."""
    _import_all(registry)
    return sorted(registry.module_dict)


def method_names() -> list[str]:
    return names(METHODS)


def dataset_names() -> list[str]:
    return names(DATASETS)


def find(registry: Registry, name: str) -> Any | None:
    """The entry registered as ``name`` exactly, or None; a miss first imports the registry's :data:`ON_DEMAND`
    modules."""
    registry.import_from_location()
    if name not in registry.module_dict:
        _import_all(registry)
    return registry.module_dict.get(name)


def get(registry: Registry, name: str) -> type:
    """The entry registered as ``name``; an unknown name raises a ConfigError listing the valid ones."""
    entry = find(registry, name.lower())
    if entry is None:
        raise ConfigError(f"unknown {registry.name} {name!r}; valid names: {', '.join(names(registry))}")
    return entry


def get_method(name: str) -> type:
    return get(METHODS, name)


def get_dataset(name: str) -> type:
    return get(DATASETS, name)


def parse_names(value: str, registry: Registry) -> list[str]:
    """Split a comma list (or ``all``) into registered names, validating each."""
    wanted = names(registry) if value.strip().lower() == "all" else [v.strip().lower() for v in value.split(",") if v]
    for name in wanted:
        get(registry, name)
    return wanted


def load_plugins(plugins: Sequence[str] | None, strict: bool = True) -> list[str]:
    """Import each plugin (idempotent): a module on ``sys.path`` (``mypkg.methods``) or a Python file (``./my_method.py``).

    A plugin that cannot be imported — missing, a syntax error, an exception at import, a name already registered — is
    one :class:`ConfigError` naming it; with ``strict=False`` the messages are returned instead (``bench list`` still
    lists everything else).
    """
    failures = []
    for plugin in plugins or []:
        try:
            _load_plugin(plugin)
        except ConfigError as e:
            if strict:
                raise
            failures.append(str(e))
    return failures


def _load_plugin(plugin: str) -> None:
    path = Path(plugin)
    if plugin.endswith(".py"):
        if not path.is_file():
            raise ConfigError(f"--plugin {plugin}: {'a folder, not a file' if path.is_dir() else 'no such file'}")
        name = f"bench_plugin_{path.stem}"
        if name in sys.modules:
            return
        spec = importlib.util.spec_from_file_location(name, path.resolve())
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        except BaseException as e:
            del sys.modules[name]  # a fixed file is imported afresh next time
            raise ConfigError(f"--plugin {plugin}: {_import_failure(e)}") from None
        return
    try:
        importlib.import_module(plugin)
    except ModuleNotFoundError as e:
        raise ConfigError(f"--plugin {plugin}: cannot import it ({e}); is it on PYTHONPATH?") from None
    except Exception as e:
        raise ConfigError(f"--plugin {plugin}: {_import_failure(e)}") from None


def _import_failure(e: BaseException) -> str:
    """One line on why a plugin's import failed (a syntax error with its line; our own errors as they are)."""
    if isinstance(e, ConfigError):
        return str(e)
    if isinstance(e, SyntaxError):
        return f"syntax error at line {e.lineno}: {e.msg}"
    if isinstance(e, (KeyboardInterrupt, SystemExit)):
        raise e
    return f"importing it raised {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")
