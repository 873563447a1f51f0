"""Shared fixtures: a tiny random-weight backbone and a clean results folder. CPU only, no network."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_backbone():
    from bench.model.backbone import load_backbone

    return load_backbone("bench-tiny", "none")


@pytest.fixture(scope="session")
def vitb16():
    """ViT-B/16 architecture with random weights (for parameter counts)."""
    from bench.model.backbone import load_backbone

    return load_backbone("ViT-B-16", "none")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests not marked ``e2e`` (module-level ``pytestmark``) are ``unit``."""
    for item in items:
        if item.get_closest_marker("e2e") is None:
            item.add_marker(pytest.mark.unit)
