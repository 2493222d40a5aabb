"""Host-to-device transfer of feature chunks: views on the CPU; on CUDA two pinned host
buffers and a side stream, so the copy of chunk i + 1 overlaps the compute on chunk i.

Device memory holds two chunks at a time whatever the matrix size. A streamed table is
read in runs of whole chunks (:class:`~isograph_gpu.compute.block_reads.BlockReads`) as
its :class:`~isograph_gpu.compute.plan.ChunkPlan` says.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from .block_reads import BlockReads
from .plan import ChunkPlan, chunk_spans, reader_widths


def device_chunks(features: Any, chunks: ChunkPlan | int, device: torch.device,
                  dtype: torch.dtype) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield ``(a, b, x)``: columns a:b of the host matrix ``features`` [n, F] as a tensor
    [n, b - a] on ``device`` in ``dtype``, one per span of ``chunks`` (a
    :class:`~isograph_gpu.compute.plan.ChunkPlan`; an int: chunks of that width keeping
    to the reader's own read block), in order.

    CPU: a view of the host matrix (Fortran order keeps chunks contiguous; no copy in
    float64). A block reader (a streamed table) is read in runs of whole chunks
    (:meth:`ChunkPlan.read_groups`), the next run on a background thread while the caller
    computes on the chunks of the last one, which are views of it; when a chunk is wider
    than a read, each chunk is read on its own in the caller, with no read ahead. CUDA:
    each chunk is cast into one of two pinned host buffers and copied on a side stream
    while the caller computes on the previous chunk.
    """
    if isinstance(chunks, int):
        read, width = reader_widths(features)
        chunks = ChunkPlan(step=chunks, spans=tuple(chunk_spans(features.shape[1], chunks, read)),
                           read_columns=read, read_width=width)
    n = features.shape[0]
    blocks = None
    if chunks.reads_ahead:
        # a block reader: runs of whole chunks read, one run ahead. A chunk wider than the
        # read-ahead width (a large budget) is read alone, in the caller: ahead, the chunk
        # computed on and the next one decoded would exceed STREAM_BYTES_IN_FLIGHT
        blocks = features = BlockReads(features, chunks.read_groups())
    try:
        yield from _device_chunks(features, n, list(chunks.spans), device, dtype)
    finally:
        if blocks is not None:
            blocks.close()  # no read runs on after the loop ends, fails or is left


def _device_chunks(features: Any, n: int, spans: list[tuple[int, int]],
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
