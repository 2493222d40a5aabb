"""Module blocks (compute.plan.module_blocks): a block's statistics fit the memory budget
with every contrast split counted; a tails contrast (a second split, 8 more Welch arrays
per feature and module) makes blocks smaller, not the budget larger."""

from __future__ import annotations

import pandas as pd
from _helpers.explain import explain_api

from isograph_gpu import ExplainConfig, pipeline
from isograph_gpu.compute.plan import module_blocks
from isograph_gpu.memory_model import (
    STATISTICS_BYTES_PER_FEATURE_MODULE,
    STATISTICS_BYTES_PER_SCORE_ROW_MODULE,
    WELCH_BYTES_PER_FEATURE_MODULE,
)


def test_blocks_hold_what_the_budget_allows_per_split():
    f, r, k = 1000, 300, 10
    one = f * STATISTICS_BYTES_PER_FEATURE_MODULE + r * STATISTICS_BYTES_PER_SCORE_ROW_MODULE
    two = one + f * WELCH_BYTES_PER_FEATURE_MODULE
    budget = 4 * one  # four modules a block with one split; three with two
    assert 3 * two <= budget < 4 * two
    assert [s.stop - s.start for s in module_blocks(k, f, r, budget)] == [4, 4, 2]
    assert [s.stop - s.start for s in module_blocks(k, f, r, budget, n_splits=2)] == [3, 3, 3, 1]
    assert WELCH_BYTES_PER_FEATURE_MODULE == 8 * 8  # 6 float64 statistics + 2 int64 counts


def test_a_tails_run_computes_smaller_blocks(ref_inputs, monkeypatch):
    """At a budget that fits two modules' statistics with one split but not with two, a
    run with --contrast-tails computes one module per block (and its tables are those of
    one block of both)."""
    n_features = len(pd.read_parquet(ref_inputs["feature_table"]).columns) - 1
    n_score_rows = len(pd.read_parquet(ref_inputs["artifact"] / "feature_scores.parquet"))
    per_module = (n_features * STATISTICS_BYTES_PER_FEATURE_MODULE
                  + n_score_rows * STATISTICS_BYTES_PER_SCORE_ROW_MODULE)
    budget = 2 * per_module  # < 2 x (per_module + n_features x 64)
    blocks = []
    compute = pipeline.compute_statistics

    def counted(inputs, ctx, layout, block, *args, **kw):
        blocks.append(block.n_modules)
        return compute(inputs, ctx, layout, block, *args, **kw)

    monkeypatch.setattr(pipeline, "compute_statistics", counted)
    small = explain_api(ref_inputs, module_ids=["M000", "M002"], config=ExplainConfig(
        device="cpu", progress=False, contrast_tails=20.0, memory_budget_bytes=budget))
    assert blocks == [1, 1]
    blocks.clear()
    whole = explain_api(ref_inputs, module_ids=["M000", "M002"], config=ExplainConfig(
        device="cpu", progress=False, contrast_tails=20.0))
    assert blocks == [2]
    for m in ("M000", "M002"):
        for name in ("gene_driver_table", "transcript_polarity_table", "high_vs_low_table",
                     "tails_contrast_table"):
            pd.testing.assert_frame_equal(getattr(small[m], name), getattr(whole[m], name))
