"""The suite's property tests draw the same examples on every run (conftest's "ci"
profile, the default): a new random draw can never turn an unrelated change red."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


def _draws() -> list[tuple[int, float]]:
    seen: list[tuple[int, float]] = []

    @settings(max_examples=25)
    @given(st.integers(), st.floats(allow_nan=False))
    def record(i, x):
        seen.append((i, x))

    record()
    return seen


def test_property_tests_draw_the_same_examples_every_run():
    if os.environ.get("HYPOTHESIS_PROFILE", "ci") != "ci":
        pytest.skip("HYPOTHESIS_PROFILE asks for new random draws")
    assert settings.get_current_profile_name() == "ci"
    current = settings()
    assert current.derandomize and current.database is None and current.deadline is None
    first, second = _draws(), _draws()
    assert len(first) >= 10 and first == second
