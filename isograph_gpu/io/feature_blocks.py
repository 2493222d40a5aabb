"""The feature-block reader protocol: what the engine, the Dask tasks and the figures need
from a samples x features matrix that may live in a file, and the one base every feature
reader implements (parquet :class:`~isograph_gpu.io.feature_tables.ParquetFeatureBlocks`,
backed ``.h5ad`` :class:`~isograph_gpu.io.anndata.AnnDataFeatureBlocks`, an in-memory
matrix :class:`MatrixBlocks`).

The contract of :class:`FeatureBlocks` (x below), a float64 matrix [n samples, F features]:

* ``x.shape`` -> ``(n, F)``; rows are in the run's sample order.
* ``x[:, a:b]`` -> float64 [n, b - a], Fortran order (one read of columns a:b).
* ``x.take(positions)`` -> float64 [n, len(positions)], Fortran order, columns in the order
  asked for (repeats included), each distinct column read once, in one read.
* ``x.read_parts(a, b)`` -> ``(decode, finish)``: columns a:b read in two steps,
  ``finish(decode())`` equal to ``x[:, a:b]``. ``decode`` may run on any thread (the
  engine runs the next one ahead, :mod:`~isograph_gpu.io.read_ahead`); ``finish`` runs in
  the engine's thread after it freed its last block, so a decoded read and a finished
  block are not both held beside a read in flight. ``finish`` is the same for every span
  of one reader. Default: ``decode`` reads ``x[:, a:b]``, ``finish`` returns it.
* ``x.read_columns`` -> columns per read block (``int``), or ``None`` when reads have no
  preferred size (the default): the engine then reads each chunk on its own and Dask
  makes one task per chunk. With a block, no engine chunk narrower than it crosses a
  multiple of it (:func:`isograph_gpu.engine.chunk_spans`), and each Dask task is one block.
* ``x.read_ahead_columns`` -> the widest read the engine may run ahead (a run of whole
  chunks); default ``read_columns``.
* ``x.to_matrix()`` / ``np.asarray(x)`` -> the whole matrix, float64, Fortran order.

A reader implements ``shape``, :meth:`FeatureBlocks._read_positions` (the one read
primitive) and, when it can do better than one read, :meth:`FeatureBlocks.to_matrix`,
``read_parts`` and the read widths. :func:`as_feature_blocks` turns what the engine is
given (a reader, an in-memory matrix, or a minimal block source) into a
:class:`FeatureBlocks`, so that the engine calls only these declared methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np


def _as_is(block: np.ndarray) -> np.ndarray:
    return block


class FeatureBlocks(ABC):
    """A float64 samples x features matrix read in blocks of columns on demand (see the
    module docstring for the contract)."""

    ndim = 2
    dtype = np.dtype(np.float64)

    @property
    @abstractmethod
    def shape(self) -> tuple[int, int]:
        """``(n samples, F features)``."""

    @abstractmethod
    def _read_positions(self, positions: np.ndarray) -> np.ndarray:
        """Columns ``positions`` (int64, distinct, ascending) as float64 [n,
        len(positions)], Fortran order: the one read every other read goes through."""

    @property
    def read_columns(self) -> int | None:
        """Columns per read block, or ``None``: no preferred read size."""
        return None

    @property
    def read_ahead_columns(self) -> int | None:
        """The widest read the engine may run ahead of its compute (default
        :attr:`read_columns`)."""
        return self.read_columns

    def read_parts(self, a: int, b: int
                   ) -> tuple[Callable[[], Any], Callable[[Any], np.ndarray]]:
        """Columns a:b as ``(decode, finish)``, ``finish(decode())`` the block
        ``x[:, a:b]`` (default: ``decode`` reads the block, ``finish`` returns it)."""
        return (lambda: self[:, a:b]), _as_is

    def to_matrix(self) -> np.ndarray:
        """The whole matrix, float64, Fortran order (default: one read of every column)."""
        return self._read_positions(np.arange(self.shape[1], dtype=np.int64))

    def __getitem__(self, key: Any) -> np.ndarray:
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        if rows != slice(None) or not isinstance(cols, slice) or cols.step not in (None, 1):
            raise TypeError(f"{type(self).__name__} supports x[:, a:b] only")
        a, b, _ = cols.indices(self.shape[1])
        return self._read_positions(np.arange(a, b, dtype=np.int64))

    def take(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """Columns ``positions`` (in that order, repeats included) as one float64 [n,
        len(positions)] Fortran block: each distinct column read once, in one read call
        (scattered columns of a parquet cost one fixed cost, not one per run of adjacent
        columns), then gathered into the order asked for."""
        positions = np.asarray(positions, dtype=np.int64).ravel()
        distinct, inverse = np.unique(positions, return_inverse=True)
        block = self._read_positions(distinct)
        if np.array_equal(distinct, positions):
            return block
        return np.asfortranarray(np.take(block, inverse, axis=1))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.to_matrix()
        return out if dtype is None else out.astype(dtype, copy=False)


class MatrixBlocks(FeatureBlocks):
    """A loaded float64 matrix [n, F] as :class:`FeatureBlocks`: ``x[:, a:b]`` and
    :meth:`to_matrix` are views of it (no copy), no read block."""

    def __init__(self, matrix: np.ndarray) -> None:
        self._matrix = matrix

    @property
    def shape(self) -> tuple[int, int]:
        n, f = self._matrix.shape
        return int(n), int(f)

    def _read_positions(self, positions: np.ndarray) -> np.ndarray:
        return np.asfortranarray(self._matrix[:, positions])

    def __getitem__(self, key: Any) -> np.ndarray:
        return self._matrix[key]

    def to_matrix(self) -> np.ndarray:
        return self._matrix


class BlockSource(Protocol):
    """The least a block reader outside this package must give to be read in blocks:
    ``shape``, ``source[:, a:b]`` (a float64 Fortran block) and ``read_columns``."""

    @property
    def shape(self) -> tuple[int, int]: ...

    @property
    def read_columns(self) -> int: ...

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray: ...


class _SourceBlocks(FeatureBlocks):
    """A :class:`BlockSource` as :class:`FeatureBlocks`: reads are ``source[:, a:b]``, in
    blocks of its ``read_columns``, read ahead in runs of the same width."""

    def __init__(self, source: BlockSource) -> None:
        self._source = source
        self._read = int(source.read_columns)

    @property
    def shape(self) -> tuple[int, int]:
        n, f = self._source.shape
        return int(n), int(f)

    @property
    def read_columns(self) -> int:
        return self._read

    def __getitem__(self, key: Any) -> np.ndarray:
        return self._source[key]

    def _read_positions(self, positions: np.ndarray) -> np.ndarray:
        if not len(positions):
            return np.empty((self.shape[0], 0), dtype=np.float64, order="F")
        lo, hi = int(positions[0]), int(positions[-1]) + 1
        return np.asfortranarray(self._source[:, lo:hi][:, positions - lo])


def as_feature_blocks(features: FeatureBlocks | np.ndarray | BlockSource) -> FeatureBlocks:
    """``features`` as :class:`FeatureBlocks`: a reader as it is, a numpy matrix as
    :class:`MatrixBlocks` (views, no read block), any other object as a
    :class:`BlockSource` (it must have ``read_columns``)."""
    if isinstance(features, FeatureBlocks):
        return features
    if isinstance(features, np.ndarray):
        return MatrixBlocks(features)
    return _SourceBlocks(features)
