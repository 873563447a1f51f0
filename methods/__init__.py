"""The methods, one module each; importing this registers them all."""

from bench.methods import coop, zeroshot  # noqa: F401  (registration side effects)
