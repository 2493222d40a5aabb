"""Module blocks on a streamed feature table: one block vs four, side by side in one
process (issue 19: a streamed table is decoded once per run whatever the module blocks).

A synthetic samples x features parquet (default 1,000 x ~50,000) is explained with
``stream_features=True`` for 4 modules twice: at a budget that holds every module's
statistics (1 block) and at one that holds one module's (4 blocks: one pass computes
every module, each chunk masked and centred once, the later blocks' statistics spilled;
or, on a GPU, the table kept on the device and read by each block). Both runs use the same chunk width (``--chunk-features``), so they
differ only by the blocks. Reported per run: the median and the fastest wall time of ``--repeats``
runs (alternating), the blocks and residency of the run's
:class:`~isograph_gpu.compute.plan.MemoryPlan`, and the parquet decodes and columns
decoded (counted on the reader). The ratio is 4 blocks over 1 (target: within 1.3x).

Usage: ``python bench/bench_blocks.py [--samples 1000] [--genes 16500] [--repeats 3]
[--device cpu] [--json bench/results/blocks_cpu.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from isograph_gpu import ExplainConfig, explain_module, memory_model  # noqa: E402
from isograph_gpu.compute import plan as plan_module  # noqa: E402
from isograph_gpu.io.feature_tables import ParquetFeatureBlocks  # noqa: E402
from isograph_gpu.synthetic import make_synthetic_dataset  # noqa: E402

N_MODULES = 4


class DecodeCounter:
    """Counts the parquet decodes of every :class:`ParquetFeatureBlocks` and the columns
    each decoded."""

    def __init__(self) -> None:
        self.calls, self.columns = 0, 0
        self._decode = ParquetFeatureBlocks._decode
        counter = self

        def counted(blocks: ParquetFeatureBlocks, names: list[str]):  # type: ignore[no-untyped-def]
            counter.calls += 1
            counter.columns += len(names)
            return counter._decode(blocks, names)

        ParquetFeatureBlocks._decode = counted  # type: ignore[method-assign]

    def reset(self) -> None:
        self.calls, self.columns = 0, 0


def one_run(paths: dict[str, Path], out: Path, config: ExplainConfig) -> float:
    """Wall seconds of one explain run writing to ``out``."""
    start = time.perf_counter()
    explain_module(paths["artifact_dir"], paths["feature_table"], paths["feature_meta"],
                   config=config, output_dir=out)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--genes", type=int, default=16500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-features", type=int, default=4096)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-blocks-"))
    data = make_synthetic_dataset(n_samples=args.samples, n_genes=args.genes,
                                  n_modules=N_MODULES, seed=0)
    paths = data.write(workdir / "inputs")
    n_features = data.feature_table.shape[1] - 1
    del data
    per_module = n_features * memory_model.STATISTICS_BYTES_PER_FEATURE_MODULE
    budgets = {"1_block": 64 * per_module,
               "4_blocks": per_module + per_module // 2}  # one module's statistics a block

    plans: dict[str, object] = {}
    build = plan_module.MemoryPlan.build

    def recorded(*a, **kw):  # type: ignore[no-untyped-def]
        made = build(*a, **kw)
        plans[current] = made
        return made

    plan_module.MemoryPlan.build = recorded  # type: ignore[method-assign]  # the run's plan
    counter = DecodeCounter()
    load_start = os.getloadavg()
    times: dict[str, list[float]] = {name: [] for name in budgets}
    decodes: dict[str, tuple[int, int]] = {}
    for i in range(args.repeats):
        for current, budget in budgets.items():
            config = ExplainConfig(device=args.device, stream_features=True,
                                   memory_budget_bytes=budget,
                                   chunk_features=args.chunk_features)
            counter.reset()
            times[current].append(one_run(paths, workdir / f"out_{current}_{i}", config))
            decodes[current] = (counter.calls, counter.columns)
    runs = {}
    for name in budgets:
        plan = plans[name]
        runs[name] = {"median_s": round(statistics.median(times[name]), 3),
                      "min_s": round(min(times[name]), 3),
                      "seconds": [round(t, 3) for t in times[name]],
                      "memory_budget_bytes": budgets[name],
                      "module_blocks": len(plan.blocks),  # type: ignore[attr-defined]
                      "residency": plan.residency,  # type: ignore[attr-defined]
                      "parquet_decodes": decodes[name][0],
                      "columns_decoded": decodes[name][1]}
    ratio = runs["4_blocks"]["median_s"] / runs["1_block"]["median_s"]
    load_end = os.getloadavg()
    loaded = max(load_start[0], load_end[0]) > 0.5 * (os.cpu_count() or 1)
    record = {"benchmark": "bench/bench_blocks.py", "samples": args.samples,
              "features": n_features, "modules": N_MODULES, "device": args.device,
              "chunk_features": args.chunk_features, "repeats": args.repeats,
              "torch": torch.__version__, "python": platform.python_version(),
              "cpu_threads": torch.get_num_threads(), "runs": runs,
              "ratio_4_blocks_over_1": round(ratio, 3),
              # on a loaded host the fastest run of each is the least disturbed
              "ratio_of_minima": round(runs["4_blocks"]["min_s"] / runs["1_block"]["min_s"], 3),
              "target_ratio": 1.3,
              "load_average_1min": [round(load_start[0], 2), round(load_end[0], 2)],
              "note": ("loaded host: " if loaded else "")
              + "ratios measured in one process, runs alternating"}
    for name, run in runs.items():
        print(f"{name:>9}: {run['median_s']:7.2f} s median of {args.repeats} "
              f"({run['module_blocks']} blocks, {run['residency']}, "
              f"{run['parquet_decodes']} decodes, {run['columns_decoded']} columns)")
    print(f"4 blocks / 1 block: {ratio:.2f}x median, {record['ratio_of_minima']:.2f}x fastest "
          "(target <= 1.3x)")
    if args.json is not None:
        args.json.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
