"""Host memory of an explain run does not grow with the number of modules: each module's
tables go to files as they are built and the statistics are computed in module blocks that
fit the memory budget. Peak RSS is measured in fresh subprocesses on the same features."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import paths

from isograph_gpu.compute.plan import module_blocks
from isograph_gpu.memory_model import (
    STATISTICS_BYTES_PER_FEATURE_MODULE,
    STATISTICS_BYTES_PER_SCORE_ROW_MODULE,
)
from isograph_gpu.synthetic import make_synthetic_dataset

REPO = paths.REPO
N_SAMPLES, N_GENES, TRANSCRIPTS, N_MODULES, FEW = 40, 5000, 4, 32, 8
N_FEATURES, N_SCORE_ROWS = N_GENES * TRANSCRIPTS, 2 * N_GENES  # feature_scores: 2 a gene
#: a budget whose module blocks hold FEW modules: FEW modules are one block, N_MODULES four
BUDGET = FEW * (N_FEATURES * STATISTICS_BYTES_PER_FEATURE_MODULE
                + N_SCORE_ROWS * STATISTICS_BYTES_PER_SCORE_ROW_MODULE)

_CHILD = """
import json, resource, sys, warnings
warnings.simplefilter("ignore")
from isograph_gpu import ExplainConfig, explain_module
paths, n_modules, out, budget = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
results = explain_module(
    paths["artifact_dir"], paths["feature_table"], paths["feature_meta"],
    module_ids=[f"M{i:03d}" for i in range(n_modules)], output_dir=out, return_tables=False,
    config=ExplainConfig(device="cpu", stream_features=False, memory_budget_bytes=budget))
print(json.dumps({"peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "modules": len(results)}))
"""


def _peak_rss_mib(paths: dict[str, str], n_modules: int, out: Path) -> float:
    # Arrow's own allocator (jemalloc/mimalloc) keeps freed pages for reuse for a while;
    # the system allocator shows what the run itself holds
    env = {**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "system"}
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(paths), str(n_modules),
                           str(out), str(BUDGET)], capture_output=True, text=True, cwd=REPO,
                          check=True, timeout=300, env=env)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["modules"] == n_modules
    manifest = json.loads((out / "module_explanation_manifest.json").read_text())
    assert manifest["n_modules"] == n_modules  # the run really wrote every module
    return report["peak_kib"] / 1024


@pytest.mark.slow
def test_peak_rss_does_not_grow_with_modules(tmp_path):
    data = make_synthetic_dataset(n_samples=N_SAMPLES, n_genes=N_GENES, n_modules=N_MODULES,
                                  genes_per_module=10, transcripts_per_gene=(TRANSCRIPTS,) * 2,
                                  n_psi=0, seed=3)
    paths = {k: str(v) for k, v in data.write(tmp_path / "inputs").items()}
    assert len(module_blocks(FEW, N_FEATURES, N_SCORE_ROWS, BUDGET)) == 1
    assert len(module_blocks(N_MODULES, N_FEATURES, N_SCORE_ROWS, BUDGET)) == N_MODULES // FEW
    few = _peak_rss_mib(paths, FEW, tmp_path / "few")
    many = _peak_rss_mib(paths, N_MODULES, tmp_path / "many")
    # what holding the extra modules' high-vs-low numbers alone would add (9 x float64 per
    # feature and module; their string ids and the statistics behind them add more)
    held_mib = (N_MODULES - FEW) * N_FEATURES * 9 * 8 / 2**20
    # isograph-gpu f9a9fc4 (all tables held until the end): few 536 MiB, many 764 MiB
    assert held_mib > 30
    assert many - few < held_mib / 2, (few, many, held_mib)
