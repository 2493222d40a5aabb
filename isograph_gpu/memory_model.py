"""The byte constants of the memory model, defined here only (a leaf: no imports, so io
readers, the compute wing and the benchmarks all read the same numbers).

:class:`isograph_gpu.compute.plan.MemoryPlan` turns them into the run's decisions (module
blocks, chunk width, read groups, load or stream, device residency); the docs cite the
names, not the numbers.
"""

from __future__ import annotations

# --- one feature chunk's working set (the engine) ----------------------------------------
#: bytes per sample x feature of a chunk, in units of the working dtype's item size: x,
#: mask, centred, squared, stacked copy (+ slack)
CHUNK_VALUE_COPIES = 8
#: bytes per feature x (module x (1 + splits)) of a chunk: moment / group-sum GEMM
#: outputs, Welch and p-value temporaries, in float64
CHUNK_RESULT_BYTES = 32 * 8
#: share of the memory budget one feature chunk's working set may take (the module
#: block's statistics take up to all of it): peak ~ inputs + 1.25 x budget, plus, for a
#: streamed table, the reads in flight (:data:`STREAM_BYTES_IN_FLIGHT`)
CHUNK_SHARE_OF_BUDGET = 0.25

# --- one module block's statistics -------------------------------------------------------
#: bytes per table feature x module while one block's statistics are alive: r/n/p and 8
#: Welch arrays of one split (88), transcript polarity r/p/n copies and q-values (32, at
#: most one per table feature), memberships and the Pearson p mask (3, bool),
#: q-value temporaries (64): 187, rounded up
STATISTICS_BYTES_PER_FEATURE_MODULE = 192
#: bytes per table feature x module of each further split (the tails contrast): its 8
#: Welch arrays (6 statistics + 2 counts, 8 bytes each)
WELCH_BYTES_PER_FEATURE_MODULE = 64
#: bytes per feature_scores row x module: r/n/p/q, sort key (40), q-value temporaries (64),
#: masks, rounded up
STATISTICS_BYTES_PER_SCORE_ROW_MODULE = 112

# --- the options' statistics (--covariates, --switch-permutations) ------------------------
#: bytes per feature x module x (C + 3)^2 Gram entry of the partial statistics of one
#: feature sub-chunk (ops.partial: the Gram, the solve's copy and r / p, float64)
PARTIAL_BYTES_PER_GRAM_ENTRY = 3 * 8
#: bytes per sample x feature of one partial sub-chunk's operands (mask, centred values,
#: squares, float64)
PARTIAL_BYTES_PER_VALUE = 4 * 8
#: bytes per (gene, module) pair x permutation of the switch null's running maxima and
#: minima (two float64), alive for a whole module block
NULL_STATE_BYTES_PER_PAIR_PERMUTATION = 2 * 8

# --- reading the feature table -----------------------------------------------------------
#: bytes of float64 values decoded at a time when a parquet table is loaded whole, and the
#: read block of a streamed one: chunks never cross a multiple of it while they fit in one
LOAD_BLOCK_BYTES = 256 * 1024**2
#: threads that read column groups of a parquet table loaded whole at once
LOAD_READERS = 2
#: share of the memory available at start that loading a feature table may take
LOADED_TABLE_MEMORY_SHARE = 0.5
#: the load peak of a table, in float64 matrices (column groups into the matrix: one,
#: plus the groups in flight)
LOAD_PEAK_MATRICES = 1
#: host bytes the reads of a streamed table may add to the engine's chunk working set:
#: with the next read decoded ahead there are :data:`STREAM_BLOCKS_IN_FLIGHT` reads' worth
#: (the block computed on, the next one's columns as decoded, the chunk's working set);
#: each read of a very wide parquet has a fixed cost, so reads are as large as this allows
STREAM_BYTES_IN_FLIGHT = 512 * 1024**2
STREAM_BLOCKS_IN_FLIGHT = 3

# --- device residency --------------------------------------------------------------------
#: share of the device memory free at the start of the statistics that a resident feature
#: matrix (in the working dtype) may take; the rest is the module blocks' statistics and
#: the chunk working set
RESIDENT_SHARE_OF_DEVICE = 0.5

# --- result tables -----------------------------------------------------------------------
#: modules whose high_vs_low columns are copied out of the [F, K] statistics together;
#: their copies live until those modules' tables are written
COLUMN_GROUP = 4
