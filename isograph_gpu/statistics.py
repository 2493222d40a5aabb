"""tensors -> statistics: eigengenes, gene-driver channel statistics, feature statistics
and everything derived from them (q-values, per-gene best channel, switch strength, the
driver table's sort order), for all modules at once.

Everything stays on the compute device (module scores, splits, memberships and every
statistic); :mod:`isograph_gpu.result_tables` copies each statistic to the host once per
module block, and each module's tables slice it there. The memory decisions are the run's
:class:`~isograph_gpu.compute.plan.MemoryPlan` (in its :class:`~isograph_gpu.compute.context.RunContext`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .compute.companions import (
    NullScores,
    PartialScores,
    SwitchNull,
    switch_pairs,
    switch_pvalues,
)
from .compute.context import RunContext
from .compute.plan import partial_step
from .compute.residency import FeatureColumns
from .config import ExplainConfig
from .engine import feature_statistics
from .io.explain_inputs import ExplainInputs
from .io.gene_codes import GeneCodes, transcript_usage_rows
from .io.gene_codes import module_membership as module_membership  # the memberships taken
from .ops.contrast import WelchResult, percentile_split, tail_split
from .ops.eigengene import module_eigengenes
from .ops.fdr import fdr_adjust
from .ops.permutation import sample_permutations
from .ops.segments import segment_argmax, switch_strength


@dataclass
class DriverStatistics:
    """feature_scores rows against every module score, on the device."""

    #: [R, K] float64 r, p, q (q within each module's genes); n [R, K] int64
    r: torch.Tensor
    pvalue: torch.Tensor
    qvalue: torch.Tensor
    n: torch.Tensor
    #: [G, K] int64: per module column, the feature_scores row of each of its genes' best
    #: channel, ordered as the driver table (|r| descending, NaN as 0, ties by gene_id
    #: ascending); the first ``n_genes[k]`` entries of column k are module k's genes
    sorted_rows: torch.Tensor
    #: genes per module (host)
    n_genes: list[int]


@dataclass
class PolarityStatistics:
    """Transcript-usage features against every module score, on the device (their
    columns and gene codes are the run's :class:`RowLayout`)."""

    #: [T, K] bool (device): the feature's gene belongs to module k
    member: torch.Tensor
    #: [T, K] float64 r, p, q (q within module k's transcripts); n [T, K] int64
    r: torch.Tensor
    pvalue: torch.Tensor
    qvalue: torch.Tensor
    n: torch.Tensor
    #: [G, K] float64 switch strength per gene: a feature's switch strength is
    #: ``gene_switch[RowLayout.polarity_segments[t], k]``
    gene_switch: torch.Tensor
    #: with --switch-permutations: [G, K] float64 permutation p and q of gene_switch (NaN
    #: outside each module's genes with >= 2 transcripts), and [R] host int64 the gene
    #: (0..G-1, -1: none) of each feature_scores row, for the driver table
    switch_pvalue: torch.Tensor | None = None
    switch_qvalue: torch.Tensor | None = None
    score_row_genes: np.ndarray | None = None


@dataclass
class ExplainStatistics:
    """Every statistic the result tables are built from (device tensors)."""

    drivers: DriverStatistics
    polarity: PolarityStatistics
    #: Welch statistics of every table feature per split ("split", optionally "tails")
    contrasts: dict[str, WelchResult]
    #: [F] int64 finite values per table feature
    n_finite: torch.Tensor
    #: the run's row layout (transcript-usage columns and gene codes), shared by blocks
    layout: RowLayout


def eigengenes(inputs: ExplainInputs, membership: np.ndarray, device: torch.device,
               dtype: torch.dtype, sign: str = "reference") -> torch.Tensor:
    """[n, K] float64 module scores on ``device`` (they stay there: the splits and every
    statistic are computed from them in place); ``membership`` [R, K]: feature_scores row
    in module k.

    ``sign`` (``ExplainConfig.eigengene_sign``): "reference" takes each module's rows in
    feature_scores order (the first anchors the sign); "canonical" in ascending
    feature_id order, oriented to the module's mean row, which makes the eigengene
    independent of the row order of feature_scores. Module row lists are padded with -1
    to the largest module (ops.eigengene ignores those rows)."""
    if inputs.module_scores is not None:
        return torch.from_numpy(np.ascontiguousarray(inputs.module_scores, dtype=np.float64)
                                ).to(device)
    order = (np.arange(membership.shape[0]) if sign == "reference" else
             np.argsort(np.asarray(inputs.score_feature_ids, dtype=str), kind="stable"))
    per_module = [order[membership[order, k]] for k in range(membership.shape[1])]
    width = max((len(r) for r in per_module), default=0)
    rows = np.full((len(per_module), max(width, 1)), -1, dtype=np.int64)
    for k, r in enumerate(per_module):
        rows[k, : len(r)] = r
    scores = torch.from_numpy(inputs.scores).to(device=device, dtype=dtype)  # no host copy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        eig = module_eigengenes(scores, torch.from_numpy(rows).to(device),
                                orient_to_mean=sign == "canonical")
    return eig.to(torch.float64)


