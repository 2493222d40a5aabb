"""GPU benchmark: 1,000 samples x 250,000 features x 32 modules.

Two parts, both recorded in one JSON (default bench/results/gpu.json):

* stages, with the feature matrix resident on the device (float32, 2 % NaN): the moments of
  the correlation (fused CuPy kernel vs the torch GEMM path), Pearson r, p-values (float64),
  segments (switch strength), the high/low group sums (kernel vs torch); plus, for the
  correlation stage, the fraction of the card's memory bandwidth achieved
  (bytes of X that must be read / median time / published bandwidth);
* end to end: ``explain_module`` from parquet files to written tables on a synthetic
  dataset of the same shape (``isograph_gpu.synthetic``; 62,500 genes x 4 transcripts),
  in process (median of ``--repeats``) and once through the CLI in a subprocess (wall
  clock including interpreter start-up and CUDA initialisation, and its peak RSS).

Medians of ``--repeats`` runs after one warm-up. Without CUDA it exits with a message
unless ``--device cpu`` is given (with ``--features``/``--samples`` to shrink the problem;
useful to check the script itself).

    python bench/bench_gpu.py [--device cuda] [--repeats 5] [--out bench/results/gpu.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_scaling import CARD_BANDWIDTH, median_time  # bench/ is on sys.path


def stage_timings(device: torch.device, n: int, f: int, k: int, repeats: int) -> dict:
    from isograph_gpu import backends
    from isograph_gpu.backends import cupy_kernels
    from isograph_gpu.ops.contrast import percentile_split
    from isograph_gpu.ops.moments import masked_moments, moments_and_group_sums
    from isograph_gpu.ops.pearson import pearson_from_moments
    from isograph_gpu.ops.pvalues import pearson_pvalue
    from isograph_gpu.ops.segments import switch_strength

    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(n, f, device=device, generator=g)
    x[torch.rand(x.shape, device=device, generator=g) < 0.02] = float("nan")
    y = torch.randn(n, k, device=device, generator=g)
    segment = torch.arange(f, device=device) // 4
    groups = torch.cat(percentile_split(y, 50.0), dim=1)
    kernels = backends.kernels_enabled(x, y)
    row: dict = {"dtype": "float32 (p-values float64)", "kernels_available": kernels}
    row["moments_torch_s"] = median_time(lambda: masked_moments(x, y), device, repeats)
    row["moments_and_groups_torch_s"] = median_time(
        lambda: moments_and_group_sums(x, y, groups), device, repeats)
    if kernels:
        row["moments_kernel_s"] = median_time(
            lambda: cupy_kernels.masked_moments(x, y), device, repeats)
        row["moments_and_groups_kernel_s"] = median_time(
            lambda: cupy_kernels.moments_and_group_sums(x, y, groups), device, repeats)
    m = masked_moments(x, y)
    row["pearson_s"] = median_time(lambda: pearson_from_moments(m), device, repeats)
    r = pearson_from_moments(m)
    pairs = m.n.round().to(torch.int64)
    row["pvalues_s"] = median_time(lambda: pearson_pvalue(r, pairs), device, repeats)
    row["segments_s"] = median_time(lambda: switch_strength(r, segment, f // 4), device,
                                     repeats)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        bandwidth = next((v for key, v in CARD_BANDWIDTH.items() if key in name), None)
        row["card"] = name
        if bandwidth is not None:
            read = x.numel() * x.element_size()
            row["card_bandwidth_bytes_per_s"] = bandwidth
            for path in ("torch", "kernel"):
                if f"moments_{path}_s" in row:
                    row[f"correlation_bandwidth_fraction_{path}"] = (
                        read / row[f"moments_{path}_s"] / bandwidth)
    return row


def end_to_end(device: torch.device, n: int, f: int, k: int, repeats: int) -> dict:
    from isograph_gpu import ExplainConfig, explain_module
    from isograph_gpu.synthetic import make_synthetic_dataset

    with tempfile.TemporaryDirectory(prefix="isograph_gpu_bench_") as tmp:
        tmp_path = Path(tmp)
        t = time.perf_counter()
        data = make_synthetic_dataset(n_samples=n, n_genes=f // 4, n_modules=k,
                                      genes_per_module=50, transcripts_per_gene=(4, 4),
                                      n_psi=0, seed=0)
        paths = data.write(tmp_path / "inputs")
        del data
        feature_table_bytes = Path(paths["feature_table"]).stat().st_size
        generate_s = time.perf_counter() - t
        config = ExplainConfig(device=device.type, progress=False)
        args = (paths["artifact_dir"], paths["feature_table"], paths["feature_meta"])
        runs = []
        for i in range(repeats + 1):  # first run warms up (CUDA context, kernel compile)
            out = tmp_path / f"out{i}"
            t = time.perf_counter()
            explain_module(*args, config=config, output_dir=out)
            runs.append(time.perf_counter() - t)
        manifest = json.loads((out / "module_explanation_manifest.json").read_text())
        cli = [sys.executable, "-m", "isograph_gpu", "explain-module",
               "--artifact-dir", str(paths["artifact_dir"]),
               "--feature-table", str(paths["feature_table"]),
               "--feature-meta", str(paths["feature_meta"]),
               "--output-dir", str(tmp_path / "out_cli"), "--device", device.type, "--quiet"]
        t = time.perf_counter()
        subprocess.run(cli, check=True, stdout=subprocess.DEVNULL)
        cli_s = time.perf_counter() - t
        cli_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB
        cli_stages = json.loads((tmp_path / "out_cli" / "module_explanation_manifest.json")
                                .read_text()).get("timings_seconds", {})
    return {
        "what": "explain_module: parquet read -> eigengenes -> statistics -> written tables",
        "generate_inputs_s": generate_s,
        "in_process_runs_s": runs[1:],
        "in_process_median_s": statistics.median(runs[1:]),
        "warm_up_s": runs[0],
        "cli_wall_s": cli_s,
        "cli_peak_rss_gib": cli_peak / 2**30,
        "feature_table_file_gib": feature_table_bytes / 2**30,
        "stage_timings_s": manifest.get("timings_seconds"),
        "cli_stage_timings_s": cli_stages,
        # interpreter start, imports, CUDA context, manifest, commit, exit
        "cli_outside_stages_s": cli_s - sum(cli_stages.values()),
        "precision": manifest.get("precision"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--features", type=int, default=250_000)
    parser.add_argument("--modules", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench/results/gpu.json"))
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device available (torch.cuda.is_available() is False); "
              "nothing measured", file=sys.stderr)
        return 2
    shape = (args.samples, args.features, args.modules)
    result: dict = {
        "benchmark": "GPU stages and end to end",
        "n_samples": shape[0], "n_features": shape[1], "n_modules": shape[2],
        "device": args.device, "repeats": args.repeats, "statistic": "median",
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__},
    }
    result["stages"] = stage_timings(device, *shape, args.repeats)
    print(json.dumps(result["stages"], indent=2), flush=True)
    if not args.skip_end_to_end:
        result["end_to_end"] = end_to_end(device, *shape, max(1, min(args.repeats, 3)))
        print(json.dumps(result["end_to_end"], indent=2), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
