"""Interrupts (SIGINT, SIGTERM) held back through the steps that must not be cut short,
and what each output dir holds when a run is interrupted.

The command line's signal handlers call :func:`interrupt` instead of raising: inside
:func:`interrupts_deferred` (the swap of an output dir and the removal of the folder it
replaced, or of a failed run's staging folder) the interrupt is raised when the block
ends, so a signal can never leave a staging folder behind or a swap half reported.
Staged outputs record their state (:func:`record_output`), so the one line printed for an
interrupt says truthfully, for each output dir, whether it holds the earlier output, the
complete new one, or was not created (:func:`describe_outputs`).

No third-party import: the CLI loads this module before anything heavy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: output dir states :func:`record_output` takes
UNCHANGED, ABSENT, COMMITTED = "unchanged", "absent", "committed"

_deferral = {"depth": 0}
_pending: list[Callable[[], BaseException]] = []
#: interrupts raised so far: one raised while Python runs a weakref callback or a
#: finaliser is printed and swallowed there, and the run would go on as if never
#: interrupted (:func:`raise_swallowed_interrupt`)
_raised: list[Callable[[], BaseException]] = []
_outputs: dict[str, str] = {}


def interrupt(make: Callable[[], BaseException]) -> None:
    """Raise ``make()`` now, or, inside :func:`interrupts_deferred` on the main thread,
    when that block ends. For signal handlers."""
    if _deferral["depth"] and threading.current_thread() is threading.main_thread():
        if not _pending:
            _pending.append(make)
        return
    _raised.append(make)
    raise make()


def interrupt_raised() -> BaseException | None:
    """The last interrupt raised since :func:`reset_outputs` (a new instance), or None. A
    native library calling back into Python may wrap it in its own exception: polars (a
    Rust extension) turns one raised in its callback into ``pyo3_runtime.PanicException``,
    a ``BaseException`` that is neither ``KeyboardInterrupt`` nor ``Exception``; the
    command line asks this to report it as the interrupt it was."""
    return _raised[-1]() if _raised else None


def raise_swallowed_interrupt() -> None:
    """Raise again an interrupt that was raised and never ended the run (Python swallows an
    exception raised inside a weakref callback or a finaliser): called where a run that
    completed its work is about to commit, so an interrupted run never commits."""
    if _raised:
        raise _raised[-1]()


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold :func:`interrupt` until the block ends (then the first one held is raised).
    Nested blocks hold until the outermost ends. Only the main thread's interrupts are
    held (signal handlers run there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _deferral["depth"] += 1
    try:
        yield
    finally:
        _deferral["depth"] -= 1
        if not _deferral["depth"] and _pending:
            raise _pending.pop()()


def record_output(destination: object, state: str) -> None:
    """Note that output dir ``destination`` now holds the earlier output (``UNCHANGED``),
    nothing (``ABSENT``) or the complete new output (``COMMITTED``)."""
    _outputs[str(destination)] = state


def note_output(destination: object) -> None:
    """Record output dir ``destination`` (a path, resolved as the staging resolves it)
    before a run writes it: it holds the earlier output, or nothing yet."""
    import os

    path = os.path.realpath(os.fspath(destination))  # type: ignore[call-overload]
    record_output(path, UNCHANGED if os.path.lexists(path) else ABSENT)


def reset_outputs() -> None:
    """Forget the recorded output dirs (a new command starts)."""
    _outputs.clear()
    _pending.clear()
    _raised.clear()


def describe_outputs() -> str:
    """What each recorded output dir holds, as one clause ('' when none was recorded)."""
    words = {UNCHANGED: "holds the earlier output, unchanged", ABSENT: "was not created",
             COMMITTED: "holds the complete new output (the run had finished writing it)"}
    return "; ".join(f"{path} {words[state]}" for path, state in _outputs.items())
