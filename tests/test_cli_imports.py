"""Every ``--help`` is fast because the CLI imports torch, open_clip, pandas and mmengine only when a command runs.

Checked by what a fresh interpreter has imported after printing each help page, not by a timing."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "open_clip", "torchvision", "pandas", "numpy", "mmengine", "matplotlib")

_SCRIPT = """
import json, sys
import typer.main
from typer.testing import CliRunner
from bench.cli import app

def commands(group, prefix):
    for name, cmd in group.commands.items():
        yield [*prefix, name]
        if hasattr(cmd, "commands"):
            yield from commands(cmd, [*prefix, name])

root = typer.main.get_command(app)
paths = [[], *commands(root, [])]
codes = {" ".join(p): CliRunner().invoke(app, [*p, "--help"]).exit_code for p in paths}
print(json.dumps({"codes": codes, "modules": sorted(sys.modules)}))
"""


def test_every_help_page_imports_no_heavy_library() -> None:
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    # the walk reached the sub-apps' commands too, and every help page printed
    assert {"run", "report", "data check", "toy zeroshot", "config show"} <= set(seen["codes"])
    assert set(seen["codes"].values()) == {0}, seen["codes"]
    loaded = sorted({m.split(".")[0] for m in seen["modules"]} & set(HEAVY))
    assert loaded == [], f"--help imported {loaded}; import them inside the command that needs them"
