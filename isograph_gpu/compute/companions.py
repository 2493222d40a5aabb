"""The chunk step's companions: the statistics an option adds to each feature chunk, in
the shape of :func:`~.step.chunk_statistics` (functions of one chunk's tensors), so the
engine's chunk loop (:func:`isograph_gpu.engine.statistics_of_chunks`), a Dask task (which
runs that loop on its block) and :class:`isograph_gpu.training.ModuleStatistics` compute
them alike, from the chunks the run already reads.

- :class:`PartialScores` / :func:`adjust_chunk` (``--covariates``, ``--trait-switch``):
  the partial r / n / p of chosen features given the covariates
  (:mod:`isograph_gpu.ops.partial`), written over the chunk's Pearson r / n / p.
- :class:`NullScores` / :class:`SwitchNull` (``--switch-permutations``): each chunk's
  null r under every permutation folded into running per-(gene, module) maxima and minima
  (:mod:`isograph_gpu.ops.permutation`), so the features of a gene may lie in any chunks;
  :func:`switch_pvalues` turns them into p and q once the observed switch strength is
  known.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..ops.fdr import fdr_adjust
from ..ops.partial import partial_correlation, partial_pvalue
from ..ops.permutation import (
    fold_null,
    null_exceedances,
    null_extremes,
    permutation_block,
    permutation_pvalue,
    score_residuals,
)
from .results import FeatureStatistics


@dataclass(frozen=True)
class PartialScores:
    """The y side of the partial statistics of one block: ``scores`` [n, K] (the module
    scores, or a trait repeated) and ``covariates`` [n, C] (C may be 0: the trait alone),
    on the device in the working dtype; ``rows`` [F] host bool, the features adjusted
    (None: all); ``step`` features per sub-chunk (:func:`~.plan.partial_step`)."""

    scores: Tensor
    covariates: Tensor
    min_pairs: int
    step: int
    rows: np.ndarray | None = None

    def take(self, a: int, b: int) -> PartialScores:
        """The same scores for features a:b (a Dask task's block)."""
        return dataclasses.replace(self, rows=None if self.rows is None else self.rows[a:b])

    def to(self, device: torch.device | str) -> PartialScores:
        return dataclasses.replace(self, scores=self.scores.to(device),
                                   covariates=self.covariates.to(device))


def partial_statistics(x: Tensor, scores: Tensor, covariates: Tensor, min_pairs: int,
                       with_pvalues: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(r, n, p)`` [c, K] of the features ``x`` [n, c] against ``scores`` [n, K] given
    ``covariates`` [n, C]: partial r (x's dtype; differentiable), complete samples (int64)
    and the exact p at n - 2 - C degrees of freedom (float64; None unless
    ``with_pvalues``)."""
    r, n = partial_correlation(x, scores, covariates, min_pairs)
    return r, n, partial_pvalue(r, n, covariates.shape[1]) if with_pvalues else None


def adjust_chunk(stats: FeatureStatistics, x: Tensor, a: int, partial: PartialScores) -> None:
    """Overwrite the r / n / pvalue rows of ``stats`` (the chunk step's statistics of
    the chunk ``x`` [n, c], features a:a + c) that ``partial.rows`` marks with their
    partial statistics (:func:`partial_statistics`), ``partial.step`` features at a
    time."""
    c = x.shape[1]
    rows = np.arange(c) if partial.rows is None else np.flatnonzero(partial.rows[a:a + c])
    for start in range(0, len(rows), partial.step):
        index = torch.from_numpy(rows[start:start + partial.step]).to(x.device)
        r, n, p = partial_statistics(x[:, index], partial.scores, partial.covariates,
                                     partial.min_pairs)
        stats.r[index] = r.to(stats.r.dtype)
        stats.n[index] = n
        if stats.pvalue is not None:
            stats.pvalue[index] = p


@dataclass(frozen=True)
class NullScores:
    """What every chunk's switch null shares for one block of K modules, on the device in
    the working dtype: the module scores [n, K] (or a trait repeated), the sample
    permutations [B, n] int64, with covariates [n, C] the scores' fitted values and
    residuals on [1, Z] (Freedman-Lane, :func:`~isograph_gpu.ops.permutation.score_residuals`),
    the complete pairs below which r is NaN and ``block_bytes``, the working memory of
    one permutation block."""

    scores: Tensor
    permutations: Tensor
    min_pairs: int
    block_bytes: int
    covariates: Tensor | None = None
    residuals: tuple[Tensor, Tensor] | None = None

    @classmethod
    def build(cls, scores: Tensor, permutations: Tensor, covariates: Tensor | None, *,
              min_pairs: int, block_bytes: int, dtype: torch.dtype,
              device: torch.device) -> NullScores:
        scores = scores.detach().to(device=device, dtype=dtype)
        z = None if covariates is None else covariates.detach().to(device=device, dtype=dtype)
        return cls(scores=scores, permutations=permutations.to(device),
                   min_pairs=int(min_pairs), block_bytes=int(block_bytes), covariates=z,
                   residuals=None if z is None else score_residuals(scores, z))

    @property
    def n_permutations(self) -> int:
        return int(self.permutations.shape[0])

    def to(self, device: torch.device | str) -> NullScores:
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device)

        residuals = None if self.residuals is None else (
            self.residuals[0].to(device), self.residuals[1].to(device))
        return dataclasses.replace(self, scores=self.scores.to(device),
                                   permutations=self.permutations.to(device),
                                   covariates=move(self.covariates), residuals=residuals)


class SwitchNull:
    """The running switch null of one block: ``pairs`` [F, K] host int64, the (gene,
    module) pair (0..P-1) each feature is tested for under each module (-1: not tested);
    :attr:`hi` / :attr:`lo` [B, P + 1] the running max / min of each pair's null r
    (:func:`~isograph_gpu.ops.permutation.null_extremes`), on the scores' device.

    :meth:`update` keeps each chunk's tested columns until they fill ``block_bytes``
    (a module's transcripts are a small share of a chunk: folding them chunk by chunk
    would rebuild the permuted scores' GEMM block for every chunk and module), then
    :meth:`flush` folds them in, one GEMM pass per module; :meth:`exceedances` and a
    Dask task flush first."""

    def __init__(self, shared: NullScores, pairs: np.ndarray, n_pairs: int) -> None:
        self.shared, self.pairs, self.n_pairs = shared, pairs, int(n_pairs)
        self.hi, self.lo = null_extremes(shared.n_permutations, self.n_pairs,
                                         shared.scores.dtype, shared.scores.device)
        self._pending: dict[tuple[int, int], list[tuple[Tensor, Tensor]]] = {}
        self._pending_bytes = 0

    def update(self, x: Tensor, a: int) -> None:
        """Take the chunk ``x`` [n, c] (features a:a + c): each module's tested columns
        (one group of all modules when they test the same features), kept for
        :meth:`flush`."""
        pairs = self.pairs[a:a + x.shape[1]]
        tested = pairs >= 0
        k = pairs.shape[1]
        groups = [(0, k)] if (tested == tested[:, :1]).all() else [(j, j + 1) for j in range(k)]
        for lo, hi in groups:
            local = np.flatnonzero(tested[:, lo])
            if len(local) == 0:
                continue
            index = torch.from_numpy(local).to(x.device)
            self._pending.setdefault((lo, hi), []).append(
                (x[:, index], torch.from_numpy(pairs[local, lo:hi]).to(x.device)))
            self._pending_bytes += x.shape[0] * len(local) * x.element_size()
        if self._pending_bytes > self.shared.block_bytes:
            self.flush()

    def flush(self) -> None:
        """Fold the kept columns into the running extremes: per module group, all its
        columns against its scores under every permutation,
        :func:`~isograph_gpu.ops.permutation.permutation_block` at a time."""
        shared = self.shared
        c = 0 if shared.covariates is None else shared.covariates.shape[1]
        for (lo, hi), parts in self._pending.items():
            x = torch.cat([p[0] for p in parts], dim=1)
            pairs = torch.cat([p[1] for p in parts], dim=0)
            residuals = None if shared.residuals is None else (
                shared.residuals[0][:, lo:hi], shared.residuals[1][:, lo:hi])
            fold_null(self.hi, self.lo, x, shared.scores[:, lo:hi], pairs, shared.permutations,
                      min_pairs=shared.min_pairs,
                      block=permutation_block(x.shape[1], hi - lo, shared.n_permutations,
                                              shared.block_bytes, c),
                      covariates=shared.covariates, residuals=residuals)
        self._pending, self._pending_bytes = {}, 0

    def part(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, pairs)`` of features a:b: the pairs they are tested for [p] and their
        pair table [b - a, K] renumbered 0..p-1 (a Dask task's own :class:`SwitchNull`)."""
        block = self.pairs[a:b]
        ids, local = np.unique(block[block >= 0], return_inverse=True)
        renumbered = np.full_like(block, -1)
        renumbered[block >= 0] = local
        return ids, renumbered

    def merge(self, ids: np.ndarray, hi: Tensor, lo: Tensor) -> None:
        """Fold the running extremes ``hi`` / ``lo`` [B, p + 1] of a :class:`SwitchNull`
        over :meth:`part`'s ``pairs`` into the pairs ``ids`` [p] (max / min: the order of
        the parts does not matter)."""
        index = torch.from_numpy(ids).to(self.hi.device)
        self.hi[:, index] = torch.maximum(self.hi[:, index], hi[:, :-1].to(self.hi))
        self.lo[:, index] = torch.minimum(self.lo[:, index], lo[:, :-1].to(self.lo))

    def subset(self, ids: np.ndarray) -> SwitchNull:
        """The null of the pairs ``ids`` [p] alone, renumbered 0..p-1 (after :meth:`flush`):
        a module block's share of a pass over several blocks' modules. It takes no
        chunks (no pair table)."""
        self.flush()
        index = torch.from_numpy(np.r_[ids, self.n_pairs].astype(np.int64)).to(self.hi.device)
        out = SwitchNull(self.shared, np.empty((0, 0), dtype=np.int64), 0)
        out.n_pairs, out.hi, out.lo = len(ids), self.hi[:, index], self.lo[:, index]
        return out

    def exceedances(self, observed: Tensor) -> Tensor:
        """[P] int64: per pair, the permutations whose null switch strength is >= the
        observed ``observed`` [P] (after :meth:`flush`)."""
        self.flush()
        return null_exceedances(self.hi, self.lo, observed)


def switch_pairs(segments: np.ndarray, member: np.ndarray, n_genes: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pairs, genes, modules)``: the pair table [T, K] int64 of features with genes
    ``segments`` [T] (0..G-1) and module membership ``member`` [T, K] bool, one pair per
    gene with at least two features that belongs to the module (-1 elsewhere: no null
    is computed), and each pair's gene and module [P] int64."""
    transcripts = np.bincount(segments, minlength=n_genes)
    in_module = np.stack([np.bincount(segments, weights=member[:, k], minlength=n_genes) > 0
                          for k in range(member.shape[1])], axis=1).reshape(n_genes, -1)
    family = in_module & (transcripts >= 2)[:, None]
    genes, modules = np.nonzero(family)
    pair_of = np.full(family.shape, -1, dtype=np.int64)
    pair_of[genes, modules] = np.arange(len(genes))
    pairs = np.where(member, pair_of[segments], -1)
    return pairs, genes.astype(np.int64), modules.astype(np.int64)


def switch_pvalues(null: SwitchNull, observed: Tensor, genes: np.ndarray,
                   modules: np.ndarray, fdr_method: str) -> tuple[Tensor, Tensor]:
    """``(pvalue, qvalue)`` [G, K] float64 on ``observed``'s device of the observed switch
    strength ``observed`` [G, K]: (1 + exceedances) / (B + 1) for the pairs ``genes`` /
    ``modules`` of ``null`` (:func:`switch_pairs`), NaN elsewhere, and the ``fdr_method``
    q over each module's pairs."""
    device = observed.device
    g = torch.from_numpy(genes).to(device)
    k = torch.from_numpy(modules).to(device)
    counts = null.exceedances(observed.detach()[g, k].to(null.hi.device)).to(device)
    p = torch.full(observed.shape, float("nan"), dtype=torch.float64, device=device)
    p[g, k] = permutation_pvalue(counts, null.shared.n_permutations)
    family = torch.zeros(observed.shape, dtype=torch.bool, device=device)
    family[g, k] = True
    return p, fdr_adjust(p, family, fdr_method)
