"""Segment reductions over a feature -> gene index (all modules at once).

``segment`` is an int64 tensor [F] mapping each feature row to its gene (0..G-1).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _scatter(values: Tensor, segment: Tensor, n_segments: int, reduce: str, fill: float) -> Tensor:
    index = segment[:, None].expand_as(values)
    out = torch.full((n_segments, values.shape[1]), fill, dtype=values.dtype, device=values.device)
    return out.scatter_reduce(0, index, values, reduce=reduce, include_self=True)


def segment_count(valid: Tensor, segment: Tensor, n_segments: int) -> Tensor:
    """Number of True entries of ``valid`` [F, K] per segment: [G, K] int64."""
    out = torch.zeros((n_segments, valid.shape[1]), dtype=torch.int64, device=valid.device)
    return out.index_add_(0, segment, valid.to(torch.int64))


def switch_strength(r: Tensor, segment: Tensor, n_segments: int,
                    member: Tensor | None = None) -> Tensor:
    """Within-gene switch strength [G, K]: max r - min r over a gene's features with
    finite r when there are at least two, else 0. Differentiable in r.

    ``member`` [F, K] bool: only those entries count (a gene's strength in module k over
    its features that are members of k; 0 where fewer than two). Reduced over the member
    entries alone, so the cost is theirs, not F K's (module transcripts among all
    features); the values are those of the dense reduction with the other entries NaN."""
    if member is not None:
        k = r.shape[1]
        rows, cols = torch.nonzero(member, as_tuple=True)  # one host sync on CUDA
        keys, pair = torch.unique(segment[rows] * k + cols, return_inverse=True)
        part = switch_strength(r[rows, cols][:, None], pair, keys.numel())[:, 0]
        return r.new_zeros(n_segments * k).index_put((keys,), part).view(n_segments, k)
    finite = torch.isfinite(r)
    hi = _scatter(torch.where(finite, r, torch.full_like(r, -float("inf"))), segment,
                  n_segments, "amax", -float("inf"))
    lo = _scatter(torch.where(finite, r, torch.full_like(r, float("inf"))), segment,
                  n_segments, "amin", float("inf"))
    count = segment_count(finite, segment, n_segments)
    ok = count >= 2
    diff = torch.where(ok, hi, torch.zeros_like(hi)) - torch.where(ok, lo, torch.zeros_like(lo))
    return diff


def segment_argmax(values: Tensor, segment: Tensor, n_segments: int) -> Tensor:
    """Row index [G, K] of the first maximum of ``values`` [F, K] within each segment
    (first = lowest row index). Segments without rows get -1."""
    f = values.shape[0]
    best = _scatter(values, segment, n_segments, "amax", -float("inf"))
    is_best = values == best[segment]
    rows = torch.arange(f, device=values.device)[:, None].expand_as(values)
    candidate = torch.where(is_best, rows, torch.full_like(rows, f))
    first = torch.full((n_segments, values.shape[1]), f, dtype=torch.int64, device=values.device)
    first = first.scatter_reduce(0, segment[:, None].expand_as(candidate), candidate,
                                 reduce="amin", include_self=True)
    return torch.where(first == f, torch.full_like(first, -1), first)
