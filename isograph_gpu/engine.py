"""The chunk loop: a features matrix through the chunk step in feature chunks under a
memory budget.

Everything is per feature, so chunks are independent; only the q-values (done by the
caller on the small [F, K] p matrix) need all features. Each chunk's statistics
(:func:`~isograph_gpu.compute.step.chunk_statistics`) are written into preallocated
[F, K] device tensors without a host synchronisation; the caller copies to the host once
per table. The chunk plan, the transfer and where the columns live between module blocks
are :mod:`isograph_gpu.compute`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .compute.companions import PartialScores, SwitchNull, adjust_chunk
from .compute.plan import ChunkPlan, chunk_size, chunk_spans, plan_chunks, read_groups
from .compute.residency import FeatureColumns
from .compute.results import FeatureStatistics
from .compute.step import PreparedScores, chunk_statistics, prepare_scores
from .compute.transfer import device_chunks
from .ops.moments import Workspace
from .progress import Progress

__all__ = ["FeatureStatistics", "chunk_plan", "chunk_size", "chunk_spans", "device_chunks",
           "feature_statistics", "read_groups", "statistics_of_chunks", "store_chunks"]

#: where a pass's chunk statistics go: ``store(a, b, chunk)`` for features a:b
ChunkStore = Callable[[int, int, FeatureStatistics], None]


def chunk_plan(features: Any, n_modules: int, n_splits: int, dtype: torch.dtype,
               memory_budget_bytes: int, chunk_features: int | None = None
               ) -> tuple[int, list[tuple[int, int]]]:
    """``(step, spans)`` of :func:`~isograph_gpu.compute.plan.plan_chunks` for ``n_modules``
    x (1 + ``n_splits``) statistics per feature."""
    plan = plan_chunks(features, n_modules * (1 + n_splits), dtype, memory_budget_bytes,
                       chunk_features)
    return plan.step, list(plan.spans)


def store_chunks(columns: FeatureColumns | Any, chunks: ChunkPlan, prepared: PreparedScores,
                 store: ChunkStore, *, pvalue_where: torch.Tensor | None = None,
                 progress: Progress | None = None, label: str = "features",
                 partial: PartialScores | None = None,
                 switch_null: SwitchNull | None = None) -> None:
    """The chunk loop: :func:`~isograph_gpu.compute.step.chunk_statistics` of every span of
    ``chunks`` of ``columns`` (a :class:`~isograph_gpu.compute.residency.FeatureColumns`
    or a host matrix / block reader), each handed to ``store(a, b, stats)``.
    ``pvalue_where`` [F, K] bool device tensor: Pearson p only there.
    The companions of :mod:`isograph_gpu.compute.companions` run on the same chunks:
    ``partial`` overwrites its rows' r / n / p with the partial statistics,
    ``switch_null`` folds each chunk into its running null."""
    device, dtype = prepared.right.block.device, prepared.right.block.dtype
    workspace = Workspace(columns.shape[0], chunks.width, dtype, device)
    reads = (columns.chunks(chunks) if isinstance(columns, FeatureColumns)
             else device_chunks(columns, chunks, device, dtype))
    for i, (a, b, x) in enumerate(reads, start=1):
        where = None if pvalue_where is None else pvalue_where[a:b]
        stats = chunk_statistics(x, prepared, pvalue_where=where, workspace=workspace)
        if partial is not None:
            adjust_chunk(stats, x, a, partial)
        if switch_null is not None:
            switch_null.update(x, a)
        store(a, b, stats)
        del x  # a view of a streamed read block: let it go before the next block is read
        if progress is not None:
            progress.chunk(label, i, len(chunks.spans))


def statistics_of_chunks(columns: FeatureColumns | Any, chunks: ChunkPlan,
                         prepared: PreparedScores, *, pvalue_where: torch.Tensor | None = None,
                         progress: Progress | None = None, label: str = "features",
                         partial: PartialScores | None = None,
                         switch_null: SwitchNull | None = None) -> FeatureStatistics:
    """:func:`store_chunks` into one [F, K] container on the prepared scores' device."""
    out = FeatureStatistics.empty(columns.shape[1], prepared.n_modules,
                                  list(prepared.layout.names), prepared.right.block.device)
    store_chunks(columns, chunks, prepared, out.store, pvalue_where=pvalue_where,
                 progress=progress, label=label, partial=partial, switch_null=switch_null)
    return out


def feature_statistics(
    features: Any,
    scores: torch.Tensor,
    *,
    min_pairs: int,
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    device: torch.device,
    dtype: torch.dtype,
    memory_budget_bytes: int,
    chunk_features: int | None = None,
    progress: Progress | None = None,
    label: str = "features",
    pvalue_where: np.ndarray | torch.Tensor | None = None,
    chunks: ChunkPlan | None = None,
    partial: PartialScores | None = None,
    switch_null: SwitchNull | None = None,
) -> FeatureStatistics:
    """Pearson r/n/p of every column of ``features`` [n, F] (host matrix, block reader or
    :class:`~isograph_gpu.compute.residency.FeatureColumns`; NaN = missing) against every
    column of ``scores`` [n, K], plus Welch statistics for each named split
    (``splits[name] = (high, low)`` bool masks [n, K]).

    Feature chunks go to ``device`` as ``dtype`` one at a time, cut as ``chunks`` says
    (default: :func:`~isograph_gpu.compute.plan.plan_chunks` of the budget).
    ``pvalue_where`` [F, K] bool limits the Pearson p-values to the entries a caller will
    use (NaN elsewhere): the incomplete beta is the costliest elementwise step.
    ``partial`` / ``switch_null``: the options' companions on the same chunks
    (:func:`statistics_of_chunks`).
    """
    k = scores.shape[1]
    prepared = prepare_scores(scores, splits, min_pairs=min_pairs, dtype=dtype,
                              device=device)  # y's side: once, not per chunk
    if chunks is None:
        source = features.source if isinstance(features, FeatureColumns) else features
        chunks = plan_chunks(source, k * (1 + len(splits or {})), dtype,
                             memory_budget_bytes, chunk_features)
    where = None
    if pvalue_where is not None:  # one copy, not per chunk
        where = (pvalue_where if isinstance(pvalue_where, torch.Tensor) else torch.from_numpy(
            np.ascontiguousarray(pvalue_where, dtype=bool))).to(device)
    return statistics_of_chunks(features, chunks, prepared, pvalue_where=where,
                                progress=progress, label=label, partial=partial,
                                switch_null=switch_null)
