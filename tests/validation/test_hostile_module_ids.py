"""Module ids name folders at the top of the output dir: an id that is one of the run's own
top-level files, or the sample id column of eigengenes.parquet, is refused before any work
with one line naming it (issue 21.8)."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest
from _helpers.explain import invoke_explain
from _helpers.files import writable_copy

from isograph_gpu.errors import InputError
from isograph_gpu.io.output import check_module_folder_names
from isograph_gpu.manifest import EIGENGENES, MANIFEST


@pytest.fixture()
def artifact(ref_inputs, tmp_path):
    art = writable_copy(ref_inputs["artifact"], tmp_path / "artifact")
    return art


def rename_module(artifact, old: str, new: str) -> None:
    path = artifact / "modules.parquet"
    modules = pd.read_parquet(path)
    modules["module_id"] = modules["module_id"].replace(old, new)
    modules.to_parquet(path, index=False)


@pytest.mark.parametrize("module_id", [
    "eigengenes.parquet", "module_explanation_manifest.json", "report.html",
    "module_trait_table.parquet", "eigengene_heatmap.png", "eigengene_heatmap.svg",
    "EIGENGENES.parquet",  # one file on a case-insensitive file system
    "sample_id",  # the sample id column of eigengenes.parquet
])
def test_cli_refuses_module_ids_colliding_with_run_files(ref_inputs, artifact, tmp_path,
                                                         module_id):
    rename_module(artifact, "M001", module_id)
    out = tmp_path / "out"
    result = invoke_explain({**ref_inputs, "artifact": artifact}, out, "--plot")
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert repr(module_id) in lines[0] and "module_id" in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()


def test_refused_before_an_earlier_output_is_touched(ref_inputs, artifact, tmp_path):
    out = tmp_path / "out"
    assert invoke_explain(ref_inputs, out).exit_code == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    rename_module(artifact, "M000", EIGENGENES)
    assert invoke_explain({**ref_inputs, "artifact": artifact}, out).exit_code == 1
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_ordinary_ids_near_the_reserved_names_pass(ref_inputs, artifact, tmp_path):
    """Only the exact names (any case) are reserved: 'eigengenes', 'sample_id2' and
    'eigengene_heatmap' (no format suffix) are ordinary folders."""
    for old, new in (("M000", "eigengenes"), ("M001", "sample_id2"),
                     ("M002", "eigengene_heatmap")):
        rename_module(artifact, old, new)
    out = tmp_path / "out"
    result = invoke_explain({**ref_inputs, "artifact": artifact}, out)
    assert result.exit_code == 0, result.output
    eig = pq.read_table(out / EIGENGENES)
    assert eig.column_names[0] == "sample_id"
    assert {"eigengenes", "sample_id2", "eigengene_heatmap"} <= set(eig.column_names)
    assert (out / "eigengenes" / "gene_driver_table.parquet").is_file()
    assert (out / MANIFEST).is_file()


def test_check_names_the_reason():
    with pytest.raises(InputError, match="sample id column"):
        check_module_folder_names(["M0", "sample_id"])
    with pytest.raises(InputError, match="top of the output dir"):
        check_module_folder_names(["Module_Explanation_Manifest.JSON"])
    check_module_folder_names(["M0", "eigengene_heatmap", "report"])
