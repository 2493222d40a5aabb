"""Every reference error path, plus corrupt/non-numeric/empty/unwritable inputs, through
the CLI: one 'Error:' line naming the culprit, exit code 1, and no partial output."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from isograph_gpu.cli import main
from isograph_gpu.io import output as output_module


@pytest.fixture()
def inputs(ref_inputs, tmp_path):
    """Writable copies of the reference inputs."""
    art = tmp_path / "artifact"
    shutil.copytree(ref_inputs["artifact"], art)
    for p in art.iterdir():
        p.chmod(0o644)
    return {
        "artifact": art,
        "table": pd.read_parquet(ref_inputs["feature_table"]),
        "meta": pd.read_parquet(ref_inputs["feature_meta"]),
        "tmp": tmp_path,
    }


def run_cli(inputs, *, table=None, meta=None, extra=(), out=None):
    tmp: Path = inputs["tmp"]
    table_path, meta_path = tmp / "table.parquet", tmp / "meta.parquet"
    (inputs["table"] if table is None else table).to_parquet(table_path, index=False)
    (inputs["meta"] if meta is None else meta).to_parquet(meta_path, index=False)
    out = out or tmp / "out"
    result = CliRunner().invoke(main, [
        "explain-module", "--artifact-dir", str(inputs["artifact"]),
        "--feature-table", str(table_path), "--feature-meta", str(meta_path),
        "--output-dir", str(out), "--device", "cpu", "--quiet", *extra,
    ])
    return result, out


def assert_one_line_error(result, *needles):
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def assert_no_output(out: Path):
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.isograph-gpu-staging-*"))


def test_unknown_module(inputs):
    result, out = run_cli(inputs, extra=["--module-ids", "M999"])
    assert_one_line_error(result, "Unknown module ID(s): ['M999']",
                          "Available modules: ['M000', 'M001', 'M002', 'M003', 'M004']")
    assert_no_output(out)


def test_no_overlapping_samples(inputs):
    table = inputs["table"].assign(sample_id=lambda d: "X" + d["sample_id"])
    result, out = run_cli(inputs, table=table)
    assert_one_line_error(result, "Only 0 samples overlap between feature_scores and "
                                  "feature_table (minimum required: 10)")
    assert_no_output(out)


def test_meta_missing_column(inputs):
    result, out = run_cli(inputs, meta=inputs["meta"].drop(columns=["feature_type"]))
    assert_one_line_error(result, "feature_meta is missing required columns: ['feature_type']")
    assert_no_output(out)


def test_duplicate_feature_id(inputs):
    meta = pd.concat([inputs["meta"], inputs["meta"].iloc[:1]], ignore_index=True)
    result, out = run_cli(inputs, meta=meta)
    assert_one_line_error(result, "feature_meta has duplicate feature_id values: ['G00000.T1']")
    assert_no_output(out)


def test_duplicate_sample_id(inputs):
    table = pd.concat([inputs["table"], inputs["table"].iloc[:1]], ignore_index=True)
    result, out = run_cli(inputs, table=table)
    assert_one_line_error(result, "feature_table has duplicate sample IDs: ['S0000']")
    assert_no_output(out)


@pytest.mark.parametrize("missing", ["modules.parquet", "feature_scores.parquet"])
def test_missing_artifact_file(inputs, missing):
    (inputs["artifact"] / missing).unlink()
    result, out = run_cli(inputs)
    assert_one_line_error(result, "Required artifact file not found:", missing,
                          "Run 'isograph fit' to generate it.")
    assert_no_output(out)


def test_module_score_table_lacks_module(inputs, ref_inputs):
    result, out = run_cli(inputs, extra=["--module-ids", "M000", "M002",
                                         "--module-score-table",
                                         str(ref_inputs["module_score_table"])])
    assert_one_line_error(result, "module_score_table is missing columns for requested "
                                  "module(s): ['M002']")
    assert_no_output(out)


def test_corrupt_parquet(inputs):
    (inputs["artifact"] / "feature_scores.parquet").write_bytes(b"PAR1 not really parquet")
    result, out = run_cli(inputs)
    assert_one_line_error(result, "cannot read feature_scores.parquet", "as parquet")
    assert_no_output(out)


def test_non_numeric_feature_column(inputs):
    table = inputs["table"].copy()
    table["G00003.T2"] = "high"
    result, out = run_cli(inputs, table=table)
    assert_one_line_error(result, "column 'G00003.T2' is not numeric")
    assert_no_output(out)


def test_empty_module(inputs):
    modules = pd.read_parquet(inputs["artifact"] / "modules.parquet")
    extra = pd.DataFrame({"gene_id": ["NOT_A_GENE"], "module_id": ["M009"]})
    pd.concat([modules, extra]).to_parquet(inputs["artifact"] / "modules.parquet", index=False)
    result, out = run_cli(inputs)
    assert_one_line_error(result, "module(s) ['M009'] have no genes in", "feature_scores.parquet")
    assert_no_output(out)


def test_unwritable_output_dir(inputs):
    blocker = inputs["tmp"] / "a_file"
    blocker.write_text("not a directory")
    result, _ = run_cli(inputs, out=blocker / "explain")
    assert_one_line_error(result, "cannot write to output dir", "a_file")
    assert blocker.read_text() == "not a directory"


def test_bad_flag_value_is_usage_error(inputs):
    result, out = run_cli(inputs, extra=["--fdr-method", "holm"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert_no_output(out)


def test_failed_write_leaves_existing_output_intact(inputs, monkeypatch):
    result, out = run_cli(inputs, extra=["--module-ids", "M000"])
    assert result.exit_code == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    calls = {"n": 0}
    real = output_module.write_parquet

    def failing(df, path):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real(df, path)

    monkeypatch.setattr(output_module, "write_parquet", failing)
    result, _ = run_cli(inputs, extra=["--module-ids", "M000", "--split-percentile", "75"])
    assert_one_line_error(result, "No space left on device")
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # nothing half-overwritten, nothing added
    assert not list(out.parent.glob(".out.isograph-gpu-staging-*"))


def test_outputs_are_readable_like_ordinary_files(inputs):
    """Staged files get 0666 less the umask, not mkstemp's private 0600."""
    import os

    old = os.umask(0o022)
    try:
        result, out = run_cli(inputs, extra=["--module-ids", "M001"])
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    for name in ("module_explanation_manifest.json", "M001/gene_driver_table.parquet"):
        assert (out / name).stat().st_mode & 0o777 == 0o644, name
