"""Shared fixtures: a tiny random-weight backbone and a clean results folder. CPU only, no network."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(2)
# `bench run` in tests runs in this process (monkeypatches and in-process progress apply); the pool that `auto`
# picks on a multi-core CPU is tested on its own
os.environ.setdefault("BENCH_EXECUTOR", "local")


@pytest.fixture(scope="session")
def tiny_backbone():
    from bench.model.backbone import load_backbone

    return load_backbone("bench-tiny", "none")


@pytest.fixture(scope="session")
def vitb16():
    """ViT-B/16 architecture with random weights (for parameter counts)."""
    from bench.model.backbone import load_backbone

    return load_backbone("ViT-B-16", "none")


# Seconds before a hung test fails (pytest-timeout), per kind: generous (a loaded machine runs several times slower),
# yet far below the suite's length, so a hang names its test instead of stalling CI.
TIMEOUTS = {"slow": 600, "e2e": 180, "unit": 60}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests not marked ``e2e`` (module-level ``pytestmark``) are ``unit``; each kind gets its timeout unless the test
    sets its own."""
    for item in items:
        if item.get_closest_marker("e2e") is None:
            item.add_marker(pytest.mark.unit)
        if item.get_closest_marker("timeout") is None:
            kind = next(k for k in TIMEOUTS if k == "unit" or item.get_closest_marker(k) is not None)
            item.add_marker(pytest.mark.timeout(TIMEOUTS[kind]))
