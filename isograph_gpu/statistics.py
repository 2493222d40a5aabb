"""tensors -> statistics: eigengenes, gene-driver channel statistics, feature statistics
and everything derived from them (q-values, per-gene best channel, switch strength, the
driver table's sort order), for all modules at once.

Everything stays on the compute device; :mod:`isograph_gpu.result_tables` copies each
statistic to the host once per module block, and each module's tables slice it there.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .config import ExplainConfig
from .engine import ContrastStatistics, feature_statistics
from .io.explain_inputs import ExplainInputs
from .io.gene_codes import GeneCodes, transcript_usage_rows
from .io.gene_codes import module_membership as module_membership  # the memberships taken
from .ops.contrast import percentile_split, tail_split
from .ops.eigengene import module_eigengenes
from .ops.fdr import fdr_adjust
from .ops.segments import segment_argmax, switch_strength
from .progress import Progress


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
    """Transcript-usage features against every module score, on the device."""

    #: [T] host int64: transcript-usage feature columns, in feature_meta row order
    rows: np.ndarray
    #: [T, K] host bool: the feature's gene belongs to module k
    member: np.ndarray
    #: [T, K] float64 r, p, q (q within module k's transcripts); n [T, K] int64
    r: torch.Tensor
    pvalue: torch.Tensor
    qvalue: torch.Tensor
    n: torch.Tensor
    #: [G, K] float64 switch strength per gene, and [T] int64 the gene (0..G-1) of each
    #: feature: a feature's switch strength is ``gene_switch[segments[t], k]``
    gene_switch: torch.Tensor
    segments: torch.Tensor


@dataclass
class ExplainStatistics:
    """Every statistic the result tables are built from (device tensors unless noted)."""

    #: [n, K] float64 host module scores (eigengenes or the given score table)
    eigengenes: np.ndarray
    drivers: DriverStatistics
    polarity: PolarityStatistics
    #: Welch statistics of every table feature per split ("split", optionally "tails")
    contrasts: dict[str, ContrastStatistics]
    #: [F] int64 finite values per table feature
    n_finite: torch.Tensor


def eigengenes(inputs: ExplainInputs, membership: np.ndarray, device: torch.device,
               dtype: torch.dtype) -> np.ndarray:
    """[n, K] module scores; ``membership`` [R, K]: feature_scores row in module k.

    Module row lists are padded with -1 to the largest module (ops.eigengene ignores
    those rows)."""
    if inputs.module_scores is not None:
        return inputs.module_scores.astype(np.float64)
    per_module = [np.flatnonzero(membership[:, k]) for k in range(membership.shape[1])]
    width = max((len(r) for r in per_module), default=0)
    rows = np.full((len(per_module), max(width, 1)), -1, dtype=np.int64)
    for k, r in enumerate(per_module):
        rows[k, : len(r)] = r
    scores = torch.from_numpy(inputs.scores).to(device=device, dtype=dtype)  # no host copy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        eig = module_eigengenes(scores, torch.from_numpy(rows).to(device))
    return eig.to(torch.float64).cpu().numpy()


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


def _driver_statistics(inputs: ExplainInputs, layout: RowLayout, scores: torch.Tensor,
                       family: np.ndarray, config: ExplainConfig,
                       common: dict) -> DriverStatistics:
    device = common["device"]
    channel = feature_statistics(inputs.scores, scores, label="feature_scores",
                                 pvalue_where=family, **common)
    family_t = torch.from_numpy(family).to(device)
    q = fdr_adjust(channel.pvalue, family_t, config.fdr_method)
    seg, n_genes = layout.driver_segments, layout.n_driver_genes
    key = torch.where(torch.isfinite(channel.r), channel.r.abs(),
                      torch.zeros_like(channel.r))
    best = segment_argmax(key, seg, n_genes)  # [G, K]
    gene_in = torch.zeros((n_genes, family.shape[1]), dtype=torch.int64, device=device)
    gene_in = gene_in.index_add_(0, seg, family_t.to(torch.int64)) > 0  # [G, K]
    sorted_rows = driver_order(key, best, gene_in, layout.driver_name_order)
    genes_per_module = [int(v) for v in gene_in.sum(dim=0).cpu()]  # one small copy
    return DriverStatistics(r=channel.r, pvalue=channel.pvalue, qvalue=q, n=channel.n,
                            sorted_rows=sorted_rows, n_genes=genes_per_module)


def _polarity_statistics(layout: RowLayout, r: torch.Tensor, p: torch.Tensor,
                         n: torch.Tensor, feature_family: np.ndarray,
                         config: ExplainConfig) -> PolarityStatistics:
    """``feature_family`` [F, K]: table feature's gene belongs to module k."""
    tu_rows = layout.polarity_rows
    if np.array_equal(tu_rows, np.arange(r.shape[0])):  # every feature, in order: no copies
        member, r_tu, p_tu, n_tu = feature_family, r, p, n  # member [T, K]
    else:
        index = torch.from_numpy(tu_rows).to(r.device)
        member, r_tu, p_tu, n_tu = feature_family[tu_rows], r[index], p[index], n[index]
    q = fdr_adjust(p_tu, torch.from_numpy(member).to(r.device), config.fdr_method)
    seg = layout.polarity_segments
    strength = switch_strength(r_tu, seg, layout.n_polarity_genes)  # [G, K]
    return PolarityStatistics(rows=tu_rows, member=member, r=r_tu, pvalue=p_tu, qvalue=q,
                              n=n_tu, gene_switch=strength, segments=seg)


