"""isograph 0.1.5's stored API run (tests/data/isograph-0.1.5/expected/api_run) as the
figures take it: the three tables per module and the eigengenes, as ExplainResults."""

from __future__ import annotations

import numpy as np
import pandas as pd

from _helpers import paths
from isograph_gpu.result import ExplainResult

FIXTURE = paths.DATA / "isograph-0.1.5"
API_RUN = FIXTURE / "expected" / "api_run"
TABLES = ("gene_driver_table", "transcript_polarity_table", "high_vs_low_table")


def load_fixture_results(modules: tuple[str, ...] = ("M000", "M001", "M002", "M003", "M004")
                         ) -> dict[str, ExplainResult]:
    """The stored run's results of ``modules`` (top 20 drivers), keyed by module id."""
    eig = pd.read_parquet(API_RUN / "eigengenes.parquet")
    out = {}
    for m in modules:
        t = {n: pd.read_parquet(API_RUN / m / f"{n}.parquet") for n in TABLES}
        out[m] = ExplainResult(m, t["gene_driver_table"], t["transcript_polarity_table"],
                               t["high_vs_low_table"], eig[m].to_numpy(np.float64),
                               eig["sample_id"].astype(str).tolist(), 20)
    return out
