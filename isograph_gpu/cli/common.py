"""Shared CLI plumbing: every failure becomes one line on stderr and a non-zero exit.

- Expected failures (bad input, a missing optional package, I/O: every
  :class:`~isograph_gpu.errors.IsographGpuError` and every ``OSError``) print
  ``Error: <one line naming the file, column, id or path>`` and exit 1.
- Anything else is a bug: one line says so, names the exception, and where its
  traceback was saved (a file in the temp dir); ``--debug`` prints the traceback instead.
- SIGINT and SIGTERM clean up the same way (staging removed, plot workers stopped) and
  exit 130 / 143; one that arrives while an output dir is being swapped waits until the
  swap and its clean-up are done (:mod:`isograph_gpu.interrupts`), and the line says what
  each output dir holds: the earlier output, the complete new one, or nothing.
"""

from __future__ import annotations

import gc
import importlib
import os
import signal
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable, MutableMapping, Sequence
from types import ModuleType
from typing import NoReturn, TypeVar

import click

from ..errors import IsographGpuError, first_line
from ..interrupts import (
    describe_outputs,
    interrupt,
    interrupt_raised,
    note_output,
    reset_outputs,
)

T = TypeVar("T")

#: exit codes: 1 = bad input / runtime failure, 2 = usage (click's own), 128 + signal
EXIT_FAILURE = 1
#: set by ``isograph-gpu --debug`` (anywhere on the command line): print tracebacks
DEBUG = {"enabled": False}
#: set by the command group when the process itself is the entry point (the console script
#: or ``python -m isograph_gpu``, not a caller's ``main([...])``): only then may the CLI
#: change the process's garbage collector (:func:`import_long_lived`)
PROCESS_ENTRY = {"enabled": False}


#: OpenMP settings the command line starts with unless the environment sets them: idle
#: OpenMP threads sleep instead of spinning, so two runs (or a run and its read-ahead
#: thread, or other jobs) on a shared host do not burn each other's cores
#: (bench/results/threads_cpu.json)
THREAD_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}


