"""adaptbench: few-shot adaptation benchmarks for CLIP-like models.

The public surface: the ``bench`` CLI, :class:`bench.model.method.Method` (subclass it to add a method) and the registries in
:mod:`bench.registry`.
"""

__version__ = "0.1.0"
