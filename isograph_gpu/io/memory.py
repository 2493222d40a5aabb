"""How much host memory a loaded feature table may take, and whether to stream it instead.

The rule (docs/input_formats.md): a feature table is loaded whole when its float64 matrix
fits in :data:`LOADED_TABLE_MEMORY_SHARE` of the memory available when the run starts
(column groups are read on two threads into the matrix,
:meth:`~isograph_gpu.io.feature_tables.ParquetFeatureBlocks.to_matrix`, so the load peak is the matrix plus
the groups in flight: ``LOAD_BLOCK_BYTES`` of columns, held twice, as polars' frame and
as their float64 copy); otherwise it is streamed in column blocks. ``--stream-features``
/ ``--load-features`` override the rule.
``explain_module`` without figures opens the table in blocks and loads it only when it is
read more than once (several module blocks) or is one read block
(:class:`isograph_gpu.compute.plan.MemoryPlan`). The constants live in
:mod:`isograph_gpu.memory_model`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..memory_model import (  # the byte constants: one home
    LOAD_BLOCK_BYTES,
    LOAD_PEAK_MATRICES,
    LOADED_TABLE_MEMORY_SHARE,
    STREAM_BLOCKS_IN_FLIGHT,
    STREAM_BYTES_IN_FLIGHT,
)

__all__ = [
    "LOADED_TABLE_MEMORY_SHARE",
    "LOAD_BLOCK_BYTES",
    "LOAD_PEAK_MATRICES",
    "STREAM_BLOCKS_IN_FLIGHT",
    "STREAM_BYTES_IN_FLIGHT",
    "available_memory_bytes",
    "stream_read_columns",
    "table_fits_in_memory",
]


def available_memory_bytes() -> int:
    """Memory the system can give without swapping: ``MemAvailable`` of /proc/meminfo on
    Linux, else psutil's ``available`` when installed, else the free physical pages."""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    try:
        import psutil
    except ImportError:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return int(psutil.virtual_memory().available)


def stream_read_columns(n_rows: int) -> int:
    """Columns per read of a streamed table of ``n_rows`` float64 rows: the
    :data:`STREAM_BLOCKS_IN_FLIGHT` blocks in flight fit :data:`STREAM_BYTES_IN_FLIGHT`."""
    block_bytes = STREAM_BYTES_IN_FLIGHT // STREAM_BLOCKS_IN_FLIGHT
    return max(1, block_bytes // max(1, 8 * int(n_rows)))


def table_fits_in_memory(n_rows: int, n_columns: int, available: int | None = None) -> bool:
    """True when a samples x features table of ``n_rows`` x ``n_columns`` values may be
    loaded whole: ``LOAD_PEAK_MATRICES * n_rows * n_columns * 8`` bytes fit in
    ``LOADED_TABLE_MEMORY_SHARE`` of ``available`` (default: :func:`available_memory_bytes`)."""
    available = available_memory_bytes() if available is None else available
    peak = LOAD_PEAK_MATRICES * int(n_rows) * int(n_columns) * 8
    return peak <= LOADED_TABLE_MEMORY_SHARE * available
