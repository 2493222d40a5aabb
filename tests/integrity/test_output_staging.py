"""The staged output directory: all files or none, in a stable order, whatever writes them."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _helpers import paths
from _helpers.files import snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from isograph_gpu.errors import InputError, OutputError
from isograph_gpu.io import output as output_module
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


# --- the whole output directory is replaced in one step ---------------------------------

MANIFEST = "module_explanation_manifest.json"
REPO = paths.REPO


def _run_into(out: Path, files: dict[str, str], **kwargs) -> None:
    with staged_output(out, **kwargs) as staged:
        for rel, text in files.items():
            staged.path(rel).write_text(text)
        staged.write_json({"files": sorted(files)}, MANIFEST)


def _old_output(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    out = tmp_path / "out"
    _run_into(out, {f"M{i:03d}/table.parquet": f"old {i}" for i in range(5)} |
              {"M000/driver_bar.png": "old figure"})
    return out, snapshot(out)


def _no_staging_left(out: Path) -> bool:
    return not list(out.parent.glob(f".{out.name}.isograph-gpu-staging-*"))


def test_rerun_holds_exactly_the_new_files(tmp_path):
    """Stale files of an earlier run (other modules, old figures) vanish."""
    out, _ = _old_output(tmp_path)
    _run_into(out, {"M001/table.parquet": "new 1"})
    assert snapshot(out) == {"M001/table.parquet": b"new 1",
                              MANIFEST: json.dumps({"files": ["M001/table.parquet"]},
                                                   indent=2).encode() + b"\n"}
    assert _no_staging_left(out)


def test_linux_exchange_swaps_two_directories(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("in a")
    (b / "y").write_text("in b")
    if not output_module.exchange_directories(a, b):
        pytest.skip("renameat2(RENAME_EXCHANGE) not available here")
    assert snapshot(a) == {"y": b"in b"} and snapshot(b) == {"x": b"in a"}


@pytest.mark.parametrize("exchange", ["renameat2", "renames"])
def test_failed_commit_leaves_old_output_byte_for_byte(tmp_path, monkeypatch, exchange):
    """A failure inside the swap itself: the old output stays whole, staging goes."""
    out, before = _old_output(tmp_path)
    if exchange == "renameat2":
        def failing_exchange(a, b):
            raise OSError(errno.EACCES, "Permission denied", str(a), None, str(b))
        monkeypatch.setattr(output_module, "exchange_directories", failing_exchange)
    else:  # the portable path: old aside, new into place (fails), old put back
        monkeypatch.setattr(output_module, "exchange_directories", lambda a, b: False)
        real_rename, calls = os.rename, []

        def rename(src, dst):
            calls.append((src, dst))
            if len(calls) == 2:
                raise OSError(errno.EIO, "Input/output error", str(src))
            real_rename(src, dst)
        monkeypatch.setattr(output_module.os, "rename", rename)
    with pytest.raises(OutputError, match=f"cannot replace output dir {out}"):
        _run_into(out, {"M000/table.parquet": "new 0"})
    assert snapshot(out) == before
    assert _no_staging_left(out)


def test_portable_swap_replaces_the_whole_directory(tmp_path, monkeypatch):
    out, _ = _old_output(tmp_path)
    monkeypatch.setattr(output_module, "exchange_directories", lambda a, b: False)
    _run_into(out, {"M004/table.parquet": "new 4"})
    assert set(snapshot(out)) == {"M004/table.parquet", MANIFEST}
    assert _no_staging_left(out)


def test_foreign_directory_is_refused_before_the_run(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    body_ran = []
    with pytest.raises(OutputError, match="not an isograph-gpu output"):
        with staged_output(home):
            body_ran.append(True)
    assert not body_ran
    assert snapshot(home) == {"thesis.tex": b"years of work"} and _no_staging_left(home)
    _run_into(home, {"M000/table.parquet": "new"}, replace_foreign=True)
    assert set(snapshot(home)) == {"M000/table.parquet", MANIFEST}


def test_empty_directory_is_accepted(tmp_path):
    (tmp_path / "out").mkdir()
    _run_into(tmp_path / "out", {"M000/table.parquet": "new"})
    assert set(snapshot(tmp_path / "out")) == {"M000/table.parquet", MANIFEST}


def test_mount_point_is_refused_before_the_run():
    mount = next((Path(p) for p in ("/proc", "/sys", "/dev") if os.path.ismount(p)), None)
    if mount is None:
        pytest.skip("no mount point to try")
    with pytest.raises(OutputError, match="is a mount point"):
        with staged_output(mount):
            raise AssertionError("the body must not run")


BAD_IDS = ["../victim", "/abs/victim", "", ".", "..", "a/b", "a\x00b"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_ids_that_are_not_one_path_component_are_refused(bad):
    with pytest.raises(InputError, match=re.escape(f"module_id {bad!r} cannot be used as a")):
        output_module.check_path_components(["M000", bad], "module_id")
    output_module.check_path_components(["M000", "a b", "-x", "..x", "\u00e9"], "module_id")


@pytest.mark.parametrize("bad", [b for b in BAD_IDS if b != "a/b"])
def test_path_parts_must_be_single_components(tmp_path, bad):
    with pytest.raises(InputError, match="cannot be used as a folder name"):
        with staged_output(tmp_path / "out") as staged:
            staged.path(f"{bad}/table.parquet")
    assert list(tmp_path.iterdir()) == []


def test_io_errors_name_the_path(tmp_path, monkeypatch):
    def full(df, path):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(output_module, "write_parquet", full)
    with pytest.raises(OutputError, match=r"cannot write .*M000/table\.parquet: No space"):
        with staged_output(tmp_path / "out") as staged:
            staged.write_parquet_many(_tables(1))


_KILLED_RUN = """
import os, signal, sys
from isograph_gpu.io.output import staged_output
with staged_output(sys.argv[1]) as staged:
    for i in range(5):
        staged.path(f"M{i:03d}/table.parquet").write_text("new")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sigkilled_run_keeps_old_output_and_next_run_removes_its_staging(tmp_path):
    out, before = _old_output(tmp_path)
    proc = subprocess.run([sys.executable, "-c", _KILLED_RUN, str(out)], cwd=REPO,
                          capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert snapshot(out) == before
    assert not _no_staging_left(out)  # SIGKILL cannot clean up ...
    with pytest.warns(UserWarning, match="left by an earlier killed run"):
        _run_into(out, {"M000/table.parquet": "new"})  # ... the next run does
    assert _no_staging_left(out)


def test_staging_of_a_live_run_is_left_alone(tmp_path):
    live = tmp_path / f".out.isograph-gpu-staging-{os.getppid()}-deadbeef"
    live.mkdir()
    _run_into(tmp_path / "out", {"M000/table.parquet": "new"})
    assert live.is_dir()


_AS_NOBODY = """
import os, sys
from pathlib import Path
from isograph_gpu.errors import OutputError
from isograph_gpu.io.output import staged_output
root = Path(sys.argv[1])
os.setgid(65534); os.setuid(65534)
def run(text):
    with staged_output(root / "out") as staged:
        for i in range(5):
            staged.path(f"M{i:03d}/table.parquet").write_text(text)
        staged.write_json({}, "module_explanation_manifest.json")
run("old")
(root / "out" / "M003").chmod(0o555)  # an unwritable module folder of the old output
run("new")                            # replaces the whole folder, old one removed
assert {p.name for p in root.iterdir()} == {"out", ".out.isograph-gpu-lock"}, list(root.iterdir())
assert (root / "out" / "M003" / "table.parquet").read_text() == "new"
root.chmod(0o555)                     # now the output's parent is unwritable
try:
    run("newer")
except OutputError as exc:
    print("refused:", exc)
assert all((root / "out" / f"M{i:03d}" / "table.parquet").read_text() == "new"
           for i in range(5))
"""


def test_unwritable_directories_as_a_non_root_user():
    """Real permissions (as root they are not enforced): drop to 'nobody' in a child."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to the 'nobody' user")
    root = Path(tempfile.mkdtemp(prefix="isograph-gpu-nobody-"))  # /tmp: reachable by all
    try:
        os.chown(root, 65534, 65534)
        proc = subprocess.run([sys.executable, "-c", _AS_NOBODY, str(root)], cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        if "Permission denied" in proc.stderr and "import" in proc.stderr.lower():
            pytest.skip(f"'nobody' cannot import the environment: {proc.stderr[-300:]}")
        assert proc.returncode == 0, proc.stderr
        assert f"refused: cannot write to output dir {root / 'out'}: Permission denied" \
            in proc.stdout
    finally:
        root.chmod(0o755)
        shutil.rmtree(root)


def test_output_dir_holding_an_input_is_refused(tmp_path):
    """Replacing the folder would delete the input (even an earlier output's folder)."""
    out, before = _old_output(tmp_path)
    table = out / "M000" / "table.parquet"
    for replace_foreign in (False, True):
        with pytest.raises(OutputError, match=f"holds the input {re.escape(str(table))}"):
            with staged_output(out, replace_foreign=replace_foreign, inputs=(table, None)):
                raise AssertionError("the body must not run")
    assert snapshot(out) == before and _no_staging_left(out)
    _run_into(out, {"M000/table.parquet": "new"})  # inputs elsewhere: fine


def test_symlinked_output_dir_replaces_its_target_and_keeps_the_link(tmp_path):
    out, _ = _old_output(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(out)
    _run_into(link, {"M002/table.parquet": "new"})
    assert link.is_symlink() and link.resolve() == out
    assert set(snapshot(out)) == {"M002/table.parquet", MANIFEST}


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(["a", ".", "/", "\\", "\x00", " ", "~", "\u00e9"]),
               max_size=6))
def test_an_accepted_component_names_a_direct_child(text):
    """Property: whatever the id, either it is refused or it names exactly one entry
    directly inside the output dir."""
    root = Path("/srv/out")
    try:
        name = output_module.path_component(text, "module_id")
    except InputError:
        return
    assert os.path.normpath(root / name) == str(root / name)
    assert (root / name).parent == root and (root / name).name == name


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_run_killed_between_the_portable_renames_gets_its_old_output_back(tmp_path):
    """The portable swap has one window (old aside, new not yet in place): the next run
    restores the old output instead of deleting it as debris."""
    out, before = _old_output(tmp_path)
    stem = f".out.isograph-gpu-staging-{_dead_pid()}-0badc0de"
    out.rename(tmp_path / f"{stem}-old")           # renamed aside ...
    (tmp_path / stem).mkdir()                       # ... the new one never moved in
    (tmp_path / stem / "half.parquet").write_text("new")
    with pytest.warns(UserWarning) as warned:
        with pytest.raises(RuntimeError, match="stop"), staged_output(out):
            assert snapshot(out) == before         # back in place before the run starts
            raise RuntimeError("stop")
    messages = " | ".join(str(w.message) for w in warned)
    assert "restored the earlier output" in messages and "removed 1 staging" in messages
    assert snapshot(out) == before and _no_staging_left(out)


def test_repeating_columns_alone_are_dictionary_encoded_and_read_back_equal(tmp_path):
    """write_parquet: a dictionary only for the columns whose values repeat
    (DICTIONARY_COLUMNS); ids and statistics plain; the table reads back equal."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    table = pa.table({
        "feature_id": [f"G{i // 4:05d}.T{i % 4}" for i in range(4000)],
        "gene_id": [f"G{i // 4:05d}" for i in range(4000)],
        "delta": rng.standard_normal(4000),
        "n_high": np.full(4000, 17, dtype=np.int64),
        "missing_fraction": rng.integers(0, 3, 4000) / 100,
    })
    path = tmp_path / "t.parquet"
    output_module.write_parquet(table, path)
    meta = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings
                 for i in range(meta.num_columns)}
    for name in ("gene_id", "n_high", "missing_fraction"):
        assert "RLE_DICTIONARY" in encodings[name], name
    for name in ("feature_id", "delta"):
        assert "RLE_DICTIONARY" not in encodings[name], name
    assert pq.read_table(path).equals(table)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_interrupt_python_swallowed_still_stops_the_commit(tmp_path):
    """An interrupt raised inside a weakref callback (Python prints it and goes on: a
    SIGINT landing there during the figures let the run commit and exit 0) is raised again
    before the commit: the output dir is not created and no staging is left."""
    import gc
    import weakref

    from isograph_gpu import interrupts
    from isograph_gpu.io.output import staged_output

    class Payload:
        pass

    out = tmp_path / "out"
    interrupts.reset_outputs()
    try:
        with pytest.raises(KeyboardInterrupt), staged_output(out) as staged:
            staged.write_json({"module_ids": []}, "module_explanation_manifest.json")
            payload = Payload()
            weakref.finalize(payload, interrupts.interrupt, KeyboardInterrupt)
            del payload
            gc.collect()  # the finaliser's KeyboardInterrupt is reported and swallowed
    finally:
        interrupts.reset_outputs()
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["making the staging folder", "right after it"])
def test_an_interrupt_while_the_staging_folder_is_made_leaves_none(tmp_path, monkeypatch,
                                                                   where):
    """A SIGTERM's handler raising just as the staging folder is made (a kill test caught
    it at 19 ms into a run: exit 143 and a staging folder left beside the output): the
    interrupt still ends the run, and no staging folder is left."""
    from isograph_gpu import interrupts
    from isograph_gpu.cli.common import Terminated

    out = tmp_path / "out"
    if where == "making the staging folder":
        real_mkdir = Path.mkdir

        def mkdir_then_signal(self, *args, **kwargs):
            real_mkdir(self, *args, **kwargs)
            if output_module.STAGING_MARK in self.name:
                interrupts.interrupt(Terminated)  # what the SIGTERM handler does

        monkeypatch.setattr(Path, "mkdir", mkdir_then_signal)
    else:
        def signalled(*args, **kwargs):
            interrupts.interrupt(Terminated)

        monkeypatch.setattr(output_module, "StagedOutput", signalled)
    with pytest.raises(Terminated):
        with staged_output(out):
            pytest.fail("the run went on after the interrupt")
    assert not list(tmp_path.glob(f".out{output_module.STAGING_MARK}*"))
    assert not out.exists()
