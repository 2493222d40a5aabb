"""Loading a feature table: CSV/TSV through polars' multithreaded reader with the values
and ids pandas' exact reader gives, a large text table announced with what reads faster,
the decode of a loaded parquet counted on the progress, and the CLI's thread defaults."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _helpers import paths
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from isograph_gpu.cli.common import THREAD_DEFAULTS, set_thread_defaults
from isograph_gpu.io import feature_tables, table_readers
from isograph_gpu.io.feature_tables import open_feature_table
from isograph_gpu.io.table_readers import PANDAS_NA_VALUES
from isograph_gpu.progress import Progress

REPO = paths.REPO


def _pandas_oracle(path: Path, sep: str) -> tuple[list[str], np.ndarray]:
    """pandas' reader as the package used it before polars: ids as text, exact floats."""
    frame = pd.read_csv(path, sep=sep, dtype={"sample_id": str},
                        **table_readers.EXACT_CSV_FLOATS)
    ids = ["None" if pd.isna(v) else str(v) for v in frame.pop("sample_id")]
    return ids, frame.to_numpy(dtype=np.float64)


def _no_pandas_parse(monkeypatch) -> None:
    """Fail if the data of a CSV go through pandas (its one-row header read is allowed)."""
    real = pd.read_csv

    def header_only(*args, **kwargs):
        assert kwargs.get("nrows") == 1, "the table was parsed by pandas, not polars"
        return real(*args, **kwargs)

    monkeypatch.setattr(table_readers.pd, "read_csv", header_only)


finite = st.floats(allow_nan=False, allow_infinity=True, width=64)
tokens = st.one_of(finite.map(repr), st.sampled_from(PANDAS_NA_VALUES),
                   finite.map(lambda v: f"{v:.17g}"))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cells=st.lists(st.lists(tokens, min_size=3, max_size=3), min_size=1, max_size=8),
       sep=st.sampled_from([",", "\t"]))
@example(cells=[["0.1", "NA", "1e-320"], ["-inf", "", "2.2250738585072014e-308"]], sep=",")
def test_text_table_equals_pandas_exact_reader(tmp_path_factory, monkeypatch, cells, sep):
    path = tmp_path_factory.mktemp("csv") / ("t.csv" if sep == "," else "t.tsv")
    ids = [f"{i:06d}" for i in range(len(cells))]
    lines = [sep.join(["sample_id", "a", "b", "c"])]
    lines += [sep.join([sid, *row]) for sid, row in zip(ids, cells, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    want_ids, want = _pandas_oracle(path, sep)
    with monkeypatch.context() as patch:
        _no_pandas_parse(patch)
        table = open_feature_table(path, stream=False)
        got = table.matrix(table.columns, np.arange(len(ids)))
    assert table.sample_ids.tolist() == want_ids == ids  # zero-padded ids stay text
    np.testing.assert_array_equal(got, want)


def test_text_table_with_text_values_keeps_pandas_messages(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("sample_id,a,b\nS1,1.5,x\nS2,2.5,y\n")
    table = open_feature_table(path, stream=False)
    with pytest.raises(Exception, match="column 'b' is not numeric"):
        table.matrix(["a", "b"], np.arange(2))


def test_large_text_table_is_announced_once_with_the_faster_forms(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    path.write_text("sample_id,a\nS1,1\nS2,2\n")
    monkeypatch.setattr(feature_tables, "ANNOUNCED_TEXT_BYTES", 1)
    stream = io.StringIO()
    open_feature_table(path, stream=False, progress=Progress(enabled=True, stream=stream))
    lines = stream.getvalue().splitlines()
    advice = [line for line in lines if "parquet or .h5ad" in line]
    assert len(advice) == 1 and "--feature-cache" in advice[0] and "CSV" in advice[0]
    assert any(line.startswith("[isograph-gpu] parse CSV feature_table:") for line in lines)


def test_loaded_parquet_decode_is_counted_on_the_progress(tmp_path, monkeypatch):
    frame = pd.DataFrame(np.arange(60.0).reshape(6, 10), columns=[f"f{i}" for i in range(10)])
    frame.insert(0, "sample_id", [f"S{i}" for i in range(6)])
    path = tmp_path / "t.parquet"
    frame.to_parquet(path, index=False)
    monkeypatch.setattr(feature_tables, "LOAD_BLOCK_BYTES", 2 * 8 * 6)  # 1 column a group
    stream = io.StringIO()
    table = open_feature_table(path, stream=False, progress=Progress(enabled=True,
                                                                     stream=stream))
    got = table.matrix(table.columns, np.arange(6))
    np.testing.assert_array_equal(got, frame.drop(columns="sample_id").to_numpy())
    assert "decode feature table: group 10/10" in stream.getvalue()


def test_thread_defaults_never_override_the_environment():
    env = {"OMP_WAIT_POLICY": "active"}
    assert set_thread_defaults(env) == {}
    assert env == {"OMP_WAIT_POLICY": "active"}
    env = {}
    assert set_thread_defaults(env) == THREAD_DEFAULTS == env
    env = {"OMP_WAIT_POLICY": ""}  # set, even empty: the user's
    assert set_thread_defaults(env) == {} and env["OMP_WAIT_POLICY"] == ""


@pytest.mark.parametrize("user", [None, "ACTIVE"])
def test_cli_sets_the_wait_policy_before_torch_loads(user):
    code = ("import os, sys\n"
            "from isograph_gpu.cli import main\n"
            "assert 'torch' not in sys.modules\n"
            "sys.argv = ['isograph-gpu', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "import torch\n"
            "print('POLICY', os.environ.get('OMP_WAIT_POLICY'))\n")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = str(REPO)
    if user is not None:
        env["OMP_WAIT_POLICY"] = user
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    assert f"POLICY {user or THREAD_DEFAULTS['OMP_WAIT_POLICY']}" in out
