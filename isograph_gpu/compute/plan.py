"""The memory plan of a run: every decision the byte constants of
:mod:`isograph_gpu.memory_model` drive, made once, in one place.

:class:`MemoryPlan` is built once per run from the sizes (samples n, table features F,
feature_scores rows R, modules K, contrast splits S), the memory budget, the device and
the feature reader. It gives the module blocks (one block's statistics fit the budget),
the chunk plan of each matrix (:class:`ChunkPlan`: chunk width, chunk spans, read
groups), whether a table opened in blocks is loaded whole, and where the columns live
between module blocks (:attr:`MemoryPlan.residency`). The engine, the Dask tasks and the
benchmarks read the same plan, so they chunk, and compute, alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from .. import memory_model as mm
from ..io.feature_blocks import FeatureBlocks, as_feature_blocks

#: where the feature table lives between module blocks: "host" (a loaded matrix read by
#: one block, or by each block's Dask tasks), "device" (kept on the device after the
#: first read: no copy per block), "spill" (read by several blocks, not kept on the
#: device: one pass computes every module's statistics, the later blocks' kept in a local
#: file until their turn, :mod:`~isograph_gpu.compute.residency`) or "stream" (a streamed
#: table read by one block, or by each block's Dask tasks: read once, held nowhere)
Residency = Literal["host", "device", "spill", "stream"]


@dataclass(frozen=True)
class ChunkPlan:
    """How one matrix [n, F] is cut into feature chunks.

    ``step``: features per chunk; ``spans``: the chunk column ranges in order (none
    crossing a multiple of ``read_columns`` while ``step`` fits in one); ``read_width``:
    columns one read of a streamed table may take (None: read the chunks one by one, or
    an in-memory matrix)."""

    step: int
    spans: tuple[tuple[int, int], ...]
    read_columns: int | None
    read_width: int | None

    @property
    def width(self) -> int:
        """The widest chunk (0 without features)."""
        return max((b - a for a, b in self.spans), default=0)

    def read_groups(self, width: int | None = None) -> list[tuple[int, int]]:
        """Runs of whole chunks read together, each at most ``width`` columns (default:
        :attr:`read_width`, else :attr:`read_columns`; a chunk wider is a run alone)."""
        width = width if width is not None else (self.read_width or self.read_columns or 0)
        return read_groups(list(self.spans), width)

    @property
    def reads_ahead(self) -> bool:
        """A streamed table read in runs of chunks, the next run decoded ahead (no chunk
        wider than a read)."""
        return self.read_width is not None and self.width <= self.read_width


def chunk_size(n_samples: int, n_features: int, itemsize: int, memory_budget_bytes: int,
               chunk_features: int | None = None, n_results: int = 0) -> int:
    """Features per chunk so that one chunk's working set (its values, and ``n_results``
    = modules x (1 + splits) statistics per feature) fits the memory budget
    (:data:`~isograph_gpu.memory_model.CHUNK_VALUE_COPIES`,
    :data:`~isograph_gpu.memory_model.CHUNK_RESULT_BYTES`)."""
    if chunk_features is not None:
        return max(1, min(int(chunk_features), max(n_features, 1)))
    per_feature = (max(1, n_samples) * itemsize * mm.CHUNK_VALUE_COPIES
                   + n_results * mm.CHUNK_RESULT_BYTES)
    return max(1, min(max(n_features, 1), memory_budget_bytes // per_feature))


def chunk_spans(n_features: int, step: int, read: int | None = None) -> list[tuple[int, int]]:
    """Column spans ``(a, b)`` of at most ``step`` columns covering 0..n_features, none
    crossing a multiple of ``read`` (the reader's block; ``None``: no blocks) when ``step
    <= read``; a ``step`` wider than ``read`` gives spans of ``step`` from 0, which cross
    read blocks."""
    read = max(step, read or step)
    return [(a, min(n_features, a + step, r + read))
            for r in range(0, n_features, read) for a in range(r, min(n_features, r + read), step)]


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


def table_read_columns(n_samples: int) -> int:
    """Columns of one read block of a feature table of ``n_samples`` float64 rows
    (:data:`~isograph_gpu.memory_model.LOAD_BLOCK_BYTES`): the table's chunks never cross
    a multiple of it, loaded or streamed, so both are computed on the same chunks."""
    return max(1, mm.LOAD_BLOCK_BYTES // max(1, 8 * int(n_samples)))


def plan_chunks(features: Any, n_results: int, dtype: torch.dtype, memory_budget_bytes: int,
                chunk_features: int | None = None, read_columns: int | None = None
                ) -> ChunkPlan:
    """The :class:`ChunkPlan` of ``features`` [n, F] (a matrix or a block reader) for
    ``n_results`` statistics per feature (modules x (1 + splits)) in ``dtype``.
    ``read_columns``: the read block the spans keep to (default: the reader's own, none
    for an in-memory matrix)."""
    n, f = features.shape
    step = chunk_size(n, f, torch.finfo(dtype).bits // 8, memory_budget_bytes,
                      chunk_features, n_results=n_results)
    reader_block, width = reader_widths(features)
    read = read_columns if read_columns is not None else reader_block
    return ChunkPlan(step=step, spans=tuple(chunk_spans(f, step, read)),
                     read_columns=None if read is None else int(read), read_width=width)


def reader_widths(features: FeatureBlocks | np.ndarray | Any) -> tuple[int | None, int | None]:
    """``(read_columns, read_ahead_columns)`` of ``features`` as
    :class:`~isograph_gpu.io.feature_blocks.FeatureBlocks` declares them (a numpy matrix,
    or a reader without a read block: ``(None, None)``): reads take runs of whole chunks
    up to the read-ahead width."""
    if isinstance(features, np.ndarray):
        return None, None
    reader = as_feature_blocks(features)
    block = reader.read_columns
    if block is None:
        return None, None
    ahead = reader.read_ahead_columns
    return int(block), int(block if ahead is None else ahead)


def module_blocks(n_modules: int, n_features: int, n_score_rows: int,
                  memory_budget_bytes: int, n_splits: int = 1,
                  null_state_bytes: int = 0) -> list[slice]:
    """Module columns computed together, so that one block's statistics (with ``n_splits``
    contrast splits: 2 with the tails contrast) fit the memory budget
    (:data:`~isograph_gpu.memory_model.STATISTICS_BYTES_PER_FEATURE_MODULE` and its
    neighbours; the engine's chunk working set takes
    :data:`~isograph_gpu.memory_model.CHUNK_SHARE_OF_BUDGET` of it);
    ``null_state_bytes``: the switch null's running state per module
    (:func:`null_state_bytes`). At least one module per block."""
    per_feature = (mm.STATISTICS_BYTES_PER_FEATURE_MODULE
                   + (n_splits - 1) * mm.WELCH_BYTES_PER_FEATURE_MODULE)
    per_module = max(1, n_features * per_feature
                     + n_score_rows * mm.STATISTICS_BYTES_PER_SCORE_ROW_MODULE
                     + int(null_state_bytes))
    size = max(1, memory_budget_bytes // per_module)
    return [slice(a, min(n_modules, a + size)) for a in range(0, n_modules, size)]


def null_state_bytes(n_pairs: int, n_permutations: int) -> int:
    """Bytes of the switch null's running maxima and minima of ``n_pairs`` (gene, module)
    pairs under ``n_permutations`` permutations
    (:data:`~isograph_gpu.memory_model.NULL_STATE_BYTES_PER_PAIR_PERMUTATION`)."""
    return int(n_pairs) * int(n_permutations) * mm.NULL_STATE_BYTES_PER_PAIR_PERMUTATION


def partial_step(n_samples: int, n_modules: int, n_covariates: int,
                 memory_budget_bytes: int) -> int:
    """Features per sub-chunk of the partial statistics (``n_covariates`` covariates, the
    (C + 3)^2 Gram entries per feature and module of :mod:`isograph_gpu.ops.partial`) so
    that one sub-chunk fits ``memory_budget_bytes``; at least 1."""
    per_feature = (n_modules * (n_covariates + 3) ** 2 * mm.PARTIAL_BYTES_PER_GRAM_ENTRY
                   + max(1, n_samples) * mm.PARTIAL_BYTES_PER_VALUE)
    return max(1, memory_budget_bytes // per_feature)


def device_free_bytes(device: torch.device) -> int:
    """Device memory free now (CUDA); 0 on the CPU, whose memory is the host's (a loaded
    matrix already is the CPU's resident copy)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return 0


