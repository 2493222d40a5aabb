"""Without the distributed extra the package works as before, and asking for a scheduler
fails at once with one line naming the extra (API and CLI)."""

from __future__ import annotations

import sys

import pytest
from _helpers.explain import invoke_explain

from isograph_gpu import ExplainConfig, explain_module
from isograph_gpu.errors import OptionalDependencyError


@pytest.fixture
def without_distributed(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails


def test_api_names_the_extra(ref_inputs, without_distributed, tmp_path):
    with pytest.raises(OptionalDependencyError, match=r"isograph-gpu\[distributed\]"):
        explain_module(ref_inputs["artifact"], ref_inputs["feature_table"],
                       ref_inputs["feature_meta"], config=ExplainConfig(scheduler="local:2"),
                       output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_one_line_error_names_the_extra(ref_inputs, without_distributed, tmp_path):
    result = invoke_explain(ref_inputs, tmp_path / "out", "--scheduler", "local:2")
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "pip install 'isograph-gpu[distributed]'" in lines[0], lines
    assert not (tmp_path / "out").exists()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_without_the_extra_one_process_still_runs(ref_inputs, without_distributed):
    res = explain_module(ref_inputs["artifact"], ref_inputs["feature_table"],
                         ref_inputs["feature_meta"], module_ids=["M001"],
                         config=ExplainConfig(device="cpu"))
    assert len(res["M001"].gene_driver_table) == 20