def set_thread_defaults(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Put each of :data:`THREAD_DEFAULTS` the environment does not set (even to an empty
    value) into ``environ`` (default ``os.environ``); returns those set. Must run before
    torch is imported: OpenMP reads its settings when the library loads."""
    environ = os.environ if environ is None else environ
    applied = {k: v for k, v in THREAD_DEFAULTS.items() if k not in environ}
    environ.update(applied)
    return applied


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that cleanup runs as for Ctrl-C."""


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"Warning: {message}\n"


#: the process whose command installed the handlers: a worker forked from it inherits
#: them (and a signal the parent had caught but not yet handled), and must not unwind the
#: parent's stack (its cleanup is the parent's job)
_HANDLER_PID = {"pid": None}


def _raise_terminated(signum, frame) -> None:
    if os.getpid() == _HANDLER_PID["pid"]:
        interrupt(Terminated)  # raised now, or once a commit in progress is complete


def _raise_interrupted(signum, frame) -> None:
    if os.getpid() == _HANDLER_PID["pid"]:
        interrupt(KeyboardInterrupt)


def interrupted_line(what: str) -> str:
    """The one line for an interrupt: what each output dir of the run now holds."""
    outputs = describe_outputs()
    return (f"Error: {what}; " + (f"{outputs}; " if outputs else "")
            + "no partial output was left behind")


def expected_error_line(exc: BaseException) -> str:
    """The one line shown for an expected failure."""
    if isinstance(exc, OSError) and not isinstance(exc, IsographGpuError) and exc.strerror:
        names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
        return f"{exc.strerror}: {' -> '.join(names)}" if names else exc.strerror
    return first_line(exc)


def save_traceback(exc: BaseException) -> str:
    """Write ``exc``'s traceback to a new file in the temp dir; returns its path."""
    with tempfile.NamedTemporaryFile("w", prefix="isograph-gpu-traceback-", suffix=".txt",
                                     delete=False) as fh:
        fh.write(" ".join(sys.argv) + "\n\n")
        traceback.print_exception(exc, file=fh)
        return fh.name


def report_bug(exc: BaseException) -> None:
    """One line for an unexpected exception (or the traceback with ``--debug``)."""
    if DEBUG["enabled"]:
        traceback.print_exception(exc, file=sys.stderr)
        return
    summary = expected_error_line(exc).replace("\n", " ")
    try:
        where = f"traceback saved to {save_traceback(exc)}"
    except OSError:
        where = "the traceback could not be saved"
    click.echo(f"Error: internal error (a bug in isograph-gpu): {type(exc).__name__}: "
               f"{summary}; {where}; rerun with --debug to print it", err=True)


def import_long_lived(name: str) -> ModuleType:
    """Import module ``name`` (and what it imports: torch, pandas, polars...) with the
    cyclic garbage collector paused, then move every object alive to the collector's
    permanent generation (:func:`gc.freeze`). Module objects live as long as the process;
    torch's import alone creates ~400,000 of them, and without this every collection
    during the import and the run walks them again (~0.3 s CPU at start-up).

    Only when the process itself is the entry point (:data:`PROCESS_ENTRY`): a caller's
    in-process ``main([...])`` (a notebook, a test) gets a plain import and keeps its
    collector as it was."""
    if name in sys.modules or not PROCESS_ENTRY["enabled"]:
        return importlib.import_module(name)
    gc.collect()  # freeze no garbage that exists now (cheap: little is loaded yet)
    enabled = gc.isenabled()
    gc.disable()
    try:
        return importlib.import_module(name)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _exit_interrupted(exc: BaseException) -> NoReturn:
    """Print the interrupt's line and exit 143 (SIGTERM) or 130 (Ctrl-C)."""
    if isinstance(exc, Terminated):
        click.echo(interrupted_line("terminated (SIGTERM)"), err=True)
        sys.exit(128 + signal.SIGTERM)
    click.echo(interrupted_line("interrupted"), err=True)
    sys.exit(130)


def run_command(fn: Callable[[], T], quiet: bool = False,
                outputs: Sequence[object] = ()) -> T:
    """Run ``fn``; every failure prints one ``Error:`` line and exits non-zero.
    ``outputs``: the output dirs the command writes, recorded before the signal handlers
    are installed, so an interrupt at any point says what each of them holds."""
    warnings.formatwarning = _format_warning
    if quiet:
        warnings.simplefilter("ignore")
    reset_outputs()
    for destination in outputs:
        note_output(destination)
    _HANDLER_PID["pid"] = os.getpid()
    previous = previous_int = None
    try:  # the handlers are installed inside: a signal right after is reported as well
        try:
            previous = signal.signal(signal.SIGTERM, _raise_terminated)
            previous_int = signal.getsignal(signal.SIGINT)
            if previous_int is signal.default_int_handler:  # Ctrl-C: held through a commit
                signal.signal(signal.SIGINT, _raise_interrupted)
        except ValueError:  # not the main thread: leave SIGTERM alone
            previous = previous_int = None
        return fn()
    except (IsographGpuError, OSError) as exc:
        if DEBUG["enabled"]:
            traceback.print_exception(exc, file=sys.stderr)
        click.echo(f"Error: {expected_error_line(exc)}", err=True)
        sys.exit(EXIT_FAILURE)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
        _exit_interrupted(exc)
    except MemoryError as exc:
        click.echo("Error: out of memory; lower --memory-budget or use --stream-features"
                   + (f" ({exc})" if str(exc) else ""), err=True)
        sys.exit(EXIT_FAILURE)
    except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
        raise  # usage errors: click prints them (exit 2)
    except Exception as exc:  # a bug: say so, keep the traceback
        report_bug(exc)
        sys.exit(EXIT_FAILURE)
    except (SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # e.g. a Rust library's panic (pyo3 PanicException)
        interrupted = interrupt_raised()
        if interrupted is not None:  # it wrapped our interrupt, raised in its callback
            _exit_interrupted(interrupted)
        report_bug(exc)
        sys.exit(EXIT_FAILURE)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if previous_int is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous_int)
        reset_outputs()  # the command's interrupts and outputs end with it
