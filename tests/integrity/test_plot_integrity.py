"""plot --explain-dir writes only inside the explain dir, as one staged run under the
folder's lock, from inputs whose fingerprint matches the manifest (issue 21 items 5, 10,
14, 15; issue 23 friction 2); an interrupt after the swap says the new output is there."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _helpers import paths
from _helpers.explain import explain_args
from _helpers.files import snapshot
from click.testing import CliRunner

from isograph_gpu.cli import main
from isograph_gpu.manifest import MANIFEST

REPO = paths.REPO
DATA = paths.DATA / "isograph-0.1.5" / "inputs"


def _own_inputs(root: Path) -> dict[str, Path]:
    """The reference inputs copied under ``root`` (so they can be moved and changed)."""
    shutil.copytree(DATA / "artifact", root / "artifact")
    for name in ("feature_table.parquet", "feature_meta.parquet"):
        shutil.copy(DATA / name, root / name)
    return {"artifact": root / "artifact", "feature_table": root / "feature_table.parquet",
            "feature_meta": root / "feature_meta.parquet"}


def _explain(inputs, out: Path, *extra: str) -> None:
    result = CliRunner().invoke(main, explain_args(inputs, out, "--module-ids", "M000",
                                                   *extra))
    assert result.exit_code == 0, result.output


def _plot(explain_dir: Path, *extra: str):
    return CliRunner().invoke(main, ["plot", "--explain-dir", str(explain_dir), "--dpi",
                                     "30", "--jobs", "1", "--quiet", *extra])


def _one_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def test_sigterm_between_the_swap_and_the_old_outputs_removal_reports_the_new_output(
        ref_inputs, tmp_path, monkeypatch):
    """Item 5: the signal lands while the old output (swapped out) is being deleted."""
    import isograph_gpu.io.output as output

    out = tmp_path / "out"
    _explain(ref_inputs, out)
    real_remove = output.remove_tree

    def remove_with_a_sigterm(path: Path) -> bool:
        if (path / "M000").is_dir():  # the old output, after the swap
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        return real_remove(path)

    monkeypatch.setattr(output, "remove_tree", remove_with_a_sigterm)
    result = CliRunner().invoke(main, explain_args(ref_inputs, out, "--module-ids", "M001"))
    assert result.exit_code == 143, result.output
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["M001"]  # the new one
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]
    line = result.stderr.strip().splitlines()[-1]
    assert line == (f"Error: terminated (SIGTERM); {out} holds the complete new output (the "
                    "run had finished writing it); no partial output was left behind"), line


def test_sigterm_before_the_swap_reports_the_old_output(ref_inputs, tmp_path, monkeypatch):
    import isograph_gpu.io.output as output

    out = tmp_path / "out"
    _explain(ref_inputs, out)
    before = snapshot(out)

    def commit_with_a_sigterm(self):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        raise AssertionError("the signal did not interrupt the run before the commit")

    monkeypatch.setattr(output.StagedOutput, "commit", commit_with_a_sigterm)
    result = CliRunner().invoke(main, explain_args(ref_inputs, out, "--module-ids", "M001"))
    assert result.exit_code == 143, result.output
    assert snapshot(out) == before
    assert f"{out} holds the earlier output, unchanged" in result.stderr


def test_a_module_folder_linked_outside_gets_no_figures(ref_inputs, tmp_path):
    """Item 10: M000 is a link to a folder outside the explain dir."""
    out = tmp_path / "out"
    _explain(ref_inputs, out)
    outside = tmp_path / "elsewhere"
    shutil.move(out / "M000", outside)
    (out / "M000").symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)
    line = _one_error(_plot(out))
    assert "is a symbolic link to" in line and str(outside) in line
    assert snapshot(outside) == before
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]


def test_a_deeply_nested_manifest_is_an_input_error(tmp_path):
    """Item 10: 200k-deep JSON is RecursionError inside json.loads."""
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST).write_text("[" * 200_000 + "]" * 200_000)
    line = _one_error(_plot(out))
    assert line == f"Error: {out / MANIFEST} is not an explain manifest (nested too deeply)"


def test_an_unrelated_file_at_the_recorded_path_is_not_quoted(ref_inputs, tmp_path):
    """Item 10: the manifest's feature table is an unrelated file with a secret value."""
    out = tmp_path / "out"
    _explain(ref_inputs, out)
    secret = tmp_path / "secret.csv"
    secret.write_text("sample_id,x\nTOPSECRET-VALUE,1\n")
    result = _plot(out, "--feature-table", str(secret))
    line = _one_error(result)
    assert str(secret) in line and "TOPSECRET" not in result.output


