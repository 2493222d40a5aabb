"""Kills at random points (issue 21, done-when): explain-module, with and without
``--plot``, receives SIGTERM or SIGKILL at 30 seeded random points over a complete run.
After each: the output dir holds the old output or the complete new one; a SIGTERM ends
the process within 5 s with a line saying truthfully which of the two is there; no
staging folder is left (after a SIGKILL: once the next run's clean-up ran); no process
of the run is left (figure workers included)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import paths
from _helpers.explain import explain_args
from click.testing import CliRunner

from isograph_gpu.cli import main

HELPERS = paths.TESTS / "_helpers"
REPO = paths.REPO
TRIALS = 30

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="forks, process groups and /proc: Linux only")


def _kill_report(ref_inputs, tmp_path: Path, signame: str, plot: bool, seed: int) -> dict:
    old = tmp_path / "old"
    first = CliRunner().invoke(main, explain_args(ref_inputs, old, "--module-ids", "M002"))
    assert first.exit_code == 0, first.output
    out = tmp_path / "run" / "out"
    out.parent.mkdir()
    # two modules: with --plot they are drawn by two worker processes (on 2+ cores)
    args = explain_args(ref_inputs, out, "--module-ids", "M000", "M001",
                        *(["--plot"] if plot else []))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"args": args, "out": str(out), "old": str(old),
                                "signal": signame, "trials": TRIALS, "seed": seed,
                                "figure_dpi": 30}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, str(HELPERS / "kill_points.py"), str(spec)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _check(report: dict, signame: str) -> None:
    trials = report["trials"]
    assert len(trials) == TRIALS
    for trial in trials:
        where = f"kill at {trial['delay']} s of {report['length']:.2f} s: {trial}"
        assert trial["state"] in ("old", "new"), where
        assert trial["staging"] == [], where
        assert trial["processes_left"] == [], where
        if signame == "SIGKILL":
            continue
        assert trial["exit_seconds"] is not None and trial["exit_seconds"] <= 5.0, where
        code, message = trial["exit_code"], " ".join(trial["message"])
        if code == 0:  # the run had ended before the signal
            assert trial["state"] == "new", where
        elif code == 143:
            said_old = "holds the earlier output, unchanged" in message
            said_new = "holds the complete new output" in message
            assert (said_old, said_new) == (trial["state"] == "old", trial["state"] == "new"), \
                where
        else:  # killed before the command installed its handler: nothing was written
            assert code == -15 and trial["state"] == "old", where


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGKILL"])
def test_explain_killed_at_random_points(ref_inputs, tmp_path, signame):
    report = _kill_report(ref_inputs, tmp_path, signame, plot=False, seed=21)
    _check(report, signame)


@pytest.mark.slow
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGKILL"])
def test_explain_with_plots_killed_at_random_points(ref_inputs, tmp_path, signame):
    report = _kill_report(ref_inputs, tmp_path, signame, plot=True, seed=2106)
    _check(report, signame)
