"""Every reference error path, plus corrupt/non-numeric/empty/unwritable inputs, through
the CLI: one 'Error:' line naming the culprit, exit code 1, and no partial output."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from _helpers.cli import assert_no_output, assert_one_line_error
from _helpers.explain import invoke_explain
from _helpers.files import snapshot, writable_copy

from isograph_gpu.io import output as output_module


@pytest.fixture()
def inputs(ref_inputs, tmp_path):
    """Writable copies of the reference inputs."""
    art = writable_copy(ref_inputs["artifact"], tmp_path / "artifact")
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
    result = invoke_explain({"artifact": inputs["artifact"], "feature_table": table_path,
                             "feature_meta": meta_path}, out, *extra)
    return result, out


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
    before = snapshot(out)

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
    after = snapshot(out)
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


# --- issue 12: path safety, validated parameters, honest errors --------------------------

@pytest.mark.parametrize("bad", ["../../victim", "<absolute>", "", ".", "..", "a/b"])
def test_module_id_that_is_not_a_folder_name_is_refused_before_computing(inputs, monkeypatch,
                                                                         bad):
    from isograph_gpu import pipeline

    absolute_victim = inputs["tmp"] / "absolute-victim"
    bad = str(absolute_victim) if bad == "<absolute>" else bad

    def no_compute(*args, **kwargs):
        raise AssertionError("computing started")
    monkeypatch.setattr(pipeline, "eigengenes", no_compute)
    modules = pd.read_parquet(inputs["artifact"] / "modules.parquet")
    modules["module_id"] = modules["module_id"].replace({"M000": bad})
    modules.to_parquet(inputs["artifact"] / "modules.parquet", index=False)
    result, out = run_cli(inputs, out=inputs["tmp"] / "deep" / "er" / "out")
    assert_one_line_error(result, f"module_id {bad!r} cannot be used as a folder name")
    assert_no_output(out)
    assert not (inputs["tmp"] / "victim").exists()
    assert not absolute_victim.exists()


@pytest.mark.parametrize("flag, value, needle", [
    ("--vae-epsilon", "nan", "--vae-epsilon"),
    ("--vae-percentile-threshold", "500", "--vae-percentile-threshold"),
    ("--vae-fdr-threshold", "nan", "--vae-fdr-threshold"),
    ("--memory-budget", "inf", "--memory-budget"),
    ("--memory-budget", "nan", "--memory-budget"),
    ("--split-percentile", "nan", "--split-percentile"),
])
def test_out_of_range_parameter_names_its_flag(inputs, flag, value, needle):
    result, out = run_cli(inputs, extra=[flag, value])
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [ln for ln in result.output.splitlines() if ln.startswith("Error")]
    assert len(errors) == 1 and needle in errors[0] and value in errors[0], result.output
    assert_no_output(out)


def test_foreign_output_dir_is_refused_unless_asked(inputs):
    home = inputs["tmp"] / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    result, _ = run_cli(inputs, out=home, extra=["--module-ids", "M000"])
    assert_one_line_error(result, str(home), "not an isograph-gpu output",
                          "--replace-output-dir")
    assert [p.name for p in home.iterdir()] == ["notes.txt"]
    result, _ = run_cli(inputs, out=home, extra=["--module-ids", "M000",
                                                 "--replace-output-dir"])
    assert result.exit_code == 0, result.output
    assert not (home / "notes.txt").exists() and (home / "M000").is_dir()


def test_mount_point_output_dir_is_refused_before_computing(inputs, monkeypatch):
    import os

    from isograph_gpu import pipeline

    mount = next((p for p in ("/proc", "/sys", "/dev") if os.path.ismount(p)), None)
    if mount is None:
        pytest.skip("no mount point to try")
    monkeypatch.setattr(pipeline, "eigengenes", lambda *a, **k: (_ for _ in ()).throw(
        AssertionError("computing started")))
    result, _ = run_cli(inputs, out=Path(mount))
    assert_one_line_error(result, f"output dir {mount} is a mount point")


def test_full_disk_error_names_the_path(inputs, monkeypatch):
    def full(df, path):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(output_module, "write_parquet", full)
    result, out = run_cli(inputs, extra=["--module-ids", "M000"])
    assert_one_line_error(result, "cannot write ", ".parquet: No space left on device")
    assert_no_output(out)


@pytest.mark.parametrize("exc", [KeyError("split"), ValueError("cannot convert float NaN"),
                                 TypeError("unsupported operand"), IndexError("index 3")])
def test_internal_error_is_one_line_that_says_bug(inputs, monkeypatch, exc):
    from isograph_gpu import pipeline

    def broken(*args, **kwargs):
        raise exc
    monkeypatch.setattr(pipeline, "eigengenes", broken)
    result, out = run_cli(inputs)
    assert_one_line_error(result, "internal error (a bug in isograph-gpu)",
                          type(exc).__name__, "--debug")
    saved = Path(result.output.split("traceback saved to ")[1].split(";")[0])
    try:
        assert "Traceback" in saved.read_text() and "in broken" in saved.read_text()
    finally:
        saved.unlink()
    assert_no_output(out)


def test_debug_prints_the_traceback(inputs, monkeypatch):
    from isograph_gpu import pipeline

    monkeypatch.setattr(pipeline, "eigengenes", lambda *a, **k: {}["split"])
    tmp: Path = inputs["tmp"]
    (inputs["table"]).to_parquet(tmp / "table.parquet", index=False)
    (inputs["meta"]).to_parquet(tmp / "meta.parquet", index=False)
    files = {"artifact": inputs["artifact"], "feature_table": tmp / "table.parquet",
             "feature_meta": tmp / "meta.parquet"}
    result = invoke_explain(files, tmp / "out", "--debug", device=None)
    assert result.exit_code == 1
    assert "Traceback" in result.output and "KeyError: 'split'" in result.output


def test_missing_captum_fails_before_any_work(inputs, monkeypatch):
    import sys

    from isograph_gpu import pipeline

    monkeypatch.setitem(sys.modules, "captum", None)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    monkeypatch.setattr(pipeline, "load_explain_inputs", lambda *a, **k: (_ for _ in ()).throw(
        AssertionError("work started")))
    result, out = run_cli(inputs, extra=["--integrated-gradients"])
    assert_one_line_error(result, "captum")
    assert_no_output(out)


def test_missing_captum_fails_before_any_work_in_the_api(inputs, monkeypatch):
    import sys

    from isograph_gpu import ExplainConfig, pipeline
    from isograph_gpu.errors import OptionalDependencyError

    monkeypatch.setitem(sys.modules, "captum", None)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    monkeypatch.setattr(pipeline, "load_explain_inputs", lambda *a, **k: (_ for _ in ()).throw(
        AssertionError("work started")))
    with pytest.raises(OptionalDependencyError, match="captum"):
        pipeline.explain_module(inputs["artifact"], inputs["table"], inputs["meta"],
                                config=ExplainConfig(integrated_gradients=True))


def test_h5ad_input_without_anndata_fails_first(monkeypatch, tmp_path):
    import sys

    from isograph_gpu import ExplainConfig
    from isograph_gpu.errors import OptionalDependencyError
    from isograph_gpu.extras import check_optional_dependencies

    monkeypatch.setitem(sys.modules, "anndata", None)
    with pytest.raises(OptionalDependencyError, match=r"anndata.*cells\.h5ad|cells\.h5ad.*anndata"):
        check_optional_dependencies(ExplainConfig(), tmp_path / "cells.h5ad")
    check_optional_dependencies(ExplainConfig(), tmp_path / "table.parquet", pd.DataFrame())
