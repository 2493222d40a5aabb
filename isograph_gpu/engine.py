"""Streams a features matrix through the tensor core in feature chunks under a memory
budget: per chunk one GEMM yields the Pearson moments against every module score and the
group sums of every contrast; p-values follow in float64.

Everything here is per feature, so chunks are independent; only the q-values (done by the
caller on the small [F, K] p matrix) need all features. Results stay on the device: each
chunk's statistics are written into preallocated [F, K] device tensors without a host
synchronisation; the caller copies to the host once per table.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .ops.contrast import WelchResult
from .ops.groups import GroupLayout
from .ops.moments import RightBlock, Workspace, moments_from_block
from .ops.pearson import pearson_from_moments
from .ops.pvalues import pearson_pvalue, welch_pvalue
from .progress import Progress

_BYTES_PER_VALUE_PER_FEATURE = 8  # x, mask, centred, squared, stacked copy (+ slack)
#: per feature x (module x (1 + splits)): moment/group-sum GEMM outputs, Welch and p-value
#: temporaries of one chunk, in float64
_BYTES_PER_RESULT_PER_FEATURE = 32 * 8


@dataclass
class ContrastStatistics:
    """Welch statistics of one split, each [F, K] on the statistics' device (float64;
    counts int64)."""

    mean_high: torch.Tensor
    mean_low: torch.Tensor
    delta: torch.Tensor
    se: torch.Tensor
    tstat: torch.Tensor
    pvalue: torch.Tensor
    n_high: torch.Tensor
    n_low: torch.Tensor

    @classmethod
    def empty(cls, f: int, k: int, device: torch.device) -> ContrastStatistics:
        """Uninitialised [f, k] tensors on ``device``, to be filled chunk by chunk."""
        def make(name: str) -> torch.Tensor:
            dtype = torch.int64 if name.startswith("n_") else torch.float64
            return torch.empty((f, k), dtype=dtype, device=device)

        return cls(**{name: make(name) for name in cls.__dataclass_fields__})

    def store(self, a: int, b: int, w: WelchResult, pvalue: torch.Tensor) -> None:
        """Write one chunk's Welch statistics into rows a:b (device to device, no sync)."""
        for name in ("mean_high", "mean_low", "delta", "se", "tstat"):
            getattr(self, name)[a:b] = getattr(w, name)
        self.pvalue[a:b] = pvalue
        self.n_high[a:b] = w.n_high
        self.n_low[a:b] = w.n_low


@dataclass
class FeatureStatistics:
    """Per feature x module statistics, [F, K] tensors on the device they were computed
    on (r, p float64; n int64)."""

    r: torch.Tensor
    n: torch.Tensor
    pvalue: torch.Tensor
    #: finite values per feature over all samples [F] int64
    n_finite: torch.Tensor
    contrasts: dict[str, ContrastStatistics] = field(default_factory=dict)

    @classmethod
    def empty(cls, f: int, k: int, splits: list[str], device: torch.device
              ) -> FeatureStatistics:
        """Uninitialised tensors for ``f`` features x ``k`` modules and the named splits on
        ``device``, filled chunk by chunk (results stay on the device)."""
        return cls(r=torch.empty((f, k), dtype=torch.float64, device=device),
                   n=torch.empty((f, k), dtype=torch.int64, device=device),
                   pvalue=torch.empty((f, k), dtype=torch.float64, device=device),
                   n_finite=torch.empty(f, dtype=torch.int64, device=device),
                   contrasts={name: ContrastStatistics.empty(f, k, device) for name in splits})


