"""Shared CLI plumbing: turn expected errors into one stderr line and an exit code."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import TypeVar

import click

from ..errors import IsographGpuError

T = TypeVar("T")

#: exit codes: 1 = bad input / runtime failure, 2 = usage (click's own)
EXIT_FAILURE = 1


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"Warning: {message}\n"


def run_command(fn: Callable[[], T], quiet: bool = False) -> T:
    """Run ``fn``; expected failures print ``Error: <one line>`` and exit 1."""
    warnings.formatwarning = _format_warning
    if quiet:
        warnings.simplefilter("ignore")
    try:
        return fn()
    except (IsographGpuError, ValueError, FileNotFoundError, PermissionError, OSError,
            KeyError, ImportError) as exc:
        text = str(exc).strip().splitlines()
        msg = text[0] if text else type(exc).__name__
        if isinstance(exc, KeyError):
            msg = f"missing key {msg}"
        click.echo(f"Error: {msg}", err=True)
        sys.exit(EXIT_FAILURE)
    except KeyboardInterrupt:
        click.echo("Error: interrupted; no partial output was left behind", err=True)
        sys.exit(130)
