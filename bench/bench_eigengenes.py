"""Module eigengenes (``ops.eigengene.module_eigengenes``: the sign bootstrap, up to five
refinement rounds, the mean) at the benchmarks' shapes, this tree against a git ref side by
side: for each shape a subprocess of the ref's package (``git archive`` in a temporary
folder), then one of this tree's, each timing the repeats, so both run on the same
(possibly loaded) host minutes apart.
Checks that both give the same eigengene bits.

    python bench/bench_eigengenes.py --baseline REF [--repeats 5]
        [--output bench/results/eigengenes_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results" / "eigengenes_cpu.json"
#: (samples, feature_scores rows in the modules, modules): the 50k CLI benchmark's
#: 20 modules of 50 genes x 25 channels, the 250k one's 32, GTEx's sample count
SHAPES = [(1000, 25000, 20), (1000, 40000, 32), (17000, 5000, 20)]

WORKER = r"""
import hashlib, json, sys, time
import numpy as np, torch
from isograph_gpu.ops.eigengene import module_eigengenes
n, rows, k, repeats = (int(v) for v in sys.argv[1:5])
rng = np.random.default_rng(0)
latent = rng.normal(size=(n, k))
module = np.arange(rows) % k
scores = rng.normal(size=(n, rows)) + latent[:, module] * rng.choice([-1.0, 1.0], size=rows)
scores[rng.random(scores.shape) < 0.02] = np.nan
per = -(-rows // k)
idx = np.full((k, per), -1, dtype=np.int64)
for j in range(k):
    mine = np.flatnonzero(module == j)
    idx[j, :len(mine)] = mine
s, r = torch.from_numpy(scores), torch.from_numpy(idx)
times = []
for _ in range(repeats + 1):
    start = time.perf_counter()
    eig = module_eigengenes(s, r)
    times.append(time.perf_counter() - start)
print(json.dumps({"runs_s": times[1:], "median_s": sorted(times[1:])[repeats // 2],
                  "digest": hashlib.sha256(eig.numpy().tobytes()).hexdigest()}))
"""


def _export(ref: str, root: Path) -> Path:
    folder = root / "baseline"
    folder.mkdir()
    archive = subprocess.run(["git", "archive", ref, "isograph_gpu"], cwd=REPO, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def _run(package_root: Path, shape: tuple[int, int, int], repeats: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    out = subprocess.run([sys.executable, "-c", WORKER, *map(str, shape), str(repeats)],
                         cwd=package_root, env=env, check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="git ref timed alongside")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    sha = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=REPO,
                         check=True, capture_output=True, text=True).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory(prefix="isograph_gpu_eigengenes_") as tmp:
        baseline = _export(args.baseline, Path(tmp))
        for shape in SHAPES:
            old = _run(baseline, shape, args.repeats)
            new = _run(REPO, shape, args.repeats)
            row = {"samples": shape[0], "rows": shape[1], "modules": shape[2],
                   "baseline_median_s": old["median_s"], "current_median_s": new["median_s"],
                   "speedup": round(old["median_s"] / new["median_s"], 2),
                   "identical_eigengenes": old["digest"] == new["digest"],
                   "baseline_runs_s": old["runs_s"], "current_runs_s": new["runs_s"]}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if not k.endswith("runs_s")}),
                  flush=True)
    record = {"benchmark": "bench/bench_eigengenes.py", "baseline": sha,
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
              "load_average_1min": os.getloadavg()[0], "repeats": args.repeats,
              "rows": rows}
    args.output.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
