"""The Dask path (``--scheduler``) against one process, and a projection to cohort scale.

Three modes:

* ``cpu`` (default): synthetic parquet inputs of N samples x F transcript features x K
  modules; ``explain_module`` in this process, alternately with one process and with a
  ``LocalCluster`` (``--workers`` one-thread worker processes, started once and timed
  apart), the feature table streamed (tasks read their own columns). Medians of the
  repeats, the manifest's stage timings, the feature-table reads of each run (one process:
  reader calls; Dask: feature-statistics tasks, one read each), and a check that both
  wrote the same parquet bytes. Also measures the per-chunk rates the projection uses
  (parquet read, chunk compute, result bytes). Writes ``bench/results/dask_cpu.json``.
* ``cuda``: the same with ``dask_cuda.LocalCUDACluster`` (one worker per GPU) against one
  process on the same card (``--device cuda``); per-chunk rates on the GPU. Writes
  ``bench/results/dask_cuda.json``.
* ``projection``: 17,000 x 250,000 x 50 on 1, 4 and 8 GPUs by a simple model from the
  per-chunk rates of a ``cpu``/``cuda`` result file (``--rates``) and stated assumptions
  (GPU compute from FP64 GEMM flops and HBM bandwidth when no GPU rate was measured;
  file system, network and PCIe bandwidths): per GPU count the time of each resource and which one bounds the
  run. Writes ``bench/results/dask_projection.json``.

    python bench/bench_dask.py --size 1000,250000,32 --repeats 3
    python bench/bench_dask.py --size 200,4000,4 --repeats 1 --out dask_smoke.json
    python bench/bench_dask.py --mode cuda --size 1000,250000,32
    python bench/bench_dask.py --mode projection --rates bench/results/dask_cpu.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))  # this checkout's package when not installed

import numpy as np  # noqa: E402
import torch  # noqa: E402

from isograph_gpu.compute.plan import chunk_size  # noqa: E402
from isograph_gpu.config import ExplainConfig  # noqa: E402
from isograph_gpu.memory_model import (  # noqa: E402
    CHUNK_SHARE_OF_BUDGET,
    CHUNK_VALUE_COPIES,
    LOAD_BLOCK_BYTES,
)

#: result arrays per feature x module returned by a task: r, n, p and 8 Welch arrays per
#: split (one split by default), 8 bytes each
RESULT_ARRAYS_PER_SPLIT = 8

#: assumptions of the projection (override with --assume KEY=VALUE)
ASSUMPTIONS = {
    "gpu_fp64_flops": 67e12,  # H200 FP64 tensor-core peak
    "gemm_efficiency": 0.7,  # share of it cuBLAS DGEMM reaches on [F, n] x [n, 12K + 1]
    "splits": 1,  # contrasts (median split; 2 with --contrast-tails)
    "hbm_bytes_per_s": 4.8e12,  # H200 HBM3e
    "hbm_efficiency": 0.5,  # share of HBM bandwidth the chunk step's passes reach
    "passes_over_chunk": CHUNK_VALUE_COPIES,  # x, mask, centred, ...
    "pcie_bytes_per_s": 40e9,  # host -> device, pinned, PCIe 5 x16 in practice
    "read_workers_per_gpu_host_scale": 4.0,  # decode rate of a GPU host vs this 2-core host
    "shared_fs_bytes_per_s": 10e9,  # aggregate read bandwidth of the shared file system
    "network_bytes_per_s": 12.5e9,  # client NIC (100 GbE) for results back
    "task_overhead_s": 0.005,  # scheduler round trip per task
    "read_block_bytes": LOAD_BLOCK_BYTES,  # one task per read block
}


def _dataset(n: int, f: int, k: int, root: Path) -> dict[str, Path]:
    from isograph_gpu.synthetic import make_synthetic_dataset

    data = make_synthetic_dataset(n_samples=n, n_genes=max(1, f // 4), n_modules=k,
                                  genes_per_module=min(50, max(1, f // 4 // k)),
                                  transcripts_per_gene=(4, 4), n_psi=0, seed=0)
    return data.write(root)


def _explain(paths: dict[str, Path], out: Path, device: str, scheduler: str | None,
             chunk_features: int | None) -> tuple[float, dict]:
    from isograph_gpu import ExplainConfig, explain_module

    config = ExplainConfig(device=device, stream_features=True, scheduler=scheduler,
                           chunk_features=chunk_features)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explain_module(paths["artifact_dir"], paths["feature_table"], paths["feature_meta"],
                       config=config, output_dir=out, return_tables=False)
    wall = time.perf_counter() - t
    manifest = json.loads((out / "module_explanation_manifest.json").read_text())
    return wall, manifest["timings_seconds"]


@contextlib.contextmanager
def _counted_reads(feature_table: Path, watcher=None):
    """Yields a function giving the reads of the feature table so far: in this process,
    calls of ``ParquetFeatureBlocks._decode`` on ``feature_table`` (every read decodes
    there: ``x[:, a:b]``, ``take`` and the read-ahead runs, which bypass ``_read``; the
    artifact's feature_scores parquet is read by the same class and is not counted); on
    a cluster (``watcher``, a client of it), the feature-statistics tasks that ran (each
    reads its columns once), from the scheduler's task stream."""
    if watcher is not None:
        import distributed

        with distributed.get_task_stream(watcher) as stream:
            yield lambda: sum(1 for task in stream.data
                              if task["key"].split("-")[0] in {"_block_task", "_chunk_task"})
        return
    from isograph_gpu.io.feature_tables import ParquetFeatureBlocks

    decode = ParquetFeatureBlocks._decode
    calls = [0]
    counted_path = Path(feature_table).resolve()

    def counted(self, names):
        calls[0] += Path(self._path).resolve() == counted_path
        return decode(self, names)

    ParquetFeatureBlocks._decode = counted
    try:
        yield lambda: calls[0]
    finally:
        ParquetFeatureBlocks._decode = decode


def _parquet_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.parquet"))}


def chunk_rates(paths: dict[str, Path], n: int, k: int, device: torch.device,
                chunk_features: int, n_chunks: int = 3) -> dict:
    """Per-chunk parquet read time, chunk-step compute time on ``device`` and result
    bytes, over the first ``n_chunks`` chunks of the feature table."""
    import pandas as pd

    from isograph_gpu.compute.step import chunk_statistics, prepare_scores
    from isograph_gpu.io.feature_tables import open_feature_table
    from isograph_gpu.ops.contrast import percentile_split

    table = open_feature_table(paths["feature_table"], stream=True)
    ids = pd.read_parquet(paths["feature_meta"])["feature_id"].astype(str).tolist()
    blocks = table.matrix(ids, np.arange(n))
    rng = np.random.default_rng(0)
    scores = torch.from_numpy(rng.standard_normal((n, k)))
    splits = {"split": percentile_split(scores, 50.0)}
    prepared = prepare_scores(scores, splits, min_pairs=3, dtype=torch.float64,
                              device=device)  # once, as the engine
    reads, computes, widths = [], [], []
    for i in range(n_chunks):
        a, b = i * chunk_features, min(blocks.shape[1], (i + 1) * chunk_features)
        if a >= b:
            break
        t = time.perf_counter()
        block = blocks[:, a:b]
        reads.append(time.perf_counter() - t)
        t = time.perf_counter()
        x = torch.from_numpy(block).to(device)
        chunk_statistics(x, prepared)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        computes.append(time.perf_counter() - t)
        widths.append(b - a)
    values = sum(widths) * n
    return {"device": str(device), "chunk_features": chunk_features, "n_chunks": len(widths),
            "read_bytes_per_s": round(values * 8 / sum(reads)),
            "compute_bytes_per_s": round(values * 8 / sum(computes)),
            "result_bytes_per_feature_module": 8 * (3 + RESULT_ARRAYS_PER_SPLIT)}


def compare(n: int, f: int, k: int, device: str, workers: int, repeats: int,
            chunk_features: int | None, cuda: bool) -> dict:
    import distributed

    with tempfile.TemporaryDirectory(prefix="isograph_gpu_dask_") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        paths = _dataset(n, f, k, root / "inputs")
        generate = time.perf_counter() - t
        t = time.perf_counter()
        if cuda:
            from dask_cuda import LocalCUDACluster

            cluster = LocalCUDACluster()
        else:
            cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                               processes=True, dashboard_address=None)
        start = time.perf_counter() - t
        runs: dict[str, list] = {"one_process": [], "dask": []}
        same = True
        with cluster, distributed.Client(cluster) as watcher:
            for rep in range(repeats):  # interleaved: host noise hits both alike
                for name, scheduler in (("one_process", None),
                                        ("dask", cluster.scheduler_address)):
                    out = root / f"{name}_{rep}"
                    with _counted_reads(paths["feature_table"],
                                        watcher if scheduler else None) as reads:
                        wall, stages = _explain(paths, out, device, scheduler,
                                                chunk_features)
                    runs[name].append({"wall_s": round(wall, 3), "stages_s": stages,
                                       "feature_table_reads": reads()})
                    print(name, json.dumps(runs[name][-1]), flush=True)
                same &= _parquet_bytes(root / f"one_process_{rep}") == _parquet_bytes(
                    root / f"dask_{rep}")
        # the engine's own chunk width at the default budget (one split: K x 2 results)
        budget = int(ExplainConfig().memory_budget_bytes * CHUNK_SHARE_OF_BUDGET)
        step = chunk_size(n, f, 8, budget, chunk_features, n_results=k * 2)
        rates = chunk_rates(paths, n, k, torch.device(device), step)
    medians = {name: statistics.median(r["wall_s"] for r in rows) for name, rows in
               runs.items()}
    return {
        "what": "explain_module in process, streamed parquet: one process vs a Dask "
                + ("LocalCUDACluster" if cuda else f"LocalCluster ({workers} x 1 thread)"),
        "n_samples": n, "n_features": f, "n_modules": k, "device": device,
        "host": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "generate_inputs_s": round(generate, 3), "cluster_start_s": round(start, 3),
        "median_wall_s": {k2: round(v, 3) for k2, v in medians.items()},
        "dask_overhead_ratio": round(medians["dask"] / medians["one_process"], 3),
        "identical_parquet_bytes": bool(same),
        "feature_table_reads_per_run": {name: rows[-1]["feature_table_reads"]
                                        for name, rows in runs.items()},
        "runs": runs, "chunk_rates": rates,
    }


