"""Dataset readers (CoOp layout), split logic and the toy world.

Importing this package imports nothing heavy (``bench --help`` stays fast): the registries import the modules that
register datasets (``bench.datasets.registered``) when a name is first looked up.
"""