def driver_order(key: torch.Tensor, best: torch.Tensor, gene_in: torch.Tensor,
                 gene_name_order: torch.Tensor) -> torch.Tensor:
    """[G, K] rows of each module's genes in driver-table order.

    ``key`` [R, K] sort key per row (|r|, NaN as 0), ``best`` [G, K] row of each gene's
    best channel, ``gene_in`` [G, K] bool gene in module, ``gene_name_order`` [G] genes in
    ascending gene_id order. Key descending, ties by gene_id ascending; genes outside the
    module sort last. Runs on the tensors' device.
    """
    best_key = key.gather(0, best.clamp_min(0))  # [G, K]
    by_name = gene_name_order.to(best.device)
    # stable sort on the negated key over genes already in name order: ties keep name order
    negated = torch.where(gene_in[by_name], -best_key[by_name] + 0.0,  # + 0.0: no -0.0
                          torch.full_like(best_key[by_name], float("inf")))
    order = torch.sort(negated, dim=0, stable=True).indices  # [G, K]
    return best.gather(0, by_name[order])


@dataclass
class RowLayout:
    """Gene segments and row orders that do not depend on the modules: built once per
    run, shared by every module block."""

    #: [R] int64 gene code of each feature_scores row (device), genes in ascending
    #: gene_id order [G] (device), number of genes
    driver_segments: torch.Tensor
    driver_name_order: torch.Tensor
    n_driver_genes: int
    #: [T] host int64 transcript-usage feature columns in feature_meta row order, their
    #: gene codes [T] (device) and number of genes
    polarity_rows: np.ndarray
    polarity_segments: torch.Tensor
    n_polarity_genes: int

    @classmethod
    def build(cls, inputs: ExplainInputs, config: ExplainConfig,
              device: torch.device) -> RowLayout:
        drivers = GeneCodes.of(inputs.score_gene_ids)
        tu_rows = transcript_usage_rows(inputs, config.transcript_usage_feature_type)
        polarity = GeneCodes.of(inputs.feature_gene_ids[tu_rows])
        return cls(driver_segments=torch.from_numpy(drivers.codes).to(device),
                   driver_name_order=torch.from_numpy(drivers.name_order).to(device),
                   n_driver_genes=drivers.n_genes, polarity_rows=tu_rows,
                   polarity_segments=torch.from_numpy(polarity.codes).to(device),
                   n_polarity_genes=polarity.n_genes)


def largest_switch_family(layout: RowLayout, feature_family: np.ndarray) -> int:
    """The most (gene, module) pairs the switch null of one module tests:
    :func:`~isograph_gpu.compute.companions.switch_pairs` of the run's transcript-usage
    features (``feature_family`` [F, K] host bool) per module, its largest count."""
    member = feature_family[layout.polarity_rows]
    _, _, modules = switch_pairs(layout.polarity_segments.cpu().numpy(), member,
                                 layout.n_polarity_genes)
    return int(np.bincount(modules, minlength=1).max())


def _driver_statistics(inputs: ExplainInputs, layout: RowLayout, block: ModuleBlock,
                       ctx: RunContext, covariates: np.ndarray | None = None
                       ) -> DriverStatistics:
    family = block.channel_family
    channel = feature_statistics(
        inputs.scores, block.scores, min_pairs=ctx.min_pairs, device=ctx.device,
        dtype=ctx.dtype, memory_budget_bytes=ctx.plan.chunk_budget_bytes,
        chunks=ctx.plan.score_chunks(inputs.scores, block.n_modules),
        progress=ctx.progress, label="feature_scores", pvalue_where=family,
        partial=None if covariates is None else _partial_scores(block.scores, covariates,
                                                                None, ctx))
    q = fdr_adjust(channel.pvalue, family, ctx.config.fdr_method)
    seg, n_genes = layout.driver_segments, layout.n_driver_genes
    key = torch.where(torch.isfinite(channel.r), channel.r.abs(),
                      torch.zeros_like(channel.r))
    best = segment_argmax(key, seg, n_genes)  # [G, K]
    gene_in = torch.zeros((n_genes, family.shape[1]), dtype=torch.int64, device=ctx.device)
    gene_in = gene_in.index_add_(0, seg, family.to(torch.int64)) > 0  # [G, K]
    sorted_rows = driver_order(key, best, gene_in, layout.driver_name_order)
    genes_per_module = [int(v) for v in gene_in.sum(dim=0).cpu()]  # one small copy
    return DriverStatistics(r=channel.r, pvalue=channel.pvalue, qvalue=q, n=channel.n,
                            sorted_rows=sorted_rows, n_genes=genes_per_module)


