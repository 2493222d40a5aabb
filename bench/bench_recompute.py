"""Cost of the cancellation recompute (ops.moments: pairs and groups whose sums around the
feature's centre cancel are recomputed from their own centred values) on ordinary data.

The statistics stage (``isograph_gpu.engine.feature_statistics``: moments, r, p, Welch of a
median and a 10 % tails split) on the synthetic 1,000 samples x ~50,000 usage features x 20
modules of ``isograph_gpu.synthetic``, with the recompute (as shipped) and without it (its
selection patched out: the fast sums alone), alternated in one process; plus how many
pairs and groups were recomputed, and (more robust on a loaded host) the share of each
stage's own wall and CPU time spent in the cancellation test and recompute. A second input zeroes 90 % of the samples of a third of
the features (zero-inflated usage: groups constant at 0 are flagged, see docs).

    python bench/bench_recompute.py [--repeats 3] [--out bench/results/recompute_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from isograph_gpu.engine import feature_statistics
from isograph_gpu.ops import moments as moments_module
from isograph_gpu.ops.contrast import percentile_split, tail_split
from isograph_gpu.synthetic import make_synthetic_dataset


def _inputs(seed: int = 0) -> tuple[np.ndarray, torch.Tensor]:
    data = make_synthetic_dataset(n_samples=1000, n_genes=12500, n_modules=20,
                                  genes_per_module=50, transcripts_per_gene=(4, 4), seed=seed)
    x = np.asfortranarray(data.feature_table.drop(columns="sample_id").to_numpy(np.float64))
    scores = torch.from_numpy(data.module_factors.drop(columns="sample_id")
                              .to_numpy(np.float64))  # [n, K]: the planted module factors
    return x, scores


class _Timer:
    """Wraps ops.moments._recompute_cancelled (the cancellation test, its nonzero and any
    recompute), adding up its wall and process (CPU, all threads) seconds."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self._real = moments_module._recompute_cancelled

    def __call__(self, *args):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return self._real(*args)
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += time.process_time() - cpu


class _Counter:
    """Wraps ops.moments._recompute_entries, counting calls and entries."""

    def __init__(self) -> None:
        self.calls = 0
        self.entries = 0
        self._real = moments_module._recompute_entries

    def __call__(self, x, right, row, module, group):
        self.calls += 1
        self.entries += int(row.numel())
        return self._real(x, right, row, module, group)


def _run(x: np.ndarray, scores: torch.Tensor, fast_only: bool
         ) -> tuple[float, float, _Counter, _Timer]:
    """(wall s, process CPU s, counter, timer) of one statistics stage."""
    splits = {"split": percentile_split(scores, 50.0), "tails": tail_split(scores, 10.0)}
    counter, timer = _Counter(), _Timer()
    patches = [mock.patch.object(moments_module, "_recompute_entries", counter)]
    if fast_only:
        patches.append(mock.patch.object(moments_module, "_recompute_cancelled",
                                         lambda x, right, m, sums, *rest: (m, sums)))
    else:
        patches.append(mock.patch.object(moments_module, "_recompute_cancelled", timer))
    for p in patches:
        p.start()
    try:
        start, cpu = time.perf_counter(), time.process_time()
        feature_statistics(x, scores, min_pairs=3, splits=splits, device=torch.device("cpu"),
                           dtype=torch.float64, memory_budget_bytes=1 << 30)
        return time.perf_counter() - start, time.process_time() - cpu, counter, timer
    finally:
        for p in reversed(patches):
            p.stop()


def measure(x: np.ndarray, scores: torch.Tensor, repeats: int) -> dict:
    n, f = x.shape
    k = scores.shape[1]
    with_s, without_s, with_cpu, without_cpu, share_wall, share_cpu = [], [], [], [], [], []
    counter = None
    for _ in range(repeats):  # alternated: the loaded host drifts alike for both
        seconds, cpu, counter, timer = _run(x, scores, fast_only=False)
        with_s.append(seconds)
        with_cpu.append(cpu)
        share_wall.append(timer.wall / seconds)
        share_cpu.append(timer.cpu / cpu)
        seconds, cpu, _, _ = _run(x, scores, fast_only=True)
        without_s.append(seconds)
        without_cpu.append(cpu)
    entries = f * k + f * 4 * k  # pairs + groups (2 splits x high/low)
    return {"n_samples": n, "n_features": f, "n_modules": k,
            "with_recompute_s": with_s, "without_recompute_s": without_s,
            "median_with_s": statistics.median(with_s),
            "median_without_s": statistics.median(without_s),
            "ratio_with_over_without": statistics.median(with_s) / statistics.median(without_s),
            "with_recompute_cpu_s": with_cpu, "without_recompute_cpu_s": without_cpu,
            "cpu_ratio_with_over_without": (statistics.median(with_cpu)
                                            / statistics.median(without_cpu)),
            "recompute_share_of_stage_wall": statistics.median(share_wall),
            "recompute_share_of_stage_cpu": statistics.median(share_cpu),
            "recompute_calls": counter.calls, "recomputed_entries": counter.entries,
            "recomputed_fraction": counter.entries / entries}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/recompute_cpu.json"))
    args = parser.parse_args()
    x, scores = _inputs()
    result = {"benchmark": "statistics stage with vs without the cancellation recompute",
              "device": "cpu", "dtype": "float64", "splits": ["median", "tails 10%"],
              "load_average_at_start": list(os.getloadavg()),
              "torch_threads": torch.get_num_threads(),
              "machine": {"platform": platform.platform(), "torch": torch.__version__},
              "note": "loaded host (shared by several processes): compare the ratio, "
                      "not the seconds"}
    result["synthetic"] = measure(x, scores, args.repeats)
    rng = np.random.default_rng(1)
    sparse = x.copy(order="F")
    columns = rng.random(x.shape[1]) < 1 / 3
    zeros = rng.random(x.shape) < 0.9
    sparse[zeros & columns[None, :] & np.isfinite(sparse)] = 0.0
    result["zero_inflated"] = measure(sparse, scores, args.repeats)
    result["load_average_at_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: {k: v for k, v in value.items() if not k.endswith("_s")}
                      if isinstance(value, dict) else value for key, value in result.items()},
                     indent=2))


if __name__ == "__main__":
    main()
