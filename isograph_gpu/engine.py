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

from .io.feature_blocks import FeatureBlocks, as_feature_blocks
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

    def named_tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor by name: "r", "n", "pvalue", "n_finite" and "<split>.<field>" for
        each field of each contrast."""
        tensors = {"r": self.r, "n": self.n, "pvalue": self.pvalue, "n_finite": self.n_finite}
        for split, contrast in self.contrasts.items():
            for name in contrast.__dataclass_fields__:
                tensors[f"{split}.{name}"] = getattr(contrast, name)
        return tensors

    def to_host(self) -> dict[str, np.ndarray]:
        """Every tensor as a host numpy array, named as :meth:`named_tensors` (what a
        Dask task returns: :mod:`isograph_gpu.distributed`)."""
        return {name: t.cpu().numpy() for name, t in self.named_tensors().items()}

    def store_rows(self, a: int, b: int, host: dict[str, np.ndarray]) -> None:
        """Write ``host`` (:meth:`to_host` of features a:b) into rows a:b, each array into
        the tensor of its name on that tensor's device."""
        tensors = self.named_tensors()
        if host.keys() != tensors.keys():
            raise ValueError(f"store_rows: arrays {sorted(host)} do not match the "
                             f"statistics' tensors {sorted(tensors)}")
        for name, value in host.items():
            target = tensors[name]
            target[a:b] = torch.from_numpy(value).to(target.device)


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
    ``features`` [n, F] in order (:func:`chunk_spans`: across none of the reader's
    :attr:`~isograph_gpu.io.feature_blocks.FeatureBlocks.read_columns` blocks while
    ``step`` fits in one; a wider chunk crosses them). One
    plan for the single-process loop and the Dask tasks, so both chunk, and compute,
    alike."""
    n, f = features.shape
    step = chunk_size(n, f, torch.finfo(dtype).bits // 8, memory_budget_bytes, chunk_features,
                      n_results=n_modules * (1 + n_splits))
    return step, chunk_spans(f, step, as_feature_blocks(features).read_columns)


class _BlockReads:
    """``x[:, a:b]`` of a block reader served from reads of whole chunk ``groups``
    (``(r0, r1)`` column ranges, in order, each a run of whole chunk spans): each read of
    a wide parquet has a fixed cost, so chunks are views of the last group read.

    The groups are read in order one ahead (:func:`~isograph_gpu.io.read_ahead.read_ahead`):
    group ``i + 1`` is decoded on a background thread while the caller computes on group
    ``i``, and made a block (:meth:`~isograph_gpu.io.feature_blocks.FeatureBlocks.read_parts`)
    only after group ``i`` is freed. Slices must come in group order (a slice outside the
    current and the next group is a ValueError). :meth:`close` waits for a read in flight.
    """

    def __init__(self, features: FeatureBlocks, groups: list[tuple[int, int]]) -> None:
        from .io.read_ahead import read_ahead

        features = as_feature_blocks(features)
        self._groups = list(groups)
        self._current, self._block = (0, 0), np.empty((0, 0))
        self._next = 0  # index in _groups of the next group read ahead
        # decoded there, made a block here once the last block is freed
        split = [features.read_parts(r0, r1) for r0, r1 in self._groups]
        self._blocks = read_ahead([decode for decode, _ in split],
                                  split[0][1] if split else None)

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        a, b = key[1].start, key[1].stop
        r0, r1 = self._current
        if not r0 <= a < b <= r1:
            if self._next == len(self._groups):
                raise ValueError(f"columns {a}:{b} asked after the last read")
            r0, r1 = self._groups[self._next]
            if not r0 <= a < b <= r1:
                raise ValueError(f"columns {a}:{b} are not in the next read {r0}:{r1}: "
                                 "block reads take chunks in order")
            self._block = np.empty((0, 0))  # free the last block before taking the next
            self._current, self._block = (r0, r1), next(self._blocks)
            self._next += 1
        return self._block[:, a - r0:b - r0]

    def close(self) -> None:
        """Stop reading ahead (waits for a read in flight) and free the last block."""
        self._blocks.close()
        self._current, self._block = (0, 0), np.empty((0, 0))


def read_groups(spans: list[tuple[int, int]], width: int) -> list[tuple[int, int]]:
    """Runs of consecutive chunk ``spans`` read together: each run as wide as ``width``
    columns allows (a span wider than ``width`` is a run of its own). Chunk spans are
    not changed, so the statistics are computed on the same chunks whatever ``width``."""
    groups: list[tuple[int, int]] = []
    for a, b in spans:
        if groups and groups[-1][1] == a and b - groups[-1][0] <= width:
            groups[-1] = (groups[-1][0], b)
        else:
            groups.append((a, b))
    return groups


def chunk_spans(n_features: int, step: int, read: int | None = None) -> list[tuple[int, int]]:
    """Column spans ``(a, b)`` of at most ``step`` columns covering 0..n_features, none
    crossing a multiple of ``read`` (the reader's block; ``None``: no blocks) when ``step
    <= read``; a ``step`` wider than ``read`` gives spans of ``step`` from 0, which cross
    read blocks."""
    read = max(step, read or step)
    return [(a, min(n_features, a + step, r + read))
            for r in range(0, n_features, read) for a in range(r, min(n_features, r + read), step)]


def device_chunks(features: np.ndarray | FeatureBlocks, step: int, device: torch.device,
                  dtype: torch.dtype) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield ``(a, b, x)``: columns a:b of the host matrix ``features`` [n, F] as a tensor
    [n, b - a] on ``device`` in ``dtype``, in order.

    CPU: a view of the host matrix (Fortran order keeps chunks contiguous; no copy in
    float64). A block reader (a streamed table,
    :class:`~isograph_gpu.io.feature_blocks.FeatureBlocks`) that names its read size
    (``read_columns``; :func:`chunk_spans`) is read in runs of whole chunks
    (:func:`read_groups`, at most ``read_ahead_columns`` wide), the next run on a
    background thread while the caller computes on
    the chunks of the last one, which are views of it; when a chunk is wider than that
    width, each chunk is read on its own in the caller, with no read ahead. CUDA: each
    chunk is cast into one of two pinned host buffers and copied on a side stream while
    the caller computes on the previous chunk; device memory holds two chunks at a time
    whatever the matrix size.
    """
    features = as_feature_blocks(features)
    n, f = features.shape
    read = features.read_columns
    spans = chunk_spans(f, step, read)
    blocks = None
    width = features.read_ahead_columns
    if width is not None and max((b - a for a, b in spans), default=0) <= width:
        # a block reader: runs of whole chunks read, one run ahead. A chunk wider than the
        # read-ahead width (a large budget) is read alone, in the caller: ahead, the chunk
        # computed on and the next one decoded would exceed STREAM_BYTES_IN_FLIGHT
        blocks = features = _BlockReads(features, read_groups(spans, width))
    try:
        yield from _device_chunks(features, n, spans, step, device, dtype)
    finally:
        if blocks is not None:
            blocks.close()  # no read runs on after the loop ends, fails or is left


def _device_chunks(features: Any, n: int, spans: list[tuple[int, int]], step: int,
                   device: torch.device, dtype: torch.dtype
                   ) -> Iterator[tuple[int, int, torch.Tensor]]:
    """:func:`device_chunks` of the chunk ``spans`` of ``features`` [n, F]."""
    if device.type != "cuda":
        for a, b in spans:
            yield a, b, torch.from_numpy(features[:, a:b]).to(device=device, dtype=dtype)
        return
    width = max((b - a for a, b in spans), default=1)
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
    once per :func:`feature_statistics` call: one host synchronisation on CUDA). The
    scores are detached: no statistic needs their gradient, and a block that autograd
    tracks would have the GEMMs save views of the reused :class:`Workspace`."""
    return RightBlock.build(scores.detach(), layout.matrix, dtype=dtype, device=device,
                            pack=True)


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
