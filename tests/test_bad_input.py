"""Bad input at the edge: every numeric key of every method's resolved config, and every file a run reads, fed wrong
values through the CLI — exit 2, one line naming the key or the file, no traceback, nothing written.

The keys come from the configs themselves, so a key added to ``BASE_CONFIG`` or to a method's defaults is covered
without editing this file.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.config import BASE_CONFIG, RANGES, Range, deep_merge, validate
from bench.registry import get_method, method_names

pytestmark = pytest.mark.e2e


def _numeric_keys() -> dict[str, tuple[str, float, Range]]:
    """dotted key → (a method that has it, its default, its declared range or the default rule), one method per key."""
    out: dict[str, tuple[str, float, Range]] = {}
    for m in method_names():
        cls = get_method(m)
        cfg = deep_merge(BASE_CONFIG, cls.default_config("base2novel", "dtd"))
        ranges = {**RANGES, **{f"method.{k}": r for k, r in cls.option_ranges.items()}}
        for section in ("train", "eval", "method"):
            for key, value in cfg[section].items():
                name = f"{section}.{key}"
                if isinstance(value, (int, float)) and not isinstance(value, bool) and name not in out:
                    out[name] = (m, value, ranges.get(name, Range(0)))
    return out


KEYS = _numeric_keys()


def _bad_values(value: float, rng: Range) -> list[str]:
    bad = ["abc", "-1", "[1, 2]"]  # a wrong type, a negative, a list where a number goes
    if rng.low > 0 or rng.open_low:
        bad.append("0" if isinstance(value, int) or rng.low <= 0 else str(rng.low / 2))
    if rng.high is not None:
        bad.append(str(int(rng.high) + 1 if isinstance(value, int) else rng.high * 2))
    return bad


CASES = [(key, bad) for key, (_, value, rng) in sorted(KEYS.items()) for bad in _bad_values(value, rng)]


def _run(tmp_path: Path, *args: str) -> tuple[int, str]:
    res = tmp_path / "res"
    r = CliRunner().invoke(app, ["run", "--suite", "toy", "--datasets", "toy_shapes", "--seeds", "1", "--results",
                                 str(res), *args])  # fmt: skip
    assert not res.exists() or not any(res.rglob("*")), f"{args}: files were written"
    return r.exit_code, r.output


@pytest.fixture(autouse=True)
def _no_toy_world(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_TOY_ROOT", str(tmp_path / "toy"))  # a case that got as far as generating data would show


def test_every_numeric_key_is_covered():
    assert len(KEYS) > 40 and {"train.min_steps", "train.lr", "method.n_ctx", "method.adapter_dim"} <= set(KEYS)


@pytest.mark.parametrize("key,bad", CASES, ids=[f"{k}={v}" for k, v in CASES])
def test_a_bad_value_of_any_key_is_one_line_naming_it(tmp_path, key, bad):
    method = KEYS[key][0]
    code, out = _run(tmp_path, "--method", method, "--cfg-options", f"{key}={bad}")
    assert code == 2, out
    lines = [line for line in out.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in out, out


@pytest.mark.parametrize("key", sorted(KEYS))
def test_nan_and_inf_are_refused_for_every_key(key):
    """(a YAML config can carry .nan / .inf; --cfg-options cannot spell them as numbers)"""
    method, _, _ = KEYS[key]
    cls = get_method(method)
    for bad in (math.nan, math.inf):
        cfg = deep_merge(BASE_CONFIG, cls.default_config("base2novel", "dtd"))
        section, name = key.split(".")
        cfg[section][name] = bad
        with pytest.raises(Exception, match=f"{key}=(nan|inf): must be a finite number"):
            validate(cfg, cls.option_ranges)


def _files(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "inputs"
    d.mkdir()
    (d / "empty").write_bytes(b"")
    (d / "truncated.json").write_text('{"cat": ["a cat", ')
    (d / "truncated.py").write_text("from bench.registry import register_method\n@register_method('x'\n")
    (d / "image.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    (d / "folder").mkdir()
    return {"missing": d / "nope", "folder": d / "folder", "empty": d / "empty", "truncated.json": d / "truncated.json",
            "truncated.py": d / "truncated.py", "image": d / "image.jpg"}  # fmt: skip


@pytest.mark.parametrize(
    "option,kinds",
    [
        ("plugin", ["missing", "folder", "truncated.py", "image"]),
        ("pretrained", ["missing", "folder", "empty", "truncated.json", "image"]),
        ("descriptions", ["missing", "folder", "empty", "truncated.json", "image"]),
    ],
)
def test_a_bad_file_is_one_line_naming_it(tmp_path, option, kinds):
    files = _files(tmp_path)
    for kind in kinds:
        path = files[kind]
        if option == "plugin":
            args = ["--method", "zeroshot", "--plugin", str(path)]
        elif option == "pretrained":
            args = ["--method", "zeroshot", "--pretrained", str(path)]
        else:
            args = ["--method", "coprompt", "--cfg-options", f"method.descriptions={path}"]
        code, out = _run(tmp_path, *args)
        assert code == 2 and "Traceback" not in out, f"{option} {kind}: {out}"
        assert str(path) in " ".join(out.split()).replace(" ", "") or str(path) in out.replace("\n", ""), out


def test_a_plugin_that_takes_a_builtin_name_is_told_to_rename(tmp_path):
    plugin = tmp_path / "clash.py"
    plugin.write_text(
        "from bench.model.method import Method\nfrom bench.registry import register_method\n\n"
        "@register_method('coop')\nclass Mine(Method):\n    pass\n"
    )
    code, out = _run(tmp_path, "--method", "zeroshot", "--plugin", str(plugin))
    assert code == 2 and "'coop' is taken" in out and "register_method('coop_v2')" in out, out
    r = CliRunner().invoke(app, ["list", "datasets", "--plugin", str(plugin)])  # `bench list` still lists the rest
    assert r.exit_code == 0 and "warning" in r.output and "toy_shapes" in r.output, r.output


@pytest.mark.parametrize("seeds,message", [("4294967296", "is not a seed"), ("-1", "is not a seed"),
                                           ("1,2,1", "1 is given twice")])  # fmt: skip
def test_seeds_out_of_range_or_repeated(tmp_path, seeds, message):
    res = tmp_path / "res"
    r = CliRunner().invoke(
        app, ["run", "--suite", "toy", "--method", "zeroshot", "--seeds", seeds, "--results", str(res)]
    )
    assert r.exit_code == 2 and message in r.output and not res.exists(), r.output


def test_twenty_thousand_seeds_plan_quickly(tmp_path):
    """Planning is linear: 20,000 seeds of one dataset plan in a dry run (was: no end in 5 minutes)."""
    seeds = ",".join(str(s) for s in range(20_000))
    r = CliRunner().invoke(app, ["run", "--suite", "toy", "--method", "zeroshot", "--datasets", "toy_shapes", "--seeds",
                                 seeds, "--results", str(tmp_path / "res"), "--dry-run"])  # fmt: skip
    assert r.exit_code == 0, r.output[-2000:]


def test_a_read_only_results_folder_is_one_line(tmp_path, monkeypatch):
    import os

    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path else real(p, mode))
    code, out = _run(tmp_path, "--method", "zeroshot")
    assert code == 2 and "is not writable" in out and str(tmp_path) in out.replace("\n", ""), out
