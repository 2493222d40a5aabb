"""How much host memory a loaded feature table may take, and whether to stream it instead.

The rule (docs/input_formats.md): a feature table is loaded whole when its float64 matrix
fits in :data:`LOADED_TABLE_MEMORY_SHARE` of the memory available when the run starts
(column groups are read on two threads into the matrix,
:meth:`~isograph_gpu.io.feature_tables.ParquetFeatureBlocks.to_matrix`, so the load peak is the matrix plus
the groups in flight: ``LOAD_BLOCK_BYTES`` of columns, held twice, as polars' frame and
as their float64 copy); otherwise it is streamed in column blocks. ``--stream-features``
/ ``--load-features`` override the rule.
``explain_module`` without figures opens the table in blocks and loads it only when it is
read more than once (several module blocks) or is one read block (``pipeline._run``).
"""

from __future__ import annotations

import os
from pathlib import Path

#: Bytes of float64 values decoded at a time: a parquet table loaded whole is read in
#: groups of this size, a streamed one in read blocks of it
#: (:attr:`~isograph_gpu.io.feature_tables.ParquetFeatureBlocks.read_columns`), a backed
#: ``.h5ad`` in ranges at most this wide.
LOAD_BLOCK_BYTES = 256 * 1024**2
#: Share of the memory available at start that loading a feature table may take.
LOADED_TABLE_MEMORY_SHARE = 0.5
#: The load peak of a table, in float64 matrices (column groups into the matrix: one,
#: plus the groups in flight).
LOAD_PEAK_MATRICES = 1
#: Host bytes the reads of a streamed table may add to the engine's chunk working set.
#: With the next read decoded ahead (:mod:`isograph_gpu.io.read_ahead`) there are three
#: reads' worth: the block the engine computes on, the next one's columns as decoded, and
#: the working set of the chunk computed meanwhile, which without read ahead never
#: coexists with a decode (what read ahead adds to the peak: docs/input_formats.md). A
#: read of a very wide parquet has a fixed cost (same place), so reads are as large as
#: this allows.
STREAM_BYTES_IN_FLIGHT = 512 * 1024**2
STREAM_BLOCKS_IN_FLIGHT = 3


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
