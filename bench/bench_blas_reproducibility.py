"""The cost of MKL's strict reproducibility (``MKL_CBWR=AUTO,STRICT``, set when isograph_gpu
is imported: isograph_gpu/reproducible_blas.py) on the engine's GEMMs.

Each run is a fresh process (MKL reads the setting at its first call), with and without
the setting, alternating: whether 1 and 2 threads give the same bits on the shapes
tests/compute/test_engine_and_contrasts.py checks, and the median time of the two GEMMs of
one chunk at the 250,000 x 32 CLI plan's shape (6,678 features x 1,000 samples against a
291-column block, float64, 2 threads). Writes ``bench/results/blas_reproducibility_cpu.json``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "blas_reproducibility_cpu.json"

PROBE = """
import json, time
import numpy as np, torch
rng = np.random.default_rng(32)
x = torch.from_numpy(np.asfortranarray(rng.normal(size=(200, 300)) + 5.0))
b = torch.from_numpy(rng.normal(size=(200, 193)))
runs = []
for t in (1, 2):
    torch.set_num_threads(t)
    runs.append([(x[:, :c].T @ b, b.T @ x[:, :c]) for c in (13, 34, 300)])
same = all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(*runs))
torch.set_num_threads(2)
X = torch.randn(1000, 6678, dtype=torch.float64)
B = torch.randn(1000, 291, dtype=torch.float64)
seconds = []
for _ in range(9):
    t0 = time.perf_counter()
    B.T @ X
    X.T @ B
    seconds.append(time.perf_counter() - t0)
print(json.dumps({"same_bits_1_and_2_threads": same, "gemm_s": sorted(seconds)[4]}))
"""


def run(strict: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    if strict:
        env["MKL_CBWR"] = "AUTO,STRICT"
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def main(repeats: int = 7) -> None:
    load = [os.getloadavg()[0]]
    rows: dict[str, list[dict]] = {"default": [], "strict": []}
    for _ in range(repeats):
        for name in rows:
            rows[name].append(run(name == "strict"))
    load.append(os.getloadavg()[0])
    summary = {name: {"same_bits_1_and_2_threads": all(r["same_bits_1_and_2_threads"]
                                                       for r in runs),
                      "gemm_median_s": statistics.median(r["gemm_s"] for r in runs),
                      "gemm_s": [r["gemm_s"] for r in runs]} for name, runs in rows.items()}
    summary["strict_over_default"] = (summary["strict"]["gemm_median_s"]
                                      / summary["default"]["gemm_median_s"])
    record = {"benchmark": "bench/bench_blas_reproducibility.py",
              "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                          "processor": platform.processor()},
              "load_average_1min_start_end": load,
              "host": "quiet" if max(load) < 1.5 else "loaded host", **summary}
    RESULTS.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
