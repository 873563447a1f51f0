"""Dataset readers in the CoOp layout (``readers``) and the toy world (``toy``): plugins of the core.

They subclass :class:`bench.data.dataset.DatasetReader` and register by name; the core finds them through the registries
(:mod:`bench.registry`), which import ``bench.datasets.readers`` on the first dataset lookup and the toy world only on
demand. Importing this package imports nothing (``bench --help`` stays fast).
"""
