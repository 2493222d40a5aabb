"""Cost of the statistics beyond the reference at 1,000 samples x 50,000 transcripts
(12,500 genes x 4) x 20 modules of 50 genes: the switch permutation null with B
permutations (default 1,000), and the module-trait table with and without covariates.

One process, alternating runs of explain_module without and with ``switch_permutations``
(the null runs on the chunk step's chunks, inside the "feature statistics" stage, and its
last kept columns, counts, p and q in the "switch permutations" stage: its cost is the
first stage's time with the permutations minus without plus the second, from the
manifests), so
the ratio is taken on the same (possibly loaded) host. Also records the flop count the null rests on, 6 n B
sum_k T_k (three moment GEMMs of each module's own transcripts T_k against b permuted
score columns per block), and a projection for 1,000 x 250,000 x 32 x B = 1,000 on one
H200 from its published peaks.

    python bench/bench_statistics.py [--permutations 1000] [--repeats 1]
                                     [--threads N] [--genes 12500]
                                     [--out bench/results/switch_permutations_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from isograph_gpu import ExplainConfig, explain_module
from isograph_gpu import memory_model as mm
from isograph_gpu.synthetic import make_synthetic_dataset

#: one H200 SXM (NVIDIA datasheet): dense FP64 tensor-core and FP32 peaks, HBM3e bandwidth
H200 = {"fp64_tensor_tflops": 67.0, "fp32_tflops": 67.0, "hbm_tb_per_s": 4.8}
#: share of peak assumed for the null's GEMMs ([T_k, n] x [n, ~3b], T_k in the hundreds)
GEMM_EFFICIENCY = 0.5
#: bytes moved per (transcript, null column): three moments written and read, r, strength
ELEMENTWISE_BYTES = 150
#: kernels per op call (one chunk's transcripts of one module, one permutation block):
#: gather, right block, centring, 3 GEMMs, r, segment max / min / count, compare, sum
KERNELS_PER_CALL = 40
#: one kernel launch (and the packed-block check's host synchronisation, amortised)
LAUNCH_S = 10e-6
#: the memory budget of the projected run (the default), and the engine chunk's share
BUDGET_BYTES = 2 * 1024**3


def null_flops(n: int, transcripts_in_modules: int, permutations: int) -> float:
    """Flops of the switch null: three GEMMs of [T_k, n] against 1 + 2b, 1 + b and 1
    columns per block of b permutations, i.e. about 6 n B sum_k T_k."""
    return 6.0 * n * permutations * transcripts_in_modules


def projection(n: int, transcripts_in_modules: int, permutations: int, modules: int = 32
               ) -> dict:
    """Seconds on one H200: GEMMs at :data:`GEMM_EFFICIENCY` of the FP64 peak, the
    elementwise traffic at HBM bandwidth, and the kernel launches of one op call per
    module and flush of the switch null (compute.companions.SwitchNull keeps the chunks'
    tested columns until they fill half the chunk budget at :data:`BUDGET_BYTES`)."""
    flops = null_flops(n, transcripts_in_modules, permutations)
    kept = int(BUDGET_BYTES * mm.CHUNK_SHARE_OF_BUDGET) // 2
    flushes = -(-transcripts_in_modules * n * 8 // kept)
    calls = flushes * modules  # modules=0: GEMM and memory terms only
    launch_s = calls * KERNELS_PER_CALL * LAUNCH_S
    gemm_s = flops / (H200["fp64_tensor_tflops"] * 1e12 * GEMM_EFFICIENCY)
    memory_s = transcripts_in_modules * permutations * ELEMENTWISE_BYTES / (
        H200["hbm_tb_per_s"] * 1e12)
    return {"n_samples": n, "transcripts_tested": transcripts_in_modules,
            "permutations": permutations, "gemm_flops": flops,
            "gemm_s_fp64_at_efficiency": round(gemm_s, 3),
            "elementwise_s": round(memory_s, 4), "op_calls": calls,
            "launch_s": round(launch_s, 3),
            "total_s": round(gemm_s + memory_s + launch_s, 3)}


def projection_h200() -> dict:
    """1,000 x 250,000 x 32 x B = 1,000 on one H200, for three counts of the transcripts
    tested (the explain run tests each module's own transcripts; the training-loop API
    tests every feature against every score, one call per chunk for all K)."""
    return {
        "what": "1,000 x 250,000 transcripts x 32 modules x B = 1,000 on one H200: GEMM "
                "flops / (FP64 tensor-core peak x efficiency) + elementwise bytes / HBM "
                "bandwidth + kernel launches; float64 (the FP32 peak is the same 67 "
                "TFLOP/s without TF32, which the package never uses, so float32 saves only "
                "memory traffic)",
        "h200": H200, "gemm_efficiency": GEMM_EFFICIENCY,
        "elementwise_bytes_per_entry": ELEMENTWISE_BYTES,
        "launch": {"kernels_per_call": KERNELS_PER_CALL, "launch_s": LAUNCH_S,
                   "budget_bytes": BUDGET_BYTES},
        "modules_of_50_genes_x_4": projection(1000, 32 * 50 * 4, 1000),
        "every_transcript_in_a_module": projection(1000, 250_000, 1000),
        # what testing every transcript against every module (not only its own) would
        # cost: GEMM and memory terms only
        "every_transcript_against_every_module": projection(1000, 250_000 * 32, 1000,
                                                            modules=0),
    }


def _run(paths: dict, out: Path, config: ExplainConfig) -> tuple[float, dict]:
    t = time.perf_counter()
    explain_module(paths["artifact_dir"], paths["feature_table"], paths["feature_meta"],
                   config=config.replace(report=False), output_dir=out, return_tables=False)
    wall = time.perf_counter() - t
    manifest = json.loads((out / "module_explanation_manifest.json").read_text())
    return wall, manifest["timings_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--projection-only", action="store_true",
                        help="recompute only the projection of an existing --out file")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's); on a loaded host 1 "
                             "avoids the thread pool's oversubscription")
    parser.add_argument("--genes", type=int, default=12500,
                        help="genes of 4 transcripts (a reduced size on a loaded host)")
    parser.add_argument("--out", type=Path,
                        default=Path("bench/results/switch_permutations_cpu.json"))
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.projection_only:
        result = json.loads(args.out.read_text())
        result["projection_h200"] = projection_h200()
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        return
    n, genes, modules, per_module, transcripts = 1000, args.genes, 20, 50, 4
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dataset = make_synthetic_dataset(n_samples=n, n_genes=genes, n_modules=modules,
                                         genes_per_module=per_module,
                                         transcripts_per_gene=(transcripts, transcripts))
        paths = dataset.write(root / "inputs")
        rng = np.random.default_rng(0)
        samples = dataset.sample_ids
        traits = pd.DataFrame({"sample_id": samples, "age": rng.normal(50, 10, n),
                               "sex": rng.choice(["F", "M"], n),
                               "tissue": rng.choice(list("abcdef"), n)})
        covariates = pd.DataFrame({"sample_id": samples, "depth": rng.normal(size=n),
                                   "batch": rng.choice(["b1", "b2", "b3"], n)})
        runs = []
        for i in range(args.repeats):
            base, base_stages = _run(paths, root / f"plain{i}", ExplainConfig())
            with_null, stages = _run(paths, root / f"perm{i}", ExplainConfig(
                switch_permutations=args.permutations, seed=i))
            with_traits, trait_stages = _run(paths, root / f"traits{i}", ExplainConfig(
                sample_traits=traits, covariates=covariates))
            null_s = (stages["feature statistics"] - base_stages["feature statistics"]
                      + stages["switch permutations"])
            runs.append({"explain_s": round(base, 3),
                         "explain_with_switch_permutations_s": round(with_null, 3),
                         "switch_null_in_feature_statistics_s": round(null_s, 3),
                         "stage_timings_with_switch_permutations_s": stages,
                         "explain_with_traits_and_covariates_s": round(with_traits, 3),
                         "stage_timings_with_covariates_s": trait_stages,
                         "stage_timings_plain_s": base_stages})
    tested = modules * per_module * transcripts
    stage = float(np.median([r["switch_null_in_feature_statistics_s"] for r in runs]))
    flops = null_flops(n, tested, args.permutations)
    result = {
        "machine": {"platform": platform.platform(), "cpu_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": sys.version.split()[0],
                    "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()],
                    "note": "loaded host: shared by several processes; compare the ratios "
                            "measured in this process, not the absolute times"},
        "where": "the switch null and the covariate adjustment run on the chunk step's "
                 "chunks (compute/companions.py), inside the 'feature statistics' and "
                 "'gene drivers' stages; the null's last kept columns, its counts, p and q "
                 "in 'switch permutations'",
        "size": {"n_samples": n, "n_transcripts": genes * transcripts, "n_modules": modules,
                 "genes_per_module": per_module, "transcripts_tested_sum_k_T_k": tested,
                 "permutations": args.permutations},
        "runs": runs,
        "switch_null": {"stage_s": round(stage, 3), "gemm_flops": flops,
                        "effective_gflops": round(flops / stage / 1e9, 2),
                        "per_permutation_ms": round(1e3 * stage / args.permutations, 3)},
        "projection_h200": projection_h200(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["switch_null"]), json.dumps(runs[0]))


if __name__ == "__main__":
    main()