def _polarity_statistics(layout: RowLayout, r: torch.Tensor, p: torch.Tensor,
                         n: torch.Tensor, feature_family: torch.Tensor,
                         config: ExplainConfig) -> PolarityStatistics:
    """``feature_family`` [F, K] bool (device): table feature's gene belongs to module k."""
    tu_rows = layout.polarity_rows
    if np.array_equal(tu_rows, np.arange(r.shape[0])):  # every feature, in order: no copies
        member, r_tu, p_tu, n_tu = feature_family, r, p, n  # member [T, K]
    else:
        index = torch.from_numpy(tu_rows).to(r.device)
        member, r_tu, p_tu, n_tu = feature_family[index], r[index], p[index], n[index]
    q = fdr_adjust(p_tu, member, config.fdr_method)
    seg = layout.polarity_segments
    strength = switch_strength(r_tu, seg, layout.n_polarity_genes)  # [G, K]
    return PolarityStatistics(member=member, r=r_tu, pvalue=p_tu, qvalue=q, n=n_tu,
                              gene_switch=strength)


def _partial_scores(scores: torch.Tensor, covariates: np.ndarray, rows: np.ndarray | None,
                    ctx: RunContext) -> PartialScores:
    """The partial statistics' y side: ``scores`` [n, K] given ``covariates`` [n, C]
    (host, NaN = missing) over the table rows ``rows`` [F] bool (None: all)."""
    z = torch.from_numpy(np.ascontiguousarray(covariates, dtype=np.float64)).to(
        device=ctx.device, dtype=ctx.dtype)
    return PartialScores(scores=scores.to(ctx.dtype), covariates=z, min_pairs=ctx.min_pairs,
                         step=partial_step(scores.shape[0], scores.shape[1],
                                           covariates.shape[1], ctx.plan.chunk_budget_bytes),
                         rows=rows)


def _switch_null(inputs: ExplainInputs, layout: RowLayout, block: ModuleBlock,
                 scores: torch.Tensor, covariates: np.ndarray | None, ctx: RunContext
                 ) -> tuple[SwitchNull, np.ndarray, np.ndarray]:
    """The block's running switch null over the table features (the transcript-usage
    features of each module's genes with >= 2 of them are tested against that module's
    column of ``scores``), and each pair's gene and module (:func:`switch_pairs`)."""
    config = ctx.config
    member = block.feature_family[torch.from_numpy(layout.polarity_rows).to(
        ctx.device)].cpu().numpy()
    segments = layout.polarity_segments.cpu().numpy()
    tu_pairs, genes, modules = switch_pairs(segments, member, layout.n_polarity_genes)
    pairs = np.full((inputs.features.shape[1], block.n_modules), -1, dtype=np.int64)
    pairs[layout.polarity_rows] = tu_pairs
    z = None if covariates is None else torch.from_numpy(
        np.ascontiguousarray(covariates, dtype=np.float64))
    shared = NullScores.build(
        scores, sample_permutations(scores.shape[0], int(config.switch_permutations),
                                    int(config.seed)), z,
        min_pairs=ctx.min_pairs, block_bytes=ctx.plan.chunk_budget_bytes // 2,
        dtype=ctx.dtype, device=ctx.device)
    return SwitchNull(shared, pairs, len(genes)), genes, modules


def _score_row_genes(inputs: ExplainInputs, layout: RowLayout) -> np.ndarray:
    """[R] host int64: the polarity gene (0..G-1, genes by first appearance among the
    transcript-usage features; -1: none) of each feature_scores row, for the driver
    table's switch p / q."""
    tu_genes = np.asarray(inputs.feature_gene_ids[layout.polarity_rows], dtype=str)
    names, first = np.unique(tu_genes, return_index=True)  # names ascending
    code = np.argsort(np.argsort(first))  # each name's rank of first appearance
    wanted = np.asarray(inputs.score_gene_ids, dtype=str)
    at = np.minimum(np.searchsorted(names, wanted), max(len(names) - 1, 0))
    found = (names[at] == wanted) if len(names) else np.zeros(len(wanted), dtype=bool)
    return np.where(found, code[at] if len(names) else -1, -1).astype(np.int64)


