"""The load-or-read-once rule of explain_module (docs/input_formats.md): without figures a
feature table is read once in blocks while the statistics run, and loaded whole only when
it is one read block or is read once per module block (more than one) and fits. Both give
the same tables."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from isograph_gpu import ExplainConfig, explain_module, memory_model
from isograph_gpu.compute.plan import module_blocks

MODULES = ["M000", "M002"]


def _run(ref_inputs, out, **config):
    explain_module(ref_inputs["artifact"], ref_inputs["feature_table"],
                   ref_inputs["feature_meta"], module_ids=MODULES, output_dir=out,
                   config=ExplainConfig(device="cpu", progress=False, **config))
    manifest = json.loads((out / "module_explanation_manifest.json").read_text())
    tables = {m: pd.read_parquet(out / m / "high_vs_low_table.parquet") for m in MODULES}
    return manifest["feature_table_streamed"], tables


def test_read_once_unless_read_again(ref_inputs, tmp_path, monkeypatch):
    # the fixture table is tiny: one read block, so it is loaded under the real block size
    small, loaded_tables = _run(ref_inputs, tmp_path / "small")
    assert small is False
    monkeypatch.setattr(memory_model, "LOAD_BLOCK_BYTES", 0)  # as if larger than a block
    once, once_tables = _run(ref_inputs, tmp_path / "once")
    assert once is True  # one module block: read once, never held whole
    # a budget that fits at most one module's statistics per block: read twice, so loaded
    features = len(loaded_tables["M000"])
    budget = features * 192
    assert len(module_blocks(2, features, 0, budget)) == 2
    twice, twice_tables = _run(ref_inputs, tmp_path / "twice", memory_budget_bytes=budget)
    assert twice is False
    for m in MODULES:
        pd.testing.assert_frame_equal(once_tables[m], loaded_tables[m])
        pd.testing.assert_frame_equal(twice_tables[m], loaded_tables[m])


@pytest.mark.parametrize("stream", [True, False])
def test_explicit_choice_wins(ref_inputs, tmp_path, monkeypatch, stream):
    monkeypatch.setattr(memory_model, "LOAD_BLOCK_BYTES", 0)
    streamed, _ = _run(ref_inputs, tmp_path / "out", stream_features=stream)
    assert streamed is stream


def test_load_inputs_is_reported_once_when_nothing_is_loaded_later(ref_inputs, tmp_path,
                                                                    monkeypatch, capsys):
    """A table read once in blocks prints one 'load inputs' line (no second 0.00 s line
    for a load that did not happen); a table loaded after the block count is known
    prints the second line with that load's time."""
    def load_lines(out, **config):
        explain_module(ref_inputs["artifact"], ref_inputs["feature_table"],
                       ref_inputs["feature_meta"], module_ids=MODULES, output_dir=out,
                       config=ExplainConfig(device="cpu", progress=True, **config))
        return [ln.split(":")[0] for ln in capsys.readouterr().err.splitlines()
                if "load " in ln]

    # one read block: loaded whole, after the inputs were opened (its own line)
    assert load_lines(tmp_path / "small") == ["[isograph-gpu] load inputs",
                                              "[isograph-gpu] load feature table"]
    monkeypatch.setattr(memory_model, "LOAD_BLOCK_BYTES", 0)
    assert load_lines(tmp_path / "once") == ["[isograph-gpu] load inputs"]
