"""module_explanation_manifest.json: its file name (the one definition: the output
staging, the pipeline, the CLI and plots/load import it) and the core tables every module
writes. What a run records in it is :mod:`isograph_gpu.run_manifest`'s. This module imports
nothing, so that the lowest layer (io/output) can use the name."""

from __future__ import annotations

#: the manifest's file name in an explain output directory
MANIFEST = "module_explanation_manifest.json"
CORE_TABLES = ("gene_driver_table.parquet", "transcript_polarity_table.parquet",
               "high_vs_low_table.parquet")
#: samples x modules eigengenes: a ``sample_id`` column, then one float64 column per module
EIGENGENES = "eigengenes.parquet"
#: the eigengenes.parquet column of the sample ids
SAMPLE_ID_COLUMN = "sample_id"
#: figures drawn at the top of the output dir, one file ``<name>.<format>`` per format
TOP_FIGURES = ("eigengene_heatmap",)
#: the other files at the top of the output dir (report.html and module_trait_table.parquet
#: are the HTML report's), beside one folder per module; a module id may not be one of
#: them (:func:`isograph_gpu.io.output.check_module_folder_names`)
ROOT_FILES = (MANIFEST, EIGENGENES, "report.html", "module_trait_table.parquet")
