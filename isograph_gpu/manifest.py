"""module_explanation_manifest.json: its file name (the one definition: the output
staging, the pipeline, the CLI and plots/load import it) and the core tables every module
writes. What a run records in it is :mod:`isograph_gpu.run_manifest`'s. This module imports
nothing, so that the lowest layer (io/output) can use the name."""

from __future__ import annotations

#: the manifest's file name in an explain output directory
MANIFEST = "module_explanation_manifest.json"
CORE_TABLES = ("gene_driver_table.parquet", "transcript_polarity_table.parquet",
               "high_vs_low_table.parquet")
