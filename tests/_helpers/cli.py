"""What every failing command must show: one 'Error:' line naming the culprit, exit code
1, and no output (nor a staging folder) left behind."""

from __future__ import annotations

from pathlib import Path


def assert_one_line_error(result, *needles: str) -> None:
    """A click ``Result`` that failed with exit code 1 and one line, ``Error: ...``,
    holding every needle."""
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def assert_no_output(out: Path) -> None:
    """Neither the output dir nor a staging folder of it exists."""
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.isograph-gpu-staging-*"))
