"""Killed runs leave no debris (issue 12 item 4), with real subprocesses and signals:
plot workers die with their parent, SIGTERM cleans up like Ctrl-C, and the staging
folder a SIGKILL leaves behind is removed by the next run, the old output untouched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _helpers import paths
from _helpers.explain import explain_args
from _helpers.files import snapshot
from _helpers.processes import PARENT, processes_where

REPO = paths.REPO

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads /proc; PR_SET_PDEATHSIG is Linux-only")


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for an absent reaper counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> set[int]:
    return set(processes_where(PARENT, pid, zombies=True))


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _wait_until(condition, timeout: float, step: float = 0.01) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(step)
    return condition()


def _staging(out: Path) -> list[Path]:
    return list(out.parent.glob(f".{out.name}.isograph-gpu-staging-*"))


_POOL_THEN_SIGKILL = """
import os, signal, sys, time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing as mp
from isograph_gpu.plots.render import _worker_start
pool = ProcessPoolExecutor(2, mp_context=mp.get_context("fork"), initializer=_worker_start,
                           initargs=(os.getpid(),))
futures = [pool.submit(time.sleep, 600) for _ in range(2)]
while len(mp.active_children()) < 2:
    time.sleep(0.01)
time.sleep(0.5)  # the initializer has run
print(" ".join(str(p.pid) for p in mp.active_children()), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_pool_workers_die_with_a_sigkilled_parent():
    proc = subprocess.run([sys.executable, "-c", _POOL_THEN_SIGKILL], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    workers = [int(p) for p in proc.stdout.split()]
    assert len(workers) == 2
    try:
        assert _wait_until(lambda: not any(map(_alive, workers)), 5.0), \
            "orphaned workers still running"
    finally:
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _explain(ref_inputs, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "isograph_gpu", *explain_args(ref_inputs, out, *extra)]


def _start_plot_run_and_wait_for_workers(ref_inputs, out: Path, log: Path):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU core: figures are drawn without worker processes")
    with open(log, "w") as sink:  # a file, not a pipe: an orphan must not hang the test
        proc = subprocess.Popen(_explain(ref_inputs, out, "--plot"), cwd=REPO,
                                stdout=sink, stderr=sink)
    workers: set[int] = set()
    own = _cmdline(proc.pid)

    def started() -> bool:  # forked workers carry the parent's command line; any other
        # child (a helper program some library runs) is not a plot worker
        workers.update(c for c in _children(proc.pid) if _cmdline(c) == own)
        return bool(workers) or proc.poll() is not None
    assert _wait_until(started, 300), "no plot workers appeared"
    if proc.poll() is not None:
        pytest.fail(f"the run ended before its workers were seen: {log.read_text()}")
    return proc, workers


def _kill_leftovers(out: Path) -> None:
    """Whatever still runs for this test's output dir (forked workers share the parent's
    command line): never leave an orphan behind, whatever the test found."""
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.name.isdigit() and os.fsencode(out) in cmdline and int(entry.name) != os.getpid():
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_sigkill_during_plots_leaves_old_output_and_no_orphans(ref_inputs, tmp_path):
    out = tmp_path / "out"
    first = subprocess.run(_explain(ref_inputs, out, "--module-ids", "M000"), cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    before = snapshot(out)
    proc, workers = _start_plot_run_and_wait_for_workers(ref_inputs, out, tmp_path / "log")
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert _wait_until(lambda: not any(map(_alive, workers)), 2.0), \
            "plot workers outlived their killed parent"
    finally:
        _kill_leftovers(out)
    assert snapshot(out) == before  # the old output, byte for byte
    assert _staging(out)  # SIGKILL allows no cleanup ...
    again = subprocess.run(_explain(ref_inputs, out, "--module-ids", "M001"), cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert not _staging(out)  # ... the next run removes what it left
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["M001"]


@pytest.mark.parametrize("signum, word", [(signal.SIGTERM, "terminated"),
                                         (signal.SIGINT, "interrupted")])
def test_sigterm_during_plots_cleans_up_like_ctrl_c(ref_inputs, tmp_path, signum, word):
    out = tmp_path / "out"
    proc, workers = _start_plot_run_and_wait_for_workers(ref_inputs, out, tmp_path / "log")
    try:
        proc.send_signal(signum)  # to the parent alone, as `kill` does
        assert proc.wait(timeout=60) == 128 + signum, (tmp_path / "log").read_text()
        assert _wait_until(lambda: not any(map(_alive, workers)), 2.0), \
            f"plot workers outlived signal {signum}"
    finally:
        _kill_leftovers(out)
    assert not out.exists() and not _staging(out)
    assert word in (tmp_path / "log").read_text()
