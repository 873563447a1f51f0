"""Progress of long phases (encoding features, decoding images, writing toy data, timing a method).

The code that does the work says what it does; whoever runs it decides how that is shown. Low layers call
:func:`phase`; the CLI installs a reporter (rich spinners and bars) with :func:`reporting`. Without one — in a
notebook, a test or a pool worker — a phase shows nothing, so the core never imports the CLI or a console.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

Advance = Callable[[int], None]  # advance(n): n more units of the phase's total are done
Reporter = Callable[
    [str, "int | None"], contextlib.AbstractContextManager[Advance]
]  # (message, total or None) -> a shown phase

_reporter: Reporter | None = None


def no_progress(n: int = 1) -> None:
    """The ``advance`` of a phase nobody shows."""


@contextlib.contextmanager
def phase(message: str, total: int | None = None) -> Iterator[Advance]:
    """Show ``message`` while the block runs (a bar when ``total`` is known, else a spinner); the block calls the
    yielded ``advance(n)`` as units are done. Say what happens: "encoding 10 augmented passes of 48 images"."""
    if _reporter is None:
        yield no_progress
        return
    with _reporter(message, total) as advance:
        yield advance


@contextlib.contextmanager
def reporting(reporter: Reporter) -> Iterator[None]:
    """Show the phases started inside the block with ``reporter`` (the CLI's rich progress)."""
    global _reporter
    previous, _reporter = _reporter, reporter
    try:
        yield
    finally:
        _reporter = previous
