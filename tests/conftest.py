"""Shared fixtures: paths of the isograph 0.1.5 reference data and table comparison at
the DESIGN.md tolerances; the hypothesis profiles."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _helpers import paths
from hypothesis import settings

#: Property tests are deterministic unless asked otherwise. "ci" (the default) draws the
#: same examples on every run (derandomized by each test's own source, no example
#: database, no deadline on a loaded host), so a result changes only with the code it
#: tests, never from a new random draw on an unrelated change. "explore"
#: (HYPOTHESIS_PROFILE=explore) draws new random examples to hunt for bugs: a
#: counterexample found is a bug to fix, and is then kept as an @example.
HYPOTHESIS_PROFILES = {
    "ci": settings(derandomize=True, database=None, deadline=None, print_blob=True),
    "explore": settings(deadline=None),
}
for _name, _profile in HYPOTHESIS_PROFILES.items():
    settings.register_profile(_name, _profile)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

DATA = paths.DATA
REF = DATA / "isograph-0.1.5"
INPUTS = REF / "inputs"
EXPECTED = REF / "expected"

#: DESIGN.md: r, means, deltas, se ... within 1e-6 absolute; t 1e-6 relative; p/q 1e-6 in
#: log10 (both below 1e-290 count as equal); integers and booleans exactly
ABS_TOL = 1e-6
LOG10_TOL = 1e-6
REL_COLUMNS = {"tstat"}
LOG_COLUMNS = {"pvalue", "qvalue"}


def assert_column_close(name: str, expected: pd.Series, got: pd.Series) -> None:
    """Compare one column at the DESIGN.md tolerance for its kind."""
    if expected.dtype.kind in "iub" or str(expected.dtype) in ("boolean", "Int64"):
        e = expected.astype("object").where(expected.notna(), None).tolist()
        g = got.astype("object").where(got.notna(), None).tolist()
        assert e == g, f"column {name}: integers/booleans differ"
        return
    if expected.dtype.kind != "f":
        assert expected.astype(str).tolist() == got.astype(str).tolist(), f"column {name} differs"
        return
    e = expected.to_numpy(dtype=float)
    g = got.to_numpy(dtype=float)
    np.testing.assert_array_equal(np.isnan(e), np.isnan(g), err_msg=f"NaN pattern of {name}")
    fin = np.isfinite(e) & np.isfinite(g)
    np.testing.assert_array_equal(e[~fin & ~np.isnan(e)], g[~fin & ~np.isnan(g)],
                                  err_msg=f"infinities of {name}")
    e, g = e[fin], g[fin]
    if name in LOG_COLUMNS:
        tiny = (e < 1e-290) & (g < 1e-290)
        e, g = e[~tiny], g[~tiny]
        assert np.all((e > 0) == (g > 0)), f"column {name}: zero vs nonzero p"
        pos = e > 0
        d = np.abs(np.log10(e[pos]) - np.log10(g[pos]))
        assert d.size == 0 or d.max() <= LOG10_TOL, f"column {name}: max |dlog10| {d.max():.2e}"
    elif name in REL_COLUMNS:
        d = np.abs(e - g) / np.maximum(np.abs(e), 1e-300)
        assert d.size == 0 or d.max() <= ABS_TOL, f"column {name}: max rel diff {d.max():.2e}"
    else:
        d = np.abs(e - g)
        assert d.size == 0 or d.max() <= ABS_TOL, f"column {name}: max |diff| {d.max():.2e}"


def assert_table_matches(expected: pd.DataFrame, got: pd.DataFrame,
                         columns: list[str] | None = None) -> None:
    """Same columns in the same order (or the given subset), same dtypes, same rows, close
    values. The dtypes are checked because the value comparison alone cannot see them:
    integer columns are compared as Python lists, where ``[5] == [5.0]``."""
    cols = list(expected.columns) if columns is None else columns
    if columns is None:
        assert list(got.columns[: len(cols)]) == cols, (list(got.columns), cols)
    dtypes = {c: (str(expected[c].dtype), str(got[c].dtype)) for c in cols}
    assert all(e == g for e, g in dtypes.values()), \
        f"dtypes differ (expected, got): { {c: d for c, d in dtypes.items() if d[0] != d[1]} }"
    assert len(expected) == len(got), f"{len(got)} rows, expected {len(expected)}"
    for c in cols:
        assert_column_close(c, expected[c].reset_index(drop=True), got[c].reset_index(drop=True))


@pytest.fixture(scope="session")
def ref_inputs() -> dict[str, Path]:
    return {
        "artifact": INPUTS / "artifact",
        "artifact_with_nans": INPUTS / "artifact_with_nans",
        "feature_table": INPUTS / "feature_table.parquet",
        "feature_meta": INPUTS / "feature_meta.parquet",
        "module_score_table": INPUTS / "module_score_table.parquet",
        "annotation": REF / "structure" / "transcript_structure_annotations.tsv",
    }


#: the slowest tests (each tens of seconds on a loaded 2-core machine: cluster starts,
#: killed subprocess runs, full renders in every format, 20-module reports), marked
#: ``slow`` here in one place: the default run (pyproject's ``addopts = -m 'not slow'``)
#: leaves them out, CI runs them after it (``.ci/run``: ``python -m pytest -q -m slow``)
SLOW_TESTS = (
    "tests/distributed/test_distributed.py::",
    "tests/integrity/test_kill_cleanup.py::test_sigkill_during_plots",
    "tests/integrity/test_kill_cleanup.py::test_sigterm_during_plots",
    "tests/plots/test_plots_long_ids.py::test_no_text_overlaps_with_ensembl_ids[driver",
    "tests/plots/test_plots_long_ids.py::test_no_text_overlaps_with_ensembl_ids[isoform",
    "tests/plots/test_plots_long_ids.py::test_no_text_overlaps_with_ensembl_ids[high",
    "tests/plots/test_plots_long_ids.py::test_no_text_overlaps_with_ensembl_ids[transcript",
    "tests/plots/test_plots_long_ids.py::test_no_text_overlaps_with_ensembl_ids[switch",
    "tests/plots/test_plots_cli.py::test_full_render_is_deterministic_for_vector_formats",
    "tests/plots/test_plots_cli.py::test_plot_command_renders_and_updates_manifest",
    "tests/plots/test_plots_cli.py::test_explain_plot_and_plot_command_list_the_same_plot_files",
    "tests/plots/test_plots_cli.py::test_plot_command_takes_the_inputs_from_the_manifest",
)


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if item.nodeid.startswith(SLOW_TESTS):
            item.add_marker(pytest.mark.slow)
