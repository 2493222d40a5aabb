"""Errors raised for bad input. Each message is one line that names the file, column or
id at fault; the CLI prints it as is (no traceback) and exits non-zero."""

from __future__ import annotations


class IsographGpuError(Exception):
    """Base class of the errors isograph-gpu raises on purpose."""


class InputError(IsographGpuError, ValueError):
    """An input table or argument is malformed (bad column, id, dtype, overlap...)."""


class MissingInputError(IsographGpuError, FileNotFoundError):
    """A required input file does not exist."""


class OutputError(IsographGpuError, OSError):
    """The output location cannot be written."""


class OptionalDependencyError(IsographGpuError, ImportError):
    """An optional extra (captum, cupy) is needed for the requested feature."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of ``exc``'s message (its type name when it has none): the
    detail a one-line error quotes from a library exception."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
