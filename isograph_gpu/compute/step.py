"""The chunk step: one pure function of tensors that every caller shares, as torchmetrics
shares ``_update`` / ``_compute``.

:func:`prepare_scores` builds the y side once per block of module scores (the stacked
GEMM block and the contrast groups); :func:`chunk_statistics` turns one feature chunk
[n, c] into a :class:`~isograph_gpu.compute.results.FeatureStatistics` [c, K]. The
engine stores it chunk by chunk (:mod:`isograph_gpu.engine`), a Dask task runs it on its
block (:mod:`isograph_gpu.distributed`), :class:`isograph_gpu.training.ModuleStatistics`
calls it on the whole matrix. A new per-feature statistic is one more field of the
container and one more line here, computed from the chunk's moments / group sums.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from ..ops.groups import GroupLayout
from ..ops.moments import RightBlock, Workspace, moments_from_block
from ..ops.pearson import pearson_from_moments
from ..ops.pvalues import pearson_pvalue, welch_pvalue
from .results import FeatureStatistics


@dataclass(frozen=True)
class PreparedScores:
    """The y side of every chunk's GEMMs for one block of K module scores: the stacked
    block of the scores and the contrast groups (:class:`~isograph_gpu.ops.moments.RightBlock`),
    their group layout, and the complete pairs below which r is NaN."""

    right: RightBlock
    layout: GroupLayout
    min_pairs: int

    @property
    def n_modules(self) -> int:
        return self.right.n_modules


def prepare_scores(scores: Tensor, splits: Mapping[str, tuple[Tensor, Tensor]] | None, *,
                   min_pairs: int, dtype: torch.dtype, device: torch.device,
                   differentiable: bool = False) -> PreparedScores:
    """:class:`PreparedScores` of ``scores`` [n, K] and the bool masks ``splits[name] =
    (high, low)`` [n, K], in ``dtype`` on ``device``.

    Default (the engine's): the scores are detached (no statistic needs their gradient)
    and packed when they have no missing value (one host synchronisation on CUDA, once
    per block). A complement split (:class:`~isograph_gpu.ops.contrast.ComplementSplit`)
    has its low groups derived only in float64: there the subtraction keeps 40 bits where
    a summed group would (the recompute rule); in float32 it would flag well separated
    groups (from ~11 sd apart) that a summed group keeps, and a score that overflows the
    cast would sit in a high group but not among the pairs. Other dtypes sum every group.
    ``differentiable`` (a training loop): gradients flow into the scores and nothing
    synchronises with the host (never packed)."""
    n, k = scores.shape
    layout = GroupLayout.from_splits(splits, n, k, device)
    if dtype != torch.float64:  # complement splits: float64 only (see above)
        layout = layout.summed()
    y = scores if differentiable else scores.detach()
    right = RightBlock.build(y, layout.gemm_matrix, dtype=dtype, device=device,
                             pack=not differentiable, segments=layout.segments)
    return PreparedScores(right=right, layout=layout, min_pairs=int(min_pairs))


def _pearson_pvalue_where(r: Tensor, n: Tensor, where: Tensor | None) -> Tensor:
    """Pearson p [c, K] float64, computed only where ``where`` (NaN elsewhere)."""
    if where is None:
        return pearson_pvalue(r, n)
    if r.is_cuda:  # boolean indexing would synchronise with the host; the device is fast
        return torch.where(where, pearson_pvalue(r, n), torch.nan)
    p = torch.full_like(r, float("nan"), dtype=torch.float64)  # r's layout
    p[where] = pearson_pvalue(r[where], n[where])
    return p


def chunk_statistics(x: Tensor, prepared: PreparedScores, *, with_pvalues: bool = True,
                     pvalue_where: Tensor | None = None,
                     workspace: Workspace | None = None,
                     recompute_limit: int | None = None) -> FeatureStatistics:
    """Statistics of the feature chunk ``x`` [n, c] (NaN = missing; on the prepared
    block's device and dtype) against the prepared scores: one GEMM pass for moments and
    group sums, then r, n, p (``with_pvalues``; only where ``pvalue_where`` [c, K] bool
    when given, NaN elsewhere) and the Welch statistics of every split (with p-values
    when ``with_pvalues``). ``workspace``: mask and centred-value buffers reused from
    chunk to chunk (None: fresh ones; either way column-major, so a chunk's sums do not
    depend on the memory order of ``x`` and every caller gets the same bits).
    ``recompute_limit``: at most this many cancelling pairs / groups are recomputed
    without a host synchronisation (:func:`~isograph_gpu.ops.moments.moments_from_block`;
    None: all of them, selected with one ``nonzero``)."""
    tracked = torch.is_grad_enabled() and (x.requires_grad or prepared.right.block.requires_grad)
    if workspace is None and not tracked:
        workspace = Workspace(x.shape[0], x.shape[1], x.dtype, x.device)
    m, sums = moments_from_block(x, prepared.right, workspace,
                                 recompute_limit=recompute_limit)
    r = pearson_from_moments(m, prepared.min_pairs)
    n_pairs = m.n.round().to(torch.int64)
    out = FeatureStatistics(
        r=r, n=n_pairs,
        pvalue=_pearson_pvalue_where(r, n_pairs, pvalue_where) if with_pvalues else None,
        n_finite=sums.finite.round().to(torch.int64))
    for name in prepared.layout.names:
        w = prepared.layout.welch(sums, name)
        if with_pvalues:
            w.pvalue = welch_pvalue(w.tstat, w.df)
        out.contrasts[name] = w
    return out
