"""Stage timings of the reference isograph 0.1.5 explain, in one process (run with the
reference venv's python: ``bench/.venv-reference/bin/python bench/reference_stages.py ...``).

Times what ``isograph explain-module`` does, stage by stage: reading the parquet inputs, the
reference's ``load_explain_inputs``, and for each of the first ``--n-modules`` modules its
eigengene, gene_driver_table, transcript_polarity_table and high_vs_low_table. The per-module
compute time measured here is what ``bench_explain.py`` uses to extrapolate the reference to
all modules (a difference of two noisy end-to-end CLI runs is not reliable on a shared host).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
from isograph.explain.associations import (
    compute_eigengene,
    compute_gene_driver_table,
    compute_high_vs_low_table,
    compute_transcript_polarity_table,
)
from isograph.explain.config import ExplainConfig
from isograph.explain.io import load_explain_inputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact-dir", type=Path, required=True)
    parser.add_argument("--feature-table", type=Path, required=True)
    parser.add_argument("--feature-meta", type=Path, required=True)
    parser.add_argument("--n-modules", type=int, default=2)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    config = ExplainConfig()
    out: dict = {}

    t0 = time.perf_counter()
    feature_table = pd.read_parquet(args.feature_table)
    feature_meta = pd.read_parquet(args.feature_meta)
    out["read_parquet_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    modules, scores, table, meta, module_ids, samples, _ = load_explain_inputs(
        args.artifact_dir, feature_table, feature_meta, None, None
    )
    out["load_explain_inputs_s"] = time.perf_counter() - t0

    per_module = []
    for module_id in module_ids[: args.n_modules]:
        genes = modules.loc[modules["module_id"] == module_id, "gene_id"].tolist()
        stage: dict[str, float | str] = {"module_id": module_id}
        t0 = time.perf_counter()
        eigengene = compute_eigengene(scores, genes, samples)
        stage["eigengene_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        compute_gene_driver_table(scores, eigengene, genes, samples, config)
        stage["gene_driver_table_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        compute_transcript_polarity_table(table, meta, eigengene, samples, genes, config)
        stage["transcript_polarity_table_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        compute_high_vs_low_table(table, meta, eigengene, samples, config)
        stage["high_vs_low_table_s"] = time.perf_counter() - t0
        stage["total_s"] = sum(v for k, v in stage.items() if k.endswith("_s"))
        per_module.append(stage)
    out["modules"] = per_module
    out["mean_per_module_s"] = sum(m["total_s"] for m in per_module) / max(len(per_module), 1)
    out["n_modules_available"] = len(module_ids)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
