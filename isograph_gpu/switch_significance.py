"""Switch significance (``--switch-permutations B``): a permutation p-value for every
gene's switch strength per module, as one pass over the transcript-usage features.

The pass takes the transcript-usage columns in gene order, in chunks of whole genes under
the memory budget, and gives each chunk's transcripts of module k (the rows of module k's
polarity table: only those are tested against module k's score) to the pure op
:func:`~isograph_gpu.ops.permutation.switch_null_exceedances` with the same B sample
permutations (drawn once from ``seed``); p = (1 + #{null >= observed}) / (B + 1) and BH
(``fdr_method``) q over each module's genes with at least two transcripts in the table.
Single-transcript genes get NaN.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
import torch

from .ops.fdr import fdr_adjust
from .ops.permutation import (
    permutation_block,
    permutation_pvalue,
    sample_permutations,
    switch_null_exceedances,
)

#: bytes per feature of one chunk's operands (values, mask, centred values, squares)
_CHUNK_BYTES_PER_VALUE = 4 * 8


def gene_chunks(segments: np.ndarray, step: int) -> list[tuple[int, int]]:
    """Spans ``(a, b)`` of the gene-sorted ``segments`` [T] of at most ``step`` rows that
    never split a gene (a gene of more than ``step`` rows is a span of its own)."""
    starts = [*np.flatnonzero(np.r_[True, segments[1:] != segments[:-1]]).tolist(), len(segments)]
    spans: list[tuple[int, int]] = []
    a = 0
    for start, stop in itertools.pairwise(starts):
        if stop - a > step and start > a:
            spans.append((a, start))
            a = start
    if a < len(segments):
        spans.append((a, len(segments)))
    return spans


def feature_columns(features: Any, positions: np.ndarray) -> np.ndarray:
    """Columns ``positions`` (any order) of a samples x features matrix or block reader
    (one ``take`` of the ascending positions), in the order given."""
    order = np.argsort(positions, kind="stable")
    ascending = positions[order]
    block = (features[:, ascending] if isinstance(features, np.ndarray)
             else features.take(ascending))
    out = np.empty_like(block)
    out[:, order] = block
    return out


def switch_family(segments: np.ndarray, member: np.ndarray, n_genes: int) -> np.ndarray:
    """[G, K] bool: gene g has at least two transcripts in the table and belongs to
    module k (``segments`` [T] gene of each transcript row, ``member`` [T, K])."""
    transcripts = np.bincount(segments, minlength=n_genes)
    in_module = np.zeros((n_genes, member.shape[1]), dtype=bool)
    np.logical_or.at(in_module, segments, member)
    return in_module & (transcripts >= 2)[:, None]


def switch_pvalues(features: Any, rows: np.ndarray, segments: np.ndarray, n_genes: int,
                   member: np.ndarray, scores: torch.Tensor, observed: torch.Tensor, *,
                   n_permutations: int, seed: int, min_pairs: int, fdr_method: str,
                   device: torch.device, dtype: torch.dtype, memory_budget_bytes: int,
                   covariates: np.ndarray | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(pvalue, qvalue)`` [G, K] float64 on ``device`` of the switch strength
    ``observed`` [G, K] of the genes of the transcript-usage columns ``rows`` [T]
    (``segments`` [T] their genes, ``member`` [T, K] module membership), module scores
    ``scores`` [n, K]; ``covariates`` [n, C] (host, NaN = missing; None: none): the
    observed and null r are partial given them (Freedman-Lane null)."""
    n, k = scores.shape
    tested = np.flatnonzero(member.any(axis=1))  # transcripts of no module are not read
    order = tested[np.argsort(segments[tested], kind="stable")]
    sorted_segments, sorted_member = segments[order], member[order]
    step = max(1, memory_budget_bytes // 2 // max(1, n * _CHUNK_BYTES_PER_VALUE))
    permutations = sample_permutations(n, n_permutations, seed)
    counts = torch.zeros((n_genes, k), dtype=torch.int64, device=device)
    observed = observed.to(device)
    z = None if covariates is None else torch.from_numpy(
        np.ascontiguousarray(covariates)).to(device=device, dtype=dtype)
    c = 0 if covariates is None else covariates.shape[1]
    for a, b in gene_chunks(sorted_segments, step):
        chunk = torch.from_numpy(feature_columns(features, rows[order[a:b]])).to(
            device=device, dtype=dtype)
        for j in range(k):  # only module j's own transcripts are tested against module j
            local = np.flatnonzero(sorted_member[a:b, j])
            if len(local) == 0:
                continue
            genes, codes = np.unique(sorted_segments[a:b][local], return_inverse=True)
            genes_t = torch.from_numpy(genes).to(device)
            block = permutation_block(len(local), 1, n_permutations,
                                      memory_budget_bytes // 2, c)
            counts[genes_t, j] = switch_null_exceedances(
                chunk[:, torch.from_numpy(local).to(device)], scores[:, j:j + 1],
                torch.from_numpy(codes.astype(np.int64)).to(device), len(genes),
                observed[genes_t, j:j + 1], permutations, min_pairs=min_pairs, block=block,
                covariates=z)[:, 0]
    family = torch.from_numpy(switch_family(segments, member, n_genes)).to(device)
    p = permutation_pvalue(counts, n_permutations)
    p = torch.where(family, p, torch.full_like(p, float("nan")))
    return p, fdr_adjust(p, family, fdr_method)


def driver_gene_codes(score_gene_ids: np.ndarray, polarity_genes: np.ndarray) -> np.ndarray:
    """[R] int64: the polarity gene (index into ``polarity_genes``) of each feature_scores
    row's gene, -1 where the gene has no transcript-usage feature."""
    return pd.Index(np.asarray(polarity_genes, dtype=str)).get_indexer(
        np.asarray(score_gene_ids, dtype=str)).astype(np.int64)
