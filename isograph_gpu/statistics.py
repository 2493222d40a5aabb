"""tensors -> statistics: eigengenes, gene-driver channel statistics, feature statistics
and everything derived from them (q-values, per-gene best channel, switch strength, the
driver table's sort order), for all modules at once.

Everything stays on the compute device (module scores, splits, memberships and every
statistic); :mod:`isograph_gpu.result_tables` copies each statistic to the host once per
module block, and each module's tables slice it there. The memory decisions are the run's
:class:`~isograph_gpu.compute.plan.MemoryPlan` (in its :class:`~isograph_gpu.compute.context.RunContext`).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
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
from .compute.residency import FeatureColumns, StatisticsSpill
from .compute.results import FeatureStatistics
from .compute.step import prepare_scores
from .config import ExplainConfig
from .engine import feature_statistics, store_chunks
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
    #: ``gene_switch[RowLayout.polarity_segments[t], k]`` (a gene's strength over its
    #: member transcripts of module k; 0 for a gene outside k)
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
    #: gene codes [T] (device) and [G] host str the gene of each code
    polarity_rows: np.ndarray
    polarity_segments: torch.Tensor
    polarity_genes: np.ndarray

    @property
    def n_polarity_genes(self) -> int:
        return len(self.polarity_genes)

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
                   polarity_genes=polarity.genes)


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
    strength = switch_strength(r_tu, seg, layout.n_polarity_genes, member)  # [G, K]
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
    """[R] host int64: the polarity gene (0..G-1, :attr:`RowLayout.polarity_genes`; -1:
    none) of each feature_scores row, for the driver table's switch p / q."""
    names = np.asarray(layout.polarity_genes, dtype=str)
    order = np.argsort(names, kind="stable")
    wanted = np.asarray(inputs.score_gene_ids, dtype=str)
    if len(names) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    at = np.minimum(np.searchsorted(names[order], wanted), len(names) - 1)
    found = names[order][at] == wanted
    return np.where(found, order[at], -1).astype(np.int64)


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


