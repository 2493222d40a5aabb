"""AnnData in and out: an ``AnnData`` object or ``.h5ad`` file as the feature table, and the
results put back into an AnnData (:func:`add_results`).

In: ``obs_names`` are the sample ids, ``var_names`` the feature ids, ``X`` (dense, CSR or
CSC; an implicit sparse zero is the value 0, not a missing value) the samples x features
values. ``var`` columns ``gene_id`` and ``feature_type`` (optional ``transcript_id`` and
``gene_name``) serve as feature metadata, so no separate feature_meta is needed. An ``.h5ad``
that does not fit in memory (:mod:`isograph_gpu.io.memory`) is opened backed and read in
column blocks. ``anndata`` is an optional extra (``pip install isograph-gpu[anndata]``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import InputError, OptionalDependencyError, first_line
from .feature_blocks import FeatureBlocks
from .memory import LOAD_BLOCK_BYTES, table_fits_in_memory
from .table_readers import duplicate_values, existing_file, own_feature_meta

if TYPE_CHECKING:
    from ..result import ExplainResult

#: var columns that form the feature metadata (the first two are required for it)
VAR_META_COLUMNS = ("gene_id", "feature_type", "transcript_id", "gene_name")


def require_anndata(purpose: str = "reading or writing AnnData") -> Any:
    """The ``anndata`` module, or :class:`OptionalDependencyError` naming ``purpose`` with
    the install hint."""
    try:
        import anndata
    except ImportError as exc:
        raise OptionalDependencyError(
            f"{purpose} needs the anndata package: "
            "pip install 'isograph-gpu[anndata]'") from exc
    return anndata


def is_anndata(source: object) -> bool:
    """True for an ``AnnData`` object or a path ending in ``.h5ad`` (anndata not imported
    for other sources)."""
    if isinstance(source, str | os.PathLike):
        return Path(source).name.lower().endswith(".h5ad")
    return any(cls.__name__ == "AnnData" and cls.__module__.startswith("anndata")
               for cls in type(source).__mro__)


#: wanted columns of a backed ``.h5ad`` at most this many columns apart are read in one
#: range (the columns between are read and dropped) rather than in two reads
RUN_GAP_COLUMNS = 16


def column_runs(positions: np.ndarray, gap: int, width: int) -> list[tuple[int, int]]:
    """Runs ``(i, j)`` of the sorted distinct ``positions``: ``positions[i:j]`` are read as
    the one range ``positions[i]..positions[j - 1]``. A run ends where two neighbours are
    more than ``gap`` columns apart, and is split to at most ``width`` columns."""
    if not len(positions):
        return []
    ends = np.flatnonzero(np.diff(positions) > gap + 1) + 1
    runs = []
    for i, j in zip(np.r_[0, ends].tolist(), np.r_[ends, len(positions)].tolist(),
                    strict=True):
        while i < j:  # as wide as ``width`` allows, from each run's first column
            end = min(j, int(np.searchsorted(positions, positions[i] + max(1, width))))
            runs.append((i, end))
            i = end
    return runs


def _dense_columns(x: Any, positions: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """float64 [len(rows), len(positions)], Fortran order, from a dense array, a scipy
    sparse matrix, an h5py dataset or a backed sparse dataset (:func:`_backed_columns`)."""
    import scipy.sparse as sp  # here, not at module import: a plain run needs no scipy

    if len(positions) == 0:
        return np.empty((len(rows), 0), dtype=np.float64, order="F")
    if isinstance(x, np.ndarray) and x.dtype == np.float64:
        # one gather: the (features, samples) C-ordered copy is the wanted Fortran matrix
        return np.ascontiguousarray(x.T[np.ix_(positions, rows)]).T
    if not (isinstance(x, np.ndarray) or sp.issparse(x)):
        return _backed_columns(x, positions, rows)
    block = x[:, positions]
    if sp.issparse(block):
        return np.asfortranarray(sp.csc_matrix(block)[rows].toarray(order="F"),
                                 dtype=np.float64)
    return np.asfortranarray(np.asarray(block)[rows], dtype=np.float64)


def _backed_columns(x: Any, positions: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """:func:`_dense_columns` of a backed ``X`` (an h5py dataset or anndata's backed
    sparse dataset, which read column ranges, not lists): each distinct position read
    once, in ranges of adjacent ones (:func:`column_runs`: gaps up to
    :data:`RUN_GAP_COLUMNS`, at most a read block of
    :data:`~isograph_gpu.io.memory.LOAD_BLOCK_BYTES` wide), so scattered columns
    do not read the table between them. A backed CSR reads all its rows' data for any
    column range, so it is read as one range."""
    import scipy.sparse as sp

    wanted, inverse = np.unique(positions, return_inverse=True)
    if getattr(x, "format", None) == "csr":
        runs = [(0, len(wanted))]
    else:
        width = max(1, LOAD_BLOCK_BYTES // (8 * max(1, int(x.shape[0]))))
        runs = column_runs(wanted, RUN_GAP_COLUMNS, width)
    out = np.empty((len(rows), len(wanted)), dtype=np.float64, order="F")
    for i, j in runs:
        lo = int(wanted[i])
        block = x[:, lo:int(wanted[j - 1]) + 1]
        local = wanted[i:j] - lo
        if sp.issparse(block):
            out[:, i:j] = sp.csc_matrix(block)[:, local][rows].toarray()
        else:
            out[:, i:j] = np.asarray(block)[np.ix_(rows, local)]
        del block
    if np.array_equal(wanted, positions):
        return out
    return np.asfortranarray(np.take(out, inverse, axis=1))


class AnnDataFeatureBlocks(FeatureBlocks):
    """The float64 samples x features matrix of a backed ``.h5ad``, read one block of
    columns at a time (see :class:`~isograph_gpu.io.feature_blocks.FeatureBlocks`)."""

    def __init__(self, x: Any, positions: np.ndarray, rows: np.ndarray) -> None:
        self._x, self._positions, self._rows = x, positions, rows

    @property
    def shape(self) -> tuple[int, int]:
        return len(self._rows), len(self._positions)

    def _read_positions(self, positions: np.ndarray) -> np.ndarray:
        return _dense_columns(self._x, self._positions[positions], self._rows)

    def __reduce__(self) -> tuple[Any, tuple[str, np.ndarray, np.ndarray]]:
        """Pickles as the file's path, columns and rows; unpickling reopens the file
        backed (a Dask worker reads its own columns: :mod:`isograph_gpu.distributed`)."""
        store = getattr(self._x, "group", self._x)  # anndata's backed sparse, or h5py
        return _open_backed_blocks, (str(store.file.filename), self._positions, self._rows)


def _open_backed_blocks(path: str, positions: np.ndarray,
                        rows: np.ndarray) -> AnnDataFeatureBlocks:
    """:class:`AnnDataFeatureBlocks` of ``path`` opened backed (read-only)."""
    adata = require_anndata(f"reading {path}").read_h5ad(path, backed="r")
    return AnnDataFeatureBlocks(adata.X, positions, rows)


class AnnDataFeatureTable:
    """An AnnData (object or ``.h5ad`` path) as the samples x features table.

    ``stream``: open an ``.h5ad`` backed and read column blocks; ``None`` streams only when
    the dense matrix does not fit in memory. Same interface as the other feature tables:
    ``sample_ids``, ``columns``, ``matrix(columns, rows)``, ``feature_meta()``.
    """

    def __init__(self, source: Any, what: str = "feature_table",
                 stream: bool | None = None) -> None:
        anndata = require_anndata()
        self.what = what
        self.streamed = False
        if isinstance(source, str | os.PathLike):
            path = existing_file(source, what)
            self.where = str(path)
            try:
                adata = anndata.read_h5ad(path, backed="r")
                self.streamed = bool(stream) or (stream is None and not table_fits_in_memory(
                    adata.n_obs, adata.n_vars))
                if not self.streamed:
                    adata = adata.to_memory()  # obs/var already parsed: no second open
                    adata.file.close()
            except (OSError, KeyError, ValueError) as exc:
                raise InputError(f"cannot read {what} {path} as h5ad: "
                                 f"{first_line(exc)}") from exc
        else:
            self.where = "AnnData"
            adata = source
        self._adata = adata
        self.sample_ids = np.asarray([str(s) for s in adata.obs_names], dtype=object)
        self.columns = [str(f) for f in adata.var_names]
        for ids, name in ((self.columns, "var_names (feature ids)"),
                          (self.sample_ids.tolist(), "obs_names (sample ids)")):
            dupes = duplicate_values(ids, distinct=True)
            if dupes:
                raise InputError(f"{what} {self.where} has duplicate {name}: {dupes}")

    def feature_meta(self) -> pd.DataFrame | None:
        """feature_id (= var_names) and the ``var`` columns of :data:`VAR_META_COLUMNS`, as
        text; ``None`` when ``var`` lacks gene_id or feature_type. Features without a
        gene_id or feature_type are left out (not annotated)."""
        var = self._adata.var
        if not {"gene_id", "feature_type"} <= set(var.columns):
            return None
        meta = pd.DataFrame({"feature_id": self.columns})
        for col in VAR_META_COLUMNS:
            if col in var.columns:
                meta[col] = var[col].to_numpy(dtype=object)
        return own_feature_meta(meta)

    def matrix(self, columns: Sequence[str], rows: np.ndarray
               ) -> np.ndarray | AnnDataFeatureBlocks:
        """float64 [len(rows), len(columns)], Fortran order; for a backed file, an
        :class:`AnnDataFeatureBlocks` that reads column blocks on demand."""
        positions = pd.Index(self.columns).get_indexer(list(columns)).astype(np.int64)
        rows = np.asarray(rows, dtype=np.int64)
        if self.streamed:
            return AnnDataFeatureBlocks(self._adata.X, positions, rows)
        return _dense_columns(self._adata.X, positions, rows)


def _module_columns(results: Mapping[str, ExplainResult], table: str, value: str,
                    var_names: pd.Index) -> np.ndarray:
    """[n_vars, K] float64: ``value`` of each var feature in each module's ``table``
    (NaN where the feature is not in that module's table)."""
    out = np.full((len(var_names), len(results)), np.nan)
    for k, res in enumerate(results.values()):
        frame = getattr(res, table)
        if frame is None or len(frame) == 0 or value not in frame.columns:
            continue
        pos = var_names.get_indexer(frame["feature_id"].astype(str))
        keep = pos >= 0
        out[pos[keep], k] = pd.to_numeric(frame[value], errors="coerce").to_numpy(
            dtype=np.float64)[keep]
    return out


def add_results(adata: Any, results: Mapping[str, ExplainResult],
                manifest: str | os.PathLike[str] | Mapping[str, Any] | None = None) -> None:
    """Put explain results into ``adata`` in place (modules in ``results`` order, K of them).

    * ``varm["isograph_r"]`` [n_vars, K]: r of each feature with the module's eigengene
      (transcript_polarity_table; NaN where the feature is not a transcript of the module);
    * ``varm["isograph_switch_strength"]``, ``varm["isograph_qvalue"]``: the same table's
      switch strength and q-value;
    * ``varm["isograph_delta"]``, ``varm["isograph_delta_qvalue"]``: high-vs-low mean
      difference and its q-value (high_vs_low_table);
    * ``obsm["isograph_eigengene"]`` [n_obs, K]: each module's eigengene (NaN for samples
      the run did not use);
    * ``uns["isograph"]``: ``module_ids`` and, when given, the manifest (a path to
      ``module_explanation_manifest.json`` or its dict).
    """
    var_names = pd.Index([str(v) for v in adata.var_names])
    obs_names = pd.Index([str(s) for s in adata.obs_names])
    columns = {
        "isograph_r": ("transcript_polarity_table", "r"),
        "isograph_switch_strength": ("transcript_polarity_table", "switch_strength"),
        "isograph_qvalue": ("transcript_polarity_table", "qvalue"),
        "isograph_delta": ("high_vs_low_table", "delta"),
        "isograph_delta_qvalue": ("high_vs_low_table", "qvalue"),
    }
    for key, (table, value) in columns.items():
        adata.varm[key] = _module_columns(results, table, value, var_names)
    eigengene = np.full((len(obs_names), len(results)), np.nan)
    for k, res in enumerate(results.values()):
        pos = obs_names.get_indexer(res.sample_ids)
        keep = pos >= 0
        eigengene[pos[keep], k] = np.asarray(res.eigengene, dtype=np.float64)[keep]
    adata.obsm["isograph_eigengene"] = eigengene
    uns: dict[str, Any] = {"module_ids": [str(m) for m in results]}
    if manifest is not None:
        if not isinstance(manifest, Mapping):
            manifest = json.loads(Path(manifest).read_text())
        # h5ad stores nested dicts of str/number/list; JSON text keeps None and mixed lists
        uns["manifest_json"] = json.dumps(manifest, sort_keys=True)
    adata.uns["isograph"] = uns
