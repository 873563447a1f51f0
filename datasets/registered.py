"""Importing this module registers every dataset reader, the toy suite and the toy backbone (the registries'
``locations``); ``bench.datasets`` itself imports nothing, so the CLI's help never loads torch."""

from bench.datasets import readers  # noqa: F401  (registration side effects)
from bench.datasets.toy import register  # noqa: F401
