"""Helpers for the method tests: build a registered method with config overrides on a given backbone."""

from __future__ import annotations

from typing import Any

import torch

from bench.config import BASE_CONFIG, deep_merge
from bench.model.backbone import Backbone
from bench.model.method import Method
from bench.registry import get_method

CLASSNAMES = ["cat", "dog", "sea_turtle", "red car", "tree"]


def config(name: str, protocol: str = "base2novel", dataset: str = "dtd", **method: Any) -> dict[str, Any]:
    cfg = deep_merge(BASE_CONFIG, get_method(name).default_config(protocol, dataset))
    return deep_merge(cfg, {"method": method})


def build(name: str, backbone: Backbone, n_cls: int = len(CLASSNAMES), tiny: bool = True, **method: Any) -> Method:
    """The method with its base-to-novel defaults (and its ``tiny_options`` for the backbone when ``tiny``), classes
    set."""
    opts = {**(get_method(name).tiny_options(backbone.depth) if tiny else {}), **method}
    torch.manual_seed(0)
    m = get_method(name)(backbone, config(name, **opts), n_cls=n_cls)
    m.set_classnames(CLASSNAMES[:n_cls])
    return m


def images(backbone: Backbone, n: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, backbone.image_size, backbone.image_size, generator=g)
