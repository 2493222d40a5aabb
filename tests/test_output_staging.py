"""The staged output directory: all files or none, in a stable order, whatever writes them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from isograph_gpu.io.output import staged_output


def _tables(n: int) -> list[tuple[pd.DataFrame, str]]:
    rng = np.random.default_rng(0)
    return [(pd.DataFrame({"feature_id": [f"f{i}_{j}" for j in range(50)],
                           "r": rng.normal(size=50)}), f"M{i:03d}/table.parquet")
            for i in range(n)]


def test_write_parquet_many_writes_every_table_in_order(tmp_path):
    tables = _tables(7)
    with staged_output(tmp_path / "out") as staged:
        staged.write_parquet_many(tables)
        assert staged.files == [rel for _, rel in tables]
    for df, rel in tables:
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out" / rel), df)


def test_a_failed_table_leaves_no_output(tmp_path):
    tables = _tables(4)
    tables.insert(2, (pd.DataFrame({"bad": [object()]}), "M999/table.parquet"))
    with pytest.raises(Exception), staged_output(tmp_path / "out") as staged:  # noqa: B017
        staged.write_parquet_many(tables)
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []  # the staging folder is gone too
