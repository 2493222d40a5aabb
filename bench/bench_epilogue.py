"""GEMMs vs the element-wise work after them, per feature chunk of the chunk step
(``isograph_gpu.compute.step.chunk_statistics``) at the CLI's 1,000 samples x 250,000
features x 32 modules shape: the chunk width the CLI's memory plan gives (default 2 GiB
budget, one median split), a few distinct chunks, scaled to the 250k features.

Per chunk it times, in one process: centring and masking (``centre_and_mask``), the three
moment GEMMs alone (as ``moments_from_block`` runs them), the whole chunk step, and inside
it the cancellation test and recompute (``_recompute_cancelled``) and the p-values. The
element-wise epilogue is the chunk step less centring, GEMMs and p-values. ``--baseline
REF`` runs the same measurement on the package of git ref REF (exported with ``git
archive`` to a temporary folder) in alternating subprocesses, so old and new code are
timed side by side on the same (possibly loaded) host.

    python bench/bench_epilogue.py [--baseline REF] [--rounds 3] [--repeats 5]
        [--out bench/results/epilogue_profile_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_SAMPLES, N_FEATURES, N_MODULES = 1000, 250_000, 32
BUDGET = 2 * 1024**3  # the CLI's default --memory-budget


def worker(repeats: int, chunks: int) -> dict:
    """Median seconds per chunk of each phase (this process's isograph_gpu)."""
    import numpy as np
    import torch

    from isograph_gpu import memory_model as mm
    from isograph_gpu.compute import step as step_module
    from isograph_gpu.compute.plan import chunk_size
    from isograph_gpu.ops import moments as moments_module
    from isograph_gpu.ops.contrast import percentile_split

    k, n = N_MODULES, N_SAMPLES
    width = chunk_size(n, N_FEATURES, 8, int(BUDGET * mm.CHUNK_SHARE_OF_BUDGET),
                       n_results=k * 2)
    rng = np.random.default_rng(0)
    y = torch.from_numpy(rng.normal(size=(n, k)))
    prepared = step_module.prepare_scores(y, {"split": percentile_split(y, 50.0)},
                                          min_pairs=3, dtype=torch.float64,
                                          device=torch.device("cpu"))
    right = prepared.right
    xs, wheres = [], []
    for _ in range(chunks):  # usage-like values with 5 % NaN, one gene per module
        x = np.asfortranarray(rng.beta(2.0, 5.0, size=(n, width)))
        x[rng.random(x.shape) < 0.05] = np.nan
        xs.append(torch.from_numpy(x))
        wheres.append(torch.from_numpy(rng.random((width, k)) < 1.0 / k))
    workspace = moments_module.Workspace(n, width, torch.float64, "cpu")
    spent = {"check": 0.0, "pvalues": 0.0}

    def timed(module, name: str, key: str) -> None:
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - start
        setattr(module, name, wrapper)

    timed(moments_module, "_recompute_cancelled", "check")
    timed(step_module, "welch_pvalue", "pvalues")
    timed(step_module, "_pearson_pvalue_where", "pvalues")

    def gemms(x):
        mx, x0, _, _ = moments_module.centre_and_mask(x, workspace)
        block = right.block
        c = 1 if right.packed else k
        a, b = c + right.n_groups, c + right.n_groups + k

        def times(left, w):
            # trees before the orientation went by device alone had a width threshold
            if right.outer and w > getattr(moments_module, "_OUTER_MIN_WIDTH", 0):
                return (block[:, :w].T @ left).T
            return left.T @ block[:, :w]
        start = time.perf_counter()
        times(mx, block.shape[1])
        times(x0, b)
        times(x0.square_(), a)
        return time.perf_counter() - start

    rows = {name: [] for name in ("centre", "gemm", "step", "check", "pvalues", "step_cpu")}
    for i in range(repeats + 1):
        for x, where in zip(xs, wheres, strict=True):
            start = time.perf_counter()
            moments_module.centre_and_mask(x, workspace)
            centre = time.perf_counter() - start
            gemm = gemms(x)
            spent.update(check=0.0, pvalues=0.0)
            start, cpu = time.perf_counter(), time.process_time()
            step_module.chunk_statistics(x, prepared, pvalue_where=where, workspace=workspace)
            total, total_cpu = time.perf_counter() - start, time.process_time() - cpu
            if i == 0:
                continue  # warm-up
            for name, value in (("centre", centre), ("gemm", gemm), ("step", total),
                                ("check", spent["check"]), ("pvalues", spent["pvalues"]),
                                ("step_cpu", total_cpu)):
                rows[name].append(value)
    out = {f"{name}_s": statistics.median(v) for name, v in rows.items()}
    out["epilogue_s"] = statistics.median(
        s - c - g - p for s, c, g, p in zip(rows["step"], rows["centre"], rows["gemm"],
                                            rows["pvalues"], strict=True))
    out["chunk_width"] = width
    out["threads"] = torch.get_num_threads()
    return out


def _run(tree: str, repeats: int, chunks: int) -> dict:
    env = dict(os.environ, PYTHONPATH=tree)
    done = subprocess.run([sys.executable, __file__, "--worker", str(repeats), str(chunks)],
                          env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _summary(runs: list[dict]) -> dict:
    keys = [k for k in runs[0] if k.endswith("_s")]
    med = {k: statistics.median(r[k] for r in runs) for k in keys}
    chunks = N_FEATURES / runs[0]["chunk_width"]
    return {"per_chunk_median_s": med,
            "scaled_to_250k_s": {k: v * chunks for k, v in med.items()},
            "epilogue_over_gemm": med["epilogue_s"] / med["gemm_s"],
            "epilogue_and_pvalues_over_gemm": (med["epilogue_s"] + med["pvalues_s"])
            / med["gemm_s"],
            "check_share_of_step": med["check_s"] / med["step_s"],
            "chunk_width": runs[0]["chunk_width"], "rounds": runs}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(worker(int(sys.argv[2]), int(sys.argv[3]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="git ref whose package is timed alongside")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunks", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/epilogue_profile_cpu.json"))
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    result = {"benchmark": "chunk step: GEMMs vs the element-wise work after them",
              "shape": {"samples": N_SAMPLES, "features": N_FEATURES, "modules": N_MODULES,
                        "splits": ["median"], "memory_budget_bytes": BUDGET},
              "device": "cpu", "dtype": "float64",
              "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                                       capture_output=True, text=True).stdout.strip(),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
              "load_average_at_start": list(os.getloadavg()),
              "note": "loaded host (shared by several processes): medians; compare the "
                      "ratios and the two trees side by side, not the seconds"}
    trees = {"current": str(root)}
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            archive = subprocess.run(["git", "archive", args.baseline, "isograph_gpu"],
                                     cwd=root, check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            trees["baseline"] = tmp
            result["baseline"] = args.baseline
        runs: dict[str, list[dict]] = {name: [] for name in trees}
        for _ in range(args.rounds):  # alternated: the host's load drifts alike for both
            for name, tree in trees.items():
                runs[name].append(_run(tree, args.repeats, args.chunks))
    for name, rows in runs.items():
        result[name] = _summary(rows)
    if "baseline" in runs:
        b, c = result["baseline"]["per_chunk_median_s"], result["current"]["per_chunk_median_s"]
        result["current_over_baseline"] = {k: c[k] / b[k] for k in c if b[k] > 0}
    result["load_average_at_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in trees}, indent=2))
    for name in trees:
        print(name, json.dumps({k: v for k, v in result[name].items() if k != "rounds"},
                               indent=1))


if __name__ == "__main__":
    main()
