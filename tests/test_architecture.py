"""The layering of the code and the promise "a method is one file": imports point one way, and a method written in a
file outside the repository runs end to end through ``--plugin`` without touching the harness."""

from __future__ import annotations

import ast
import graphlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app

ROOT = Path(__file__).resolve().parents[1]

# Lower layers never import higher ones. The core is every layer below the CLI.
LAYERS = {"base": 0, "data": 1, "model": 2, "sweep": 3, "report": 4, "cli": 5}
BASE_MODULES = {
    "bench",
    "bench.errors",
    "bench.io",
    "bench.precision",
    "bench.progress",
    "bench.registry",
    "bench.config",
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "methods":
        parts[0] = "bench.methods"
    elif parts[0] == "datasets":
        parts[0] = "bench.datasets"
    name = ".".join(parts)
    return name.removesuffix(".__init__")


# What registers itself with the core (methods, dataset readers, the toy world): above it, found through the registry.
PLUGINS = ("bench.methods", "bench.datasets")


def _layer(module: str) -> int | None:
    if module in BASE_MODULES:
        return LAYERS["base"]
    if module.startswith(PLUGINS):
        return None
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 and parts[0] == "bench" else None


def _runtime_imports(path: Path, type_only: bool = False) -> set[str]:
    """Modules imported anywhere in the file (functions included), except under ``if TYPE_CHECKING:`` unless
    ``type_only`` (those too)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if not type_only and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # `from bench.sweep import plan`
    return {m for m in found if m == "bench" or m.startswith("bench.")}


def _known(module: str) -> str:
    """``bench.sweep.plan.RunSpec`` → the longest prefix that is a module or package of ours."""
    parts = module.split(".")
    while parts:
        name = ".".join(parts)
        if name in _MODULES:
            return name
        parts.pop()
    return module


_FILES = sorted([*ROOT.joinpath("bench").rglob("*.py"), *ROOT.joinpath("methods").rglob("*.py"),
                 *ROOT.joinpath("datasets").rglob("*.py")])  # fmt: skip
_MODULES = {_module_name(p) for p in _FILES}


def test_the_tree_has_the_layers() -> None:
    for package in ("cli", "sweep", "model", "data", "report"):
        assert (ROOT / "bench" / package / "__init__.py").is_file(), package


@pytest.mark.parametrize("path", [p for p in _FILES if p.parts[len(ROOT.parts)] == "bench"], ids=lambda p: p.name)
def test_core_imports_point_down(path: Path) -> None:
    module = _module_name(path)
    own = _layer(module)
    assert own is not None, module
    for imported in map(_known, _runtime_imports(path)):
        if imported == "bench":
            continue
        assert not imported.startswith("bench.methods"), f"{module} imports a method ({imported})"
        if imported.startswith("bench.datasets"):
            assert own == LAYERS["cli"], f"{module} imports a dataset module ({imported}); look it up in the registry"
            continue  # the CLI mounts `bench toy`
        layer = _layer(imported)
        assert layer is not None and layer <= own, f"{module} (layer {own}) imports {imported} (layer {layer})"


def test_no_import_circles_not_even_type_only() -> None:
    """A circle, even through ``if TYPE_CHECKING:`` imports, is a type in the wrong module (or two modules that are one)."""
    graph = {_module_name(p): {_known(m) for m in _runtime_imports(p, type_only=True)} - {_module_name(p)}
             for p in _FILES}  # fmt: skip
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as e:
        pytest.fail(f"import circle: {' -> '.join(e.args[1])}")


CORE = sorted(m for m in _MODULES if not m.startswith((*PLUGINS, "bench.cli")))
# Imports each module named in argv in a forked child of one interpreter that has loaded no module of ours (only the
# heavy libraries, once, so that ~60 imports take seconds) and prints what of the plugins the import loaded.
_PROBE = """
import importlib, json, os, sys, traceback
for lib in ("torch", "open_clip", "numpy", "pandas", "scipy.stats", "matplotlib", "mmengine", "typer", "rich"):
    importlib.import_module(lib)
assert not any(m == "bench" or m.startswith("bench.") for m in sys.modules)
for name in sys.argv[1:]:
    if os.fork() == 0:
        try:
            importlib.import_module(name)
            loaded = sorted(m for m in sys.modules if m.startswith(("bench.methods", "bench.datasets")))
        except BaseException:
            loaded = ["import failed: " + traceback.format_exc()]
        print(json.dumps([name, loaded]), flush=True)
        os._exit(0)
    os.wait()
"""


@pytest.mark.slow
def test_importing_a_core_module_loads_no_method_and_no_dataset_module() -> None:
    """The core finds methods, readers and the toy world through the registry, so importing it loads none of them."""
    out = subprocess.run([sys.executable, "-c", _PROBE, *CORE], capture_output=True, text=True, cwd=ROOT, check=True)
    seen = dict(json.loads(line) for line in out.stdout.splitlines())
    assert sorted(seen) == CORE and len(CORE) > 40, out.stderr
    loaded = {name: modules for name, modules in seen.items() if modules}
    assert loaded == {}, f"importing these core modules loaded plugins: {loaded}"


_LOOKUPS = """
import sys
from bench.registry import dataset_names, get_dataset
from bench.sweep.suites import get_suite, suite_names

toy = lambda: sorted(m for m in sys.modules if m.startswith("bench.datasets.toy"))
get_dataset("dtd"), get_suite("real")
assert toy() == [], toy()
assert {"toy_colors", "dtd"} <= set(dataset_names()) and suite_names() == ["real", "toy"]
"""


@pytest.mark.slow
def test_the_toy_world_registers_on_demand_only() -> None:
    """Real-benchmark lookups leave the toy world (torch, open_clip, its generator) unimported; listings show it."""
    subprocess.run([sys.executable, "-c", _LOOKUPS], cwd=ROOT, check=True)


@pytest.mark.parametrize("path", sorted(ROOT.joinpath("methods").glob("*.py")), ids=lambda p: p.name)
def test_methods_use_only_the_model_layer(path: Path) -> None:
    for imported in map(_known, _runtime_imports(path)):
        layer = _layer(imported)
        ok = imported.startswith("bench.methods") or (layer is not None and layer <= LAYERS["model"])
        assert ok, f"methods/{path.name} imports {imported}: a method may use the model layer and below only"


PLUGIN = '''
    """A method from outside the repository: a learnable temperature on zero-shot logits."""

    from typing import Any, ClassVar

    import torch
    from torch import Tensor

    from bench.model.method import Method
    from bench.registry import register_method


    @register_method("plugin_temperature")
    class PluginTemperature(Method):
        """Zero-shot CLIP whose logits are scaled by a learnable exp(t) (one parameter)."""

        frozen_image_encoder: ClassVar[bool] = True

        @classmethod
        def default_config(cls, protocol: str, dataset: str) -> dict[str, Any]:
            return {"train": {"epochs": 3, "lr": 0.5}}

        def __init__(self, backbone, cfg: dict[str, Any], n_cls: int = 0) -> None:
            super().__init__(backbone, cfg, n_cls)
            self.t = torch.nn.Parameter(torch.zeros(()))

        def logits_from_features(self, image_features: Tensor) -> Tensor:
            return super().logits_from_features(image_features) * self.t.exp()
'''


@pytest.mark.slow
@pytest.mark.e2e
def test_a_method_in_a_plugin_file_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = tmp_path / "my_method.py"
    plugin.write_text(textwrap.dedent(PLUGIN))
    monkeypatch.setenv("BENCH_TOY_ROOT", str(tmp_path / "toy"))
    results = tmp_path / "res"
    args = ["run", "--plugin", str(plugin), "--method", "plugin_temperature,zeroshot", "--suite", "toy",
            "--datasets", "toy_counts", "--seeds", "1", "--results", str(results)]  # fmt: skip
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    recs = {(x["method"], x["subset"]): x for x in map(json.loads, map(Path.read_text, results.rglob("*.json")))
            if "accuracy" in x}  # fmt: skip
    mine = recs[("plugin_temperature", "base")]
    assert mine["trainable_params"] == 1 and mine["train_steps"] > 0 and mine["final_losses"]["ce"] > 0
    # a temperature never changes the argmax: the plugin's accuracy equals zero-shot's on every split
    for subset in ("base", "novel"):
        assert recs[("plugin_temperature", subset)]["accuracy"] == recs[("zeroshot", subset)]["accuracy"]
    r = CliRunner().invoke(app, ["report", "--results", str(results), "--format", "csv"])
    assert r.exit_code == 0 and "plugin_temperature" in r.output
    from bench.registry import get_method

    assert get_method("plugin_temperature").name == "plugin_temperature"


def test_a_plugin_that_does_not_exist_is_one_clear_error(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["run", "--plugin", str(tmp_path / "nope.py"), "--suite", "toy", "--dry-run"])
    assert r.exit_code == 2 and "no such file" in r.output
    r = CliRunner().invoke(app, ["run", "--plugin", "no_such_module_xyz", "--suite", "toy", "--dry-run"])
    assert r.exit_code == 2 and "cannot import" in r.output