def chunk_size(n_samples: int, n_features: int, itemsize: int, memory_budget_bytes: int,
               chunk_features: int | None = None, n_results: int = 0) -> int:
    """Features per chunk so that one chunk's working set (its values, and ``n_results``
    = modules x (1 + splits) statistics per feature) fits the memory budget."""
    if chunk_features is not None:
        return max(1, min(int(chunk_features), max(n_features, 1)))
    per_feature = (max(1, n_samples) * itemsize * _BYTES_PER_VALUE_PER_FEATURE
                   + n_results * _BYTES_PER_RESULT_PER_FEATURE)
    return max(1, min(max(n_features, 1), memory_budget_bytes // per_feature))


def chunk_plan(features: Any, n_modules: int, n_splits: int, dtype: torch.dtype,
               memory_budget_bytes: int, chunk_features: int | None = None
               ) -> tuple[int, list[tuple[int, int]]]:
    """``(step, spans)``: features per chunk (:func:`chunk_size`) and the column spans of
    ``features`` [n, F] in order (:func:`chunk_spans`, never across the reader's
    ``read_columns`` block). One plan for the single-process loop and the Dask tasks, so
    both chunk, and compute, alike."""
    n, f = features.shape
    step = chunk_size(n, f, torch.finfo(dtype).bits // 8, memory_budget_bytes, chunk_features,
                      n_results=n_modules * (1 + n_splits))
    return step, chunk_spans(f, step, getattr(features, "read_columns", None))


class _BlockReads:
    """``x[:, a:b]`` of a block reader served from reads of ``read`` columns (starting at
    multiples of ``read``; a slice must not cross one): each read of a wide parquet has a
    fixed cost, so chunks smaller than a read are views of the last block read."""

    def __init__(self, features: Any, read: int) -> None:
        self._features, self._read = features, read
        self._start, self._block = -1, np.empty((0, 0))

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        a, b = key[1].start, key[1].stop
        r = a - a % self._read
        if r != self._start:
            self._block = np.empty((0, 0))  # free the last block before reading the next
            self._block = self._features[:, r:min(self._features.shape[1], r + self._read)]
            self._start = r
        return self._block[:, a - r:b - r]


def chunk_spans(n_features: int, step: int, read: int | None = None) -> list[tuple[int, int]]:
    """Column spans ``(a, b)`` of at most ``step`` columns covering 0..n_features, none
    crossing a multiple of ``read`` (the reader's block; ``None``: no blocks)."""
    read = max(step, read or step)
    return [(a, min(n_features, a + step, r + read))
            for r in range(0, n_features, read) for a in range(r, min(n_features, r + read), step)]


def device_chunks(features: Any, step: int, device: torch.device,
                  dtype: torch.dtype) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield ``(a, b, x)``: columns a:b of the host matrix ``features`` [n, F] as a tensor
    [n, b - a] on ``device`` in ``dtype``, in order.

    CPU: a view of the host matrix (Fortran order keeps chunks contiguous; no copy in
    float64). A block reader (a streamed table) that names its read size
    (``features.read_columns``) is read in blocks of that many columns and the chunks are
    views of them. CUDA: each chunk is cast into one of two pinned host buffers and copied
    on a side stream while the caller computes on the previous chunk; device memory holds
    two chunks at a time whatever the matrix size.
    """
    n, f = features.shape
    read = getattr(features, "read_columns", None)
    spans = chunk_spans(f, step, read)
    if read is not None and int(read) > step:
        features = _BlockReads(features, int(read))
    if device.type != "cuda":
        for a, b in spans:
            yield a, b, torch.from_numpy(features[:, a:b]).to(device=device, dtype=dtype)
        return
    width = min(step, f)
    pinned = [torch.empty((width, n), dtype=dtype, pin_memory=True) for _ in range(2)]
    staged = [torch.empty((width, n), dtype=dtype, device=device) for _ in range(2)]
    copy_stream = torch.cuda.Stream(device)
    compute_stream = torch.cuda.current_stream(device)
    copied: list[torch.cuda.Event | None] = [None, None]
    released: list[torch.cuda.Event | None] = [None, None]

    def stage(i: int) -> None:
        (a, b), s = spans[i], i % 2
        if copied[s] is not None:
            copied[s].synchronize()  # the pinned buffer's previous copy has left it
        # host: cast + transpose of a Fortran block into contiguous pinned memory
        pinned[s][: b - a].copy_(torch.from_numpy(features[:, a:b]).T)
        with torch.cuda.stream(copy_stream):
            if released[s] is not None:
                copy_stream.wait_event(released[s])  # the device buffer is no longer read
            staged[s][: b - a].copy_(pinned[s][: b - a], non_blocking=True)
            event = torch.cuda.Event()
            event.record(copy_stream)
            copied[s] = event

    if spans:
        stage(0)
    for i, (a, b) in enumerate(spans):
        s = i % 2
        compute_stream.wait_event(copied[s])
        if i + 1 < len(spans):
            stage(i + 1)  # its copy overlaps the caller's compute on chunk i
        yield a, b, staged[s][: b - a].T
        event = torch.cuda.Event()
        event.record(compute_stream)
        released[s] = event


def _pearson_pvalue_where(r: torch.Tensor, n: torch.Tensor,
                          where: torch.Tensor | None) -> torch.Tensor:
    """Pearson p [F, K] float64, computed only where ``where`` (NaN elsewhere)."""
    if where is None:
        return pearson_pvalue(r, n)
    if r.is_cuda:  # boolean indexing would synchronise with the host; the device is fast
        return torch.where(where, pearson_pvalue(r, n), torch.nan)
    p = torch.full(r.shape, float("nan"), dtype=torch.float64, device=r.device)
    p[where] = pearson_pvalue(r[where], n[where])
    return p


def feature_statistics(
    features: np.ndarray,
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
    pvalue_where: np.ndarray | None = None,
) -> FeatureStatistics:
    """Pearson r/n/p of every column of ``features`` [n, F] (host, NaN = missing) against
    every column of ``scores`` [n, K], plus Welch statistics for each named split
    (``splits[name] = (high, low)`` bool masks [n, K]).

    Feature chunks are copied to ``device`` as ``dtype`` one at a time. ``pvalue_where``
    [F, K] bool limits the Pearson p-values to the entries a caller will use (NaN
    elsewhere): the incomplete beta is the costliest elementwise step.
    """
    n, f = features.shape
    k = scores.shape[1]
    layout = GroupLayout.from_splits(splits, n, k, device)  # one-hot groups of every split
    right = chunk_right_block(scores, layout, device, dtype)  # y's side: once, not per chunk
    where = None if pvalue_where is None else torch.from_numpy(
        np.ascontiguousarray(pvalue_where, dtype=bool)).to(device)  # one copy, not per chunk
    out = FeatureStatistics.empty(f, k, list(splits or {}), device)
    step, spans = chunk_plan(features, k, len(splits or {}), dtype, memory_budget_bytes,
                             chunk_features)
    n_chunks = len(spans)
    workspace = Workspace(n, max((b - a for a, b in spans), default=0), dtype, device)
    for i, (a, b, x) in enumerate(device_chunks(features, step, device, dtype), start=1):
        _chunk_statistics(out, a, b, x, right, layout, min_pairs,
                          None if where is None else where[a:b], workspace)
        del x  # a view of a streamed read block: let it go before the next block is read
        if progress is not None:
            progress.chunk(label, i, n_chunks)
    return out


def chunk_right_block(scores: torch.Tensor, layout: GroupLayout, device: torch.device,
                      dtype: torch.dtype) -> RightBlock:
    """The y side of every chunk's GEMMs: ``scores`` [n, K] and ``layout``'s groups in
    ``dtype`` on ``device``, packed when the scores have no missing value (decided here,
    once per run: one host synchronisation on CUDA)."""
    return RightBlock.build(scores, layout.matrix, dtype=dtype, device=device, pack=True)


def _chunk_statistics(out: FeatureStatistics, a: int, b: int, x: torch.Tensor,
                      right: RightBlock, layout: GroupLayout, min_pairs: int,
                      where: torch.Tensor | None, workspace: Workspace | None = None) -> None:
    """Statistics of feature columns a:b (``x`` [n, b - a] on the device) written into
    rows a:b of ``out``: one GEMM pass for moments and group sums against ``right``
    (:func:`chunk_right_block` of the scores and ``layout``), then r, p and Welch.
    ``workspace``: the mask and centred-value buffers, reused from chunk to chunk (None: a
    fresh one; either way they are column-major, so a chunk's sums do not depend on the
    memory order of ``x`` and every caller gets the same bits)."""
    if workspace is None:
        workspace = Workspace(x.shape[0], x.shape[1], x.dtype, x.device)
    m, sums = moments_from_block(x, right, workspace)
    r = pearson_from_moments(m, min_pairs)
    n_pairs = m.n.round().to(torch.int64)
    out.r[a:b] = r
    out.n[a:b] = n_pairs
    out.pvalue[a:b] = _pearson_pvalue_where(r, n_pairs, where)
    out.n_finite[a:b] = sums.finite.round().to(torch.int64)
    for name, contrast in out.contrasts.items():
        w = layout.welch(sums, name)
        contrast.store(a, b, w, welch_pvalue(w.tstat, w.df))
