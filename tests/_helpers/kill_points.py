"""Kill a command at random points and report what each kill left (issue 21: kill tests).

Run as a script: ``python kill_points.py SPEC.json``; prints one JSON report. The driver
imports the package once, then forks one child per trial that runs the command line
(``isograph_gpu.cli.main``) in its own process group, as the console script does, so a
trial costs the run, not the imports. Kill points are drawn uniformly over the length of
a complete run (measured first) with ``random.Random(seed)``.

SPEC: ``{"args": [...], "out": path, "old": path (a copy of the output before each
trial), "signal": "SIGTERM" | "SIGKILL", "trials": n, "seed": s, "figure_dpi": d
(optional)}``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path

from processes import GROUP, processes_where

from isograph_gpu.cli import main  # imported once, before the forks
from isograph_gpu.io.output import remove_stale_staging
from isograph_gpu.pipeline import explain_module  # noqa: F401  (the run's modules, loaded)


def _child(args: list[str], log: Path) -> None:
    os.setpgid(0, 0)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    code = 0
    try:
        main(args, standalone_mode=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        code = 99
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _start(args: list[str], log: Path) -> int:
    pid = os.fork()
    if pid == 0:
        _child(args, log)
    return pid


def _wait(pid: int, timeout: float) -> int | None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    return None


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()} if root.exists() else {}


def _draw_at(dpi: int) -> None:
    """Figures of explain-module --plot at ``dpi`` (the children inherit it): small
    images keep 30 runs within the suite's time; what is tested is the same."""
    import inspect

    from isograph_gpu.plots import render

    function = render.render_explain_figures
    names = [name for name, p in inspect.signature(function).parameters.items()
             if p.default is not inspect.Parameter.empty]
    defaults = list(function.__defaults__)
    defaults[names.index("dpi")] = dpi
    function.__defaults__ = tuple(defaults)


def run(spec: dict) -> dict:
    out, old = Path(spec["out"]), Path(spec["old"])
    if spec.get("figure_dpi"):
        _draw_at(int(spec["figure_dpi"]))
    log = out.parent / "trial.log"
    signum = getattr(signal, spec["signal"])

    def restore() -> None:
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(old, out)

    restore()
    start = time.monotonic()
    pid = _start(spec["args"], log)
    assert _wait(pid, 600) == 0, log.read_text()
    length = time.monotonic() - start
    new = _tree(out)
    rng = random.Random(spec["seed"])
    trials = []
    for _ in range(spec["trials"]):
        restore()
        delay = rng.uniform(0.0, length)
        pid = _start(spec["args"], log)
        time.sleep(delay)
        sent = time.monotonic()
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
        code = _wait(pid, 5.0 if signum == signal.SIGTERM else 30.0)
        exit_seconds = time.monotonic() - sent
        if code is None:  # still running: a hang; end it, report it
            os.killpg(pid, signal.SIGKILL)
            code = _wait(pid, 30.0)
            exit_seconds = None
        time.sleep(0.3)  # workers get SIGKILL from the kernel when their parent ends
        left = processes_where(GROUP, pid)
        for straggler in left:
            os.kill(straggler, signal.SIGKILL)
        staging_after_kill = sorted(p.name for p in out.parent.iterdir()
                                    if "isograph-gpu-staging" in p.name)
        if signum == signal.SIGKILL:  # what the next run into the folder does first
            remove_stale_staging(out)
        tree = _tree(out)
        trials.append({
            "delay": round(delay, 3), "exit_code": code, "exit_seconds": exit_seconds,
            "message": log.read_text(errors="replace").strip().splitlines()[-1:],
            "processes_left": left, "staging_after_kill": staging_after_kill,
            "staging": sorted(p.name for p in out.parent.iterdir()
                              if "isograph-gpu-staging" in p.name),
            "state": ("old" if tree == _tree(old) else "new" if _is_new(tree, new) else
                      "other: " + ", ".join(sorted(set(tree) ^ set(new))[:5])),
        })
    return {"length": length, "trials": trials}


def _is_new(tree: dict[str, bytes], reference: dict[str, bytes]) -> bool:
    """The complete output of a run: the reference run's files and none other, its tables
    byte for byte (the manifest's timings and figure bytes may differ), and a manifest
    listing exactly the files present."""
    manifest_name = "module_explanation_manifest.json"
    if set(tree) != set(reference) or manifest_name not in tree:
        return False
    listed = json.loads(tree[manifest_name]).get("files")
    if listed is not None and set(listed) != set(tree):
        return False
    return all(tree[name] == reference[name] for name in tree if name.endswith(".parquet"))


if __name__ == "__main__":
    print(json.dumps(run(json.loads(Path(sys.argv[1]).read_text()))))
