"""``explain-module --stream-features --plot``: the figures get only each module's
transcript columns of the streamed table (never the whole table), and draw the same
bytes as a run with the table loaded."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _helpers.explain import invoke_explain

import isograph_gpu.plots
from isograph_gpu.io.feature_tables import ParquetFeatureBlocks

USAGE_FIGURES = ("isoform_gradient", "driver_heatmap")  # the figures that read usage


def _explain(ref_inputs, out, reading):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = invoke_explain(ref_inputs, out, "--module-ids", "M000", "M002", "--plot",
                                "--output-format", "png", *reading)
    assert result.exit_code == 0, result.output
    return json.loads((out / "module_explanation_manifest.json").read_text())


@pytest.mark.slow
def test_streamed_plot_reads_only_the_module_transcripts(ref_inputs, tmp_path, monkeypatch):
    feature_table = Path(ref_inputs["feature_table"]).resolve()
    to_matrix, as_array = ParquetFeatureBlocks.to_matrix, ParquetFeatureBlocks.__array__

    def refuse_the_feature_table(original):
        def whole(self, *args, **kwargs):  # feature_scores is still read whole, as it should
            if Path(self._path).resolve() == feature_table:
                raise AssertionError("the streamed feature table was read whole")
            return original(self, *args, **kwargs)
        return whole

    usage_given = []
    render = isograph_gpu.plots.render_explain_figures

    def recording_render(results, *args, **kwargs):
        usage_given.append((results, kwargs["feature_usage"]))
        return render(results, *args, **kwargs)

    monkeypatch.setattr(ParquetFeatureBlocks, "to_matrix", refuse_the_feature_table(to_matrix))
    monkeypatch.setattr(ParquetFeatureBlocks, "__array__", refuse_the_feature_table(as_array))
    monkeypatch.setattr(isograph_gpu.plots, "render_explain_figures", recording_render)

    streamed = _explain(ref_inputs, tmp_path / "streamed",
                        ["--stream-features", "--memory-budget", "64K"])
    assert streamed["feature_table_streamed"] is True
    [(results, usage)] = usage_given

    # exactly the transcripts of the modules' polarity tables, in feature-table order,
    # with the values of the file (pandas reading it whole is the oracle)
    table = pd.read_parquet(ref_inputs["feature_table"]).set_index("sample_id")
    transcripts = {str(f) for r in results.values()
                   for f in r.transcript_polarity_table["feature_id"]}
    assert 0 < len(transcripts) < table.shape[1]
    assert list(usage.columns) == [c for c in table.columns if c in transcripts]
    expected = table.loc[list(usage.index), list(usage.columns)].to_numpy(dtype=np.float64)
    np.testing.assert_array_equal(usage.to_numpy(), expected)

    usage_given.clear()
    monkeypatch.undo()
    loaded = _explain(ref_inputs, tmp_path / "loaded", ["--load-features"])
    assert loaded["feature_table_streamed"] is False
    assert streamed["plot_files"] == loaded["plot_files"]
    drawn = [f for f in streamed["plot_files"] if any(k in f for k in USAGE_FIGURES)]
    assert {f.split("/")[0] for f in drawn} == {"M000", "M002"}
    for name in streamed["plot_files"]:
        assert ((tmp_path / "streamed" / name).read_bytes()
                == (tmp_path / "loaded" / name).read_bytes()), name
