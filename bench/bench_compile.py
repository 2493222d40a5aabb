"""torch.compile (inductor's C++/OpenMP code on the CPU) of the chunk step's centring and
masking (``ops.moments.centre_and_mask``) against the eager torch ops, at the engine's chunk
shape for 1,000 samples (6,678 features, 2% missing, float64), in fresh processes: the
first with an empty inductor cache (the compile a new installation pays), then with the
cache warm (what every later run pays), both timing the same chunk.

Two functions: the package's ``centre_and_mask`` itself, and the same passes without its
power-of-two scale (``torch.frexp``; nan_to_num, the mask, the column sums and counts, the
centring, out of place), which is what a fused kernel would have to do. Records per function
the compile seconds, the median per-chunk time eager and compiled and whether the bits are
the eager ones (or the compile error's first line); the per-run break-even is compile /
(eager - compiled) chunks.

    python bench/bench_compile.py [--repeats 9] [--output bench/results/compile_cpu.json]
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

RESULTS = Path(__file__).resolve().parent / "results" / "compile_cpu.json"
REPO = Path(__file__).resolve().parent.parent

WORKER = r"""
import json, sys, time
import numpy as np, torch
from isograph_gpu.ops.moments import centre_and_mask
repeats = int(sys.argv[1])
rng = np.random.default_rng(0)
x = rng.normal(size=(1000, 6678))
x[rng.random(x.shape) < 0.02] = np.nan
x = torch.from_numpy(np.asfortranarray(x))

def median(fn):
    fn(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return sorted(times)[repeats // 2]

def without_scale(x):
    filled = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    mask = torch.eq(filled, x).to(x.dtype)
    centre = filled.sum(dim=0) / mask.sum(dim=0).clamp_min(1.0)
    return mask, filled - mask * centre, centre

out = {}
for name, fn in (("centre_and_mask", centre_and_mask), ("without_scale", without_scale)):
    row = {"eager_s": median(fn)}
    start = time.perf_counter()
    try:
        compiled = torch.compile(fn, dynamic=False)
        compiled(x)
    except Exception as exc:  # inductor's codegen may fail for an op on this CPU
        row["error"] = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        out[name] = row
        continue
    row["compile_s"] = time.perf_counter() - start
    row["compiled_s"] = median(compiled)
    row["same_bits"] = all(torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0))
                           for a, b in zip(fn(x), compiled(x)))
    out[name] = row
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    runs = {}
    with tempfile.TemporaryDirectory(prefix="isograph_gpu_inductor_") as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        for name in ("empty_cache", "warm_cache"):
            out = subprocess.run([sys.executable, "-c", WORKER, str(args.repeats)], cwd=REPO,
                                 env=env, check=True, capture_output=True, text=True).stdout
            runs[name] = json.loads(out.strip().splitlines()[-1])
            print(name, runs[name], flush=True)
    break_even = {}
    for name, warm in runs["warm_cache"].items():
        saved = warm["eager_s"] - warm.get("compiled_s", warm["eager_s"])
        break_even[name] = warm["compile_s"] / saved if saved > 0 else None
    record = {"benchmark": "bench/bench_compile.py",
              "what": "centre_and_mask on one 1,000 x 6,678 float64 chunk, eager vs torch.compile",
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
              "load_average_1min": os.getloadavg()[0], "repeats": args.repeats,
              "runs": runs,
              "break_even_chunks_warm": break_even}
    args.output.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
