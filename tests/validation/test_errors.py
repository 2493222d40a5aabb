"""errors.first_line: the one helper that turns a library exception into the detail of a
one-line error message."""

from __future__ import annotations

import pytest

from isograph_gpu.cli.common import expected_error_line
from isograph_gpu.errors import InputError, first_line


@pytest.mark.parametrize(("exc", "line"), [
    (ValueError("\n  bad header in x.tsv\nline 2 of the traceback-ish detail\n"),
     "bad header in x.tsv"),
    (KeyError(), "KeyError"),
    (RuntimeError("   "), "RuntimeError"),
    (InputError("one line"), "one line"),
])
def test_first_line(exc, line):
    assert first_line(exc) == line
    assert expected_error_line(exc) == line


def test_expected_error_line_of_an_os_error_names_the_files():
    exc = FileNotFoundError(2, "No such file or directory", "a.parquet")
    assert expected_error_line(exc) == "No such file or directory: a.parquet"