@dataclass(frozen=True)
class ModuleBlock:
    """One module block's inputs, on the device: module scores [n, Kb] float64 and the
    memberships [R, Kb] / [F, Kb] bool (:func:`module_membership` of the block's modules)."""

    scores: torch.Tensor
    channel_family: torch.Tensor
    feature_family: torch.Tensor

    @property
    def n_modules(self) -> int:
        return int(self.scores.shape[1])


def compute_statistics(inputs: ExplainInputs, ctx: RunContext, layout: RowLayout,
                       block: ModuleBlock, columns: FeatureColumns,
                       covariates: np.ndarray | None = None,
                       switch_trait: np.ndarray | None = None) -> ExplainStatistics:
    """All statistics of an explain run for a block of modules in one batched pass on
    ``ctx.device`` (working precision ``ctx.dtype``; p- and q-values float64).

    ``layout`` the run's :class:`RowLayout`; ``columns`` the feature table as every block
    reads it (:class:`~isograph_gpu.compute.residency.FeatureColumns`). With a Dask
    client in ``ctx`` the table features' statistics run as one task per read block of
    the feature table on its cluster (:mod:`isograph_gpu.distributed`); the rest runs here.
    ``covariates`` [n, C] (host, NaN = missing; None: none): the driver and polarity r / p
    (and the switch strength) are partial given them; high_vs_low stays unadjusted.
    ``switch_trait`` [n] (--trait-switch): the polarity r / p / q and switch strength are
    against it instead of each module's score.
    """
    config, progress = ctx.config, ctx.progress
    with progress.stage("gene drivers"):
        drivers = _driver_statistics(inputs, layout, block, ctx, covariates)

    scores = block.scores
    splits = {"split": percentile_split(scores, float(config.split_percentile))}
    if config.contrast_tails is not None:
        splits["tails"] = tail_split(scores, float(config.contrast_tails))
    polarity_scores = scores if switch_trait is None else torch.from_numpy(
        np.repeat(switch_trait[:, None], scores.shape[1], axis=1)).to(scores)
    partial = switch_null = None
    if covariates is not None or switch_trait is not None:  # the polarity rows tested
        tested = np.zeros(inputs.features.shape[1], dtype=bool)
        tested[layout.polarity_rows] = block.feature_family[torch.from_numpy(
            layout.polarity_rows).to(ctx.device)].any(dim=1).cpu().numpy()
        partial = _partial_scores(polarity_scores, np.empty((scores.shape[0], 0))
                                  if covariates is None else covariates, tested, ctx)
    if config.switch_permutations:
        switch_null, pair_genes, pair_modules = _switch_null(
            inputs, layout, block, polarity_scores, covariates, ctx)
    with progress.stage("feature statistics"):
        # Pearson p of table features is used only by the transcript polarity tables
        is_usage = torch.from_numpy(
            inputs.feature_types == config.transcript_usage_feature_type).to(ctx.device)
        common = dict(min_pairs=ctx.min_pairs, splits=splits, device=ctx.device,
                      dtype=ctx.dtype, memory_budget_bytes=ctx.plan.chunk_budget_bytes,
                      chunk_features=config.chunk_features, progress=progress,
                      label="features", pvalue_where=is_usage[:, None] & block.feature_family,
                      partial=partial, switch_null=switch_null)
        chunks = ctx.plan.feature_chunks(columns.source, block.n_modules)
        if ctx.client is not None:
            from .distributed import feature_statistics_on_dask

            feats = feature_statistics_on_dask(ctx.client, columns.source, scores,
                                               chunks=chunks, **common)
        else:
            feats = feature_statistics(columns, scores, chunks=chunks, **common)

    with progress.stage("transcript polarity"):
        polarity = _polarity_statistics(layout, feats.r, feats.pvalue, feats.n,
                                        block.feature_family, config)
    if switch_null is not None:  # the null's last kept columns, counts, p and q
        with progress.stage("switch permutations"):
            polarity.switch_pvalue, polarity.switch_qvalue = switch_pvalues(
                switch_null, polarity.gene_switch, pair_genes, pair_modules,
                config.fdr_method)
            polarity.score_row_genes = _score_row_genes(inputs, layout)
    return ExplainStatistics(drivers=drivers, polarity=polarity,
                             contrasts=feats.contrasts, n_finite=feats.n_finite,
                             layout=layout)
