"""The moment GEMMs' two orientations on the CPU, side by side: x' block against
(block' x)' for column-major feature chunks x [n, F] and row-major blocks [n, W], over
the chunk shapes the engine cuts and the block widths K modules give (packed block: the
mask GEMM takes 2K + G + 1 columns, the values K + G + 1, the squares G + 1).

Records per (n, F, W) the median seconds of each and their ratio; the package runs every
CPU GEMM as block' x (``ops.moments.RightBlock.outer``) because of these figures.

    python bench/bench_gemm_orientation.py [--repeats 9] [--output bench/results/gemm_orientation_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import isograph_gpu  # noqa: F401  (sets the BLAS mode the package runs under)
from isograph_gpu.progress import cpu_model_name

RESULTS = Path(__file__).resolve().parent / "results" / "gemm_orientation_cpu.json"
#: (n samples, chunk features): the engine's chunks at 1,000 samples, a narrow last
#: chunk, few samples, GTEx's sample count
SHAPES = [(1000, 6678), (1000, 500), (200, 5000), (17000, 400)]
#: block prefix widths: K = 20 and 32 modules with one split (21, 41, 61; 33, 65, 97), a
#: few modules, and both splits at K = 32 (129)
WIDTHS = [4, 8, 13, 21, 33, 41, 61, 65, 97, 129]


def _median(fn, repeats: int) -> float:
    fn()  # warm-up: thread pools, page faults of the result
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for n, f in SHAPES:
        x = torch.from_numpy(np.asfortranarray(rng.standard_normal((n, f))))
        block = torch.from_numpy(rng.standard_normal((n, max(WIDTHS))))
        for w in WIDTHS:
            b = block[:, :w]
            inner = _median(lambda b=b, x=x: x.T @ b, args.repeats)
            outer = _median(lambda b=b, x=x: (b.T @ x).T, args.repeats)
            rows.append({"n": n, "features": f, "width": w, "x_block_s": inner,
                         "block_x_s": outer, "x_block_over_block_x": round(inner / outer, 3)})
            print(f"n={n:6d} F={f:5d} W={w:4d}  x'block {inner * 1e3:8.2f} ms  "
                  f"block'x {outer * 1e3:8.2f} ms  ratio {inner / outer:5.2f}", flush=True)
    ratios = [r["x_block_over_block_x"] for r in rows]
    record = {
        "benchmark": "bench/bench_gemm_orientation.py",
        "what": "x' block vs (block' x)' on column-major float64 chunks, medians",
        "machine": {"platform": platform.platform(), "processor": cpu_model_name() or platform.processor(),
                    "cpus": os.cpu_count(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(),
                    "MKL_CBWR": os.environ.get("MKL_CBWR")},
        "load_average_1min": os.getloadavg()[0],
        "repeats": args.repeats,
        "median_ratio": statistics.median(ratios),
        "min_ratio": min(ratios),
        "rows": rows,
    }
    args.output.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: record[k] for k in ("median_ratio", "min_ratio")}))


if __name__ == "__main__":
    main()
