"""GPU benchmark: 1,000 samples x 250,000 features x 32 modules.

Three parts, recorded in one JSON (default bench/results/gpu.json):

* stages, with the feature matrix resident on the device (2 % NaN), medians of
  ``--repeats``: the masked moments (torch GEMMs, float32 and float64), moments + the group
  sums of the median and tails splits (:class:`isograph_gpu.ops.groups.GroupLayout`), Pearson
  r, Pearson and Welch p-values (float64) through each betainc route that can run here
  (``cupy``: ``cupyx.scipy.special.betainc``; ``torch``: :mod:`isograph_gpu.ops.betainc`),
  segments (switch strength); plus the fraction of the card's memory bandwidth reached by
  the correlation stage (bytes of X read once / median time / published bandwidth);
* parity: ``explain_module`` on the isograph 0.1.5 reference inputs (tests/data) at float64
  and float32 on this device, with the largest deviation from the stored reference tables
  per column kind (r/means absolute, t relative, p/q in log10);
* end to end: ``explain_module`` from parquet files to written tables on a synthetic
  dataset of the stage shape (``isograph_gpu.synthetic``; 62,500 genes x 4 transcripts),
  in process (median of ``--end-to-end-repeats``, default 3) and once through the CLI in a
  subprocess (wall clock including interpreter start-up and CUDA initialisation, and its peak RSS).

The JSON's ``machine`` block names the card, driver, torch, CUDA and CuPy versions. Without
CUDA it exits with a message unless ``--device cpu`` is given (with ``--features`` /
``--samples`` to shrink the problem; useful to check the script itself).

    python bench/bench_gpu.py [--device cuda] [--repeats 5] [--skip-end-to-end]
                              [--out bench/results/gpu.json]
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
import warnings
from pathlib import Path

import numpy as np
import torch
from bench_scaling import CARD_BANDWIDTH, median_time  # bench/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "isograph-0.1.5"
CORE_TABLES = ("gene_driver_table", "transcript_polarity_table", "high_vs_low_table")


def machine_info(device: torch.device) -> dict:
    """Card, driver, torch, CUDA and CuPy versions (None where absent)."""
    info: dict = {"platform": platform.platform(), "python": platform.python_version(),
                  "torch": torch.__version__, "torch_cuda": torch.version.cuda,
                  "cupy": None, "cupy_cuda_runtime": None, "card": None, "driver": None}
    try:
        import cupy

        info["cupy"] = cupy.__version__
        info["cupy_cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
    except Exception:
        pass
    if device.type == "cuda":
        info["card"] = torch.cuda.get_device_name(device)
        try:
            done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version",
                                   "--format=csv,noheader"], capture_output=True, text=True,
                                  timeout=30)
            info["driver"] = done.stdout.strip().splitlines()[0] if done.stdout else None
        except (OSError, subprocess.SubprocessError):
            pass
    return info


def stage_timings(device: torch.device, n: int, f: int, k: int, repeats: int) -> dict:
    from isograph_gpu.backends import cupy_special
    from isograph_gpu.ops import pvalues
    from isograph_gpu.ops.contrast import percentile_split, tail_split
    from isograph_gpu.ops.groups import GroupLayout
    from isograph_gpu.ops.moments import masked_moments, moments_and_group_sums
    from isograph_gpu.ops.pearson import pearson_from_moments
    from isograph_gpu.ops.segments import switch_strength

    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(n, f, device=device, generator=g)
    x[torch.rand(x.shape, device=device, generator=g) < 0.02] = float("nan")
    y = torch.randn(n, k, device=device, generator=g)
    segment = torch.arange(f, device=device) // 4
    layout = GroupLayout.from_splits({"split": percentile_split(y, 50.0),
                                      "tails": tail_split(y, 20.0)}, n, k, device)
    row: dict = {"what": "X resident on the device; p-values float64"}
    x64, y64 = x.double(), y.double()
    row["moments_float32_s"] = median_time(lambda: masked_moments(x, y), device, repeats)
    row["moments_float64_s"] = median_time(lambda: masked_moments(x64, y64), device, repeats)
    row["moments_and_groups_float32_s"] = median_time(
        lambda: moments_and_group_sums(x, y, layout.matrix), device, repeats)
    row["moments_and_groups_float64_s"] = median_time(
        lambda: moments_and_group_sums(x64, y64, layout.matrix), device, repeats)
    m, sums = moments_and_group_sums(x64, y64, layout.matrix)
    row["pearson_s"] = median_time(lambda: pearson_from_moments(m), device, repeats)
    r = pearson_from_moments(m)
    pairs = m.n.round().to(torch.int64)
    welch = layout.welch(sums, "split")
    routes = [pvalues.betainc_route(device)]
    if device.type == "cuda" and "torch" not in routes:
        routes.append("torch")
    original = pvalues.betainc_route
    try:
        for route in routes:
            pvalues.betainc_route = lambda _d, _g=False, route=route: route
            row[f"pearson_pvalues_{route}_s"] = median_time(
                lambda: pvalues.pearson_pvalue(r, pairs), device, repeats)
            row[f"welch_pvalues_{route}_s"] = median_time(
                lambda: pvalues.welch_pvalue(welch.tstat, welch.df), device, repeats)
    finally:
        pvalues.betainc_route = original
    row["pvalue_route_default"] = routes[0]
    row["cupy_available"] = device.type == "cuda" and cupy_special.available()
    row["segments_s"] = median_time(lambda: switch_strength(r, segment, f // 4), device,
                                     repeats)
    if device.type == "cuda":
        bandwidth = next((v for key, v in CARD_BANDWIDTH.items()
                          if key in torch.cuda.get_device_name(device)), None)
        if bandwidth is not None:
            row["card_bandwidth_bytes_per_s"] = bandwidth
            for dtype, xs in (("float32", x), ("float64", x64)):
                read = xs.numel() * xs.element_size()
                row[f"correlation_bandwidth_fraction_{dtype}"] = (
                    read / row[f"moments_{dtype}_s"] / bandwidth)
    return row


def _max_deviation(name: str, expected: np.ndarray, got: np.ndarray) -> float:
    """Largest deviation of one float column at the DESIGN.md metric of its kind."""
    fin = np.isfinite(expected) & np.isfinite(got)
    e, g = expected[fin], got[fin]
    if name in ("pvalue", "qvalue"):
        pos = (e > 1e-290) & (g > 1e-290)
        d = np.abs(np.log10(e[pos]) - np.log10(g[pos]))
    elif name == "tstat":
        d = np.abs(e - g) / np.maximum(np.abs(e), 1e-300)
    else:
        d = np.abs(e - g)
    return float(d.max()) if d.size else 0.0


def parity_deviations(device: torch.device) -> dict:
    """explain_module on the reference inputs at float64 and float32 on ``device``: the
    largest deviation from isograph 0.1.5's stored tables per column (contract: 1e-6)."""
    import pandas as pd

    from isograph_gpu import ExplainConfig, explain_module

    inputs = REFERENCE / "inputs"
    out: dict = {"contract": 1e-6, "metric": "abs; tstat relative; pvalue/qvalue log10"}
    for precision in ("float64", "float32"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            results = explain_module(inputs / "artifact", inputs / "feature_table.parquet",
                                     inputs / "feature_meta.parquet",
                                     config=ExplainConfig(device=device.type,
                                                          precision=precision))
        worst: dict[str, float] = {}
        for module_id, res in results.items():
            for table in CORE_TABLES:
                want = pd.read_parquet(REFERENCE / "expected" / "api_run" / module_id /
                                       f"{table}.parquet")
                got = getattr(res, table)
                for col in want.columns:
                    if want[col].dtype.kind != "f":
                        continue
                    d = _max_deviation(col, want[col].to_numpy(float), got[col].to_numpy(float))
                    key = f"{table}.{col}"
                    worst[key] = max(worst.get(key, 0.0), d)
        out[precision] = {"max_deviation": worst,
                          "within_contract": all(v <= 1e-6 for v in worst.values())}
    return out


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
    parser.add_argument("--skip-parity", action="store_true")
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--end-to-end-repeats", type=int, default=3,
                        help="in-process runs after the warm-up (median recorded)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/gpu.json"))
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device available (torch.cuda.is_available() is False); "
              "nothing measured", file=sys.stderr)
        return 2
    shape = (args.samples, args.features, args.modules)
    result: dict = {
        "benchmark": "GPU stages, reference parity and end to end",
        "n_samples": shape[0], "n_features": shape[1], "n_modules": shape[2],
        "device": args.device, "repeats": args.repeats, "statistic": "median",
        "machine": machine_info(device),
    }
    result["stages"] = stage_timings(device, *shape, args.repeats)
    print(json.dumps(result["stages"], indent=2), flush=True)
    if not args.skip_parity:
        result["parity"] = parity_deviations(device)
        print(json.dumps(result["parity"], indent=2), flush=True)
    if not args.skip_end_to_end:
        result["end_to_end"] = end_to_end(device, *shape, args.end_to_end_repeats)
        print(json.dumps(result["end_to_end"], indent=2), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
