"""Results flow: the device-side driver order equals a plain numpy lexsort, tables held or
read back from their files are equal, and a failing table write leaves no output."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from _helpers.explain import explain_api
from conftest import EXPECTED, assert_table_matches
from hypothesis import given, settings
from hypothesis import strategies as st

from isograph_gpu import ExplainConfig
from isograph_gpu.io import output
from isograph_gpu.ops.segments import segment_argmax
from isograph_gpu.statistics import driver_order

CORE = ["gene_driver_table", "transcript_polarity_table", "high_vs_low_table"]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_driver_order_equals_numpy_lexsort(n_genes, k, seed):
    """Key |r| descending (NaN as 0), ties by gene_id ascending, module genes only."""
    rng = np.random.default_rng(seed)
    per_gene = rng.integers(1, 4, size=n_genes)
    segment = np.repeat(np.arange(n_genes), per_gene)
    rng.shuffle(segment)
    names = np.array([f"g{rng.integers(0, 10**6):06d}_{i}" for i in range(n_genes)])
    r = rng.choice([-0.5, 0.0, 0.5, 0.9, np.nan], size=(len(segment), k))  # many ties
    gene_in = rng.random((n_genes, k)) < 0.6
    key = np.where(np.isfinite(r), np.abs(r), 0.0)
    best = segment_argmax(torch.from_numpy(key), torch.from_numpy(segment), n_genes)
    got = driver_order(torch.from_numpy(key), best, torch.from_numpy(gene_in),
                       torch.from_numpy(np.argsort(names, kind="stable"))).numpy()
    for j in range(k):
        genes = np.flatnonzero(gene_in[:, j])
        rows = best.numpy()[genes, j]
        want = rows[np.lexsort((names[genes], -key[rows, j]))]
        np.testing.assert_array_equal(got[: len(genes), j], want)


def _run(ref_inputs, **kw):
    return explain_api(ref_inputs, module_ids=["M001", "M004"],
                       config=ExplainConfig(device="cpu", contrast_tails=20.0), **kw)


def test_tables_read_back_lazily_equal_the_fixtures(ref_inputs, tmp_path):
    held = _run(ref_inputs, output_dir=tmp_path / "held")
    lazy = _run(ref_inputs, output_dir=tmp_path / "lazy", return_tables=False)
    for module_id, res in lazy.items():
        assert res.table_shapes["high_vs_low_table"][0] == len(held[module_id].high_vs_low_table)
        for name in [*CORE, "tails_contrast_table"]:
            pd.testing.assert_frame_equal(getattr(res, name), getattr(held[module_id], name))
        for name in CORE:
            expected = pd.read_parquet(EXPECTED / "api_run" / module_id / f"{name}.parquet")
            assert_table_matches(expected, getattr(res, name))
    # a copy's tables can be replaced without touching the original
    twin = copy.copy(held["M001"])
    twin.gene_driver_table = twin.gene_driver_table.iloc[:0]
    assert len(held["M001"].gene_driver_table) > 0


def test_return_tables_false_needs_an_output_dir(ref_inputs):
    with pytest.raises(ValueError, match="output_dir"):
        _run(ref_inputs, return_tables=False)


def test_a_failed_table_write_leaves_no_output(ref_inputs, tmp_path, monkeypatch):
    real = output.write_parquet
    calls = []

    def failing(table, path):
        calls.append(path)
        if len(calls) == 5:  # a table of the second module
            raise OSError("disk full")
        real(table, path)

    monkeypatch.setattr(output, "write_parquet", failing)
    with pytest.raises(OSError, match="disk full"):
        _run(ref_inputs, output_dir=tmp_path / "out", return_tables=False)
    assert len(calls) >= 5
    assert list(tmp_path.iterdir()) == []  # neither the output nor the staging folder
