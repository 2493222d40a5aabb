"""Two ``explain-module`` runs at once vs one alone, per OpenMP wait policy, side by side.

The CLI starts with ``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it
(``isograph_gpu.cli.common.THREAD_DEFAULTS``). This benchmark runs the CLI on the same
inputs (bench_explain.py's generator) under three environments, interleaved per repeat:

* ``unset``: ``OMP_WAIT_POLICY`` set to the empty string, which the CLI leaves alone and
  libgomp reads as unset (its default: spin a while, then sleep; it prints one warning
  line about the value): the behaviour before the default;
* ``ACTIVE``: threads spin while waiting for work;
* ``PASSIVE``: the CLI's default.

For each: one run alone (wall clock), then two runs started together (the wall clock until
both finished). The ratio two-at-once / one-alone is the figure that matters (fair share on a
2-core host: 2.0). Other work on the host loads both alike; the load average is recorded.

Usage: ``python bench/bench_threads.py [--size medium] [--repeats 2]``; writes
``bench/results/threads_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from bench_explain import REPO, SIZES, describe_inputs, ours_cmd, prepare_inputs  # noqa: E402

RESULTS = BENCH_DIR / "results" / "threads_cpu.json"
POLICIES = {"unset": "", "ACTIVE": "ACTIVE", "PASSIVE": "PASSIVE"}


def _start(cmd: list[str], policy: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_WAIT_POLICY": policy}
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            cwd=REPO)


def timed_together(paths: dict[str, Path], policy: str, n_runs: int, root: Path) -> float:
    """Wall clock of ``n_runs`` CLI runs started at once, until the last one ends."""
    start = time.perf_counter()
    procs = [_start([*ours_cmd(paths, root / f"out{i}"), "--quiet"], policy,
                    root / f"log{i}.txt") for i in range(n_runs)]
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - start
    if any(codes):
        raise RuntimeError(f"a run failed (exit codes {codes}); see {root}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium", choices=sorted(SIZES))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    paths = prepare_inputs(args.size, SIZES[args.size])
    times: dict[str, dict[str, list[float]]] = {
        name: {"one_alone_s": [], "two_at_once_s": []} for name in POLICIES}
    loads = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        for name, policy in POLICIES.items():
            for n_runs, key in ((1, "one_alone_s"), (2, "two_at_once_s")):
                with tempfile.TemporaryDirectory() as tmp:
                    times[name][key].append(timed_together(paths, policy, n_runs, Path(tmp)))
                loads.append(os.getloadavg()[0])
    rows = {}
    for name, got in times.items():
        one, two = statistics.median(got["one_alone_s"]), statistics.median(got["two_at_once_s"])
        rows[name] = {**got, "one_alone_median_s": one, "two_at_once_median_s": two,
                      "two_over_one": two / one}
        print(f"{name:8} one alone {one:6.2f} s   two at once {two:6.2f} s   "
              f"ratio {two / one:4.2f}")
    RESULTS.write_text(json.dumps({
        "size": args.size, "inputs": describe_inputs(paths), "repeats": args.repeats,
        "cpu_count": os.cpu_count(), "load_average_1min": loads,
        "host": "shared 2-core host, loaded by other work during the run",
        "policies": rows}, indent=1))


if __name__ == "__main__":
    main()
