"""The toy world: procedural images, a small CLIP pretrained on them, and datasets in the CoOp layout.

Public API: :func:`ensure_toy_data` (write the datasets into a cache folder, return the data root), ``TOY_SUITE``
(which datasets play which protocol role), :func:`checkpoint_path` / :func:`load_toy_state_dict` (the shipped
``toy-vit`` weights as an open_clip state dict) and ``bench.datasets.toy.cli.toy_app`` (``bench toy ...``).
"""

from bench.datasets.toy.data import READERS, SPECS, TOY_SUITE, ensure_toy_data
from bench.datasets.toy.pretrain import checkpoint_path, load_toy_state_dict

__all__ = ["READERS", "SPECS", "TOY_SUITE", "checkpoint_path", "ensure_toy_data", "load_toy_state_dict"]