@dataclass(frozen=True)
class MemoryPlan:
    """Every memory decision of one explain run (see the module docstring)."""

    n_samples: int
    n_features: int
    n_score_rows: int
    n_modules: int
    n_splits: int
    budget_bytes: int
    dtype: torch.dtype
    chunk_features: int | None
    #: module column slices computed together (one pass of the statistics each)
    blocks: tuple[slice, ...]
    #: a table opened in blocks is loaded whole before the statistics
    load: bool
    residency: Residency
    #: the feature table's read block: its chunks keep to it, loaded or streamed
    read_columns: int

    @classmethod
    def build(cls, *, n_samples: int, n_features: int, n_score_rows: int, n_modules: int,
              n_splits: int, budget_bytes: int, dtype: torch.dtype, device: torch.device,
              features: Any, chunk_features: int | None = None,
              stream_features: bool | None = None, read_again: bool = False,
              distributed: bool = False, fits_in_memory: bool | None = None,
              device_bytes: int | None = None, null_state_bytes: int = 0) -> MemoryPlan:
        """The plan of a run. ``features``: the feature matrix or the block reader it was
        opened as; ``stream_features`` the user's choice (None: the rule decides);
        ``read_again``: something after the statistics reads the table again (figures);
        ``distributed``: Dask tasks read their own columns; ``fits_in_memory``: whether
        loading the table fits the host (default:
        :func:`~isograph_gpu.io.memory.table_fits_in_memory`); ``device_bytes``: device
        memory free for a resident matrix (default: :func:`device_free_bytes`);
        ``null_state_bytes``: the switch null's running state of the largest module
        (:func:`null_state_bytes`), counted in every module of a block.

        Load rule: a table opened in blocks with the choice left to the rule is loaded
        whole when that costs no extra read or memory worth having: its matrix is one
        read block, or it is read more than once (several module blocks, or figures)
        and fits in memory. Residency: a host matrix on the CPU is read in place; on a
        GPU the matrix (host or streamed) stays on the device when it fits
        :data:`~isograph_gpu.memory_model.RESIDENT_SHARE_OF_DEVICE` of its free memory
        and more than one block reads it; a table read by several blocks otherwise is read
        in one pass for every module, the later blocks' statistics spilled to a local
        file."""
        blocks = tuple(module_blocks(n_modules, n_features, n_score_rows, budget_bytes,
                                     n_splits=n_splits, null_state_bytes=null_state_bytes))
        in_blocks = not isinstance(features, np.ndarray)
        load = False
        if in_blocks and stream_features is None and not distributed:
            if fits_in_memory is None:
                from ..io.memory import table_fits_in_memory

                fits_in_memory = table_fits_in_memory(n_samples, n_features)
            one_read = n_samples * n_features * 8 <= mm.LOAD_BLOCK_BYTES
            load = one_read or ((len(blocks) > 1 or read_again) and fits_in_memory)
        itemsize = torch.finfo(dtype).bits // 8
        free = device_free_bytes(device) if device_bytes is None else int(device_bytes)
        fits_device = n_samples * n_features * itemsize <= mm.RESIDENT_SHARE_OF_DEVICE * free
        held = not in_blocks or load
        residency: Residency
        if distributed:
            residency = "host" if held else "stream"
        elif len(blocks) > 1 and fits_device:
            residency = "device"
        elif len(blocks) > 1:
            residency = "spill"
        else:
            residency = "host" if held else "stream"
        return cls(n_samples=int(n_samples), n_features=int(n_features),
                   n_score_rows=int(n_score_rows), n_modules=int(n_modules),
                   n_splits=int(n_splits), budget_bytes=int(budget_bytes), dtype=dtype,
                   chunk_features=chunk_features, blocks=blocks, load=load,
                   residency=residency, read_columns=table_read_columns(n_samples))

    @property
    def chunk_budget_bytes(self) -> int:
        """The share of the budget one chunk's working set takes."""
        return int(self.budget_bytes * mm.CHUNK_SHARE_OF_BUDGET)

    @property
    def widest_block(self) -> int:
        """Modules in the largest module block."""
        return max((b.stop - b.start for b in self.blocks), default=0)

    @property
    def pass_modules(self) -> int:
        """Modules one pass over the feature table computes: every module with residency
        "spill" (one pass for every block), else the widest block."""
        return self.n_modules if self.residency == "spill" else self.widest_block

    def feature_chunks(self, features: Any) -> ChunkPlan:
        """The chunk plan of the feature table for a pass of :attr:`pass_modules`
        modules (with the plan's splits), its spans keeping to :attr:`read_columns`
        whatever the source, so a loaded and a streamed table are computed on the same
        chunks."""
        return plan_chunks(features, self.pass_modules * (1 + self.n_splits), self.dtype,
                           self.chunk_budget_bytes, self.chunk_features,
                           read_columns=reader_widths(features)[0]
                           if not isinstance(features, np.ndarray) else self.read_columns)

    def score_chunks(self, scores: Any, n_modules: int) -> ChunkPlan:
        """The chunk plan of the feature_scores matrix [n, R] (no contrast splits)."""
        return plan_chunks(scores, n_modules, self.dtype, self.chunk_budget_bytes,
                           self.chunk_features)
