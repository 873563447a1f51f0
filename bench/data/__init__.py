"""Data: image and feature caches, and getting the benchmark datasets into the CoOp layout (tables, fetch, arrange, check)."""
