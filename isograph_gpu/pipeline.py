"""explain_module: files -> tensors (io.inputs) -> statistics (statistics) -> tables
(result_tables) -> files (io.output, manifest), one module's tables at a time."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from .beyond_reference import (
    SampleTables,
    load_sample_tables,
    manifest_entries,
    trait_heatmap,
    trait_table,
)
from .compute.context import RunContext
from .compute.plan import MemoryPlan, null_state_bytes
from .compute.residency import FeatureColumns
from .config import ExplainConfig
from .device import disable_reduced_precision, resolve_device, resolve_dtype
from .extras import check_optional_dependencies
from .io.explain_inputs import ExplainInputs
from .io.feature_cache import check_cache_path
from .io.feature_tables import check_streamable
from .io.inputs import load_explain_inputs
from .io.output import (
    StagedOutput,
    WrittenTable,
    check_module_folder_names,
    check_path_components,
    staged_output,
)
from .io.table_readers import TableSource
from .manifest import CORE_TABLES, EIGENGENES, MANIFEST
from .progress import Progress, describe_device
from .result import ExplainResult
from .result_tables import ResultTables, TableIds, eigengene_table
from .run_manifest import build_manifest
from .statistics import (
    FeaturePasses,
    ModuleBlock,
    RowLayout,
    compute_statistics,
    eigengenes,
    largest_switch_family,
    module_membership,
)
from .trait_association import MODULE_TRAIT_TABLE

__all__ = ["CORE_TABLES", "MANIFEST", "TABLE_FILES", "explain_module"]

#: result table name -> file name in the module's folder
TABLE_FILES = {
    "gene_driver_table": CORE_TABLES[0],
    "transcript_polarity_table": CORE_TABLES[1],
    "high_vs_low_table": CORE_TABLES[2],
    "tails_contrast_table": "high_vs_low_tails_table.parquet",
    "vae_drivers": "vae_drivers.parquet",
    "ig_attributions": "ig_attributions.parquet",
}


def explain_module(
    artifact_dir: str | os.PathLike[str],
    feature_table: TableSource,
    feature_meta: TableSource | None,
    module_ids: Sequence[str] | None = None,
    module_score_table: TableSource | None = None,
    annotation_table: TableSource | None = None,
    config: ExplainConfig | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    sample_meta: Any = None,
    return_tables: bool = True,
) -> dict[str, ExplainResult]:
    """Explain IsoGraph modules: gene drivers, transcript polarity, high-vs-low contrasts.

    Parameters mirror ``isograph.explain.explain_module`` (0.1.5). Tables may be given as
    DataFrames or as parquet/CSV/TSV(.gz) paths; ``feature_table`` may also be an AnnData
    or ``.h5ad`` path, or a features x samples table (``config.feature_layout``), and
    ``feature_meta`` may then be ``None`` (docs/input_formats.md). ``sample_meta`` is
    accepted and ignored, as in the reference. All modules are computed in one batched pass on
    ``config.device``. With ``output_dir`` each module's tables are written as soon as
    they are built and the directory is committed atomically (all or nothing).

    ``return_tables=False`` (needs ``output_dir``; the CLI's default) keeps no table in
    memory: host memory grows with the features, not modules x features, and each
    result's tables are read back from the written files when accessed. Returns
    ``{module_id: ExplainResult}`` in processing order.
    """
    del sample_meta
    if not return_tables and output_dir is None:
        raise ValueError("return_tables=False needs an output_dir to read the tables from")
    config = config or ExplainConfig()
    if config.scheduler is not None:  # in a Dask worker re-running an unguarded script?
        from .distributed import exit_if_unguarded_worker

        exit_if_unguarded_worker(config.scheduler)
    check_optional_dependencies(config, feature_table, feature_meta, module_score_table)
    progress = Progress(config.progress)
    annotation = None
    if annotation_table is not None:  # reference order: annotation errors come first
        from .structure.annotation_merge import load_annotation_table

        annotation = load_annotation_table(annotation_table)
    check_streamable(feature_table, config.stream_features, config.feature_cache)
    inputs = (artifact_dir, feature_table, feature_meta, module_score_table,
              annotation_table, config.sample_traits, config.covariates)
    if config.feature_cache is not None:
        check_cache_path(config.feature_cache, inputs, output_dir)

    device = resolve_device(config.device)
    dtype = resolve_dtype(config.precision)
    progress.message(describe_device(device, dtype))
    outer = (staged_output(output_dir, replace_foreign=config.replace_output_dir,
                           inputs=inputs)
             if output_dir is not None else contextlib.nullcontext())
    with outer as staged, progress.recording_warnings():
        try:
            results = _run(staged, artifact_dir, feature_table, feature_meta, module_ids,
                           module_score_table, annotation, config, device, dtype, progress,
                           return_tables)
        except BaseException:
            if staged is not None:
                staged.cancel_writes()  # nothing may write into staging once it is removed
            raise
    return results


def _run(staged: StagedOutput | None, artifact_dir: str | os.PathLike[str],
         feature_table: TableSource, feature_meta: TableSource | None,
         module_ids: Sequence[str] | None, module_score_table: TableSource | None,
         annotation: pd.DataFrame | None, config: ExplainConfig, device: torch.device,
         dtype: torch.dtype, progress: Progress,
         return_tables: bool) -> dict[str, ExplainResult]:
    # the table is opened in blocks unless a load is asked for; the run's MemoryPlan then
    # decides whether to load it whole (when that is no loss) and where its columns live
    # between module blocks
    with progress.stage("load inputs"):
        inputs = load_explain_inputs(
            artifact_dir, feature_table, feature_meta, module_ids, module_score_table,
            stream_features=config.stream_features is not False,
            for_plots=config.plot,
            feature_layout=config.feature_layout,
            # the VAE encoder reads every feature_scores row; the core tables only the
            # modules' genes
            module_score_rows_only=not (config.vae_attribution or config.integrated_gradients),
            feature_cache=config.feature_cache,
            progress=progress,
        )
    sample_tables = load_sample_tables(config, inputs.sample_ids)  # checked before any work
    if staged is not None:  # module ids name folders: refuse '../x', '/abs', '' now
        check_path_components(inputs.module_ids, "module_id")
        check_module_folder_names(list(inputs.module_ids))
    progress.message(
        f"{inputs.n_samples} samples, {len(set(inputs.score_gene_ids.tolist()))} module genes "
        f"({inputs.scores.shape[1]} feature_scores rows), {inputs.features.shape[1]} table "
        f"features, {len(inputs.module_ids)} modules"
    )
    if device.type == "cuda":
        disable_reduced_precision()
    channel_family = module_membership(inputs.score_gene_ids, inputs)  # [R, K]
    feature_family = module_membership(inputs.feature_gene_ids, inputs)  # [F, K]
    layout = RowLayout.build(inputs, config, device)
    plan = MemoryPlan.build(
        n_samples=inputs.n_samples, n_features=len(inputs.feature_ids),
        n_score_rows=len(inputs.score_gene_ids), n_modules=len(inputs.module_ids),
        n_splits=1 + (config.contrast_tails is not None),
        budget_bytes=int(config.memory_budget_bytes), dtype=dtype, device=device,
        features=inputs.features, chunk_features=config.chunk_features,
        stream_features=config.stream_features, read_again=config.plot,
        distributed=config.scheduler is not None,
        null_state_bytes=null_state_bytes(
            largest_switch_family(layout, feature_family) if config.switch_permutations
            else 0, int(config.switch_permutations)))
    if plan.load:
        with progress.stage("load feature table"):
            inputs = dataclasses.replace(inputs, features=np.asarray(inputs.features))
    with progress.stage("eigengenes"):
        scores = eigengenes(inputs, channel_family, device, dtype,
                            config.eigengene_sign)  # [n, K] on the device
    if annotation is not None:
        from .structure.annotation_merge import fill_annotation_gene_ids

        assert inputs.feature_meta is not None
        annotation = fill_annotation_gene_ids(annotation, inputs.feature_meta)

    results: dict[str, ExplainResult] = {}
    # the VAE drivers join each module's driver columns: kept here (one row per module
    # gene), never read back from the written tables
    drivers: dict[str, pd.DataFrame] | None = {} if config.vae_attribution else None
    memberships = (torch.from_numpy(channel_family).to(device),  # one copy each per run
                   torch.from_numpy(feature_family).to(device))
    with contextlib.ExitStack() as cluster:
        client = None
        if config.scheduler is not None:
            from .distributed import scheduler_client

            client = cluster.enter_context(scheduler_client(config.scheduler,
                                                            config.scheduler_timeout))
        ctx = RunContext(config=config, device=device, dtype=dtype, progress=progress,
                         plan=plan, client=client)
        columns = FeatureColumns(inputs.features, plan.residency, device, dtype)
        every = ModuleBlock(scores=scores, channel_family=memberships[0],
                            feature_family=memberships[1])
        blocks = [ModuleBlock(scores=scores[:, b], channel_family=memberships[0][:, b],
                              feature_family=memberships[1][:, b]) for b in plan.blocks]
        samples = sample_tables or SampleTables()
        features = FeaturePasses(inputs, ctx, columns, every, blocks, layout,
                                 samples.covariate_matrix, samples.switch_trait)
        try:
            _explain_blocks(results, inputs, ctx, layout, features, annotation, staged,
                            return_tables, drivers, sample_tables)
        finally:
            features.close()
            columns.close()
    eigengenes_host = scores.cpu().numpy()  # the one host copy of the module scores
    if config.vae_attribution or config.integrated_gradients:
        _attribute(results, inputs, eigengenes_host, drivers or {}, config, device, progress,
                   staged, return_tables)
    if staged is not None:
        with progress.stage("write outputs"):
            staged.submit_parquet(
                eigengene_table(inputs.sample_ids, inputs.module_ids, eigengenes_host),
                EIGENGENES)
            traits = trait_table(sample_tables, list(inputs.module_ids), eigengenes_host, config,
                                 device)
            if traits is not None:
                staged.submit_parquet(traits, MODULE_TRAIT_TABLE)
            staged.wait_writes()
        _finish(staged, results, inputs, config, device, dtype, progress,
                annotation is not None, (sample_tables, traits))
    return results


def _explain_blocks(results: dict[str, ExplainResult], inputs: ExplainInputs,
                    ctx: RunContext, layout: RowLayout, features: FeaturePasses,
                    annotation: pd.DataFrame | None, staged: StagedOutput | None,
                    return_tables: bool, drivers: dict[str, pd.DataFrame] | None,
                    sample_tables: SampleTables | None = None) -> None:
    """Statistics and tables of each module block of ``ctx.plan`` in turn (one block's
    statistics in memory at a time): ``features.blocks`` hold each block's scores and
    memberships on the device. ``drivers`` (when not None) receives each module's driver
    columns for the attribution; ``sample_tables``: covariates to adjust the driver and
    polarity statistics for, and the --trait-switch trait."""
    samples = sample_tables or SampleTables()
    ids = TableIds(inputs)
    for block, module_block in zip(ctx.plan.blocks, features.blocks, strict=True):
        stats = compute_statistics(inputs, ctx, layout, module_block, features,
                                   samples.covariate_matrix, samples.switch_trait)
        block_scores = module_block.scores.cpu().numpy()  # [n, Kb]: each result's eigengene
        with ctx.progress.stage("tables"):
            builder = ResultTables(ids, stats)
            for j, module_id in enumerate(inputs.module_ids[block]):
                tables: dict[str, pa.Table | pd.DataFrame] = dict(builder.module(j))
                if annotation is not None:
                    _annotate(tables, annotation)
                if drivers is not None:
                    drivers[module_id] = _driver_columns(tables["gene_driver_table"])
                result = ExplainResult(
                    module_id=module_id,
                    gene_driver_table=tables["gene_driver_table"],
                    transcript_polarity_table=tables["transcript_polarity_table"],
                    high_vs_low_table=tables["high_vs_low_table"],
                    tails_contrast_table=tables.get("tails_contrast_table"),
                    eigengene=block_scores[:, j].copy(),
                    sample_ids=list(inputs.sample_ids),
                    n_module_genes=inputs.n_module_genes[module_id],
                )
                results[module_id] = result
                if staged is not None:
                    _submit(staged, result, tables, return_tables)
                del tables
        del stats, builder  # free this block's statistics before the next


def _driver_columns(table: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """The columns of a driver table the VAE drivers join on: gene_id, r, qvalue."""
    columns = ["gene_id", "r", "qvalue"]
    return table.select(columns).to_pandas() if isinstance(table, pa.Table) else table[columns]


def _annotate(tables: dict[str, pa.Table | pd.DataFrame], annotation: pd.DataFrame) -> None:
    """Join the structural annotation onto one module's driver and polarity tables (small:
    one row per gene / transcript of the module)."""
    from .structure.annotation_merge import annotate_driver_table, annotate_transcript_table

    tables["gene_driver_table"] = annotate_driver_table(
        _pandas(tables["gene_driver_table"]), annotation)
    tables["transcript_polarity_table"] = annotate_transcript_table(
        _pandas(tables["transcript_polarity_table"]), annotation)


def _pandas(table: pa.Table | pd.DataFrame) -> pd.DataFrame:
    return table.to_pandas() if isinstance(table, pa.Table) else table


def _submit(staged: StagedOutput, result: ExplainResult,
            tables: dict[str, pa.Table | pd.DataFrame], return_tables: bool) -> None:
    """Write a module's tables on writer threads; without ``return_tables`` the result
    then reads each table back from its file instead of holding it."""
    for name, table in tables.items():
        relative = f"{result.module_id}/{TABLE_FILES[name]}"
        written = staged.submit_parquet(table, relative)
        if not return_tables:
            result.load_lazily(name, WrittenTable(staged, relative, written))


def _attribute(results: dict[str, ExplainResult], inputs: ExplainInputs,
               scores: np.ndarray, drivers: dict[str, pd.DataFrame], config: ExplainConfig,
               device: torch.device, progress: Progress, staged: StagedOutput | None,
               return_tables: bool) -> None:
    """VAE / IG attribution tables of every module (``scores`` [n, K] module scores;
    ``drivers``: each module's driver columns, kept in memory by the blocks); written
    like the core tables."""
    from .attribution import run_attribution

    with progress.stage("attribution"):
        out = run_attribution(inputs, scores, drivers, config, device, progress)
    for module_id, att in out.items():
        res = results[module_id]
        res.vae_drivers = att.vae_drivers
        res.ig_attributions = att.ig_attributions
        res.ig_convergence_delta = att.ig_convergence_delta
        if staged is not None:
            _submit(staged, res, {name: getattr(att, name)
                                  for name in ("vae_drivers", "ig_attributions")
                                  if getattr(att, name) is not None}, return_tables)


def _finish(staged: StagedOutput, results: dict[str, ExplainResult], inputs: ExplainInputs,
            config: ExplainConfig, device: torch.device, dtype: torch.dtype,
            progress: Progress, annotated: bool,
            beyond: tuple[SampleTables, pa.Table | None]) -> None:
    """Figures (when asked for), the report and the manifest, after every table is
    written; ``beyond``: the run's sample tables and module-trait table (None: no
    traits)."""
    plot_files: list[str] = []
    # figures read the usage of the modules' transcripts; the report reads it only when
    # the table is loaded anyway (a streamed table is read once, by the statistics)
    usage = _figure_usage(results, inputs) if config.plot or (
        config.report and isinstance(inputs.features, np.ndarray)) else None
    if config.plot:
        from .plots import figure_files, render_explain_figures

        with progress.stage("plots"):
            plot_files = render_explain_figures(
                results, staged.staging, config.output_formats,
                feature_usage=usage, feature_meta=inputs.feature_meta, progress=progress,
            )
        if beyond[1] is not None:
            plot_files += trait_heatmap(beyond[1], staged.staging, config.output_formats)
        for rel in plot_files:
            staged.path(rel)  # register for the commit
        plot_files = figure_files(plot_files)  # as isograph 0.1.5: no module_summary.json
    report = []
    if config.report:
        from .report import REPORT_NAME

        report = [REPORT_NAME]
    manifest = build_manifest(results, inputs, config, device, dtype, progress, annotated,
                              plot_files, [*staged.files, MANIFEST, *report],
                              output_dir=str(staged.destination))
    manifest.update(manifest_entries(config, beyond[0], device, dtype))
    if config.report:
        from .report import write_report

        with progress.stage("report"):
            write_report(staged.staging, results, manifest, usage, inputs.feature_meta)
        staged.path(REPORT_NAME)  # register for the commit
        manifest = build_manifest(results, inputs, config, device, dtype, progress,
                                  annotated, plot_files, [*staged.files, MANIFEST],
                                  output_dir=str(staged.destination))
        manifest.update(manifest_entries(config, beyond[0], device, dtype))
    staged.write_json(manifest, MANIFEST)


def _figure_usage(results: dict[str, ExplainResult], inputs: ExplainInputs) -> pd.DataFrame:
    """Samples x features usage of only the transcripts the figures draw (float64, sample
    ids as index): gathered from the loaded matrix, or read from a streamed table in one
    ``features.take(positions)`` (one read of just those columns, never the whole
    table)."""
    from .plots._data import figure_feature_ids

    wanted = set(figure_feature_ids(results.values()))
    positions = np.flatnonzero([str(f) in wanted for f in inputs.feature_ids])
    return pd.DataFrame(_feature_columns(inputs.features, positions),
                        index=inputs.sample_ids, columns=inputs.feature_ids[positions])


def _feature_columns(features: Any, positions: np.ndarray) -> np.ndarray:
    """Columns ``positions`` (ascending) of the samples x features matrix ``features``: an
    array, or a streamed block reader (one ``take``: one read of the file).
    [n, len(positions)]."""
    if isinstance(features, np.ndarray):
        return features[:, positions]
    return features.take(positions)