#: bytes per table feature x module while one block's statistics are alive: r/n/p and 8
#: Welch arrays of one split (88), transcript polarity r/p/n copies and q-values (32, at
#: most one per table feature), memberships and the Pearson p mask (3, bool),
#: q-value temporaries (64): 187, rounded up
STATISTICS_BYTES_PER_FEATURE_MODULE = 192
#: bytes per table feature x module of each further split (the tails contrast): its 8
#: Welch arrays (6 statistics + 2 counts, 8 bytes each)
WELCH_BYTES_PER_FEATURE_MODULE = 64
#: bytes per feature_scores row x module: r/n/p/q, sort key (40), q-value temporaries (64),
#: masks, rounded up
STATISTICS_BYTES_PER_SCORE_ROW_MODULE = 112


#: share of the memory budget one feature chunk's working set may take (the module
#: block's statistics take up to all of it): peak ~ inputs + 1.25 x budget, plus, for a
#: streamed table, the reads in flight (up to
#: :data:`~isograph_gpu.io.memory.STREAM_BYTES_IN_FLIGHT`, 512 MiB, with read ahead)
CHUNK_SHARE_OF_BUDGET = 0.25


def module_blocks(n_modules: int, n_features: int, n_score_rows: int,
                  memory_budget_bytes: int, n_splits: int = 1) -> list[slice]:
    """Module columns computed together, so that one block's statistics (with ``n_splits``
    contrast splits: 2 with the tails contrast) fit the memory budget (the engine's chunk
    working set by :data:`CHUNK_SHARE_OF_BUDGET` of it: peak memory is about 1.25 x the
    budget plus the inputs and, for a streamed table, the reads in flight). Each block is
    one pass over the feature table; at least one module per block."""
    per_feature = (STATISTICS_BYTES_PER_FEATURE_MODULE
                   + (n_splits - 1) * WELCH_BYTES_PER_FEATURE_MODULE)
    per_module = max(1, n_features * per_feature
                     + n_score_rows * STATISTICS_BYTES_PER_SCORE_ROW_MODULE)
    size = max(1, memory_budget_bytes // per_module)
    return [slice(a, min(n_modules, a + size)) for a in range(0, n_modules, size)]


def compute_statistics(inputs: ExplainInputs, config: ExplainConfig, device: torch.device,
                       dtype: torch.dtype, progress: Progress, layout: RowLayout,
                       scores: np.ndarray, channel_family: np.ndarray,
                       feature_family: np.ndarray, client: Any = None) -> ExplainStatistics:
    """All statistics of an explain run for a block of modules in one batched pass on
    ``device`` (working precision ``dtype``; p- and q-values float64).

    ``layout`` the run's :class:`RowLayout`; ``scores`` [n, Kb] the block's module scores
    (:func:`eigengenes`), ``channel_family`` [R, Kb] / ``feature_family`` [F, Kb] the block's
    memberships (:func:`module_membership`). With a Dask ``client`` the table features'
    statistics run as one task per read block of the feature table on its cluster (:mod:`isograph_gpu.distributed`); the rest runs here.
    """
    scores_t = torch.from_numpy(np.ascontiguousarray(scores))
    common = dict(min_pairs=int(config.min_complete_pairs), device=device, dtype=dtype,
                  memory_budget_bytes=int(config.memory_budget_bytes * CHUNK_SHARE_OF_BUDGET),
                  chunk_features=config.chunk_features, progress=progress)

    with progress.stage("gene drivers"):
        drivers = _driver_statistics(inputs, layout, scores_t, channel_family, config, common)

    splits = {"split": percentile_split(scores_t, float(config.split_percentile))}
    if config.contrast_tails is not None:
        splits["tails"] = tail_split(scores_t, float(config.contrast_tails))
    with progress.stage("feature statistics"):
        # Pearson p of table features is used only by the transcript polarity tables
        is_usage = inputs.feature_types == config.transcript_usage_feature_type
        run = feature_statistics
        if client is not None:
            from .distributed import feature_statistics_on_dask

            run = functools.partial(feature_statistics_on_dask, client)
        feats = run(inputs.features, scores_t, splits=splits, label="features",
                    pvalue_where=is_usage[:, None] & feature_family, **common)

    with progress.stage("transcript polarity"):
        polarity = _polarity_statistics(layout, feats.r, feats.pvalue, feats.n,
                                        feature_family, config)
    return ExplainStatistics(eigengenes=scores, drivers=drivers, polarity=polarity,
                             contrasts=feats.contrasts, n_finite=feats.n_finite)
