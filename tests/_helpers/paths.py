"""Where the suite's files are, from any folder under tests/: the repository root, the
tests folder and its fixtures (tests/data)."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
DATA = TESTS / "data"