def _splits(scores: torch.Tensor, config: ExplainConfig
            ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The contrast splits (high, low) [n, K] bool of module ``scores`` [n, K]."""
    splits = {"split": percentile_split(scores, float(config.split_percentile))}
    if config.contrast_tails is not None:
        splits["tails"] = tail_split(scores, float(config.contrast_tails))
    return splits


@dataclass(frozen=True)
class BlockCompanions:
    """What the options add to one module block's pass (:mod:`isograph_gpu.compute.companions`):
    the partial statistics' y side (``--covariates`` / ``--trait-switch``) and the
    running switch null with each of its pairs' gene and module in the block
    (``--switch-permutations``); None where not asked for."""

    partial: PartialScores | None = None
    switch_null: SwitchNull | None = None
    pair_genes: np.ndarray | None = None
    pair_modules: np.ndarray | None = None

    def of_modules(self, cols: slice) -> BlockCompanions:
        """The block of the modules ``cols`` of this one, after its pass: its pairs'
        null (their columns of the running extremes) with modules counted from
        ``cols.start``."""
        if self.switch_null is None:
            return BlockCompanions()
        assert self.pair_genes is not None and self.pair_modules is not None
        ids = np.flatnonzero((self.pair_modules >= cols.start)
                             & (self.pair_modules < cols.stop))
        return BlockCompanions(switch_null=self.switch_null.subset(ids),
                               pair_genes=self.pair_genes[ids],
                               pair_modules=self.pair_modules[ids] - cols.start)


class FeaturePasses:
    """The table features' statistics of each module block of a run, block by block in
    order (:meth:`statistics`), from ``columns`` (the run's
    :class:`~isograph_gpu.compute.residency.FeatureColumns`); ``every`` is the block of
    all the run's modules, ``blocks`` the plan's blocks of it; ``covariates`` [n, C]
    (host, NaN = missing) and ``switch_trait`` [n] the options' inputs (None: not asked
    for), whose companions run on the same chunks (:class:`BlockCompanions`).

    With residency "spill" (a table read by several blocks, not kept on the device) the
    first block's call makes one pass over the table for every module, as a run of one
    block does (each chunk read, masked and centred once, one GEMM set for all modules,
    the companions of every module on it), keeps the first block's statistics on the
    device and spills the later blocks'
    (:class:`~isograph_gpu.compute.residency.StatisticsSpill`), which their calls read
    back; otherwise each block is a pass of its own (on the Dask cluster when ``ctx`` has
    a client). :meth:`close` frees the spill."""

    def __init__(self, inputs: ExplainInputs, ctx: RunContext, columns: FeatureColumns,
                 every: ModuleBlock, blocks: Sequence[ModuleBlock], layout: RowLayout,
                 covariates: np.ndarray | None = None,
                 switch_trait: np.ndarray | None = None) -> None:
        self.inputs, self.ctx, self.columns = inputs, ctx, columns
        self.every, self.blocks, self.layout = every, list(blocks), layout
        self.covariates, self.switch_trait = covariates, switch_trait
        self._next = 0
        self._spill: StatisticsSpill | None = None
        self._every_companions = BlockCompanions()
        # Pearson p of table features is used only by the transcript polarity tables
        self._is_usage = torch.from_numpy(
            inputs.feature_types == ctx.config.transcript_usage_feature_type).to(ctx.device)
        self.one_pass = (ctx.plan.residency == "spill" and ctx.client is None
                         and len(self.blocks) > 1)

    def statistics(self, block: ModuleBlock) -> tuple[FeatureStatistics, BlockCompanions]:
        """The statistics [F, Kb] (device) of ``block``, the next block of the run, and its
        companions after the pass."""
        index = self._next
        if index >= len(self.blocks) or block is not self.blocks[index]:
            raise ValueError(f"module block {index} asked out of order: blocks are "
                             "computed in the plan's order")
        self._next += 1
        if not self.one_pass:
            companions = self._companions(block)
            return self._pass(block, companions), companions
        cols = self.ctx.plan.blocks[index]
        if index == 0:
            first = self._every_block()
            return first, self._every_companions.of_modules(cols)
        assert self._spill is not None
        return (self._spill.load(index - 1, self.ctx.device),
                self._every_companions.of_modules(cols))

    def _companions(self, block: ModuleBlock) -> BlockCompanions:
        ctx, layout = self.ctx, self.layout
        scores = block.scores if self.switch_trait is None else torch.from_numpy(
            np.repeat(self.switch_trait[:, None], block.n_modules, axis=1)).to(block.scores)
        out = BlockCompanions()
        if self.covariates is not None or self.switch_trait is not None:
            tested = np.zeros(self.columns.shape[1], dtype=bool)  # the polarity rows tested
            tested[layout.polarity_rows] = block.feature_family[torch.from_numpy(
                layout.polarity_rows).to(ctx.device)].any(dim=1).cpu().numpy()
            out = dataclasses.replace(out, partial=_partial_scores(
                scores, np.empty((scores.shape[0], 0)) if self.covariates is None
                else self.covariates, tested, ctx))
        if ctx.config.switch_permutations:
            null, genes, modules = _switch_null(self.inputs, layout, block, scores,
                                                self.covariates, ctx)
            out = dataclasses.replace(out, switch_null=null, pair_genes=genes,
                                      pair_modules=modules)
        return out

    def _pvalue_where(self, block: ModuleBlock) -> torch.Tensor:
        return self._is_usage[:, None] & block.feature_family

    def _pass(self, block: ModuleBlock, companions: BlockCompanions) -> FeatureStatistics:
        ctx = self.ctx
        common = dict(min_pairs=ctx.min_pairs, splits=_splits(block.scores, ctx.config),
                      device=ctx.device, dtype=ctx.dtype,
                      memory_budget_bytes=ctx.plan.chunk_budget_bytes,
                      chunk_features=ctx.config.chunk_features, progress=ctx.progress,
                      label="features", pvalue_where=self._pvalue_where(block),
                      partial=companions.partial, switch_null=companions.switch_null)
        chunks = ctx.plan.feature_chunks(self.columns.source)
        if ctx.client is not None:
            from .distributed import feature_statistics_on_dask

            return feature_statistics_on_dask(ctx.client, self.columns.source, block.scores,
                                              chunks=chunks, **common)
        return feature_statistics(self.columns, block.scores, chunks=chunks, **common)

    def _every_block(self) -> FeatureStatistics:
        ctx, every = self.ctx, self.every
        prepared = prepare_scores(every.scores, _splits(every.scores, ctx.config),
                                  min_pairs=ctx.min_pairs, dtype=ctx.dtype, device=ctx.device)
        self._every_companions = companions = self._companions(every)
        names = list(prepared.layout.names)
        n_features = self.columns.shape[1]
        slices = list(ctx.plan.blocks)
        first = FeatureStatistics.empty(n_features, self.blocks[0].n_modules, names,
                                        ctx.device)
        self._spill = spill = StatisticsSpill(
            n_features, [b.n_modules for b in self.blocks[1:]], names)

        def store(a: int, b: int, chunk: FeatureStatistics) -> None:
            first.store(a, b, chunk.modules(slices[0]))
            for i, cols in enumerate(slices[1:]):
                spill.store(i, a, b, chunk.modules(cols))

        store_chunks(self.columns, ctx.plan.feature_chunks(self.columns.source), prepared,
                     store, pvalue_where=self._pvalue_where(every), progress=ctx.progress,
                     label="features", partial=companions.partial,
                     switch_null=companions.switch_null)
        return first

    def close(self) -> None:
        """Free the spilled statistics."""
        if self._spill is not None:
            self._spill.close()
            self._spill = None


def compute_statistics(inputs: ExplainInputs, ctx: RunContext, layout: RowLayout,
                       block: ModuleBlock, features: FeaturePasses,
                       covariates: np.ndarray | None = None,
                       switch_trait: np.ndarray | None = None) -> ExplainStatistics:
    """All statistics of an explain run for a block of modules in one batched pass on
    ``ctx.device`` (working precision ``ctx.dtype``; p- and q-values float64).

    ``layout`` the run's :class:`RowLayout`; ``features`` the run's
    :class:`FeaturePasses` (the table features' statistics of each block, in order).
    With a Dask client in ``ctx`` the table features' statistics run as one task per
    read block of the feature table on its cluster (:mod:`isograph_gpu.distributed`); the
    rest runs here. ``covariates`` [n, C] (host, NaN = missing; None: none): the driver
    and polarity r / p (and the switch strength) are partial given them; high_vs_low stays
    unadjusted. ``switch_trait`` [n] (--trait-switch): the polarity r / p / q and switch
    strength are against it instead of each module's score.
    """
    config, progress = ctx.config, ctx.progress
    with progress.stage("gene drivers"):
        drivers = _driver_statistics(inputs, layout, block, ctx, covariates)

    with progress.stage("feature statistics"):
        feats, companions = features.statistics(block)

    with progress.stage("transcript polarity"):
        polarity = _polarity_statistics(layout, feats.r, feats.pvalue, feats.n,
                                        block.feature_family, config)
    if companions.switch_null is not None:  # the null's last columns, counts, p and q
        assert companions.pair_genes is not None and companions.pair_modules is not None
        with progress.stage("switch permutations"):
            polarity.switch_pvalue, polarity.switch_qvalue = switch_pvalues(
                companions.switch_null, polarity.gene_switch, companions.pair_genes,
                companions.pair_modules, config.fdr_method)
            polarity.score_row_genes = _score_row_genes(inputs, layout)
    return ExplainStatistics(drivers=drivers, polarity=polarity,
                             contrasts=feats.contrasts, n_finite=feats.n_finite,
                             layout=layout)
