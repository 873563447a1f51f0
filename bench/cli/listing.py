"""Introspection for `bench list methods`: trainable parameter counts on a given backbone (random weights)."""

from __future__ import annotations

from bench.config import BASE_CONFIG, deep_merge
from bench.errors import ConfigError
from bench.model.backbone import load_backbone
from bench.registry import get_method


def count_parameters(arch: str, names: list[str], n_cls: int = 100) -> list[tuple[str, str, bool, str]]:
    """(name, trainable parameter count, frozen image encoder?, first docstring line) per method.

    Counts use the base-to-novel defaults on ImageNet-free datasets; methods whose size depends on the data (e.g.
    Tip-Adapter-F's cache of shots × classes keys) say so instead of a number.
    """
    backbone = load_backbone(arch, "none")
    rows = []
    for name in names:
        cls = get_method(name)
        cfg = deep_merge(BASE_CONFIG, cls.default_config("base2novel", "dtd"))
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        size_note = cls.parameter_note
        if size_note:
            rows.append((name, size_note, cls.frozen_image_encoder, doc))
            continue
        try:
            count = f"{cls(backbone, cfg, n_cls=n_cls).num_trainable():,}"
        except (ConfigError, ValueError) as e:  # e.g. prompt depth 9 on a 6-block backbone
            count, doc = "n/a", f"{doc} (n/a on {arch}: {e})"
        rows.append((name, count, cls.frozen_image_encoder, doc))
    return rows