def projection(rates: dict, assume: dict, n: int = 17_000, f: int = 250_000,
               k: int = 50) -> dict:
    """Seconds of each resource for the feature statistics of n x f x k on 1, 4, 8 GPUs
    (one worker per GPU, one per host for the read and network terms), and the bound."""
    values = n * f * 8  # float64 feature matrix
    read_rate = rates["read_bytes_per_s"] * assume["read_workers_per_gpu_host_scale"]
    measured_gpu = rates.get("device", "cpu").startswith("cuda")
    # the chunk step's three GEMMs (ops.moments) have 6K + 3G + 1 right-hand columns in
    # all, G = 2K per split: 2 n F (6K + 3G + 1) flops; its elementwise passes are
    # bandwidth bound. The slower of the two is the compute time.
    gemm_columns = 6 * k + 3 * 2 * k * assume["splits"] + 1
    flops_time = 2 * n * f * gemm_columns / (assume["gpu_fp64_flops"]
                                            * assume["gemm_efficiency"])
    memory_time = values * assume["passes_over_chunk"] / (assume["hbm_bytes_per_s"]
                                                          * assume["hbm_efficiency"])
    gpu_rate = (rates["compute_bytes_per_s"] if measured_gpu
                else values / max(flops_time, memory_time))
    result_bytes = f * k * rates["result_bytes_per_feature_module"]
    tasks = -(-f // max(1, int(assume["read_block_bytes"]) // (8 * n)))  # read blocks
    rows = []
    for gpus in (1, 4, 8):
        terms = {
            "read_s": values / min(gpus * read_rate, assume["shared_fs_bytes_per_s"]),
            "host_to_device_s": values / (gpus * assume["pcie_bytes_per_s"]),
            "compute_s": values / (gpus * gpu_rate),
            "network_results_s": result_bytes / assume["network_bytes_per_s"],
            "task_overhead_s": tasks * assume["task_overhead_s"] / gpus,
        }
        bound = max(terms, key=terms.get)
        # reading, copying and computing of different chunks overlap across tasks: the
        # run takes about its largest term plus the per-task overhead
        rows.append({"gpus": gpus, **{key: round(v, 3) for key, v in terms.items()},
                     "projected_s": round(max(terms.values()) + terms["task_overhead_s"], 3),
                     "bound_by": {"read_s": "reading", "host_to_device_s": "PCIe",
                                  "compute_s": "compute", "network_results_s": "network",
                                  "task_overhead_s": "scheduling"}[bound]})
    return {"what": "projection of the feature statistics stage (Dask, one worker per GPU)",
            "n_samples": n, "n_features": f, "n_modules": k,
            "feature_matrix_gb": round(values / 1e9, 1),
            "gpu_compute_rate": "measured" if measured_gpu else
            "assumed: the slower of FP64 GEMM flops and HBM passes",
            "rates": rates, "assumptions": assume, "rows": rows,
            "not_included": "client work (eigengenes, gene-driver statistics, q-values, "
                            "tables, writing), which does not shrink with more GPUs"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("cpu", "cuda", "projection"), default="cpu")
    parser.add_argument("--size", default="1000,250000,32", help="N,F,K")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-features", type=int, default=None)
    parser.add_argument("--rates", type=Path, default=BENCH_DIR / "results" / "dask_cpu.json",
                        help="projection: the result file whose chunk_rates it uses")
    parser.add_argument("--assume", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.mode == "projection":
        assume = dict(ASSUMPTIONS)
        for item in args.assume:
            key, _, value = item.partition("=")
            if key not in assume:
                parser.error(f"--assume: unknown key {key!r}; known: {sorted(assume)}")
            assume[key] = float(value)
        result = projection(json.loads(args.rates.read_text())["chunk_rates"], assume)
        out = args.out or BENCH_DIR / "results" / "dask_projection.json"
    else:
        n, f, k = (int(v) for v in args.size.split(","))
        cuda = args.mode == "cuda"
        result = compare(n, f, k, "cuda" if cuda else "cpu", args.workers, args.repeats,
                         args.chunk_features, cuda)
        out = args.out or BENCH_DIR / "results" / f"dask_{args.mode}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: v for key, v in result.items() if key not in ("runs", "rows")},
                     indent=1))
    for row in result.get("rows", []):
        print(row)


if __name__ == "__main__":
    main()
