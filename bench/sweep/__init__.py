"""Sweeps: plan (method × protocol × dataset × seed × shots → RunSpecs), execute, and store one Record per evaluation.

The public entry point is :func:`run_sweep`; :class:`ResultsLayout` owns the paths of a results folder and
:class:`Record` the schema of a result file.
"""

from bench.sweep.layout import ResultsLayout
from bench.sweep.record import Record
from bench.sweep.run import SweepResult, run_sweep
from bench.sweep.suites import Suite, get_suite

__all__ = ["Record", "ResultsLayout", "Suite", "SweepResult", "get_suite", "run_sweep"]
