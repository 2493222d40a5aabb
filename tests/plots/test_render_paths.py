"""Figures are written under <output_dir>/<module_id>/: a module id from a manifest or a
results dict that is not one folder name is refused before anything is drawn."""

from __future__ import annotations

import copy

import pytest
from _helpers.reference_run import load_fixture_results

from isograph_gpu.errors import InputError
from isograph_gpu.plots import render_explain_figures


@pytest.mark.parametrize("bad", ["../escape", "<absolute>", "", ".."])
def test_module_id_outside_the_output_dir_is_refused(tmp_path, bad):
    absolute = tmp_path / "absolute-escape"  # an absolute id that is not under out/
    bad = str(absolute) if bad == "<absolute>" else bad
    result = load_fixture_results(("M000",))["M000"]
    evil = copy.copy(result)
    evil.module_id = bad
    out = tmp_path / "figures"
    with pytest.raises(InputError, match="cannot be used as a folder name"):
        render_explain_figures({bad: evil}, out, ("png",), None, dpi=20, jobs=1)
    assert list(tmp_path.iterdir()) == []  # neither out/ nor the absolute target exists
