"""Dataset readers (CoOp layout), split logic and the toy world; importing this registers every dataset."""

from bench.datasets import readers, toy  # noqa: F401  (registration side effects)
