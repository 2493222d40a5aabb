"""Scaling of the tensor-core stages with features, samples and modules.

Stages timed: moments + Pearson (one masked GEMM pass), p-values (float64 betainc),
per-gene segments (switch strength), contrast (median split + Welch) and end to end
(the chunked engine, ``isograph_gpu.engine.feature_statistics``). Runs on the CPU and, when
available, on CUDA (there it also records the fraction of the card's memory bandwidth
achieved by the correlation stage: bytes of X that must be read / time / bandwidth).

``--large`` also runs 1,000 samples x 250,000 features x 32 modules end to end through the
engine in a child process and records its wall time and peak RSS.

``--whole-run N,F,K`` runs the whole ``explain-module`` CLI (parquet read to written
tables) on a synthetic dataset of N samples x F transcript features x K modules (generated
once under bench/.work/whole_N_F_K and reused), in fresh
child processes: wall clock, peak RSS, the manifest's stage timings and the time outside
every stage (start-up), so the next bottleneck is visible. ``--whole-run-modules`` repeats
it on the same features for other module counts (memory must not follow modules).

    python bench/bench_scaling.py [--large] [--out bench/results/scaling_cpu.json]
    python bench/bench_scaling.py --whole-run 1000,250000,32 --out bench/results/whole_run_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from isograph_gpu.engine import feature_statistics
from isograph_gpu.ops.contrast import percentile_split
from isograph_gpu.ops.pearson import masked_pearson
from isograph_gpu.ops.pvalues import pearson_pvalue
from isograph_gpu.ops.segments import switch_strength

#: published HBM bandwidth, bytes/s, by device-name fragment
CARD_BANDWIDTH = {"H100": 3.35e12, "H200": 4.8e12, "A100": 2.0e12}


def _data(n: int, f: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f))
    x[rng.random(x.shape) < 0.02] = np.nan
    return x, rng.normal(size=(n, k))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn, device: torch.device, repeats: int = 3) -> float:
    """Median wall time of ``repeats`` runs after one warm-up."""
    fn()
    _sync(device)
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def time_stages(n: int, f: int, k: int, device: torch.device, dtype: torch.dtype) -> dict:
    x_np, y_np = _data(n, f, k)
    x = torch.as_tensor(x_np, dtype=dtype, device=device)
    y = torch.as_tensor(y_np, dtype=dtype, device=device)
    segment = torch.as_tensor(np.arange(f) // 4, device=device)
    genes = (f + 3) // 4
    r, n_pairs = masked_pearson(x, y)
    high, low = percentile_split(y, 50.0)
    row = {
        "n_samples": n, "n_features": f, "n_modules": k,
        "device": device.type, "dtype": str(dtype).removeprefix("torch."),
        "moments_pearson_s": median_time(lambda: masked_pearson(x, y), device),
        "pvalues_s": median_time(lambda: pearson_pvalue(r, n_pairs), device),
        "segments_s": median_time(lambda: switch_strength(r, segment, genes), device),
        "contrast_s": median_time(
            lambda: feature_statistics(x_np, y, min_pairs=3, splits={"m": (high, low)},
                                       device=device, dtype=dtype,
                                       memory_budget_bytes=2**40), device, repeats=1)
        - 0.0,
        "end_to_end_s": median_time(
            lambda: (feature_statistics(x_np, y, min_pairs=3, splits={"m": (high, low)},
                                        device=device, dtype=dtype,
                                        memory_budget_bytes=512 * 2**20),
                     switch_strength(r, segment, genes)), device, repeats=1),
    }
    # contrast alone = engine with split minus engine without
    no_split = median_time(lambda: feature_statistics(x_np, y, min_pairs=3, device=device,
                                                 dtype=dtype, memory_budget_bytes=2**40),
                      device, repeats=1)
    row["contrast_s"] = max(0.0, row["contrast_s"] - no_split)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        bw = next((v for key, v in CARD_BANDWIDTH.items() if key in name), None)
        bytes_read = n * f * x.element_size()
        row["gpu"] = name
        if bw is not None:
            row["correlation_bandwidth_fraction"] = bytes_read / row["moments_pearson_s"] / bw
    return row


def large_run(n: int, f: int, k: int, budget: int) -> dict:
    """1,000 x 250,000 x 32 through the engine (float32 host matrix, float64 compute on the
    CPU); wall time and peak RSS of this process."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, f), dtype=np.float32)
    x[rng.random((n, f), dtype=np.float32) < 0.02] = np.nan
    y = torch.as_tensor(rng.normal(size=(n, k)))
    high, low = percentile_split(y, 50.0)
    t = time.perf_counter()
    stats = feature_statistics(x, y, min_pairs=3, splits={"median": (high, low)},
                               device=torch.device("cpu"), dtype=torch.float64,
                               memory_budget_bytes=budget)
    r = torch.as_tensor(stats.r)
    strength = switch_strength(r, torch.as_tensor(np.arange(f) // 4), (f + 3) // 4)
    wall = time.perf_counter() - t
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "n_samples": n, "n_features": f, "n_modules": k, "device": "cpu",
        "dtype": "float64 compute, float32 host matrix", "memory_budget_bytes": budget,
        "wall_s": wall, "peak_rss_gib": peak_kib / 2**20,
        "input_matrix_gib": x.nbytes / 2**30,
        "finite_switch_strength": int(torch.isfinite(strength).sum()),
    }


def _peak_rss_run(cmd: list[str], env: dict[str, str] | None = None,
                  cwd: Path | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of ``cmd`` in a fresh child (``wait4`` rusage)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed")
    return wall, usage.ru_maxrss


def whole_run(n: int, f: int, k: int, device: str, module_counts: list[int],
              repeats: int = 1) -> dict:
    """The explain CLI end to end on synthetic parquet inputs (n x f features, k modules)."""
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    with tempfile.TemporaryDirectory(prefix="isograph_gpu_whole_run_") as tmp:
        t = time.perf_counter()
        paths = _whole_run_inputs(repo / "bench" / ".work" / f"whole_{n}_{f}_{k}" / "inputs",
                                  n, f, k)
        generate_s = time.perf_counter() - t
        rows = []
        for modules in module_counts or [k]:
            for rep in range(repeats):
                out = Path(tmp) / f"out_{modules}_{rep}"
                cmd = [sys.executable, "-m", "isograph_gpu", "explain-module",
                       "--artifact-dir", str(paths["artifact_dir"]),
                       "--feature-table", str(paths["feature_table"]),
                       "--feature-meta", str(paths["feature_meta"]),
                       "--output-dir", str(out), "--device", device, "--quiet",
                       "--module-ids", *[f"M{i:03d}" for i in range(modules)]]
                wall, peak_kib = _peak_rss_run(cmd, env)
                manifest = json.loads((out / "module_explanation_manifest.json").read_text())
                stages = manifest["timings_seconds"]
                rows.append({"n_modules": modules, "wall_s": round(wall, 3),
                             "peak_rss_gib": round(peak_kib / 2**20, 3),
                             "stage_timings_s": stages,
                             "outside_stages_s": round(wall - sum(stages.values()), 3),
                             "feature_table_streamed": manifest["feature_table_streamed"],
                             "precision": manifest["precision"]})
                print(json.dumps(rows[-1]), flush=True)
        return {"what": "isograph-gpu explain-module CLI: parquet -> written tables",
                "n_samples": n, "n_features": f, "device": device,
                "generate_inputs_s": round(generate_s, 3),
                "feature_table_gib": round(Path(paths["feature_table"]).stat().st_size
                                           / 2**30, 3),
                "runs": rows}


def _whole_run_inputs(folder: Path, n: int, f: int, k: int) -> dict[str, Path]:
    """The synthetic inputs of a whole run, generated once under ``folder`` (git-ignored
    bench/.work) and reused while the files are there (the 250k dataset takes minutes)."""
    from isograph_gpu.synthetic import make_synthetic_dataset

    paths = {"artifact_dir": folder / "artifact", "feature_table": folder / "feature_table.parquet",
             "feature_meta": folder / "feature_meta.parquet"}
    done = folder / ".complete"
    if not done.exists():
        data = make_synthetic_dataset(n_samples=n, n_genes=max(1, f // 4), n_modules=k,
                                      genes_per_module=min(50, max(1, f // 4 // k)),
                                      transcripts_per_gene=(4, 4), n_psi=0, seed=0)
        written = data.write(folder)
        assert Path(written["feature_table"]) == paths["feature_table"]
        done.write_text("complete\n")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/scaling_cpu.json"))
    parser.add_argument("--large", action="store_true")
    parser.add_argument("--large-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=int, default=512 * 2**20)
    parser.add_argument("--whole-run", metavar="N,F,K", default=None)
    parser.add_argument("--whole-run-modules", metavar="K1,K2,...", default="")
    parser.add_argument("--whole-run-device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    if args.whole_run:
        n, f, k = (int(v) for v in args.whole_run.split(","))
        counts = [int(v) for v in args.whole_run_modules.split(",") if v]
        result = {"machine": {"platform": platform.platform(),
                              "cpu_threads": torch.get_num_threads(),
                              "torch": torch.__version__},
                  "whole_run": whole_run(n, f, k, args.whole_run_device, counts,
                                         args.repeats)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        return
    if args.large_child:
        print(json.dumps(large_run(1000, 250_000, 32, args.budget)))
        return
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        dtype = torch.float64 if device.type == "cpu" else torch.float32
        grid = [(1000, f, 32) for f in (5_000, 20_000, 50_000)]
        grid += [(n, 20_000, 32) for n in (250, 4000)]
        grid += [(1000, 20_000, k) for k in (8, 64)]
        for n, f, k in grid:
            row = time_stages(n, f, k, device, dtype)
            print(json.dumps(row), flush=True)
            rows.append(row)
    result = {
        "machine": {"platform": platform.platform(), "cpu_threads": torch.get_num_threads(),
                    "torch": torch.__version__,
                    "note": "2-core machine; timings are medians of 3 after a warm-up (engine: 1 run)"},
        "stages": rows,
    }
    if args.large:
        done = subprocess.run([sys.executable, __file__, "--large-child", "--budget",
                               str(args.budget)], capture_output=True, text=True, check=True)
        result["large_end_to_end"] = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(result["large_end_to_end"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    _plot(rows, args.out.with_suffix(".png"))


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = ["moments_pearson_s", "pvalues_s", "segments_s", "contrast_s", "end_to_end_s"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (axis, fixed) in zip(axes, [("n_features", ("n_samples", "n_modules")),
                                        ("n_samples", ("n_features", "n_modules")),
                                        ("n_modules", ("n_features", "n_samples"))], strict=True):
        for device in sorted({r["device"] for r in rows}):
            base = {"n_samples": 1000, "n_features": 20_000, "n_modules": 32}
            sel = sorted((r for r in rows if r["device"] == device
                          and all(r[c] == base[c] for c in fixed)), key=lambda r: r[axis])
            for s in stages:
                ax.plot([r[axis] for r in sel], [r[s] for r in sel], marker="o",
                        label=f"{s.removesuffix('_s')} ({device})")
            ax.set_xscale("log")
            ax.set_xticks([r[axis] for r in sel], [f"{r[axis]:,}" for r in sel])
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_yscale("log")
        ax.set_xlabel(axis.replace("_", " "))
        ax.set_ylabel("seconds")
    axes[0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