def test_plot_from_another_directory_finds_and_checks_the_recorded_inputs(tmp_path,
                                                                          monkeypatch):
    """Issue 23 friction 2 and item 14: the explain run got relative paths; a plot from
    elsewhere uses them, and a different file of the same size at the recorded place is
    refused by its fingerprint, not drawn from."""
    work = tmp_path / "project"
    work.mkdir()
    _own_inputs(work)
    monkeypatch.chdir(work)
    relative = {"artifact": Path("artifact"), "feature_table": Path("feature_table.parquet"),
                "feature_meta": Path("feature_meta.parquet")}
    _explain(relative, Path("out"))
    recorded = json.loads((work / "out" / MANIFEST).read_text())["inputs"]["feature_table"]
    assert recorded["path"] == str(work / "feature_table.parquet")
    assert recorded["path_from_output_dir"] == "../feature_table.parquet"

    monkeypatch.chdir(tmp_path)  # elsewhere: the absolute path is used
    result = _plot(work / "out")
    assert result.exit_code == 0, result.output
    assert (work / "out" / "M000" / "isoform_gradient.png").is_file()
    assert "not drawn" not in result.output

    moved = tmp_path / "moved"  # the project moved whole: the path from the output dir
    shutil.move(work, moved)
    result = _plot(moved / "out")
    assert result.exit_code == 0, result.output
    assert "not drawn" not in result.output

    table = moved / "feature_table.parquet"  # same size, other bytes: not used, and said
    data = bytearray(table.read_bytes())
    data[1000] ^= 0xFF  # the fingerprint hashes the first and last MiB
    table.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="is not the file the run read"):
        result = CliRunner().invoke(main, ["plot", "--explain-dir", str(moved / "out"),
                                           "--dpi", "30", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert ("2 figures per module not drawn (isoform_gradient, driver_heatmap): no feature "
            "table; give --feature-table") in result.stdout


def test_the_plot_manifest_lists_exactly_the_files_present(ref_inputs, tmp_path):
    out = tmp_path / "out"
    _explain(ref_inputs, out)
    assert _plot(out).exit_code == 0
    manifest = json.loads((out / MANIFEST).read_text())
    present = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == present
    assert set(manifest["plot_files"]) <= present


def test_plot_holds_the_lock_so_a_replacing_explain_waits(ref_inputs, tmp_path):
    """Item 15: while plot runs on D, explain-module replacing D commits only after the
    plot committed; the plot's manifest described exactly its files, and D ends as the
    complete explain output."""
    out = tmp_path / "out"
    _explain(ref_inputs, out)
    from isograph_gpu.io.output import output_lock

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with output_lock(out):  # stands for a plot in progress
        explain = subprocess.Popen(
            [sys.executable, "-m", "isograph_gpu",
             *explain_args(ref_inputs, out, "--module-ids", "M001", quiet=False)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _, err = explain.communicate(timeout=20)
            pytest.fail(f"explain-module committed while the folder was locked: {err}")
        except subprocess.TimeoutExpired:
            pass
        assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["M000"]
    _, err = explain.communicate(timeout=300)
    assert explain.returncode == 0, err
    assert "waiting for another isograph-gpu run on" in err
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["M001"]
    manifest = json.loads((out / MANIFEST).read_text())
    assert set(manifest["files"]) == {p.relative_to(out).as_posix() for p in out.rglob("*")
                                      if p.is_file()}


def test_the_lock_is_reentrant_and_exclusive_between_processes(tmp_path):
    from isograph_gpu.io.output import lock_path, output_lock

    out = tmp_path / "out"
    held = threading.Event()
    with output_lock(out), output_lock(out):  # the commit inside a plot: no self-deadlock
        held.set()
        probe = subprocess.run(
            [sys.executable, "-c",
             "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR)\n"
             "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
             "except BlockingIOError:\n    sys.exit(3)", str(lock_path(out))],
            timeout=60)
        assert probe.returncode == 3  # another process cannot take it
    assert held.is_set()
