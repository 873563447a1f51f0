"""Sweeps: plan (method × protocol × dataset × seed × shots → RunSpecs), execute, and store one Record per evaluation.

The public entry point is :func:`run_sweep`; :class:`ResultsLayout` owns the paths of a results folder and
:class:`Record` the schema of a result file; a :class:`Protocol` says what a sweep trains and evaluates.
"""

from bench.sweep.layout import ResultsLayout
from bench.sweep.protocols import Protocol, get_protocol
from bench.sweep.record import Record
from bench.sweep.run import SweepResult, run_sweep
from bench.sweep.suites import Suite, get_suite

__all__ = ["Protocol", "Record", "ResultsLayout", "Suite", "SweepResult", "get_protocol", "get_suite", "run_sweep"]
