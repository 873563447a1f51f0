"""The methods, one module each; importing this registers them all."""

from bench.methods import clip_adapter, coop, maple, mma, rmadapter, tip_adapter, zeroshot  # noqa: F401  (registration side effects)
