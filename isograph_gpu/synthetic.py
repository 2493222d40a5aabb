"""Realistic synthetic IsoGraph datasets for the demo, the tests and the benchmarks.

``make_synthetic_dataset`` simulates transcript counts with planted co-regulated modules and
returns everything ``explain-module`` reads, laid out exactly as ``isograph fit`` and the
reference fixture lay it out (reference-semantics.md §1):

* ``modules``: gene_id, module_id (``"M000"``...), sorted by module then gene;
* ``feature_scores``: feature_id, gene_id, feature_type, n_transcripts (float64, NaN on
  abundance rows), then one float64 column per sample; per gene an ``<gene>::abundance`` row
  (z-scored log2(CPM + 0.5) of the gene's summed counts, population SD) and, for genes with
  >= 2 transcripts, a ``<gene>::switch`` row (PC1 score of the sample-centred within-gene CLR
  composition with the reference's sign rule); rows sorted by (gene_id, feature_type,
  feature_id);
* ``feature_table``: ``sample_id`` column, then transcript usage (count / gene count) per
  transcript ``G00001.T1``..., then ``n_psi`` PSI features ``G00010:psi:E1``; a fraction
  ``nan_fraction`` of the values is NaN;
* ``feature_meta``: feature_id, gene_id, feature_type, transcript_id, gene_name;
* ``truth``: per gene its planted module (or None), whether it switches and which transcripts go
  up/down; ``module_factors``: the latent sample factor of each module.

Simulation: every module k has a latent sample factor f_k (standardised normal). A module gene's
log expression is ``beta_g * f_k`` plus noise; for a switching gene one transcript's logit
rises with f_k and another's falls (a within-gene isoform switch). Genes outside modules are
noise. Counts are Poisson around ``library size x expression x isoform proportion``.

Everything is vectorised over genes of equal transcript count in chunks of bounded size
(batched SVD, no per-gene Python loop), so 1,000 samples x 12,500 genes x 4 transcripts takes
seconds and the only large arrays are the outputs themselves. Deterministic for a given seed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import InputError
from .io.output import atomic_write
from .text_columns import text_column

__all__ = ["SyntheticDataset", "make_synthetic_dataset", "switch_scores",
           "write_synthetic_dataset"]

# elements of one (genes, transcripts, samples) chunk array; bounds working memory (~16 MB each)
_CHUNK_ELEMENTS = 2_000_000
_PSEUDOCOUNT = 0.5
_CLR_EPS = 1e-8


@dataclass(frozen=True)
class SyntheticDataset:
    """A simulated dataset: the artifact frames, the caller inputs and the ground truth."""

    modules: pd.DataFrame
    feature_scores: pd.DataFrame
    feature_table: pd.DataFrame
    feature_meta: pd.DataFrame
    truth: pd.DataFrame
    module_factors: pd.DataFrame
    transcript_counts: np.ndarray | None = None

    @property
    def sample_ids(self) -> list[str]:
        """Sample IDs in simulation order."""
        return self.feature_table["sample_id"].tolist()

    def write(self, directory: str | os.PathLike[str]) -> dict[str, Path]:
        """Write the explain inputs under ``directory`` (each file atomically).

        Returns the paths keyed ``modules``, ``feature_scores`` (both under ``artifact/``),
        ``feature_table``, ``feature_meta`` and ``artifact_dir``.
        """
        paths = input_paths(directory)
        for name, path in paths.items():
            _write_parquet_atomic(getattr(self, name), path)
        return {**paths, "artifact_dir": Path(directory) / "artifact"}


def input_paths(directory: str | os.PathLike[str]) -> dict[str, Path]:
    """Where :meth:`SyntheticDataset.write` puts each table under ``directory``."""
    root = Path(directory)
    return {
        "modules": root / "artifact" / "modules.parquet",
        "feature_scores": root / "artifact" / "feature_scores.parquet",
        "feature_table": root / "feature_table.parquet",
        "feature_meta": root / "feature_meta.parquet",
    }


def make_synthetic_dataset(
    n_samples: int = 200,
    n_genes: int = 300,
    n_modules: int = 5,
    genes_per_module: int = 20,
    transcripts_per_gene: tuple[int, int] = (2, 4),
    n_psi: int = 10,
    nan_fraction: float = 0.02,
    seed: int = 0,
    *,
    switch_fraction: float = 0.6,
    keep_counts: bool = False,
) -> SyntheticDataset:
    """Simulate a dataset with ``n_modules`` planted modules of ``genes_per_module`` genes.

    ``transcripts_per_gene`` is an inclusive (min, max) range drawn uniformly per gene;
    ``switch_fraction`` of the module genes with >= 2 transcripts carry an isoform switch.
    ``keep_counts`` keeps the simulated counts as ``transcript_counts`` ((transcripts, samples)
    float64, rows in feature_table column order) for checks; off by default to save memory.
    The steps draw from one generator in a fixed order, so a seed gives the same dataset.
    """
    lo, hi = _check_arguments(n_samples, n_genes, n_modules, genes_per_module,
                              transcripts_per_gene, nan_fraction)
    rng = np.random.default_rng(seed)
    sample_ids = _ids("S", n_samples, 4)
    gene_ids = _ids("G", n_genes, 5)
    plan = _plan_genes(rng, n_samples, n_genes, n_modules, genes_per_module, (lo, hi),
                       switch_fraction)
    n_psi_features = min(n_psi, n_genes)
    values, gene_counts, switch_rows, kept_counts = _simulate_transcripts(
        rng, plan, n_samples, n_psi_features, keep_counts)

    abundance_rows = _zscore_rows(np.log2(gene_counts / gene_counts.sum(axis=0) * 1e6 + 0.5))
    feature_scores = _feature_scores_frame(gene_ids, plan.n_tx, abundance_rows, switch_rows,
                                           sample_ids)
    psi_genes, psi_values = _simulate_psi(rng, n_psi, plan.module_of, plan.factor_rows,
                                          n_modules)
    n_transcripts_total = int(plan.n_tx.sum())
    values[:, n_transcripts_total:] = psi_values
    _mask_missing(rng, values, nan_fraction)
    return _dataset_tables(plan, values, psi_genes, gene_ids, sample_ids, feature_scores,
                           kept_counts)


def write_synthetic_dataset(
    directory: str | os.PathLike[str],
    n_samples: int,
    n_genes: int,
    n_modules: int,
    genes_per_module: int,
    transcripts_per_gene: tuple[int, int] = (2, 4),
    nan_fraction: float = 0.02,
    seed: int = 0,
    *,
    switch_fraction: float = 0.6,
    block_bytes: int = 512 * 2**20,
) -> dict[str, Path]:
    """Write the explain inputs of ``make_synthetic_dataset(..., n_psi=0)`` with the same
    arguments under ``directory`` without holding the dataset: the same draws, the same
    tables, the feature table's values stored as float32 (half the file; the readers
    decode to float64). For inputs larger than memory (17,000 samples x 50,000 transcripts
    is 3.4 GB as float32).

    The transcripts are simulated chunk by chunk (:func:`transcript_chunks`) into scratch
    files beside the outputs (features-major usage, gene counts, switch coordinates; the
    size of the outputs, removed at the end), then the samples x features feature table is
    written in row groups of ``block_bytes`` of values and feature_scores in blocks of
    genes. Peak memory about twice ``block_bytes``. Returns the paths of
    :meth:`SyntheticDataset.write`.
    """
    lo, hi = _check_arguments(n_samples, n_genes, n_modules, genes_per_module,
                              transcripts_per_gene, nan_fraction)
    rng = np.random.default_rng(seed)
    sample_ids = _ids("S", n_samples, 4)
    gene_ids = _ids("G", n_genes, 5)
    plan = _plan_genes(rng, n_samples, n_genes, n_modules, genes_per_module, (lo, hi),
                       switch_fraction)
    paths = input_paths(directory)
    Path(directory).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".synthetic-", dir=directory) as tmp:
        usage, counts, switch = (Path(tmp) / name for name in ("usage", "counts", "switch"))
        with usage.open("wb") as u, counts.open("wb") as c, switch.open("wb") as w:
            for chunk in transcript_chunks(rng, plan, n_samples):
                rows = chunk.usage.astype(np.float32)
                for column, row in zip(chunk.columns, rows, strict=True):
                    os.pwrite(u.fileno(), row.tobytes(), int(column) * n_samples * 4)
                scores = (chunk.switch_rows if chunk.switch_rows is not None
                          else np.full_like(chunk.gene_counts, np.nan))
                for gene, total, score in zip(chunk.genes, chunk.gene_counts, scores,
                                              strict=True):
                    os.pwrite(c.fileno(), total.tobytes(), int(gene) * n_samples * 8)
                    os.pwrite(w.fileno(), score.tobytes(), int(gene) * n_samples * 8)
        psi_genes, _ = _simulate_psi(rng, 0, plan.module_of, plan.factor_rows, n_modules)
        feature_ids, feature_meta, modules = id_tables(plan, psi_genes, gene_ids)
        _write_feature_table(paths["feature_table"], usage, feature_ids, sample_ids,
                             missing_masks(rng, (n_samples, len(feature_ids)), nan_fraction),
                             block_bytes)
        _write_feature_scores(paths["feature_scores"], counts, switch, gene_ids, plan.n_tx,
                              sample_ids, block_bytes)
    _write_parquet_atomic(feature_meta, paths["feature_meta"])
    _write_parquet_atomic(modules, paths["modules"])
    return {**paths, "artifact_dir": Path(directory) / "artifact"}


def _write_feature_table(path: Path, usage: Path, feature_ids: list[str],
                         sample_ids: list[str],
                         masks: Iterator[tuple[int, int, np.ndarray]],
                         block_bytes: int) -> None:
    """The samples x features parquet from the features-major float32 ``usage`` file, in
    row groups of about ``block_bytes`` of values, NaN (stored as null, as pandas writes
    it) where ``masks`` say (row blocks of their own, applied across row groups)."""
    n, f = len(sample_ids), len(feature_ids)
    group_rows = max(1, block_bytes // max(1, 4 * f))
    schema = pa.schema([pa.field("sample_id", pa.string()),
                        *(pa.field(name, pa.float32()) for name in feature_ids)])
    pending = next(masks, None)

    def write(fh: BinaryIO) -> None:
        nonlocal pending
        with pq.ParquetWriter(fh, schema) as writer, usage.open("rb") as source:
            for a in range(0, n, group_rows):
                b = min(n, a + group_rows)
                block = np.empty((f, b - a), dtype=np.float32)  # each column contiguous
                for j in range(f):  # read, not mapped: no file pages resident here
                    block[j] = np.frombuffer(os.pread(source.fileno(), 4 * (b - a),
                                                      4 * (j * n + a)), dtype=np.float32)
                while pending is not None and pending[0] < b:
                    start, stop, missing = pending  # rows start:stop, maybe beyond b
                    lo, hi = max(start, a), min(stop, b)
                    block[:, lo - a:hi - a][missing[lo - start:hi - start].T] = np.nan
                    if stop > b:
                        break
                    pending = next(masks, None)
                columns = [pa.array(sample_ids[a:b], pa.string()),
                           *(pa.array(column, from_pandas=True) for column in block)]
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))
                del columns, block

    atomic_write(path, write)


def _write_feature_scores(path: Path, counts: Path, switch: Path, gene_ids: list[str],
                          n_tx: np.ndarray, sample_ids: list[str], block_bytes: int) -> None:
    """feature_scores.parquet from the (genes, samples) float64 gene-count and switch
    files, in blocks of genes (abundance: z-scored log2 CPM over all genes' counts)."""
    n, n_genes = len(sample_ids), len(gene_ids)
    step = max(1, block_bytes // (8 * n * 6))

    def rows(source: Path, a: int, b: int) -> np.ndarray:
        return np.fromfile(source, dtype=np.float64, count=(b - a) * n,
                           offset=a * n * 8).reshape(b - a, n)

    totals = np.zeros(n)
    for a in range(0, n_genes, step):
        totals += rows(counts, a, min(n_genes, a + step)).sum(axis=0)  # integers: exact

    def write(fh: BinaryIO) -> None:
        writer = None
        try:
            for a in range(0, n_genes, step):
                b = min(n_genes, a + step)
                abundance = _zscore_rows(np.log2(rows(counts, a, b) / totals * 1e6 + 0.5))
                frame = _feature_scores_frame(gene_ids[a:b], n_tx[a:b], abundance,
                                              rows(switch, a, b), sample_ids)
                table = arrow_table(frame)
                writer = writer or pq.ParquetWriter(fh, table.schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()

    atomic_write(path, write)


@dataclass
class _GenePlan:
    """The per-gene draws of one simulation (arrays over genes unless said otherwise)."""

    n_tx: np.ndarray  # transcripts per gene
    module_of: np.ndarray  # module index, -1 outside every module
    planted: np.ndarray  # the module genes, in module order
    factors: np.ndarray  # (modules, samples) standardised module factors
    factor_rows: np.ndarray  # factors plus an all-zero row for genes outside modules
    switches: np.ndarray  # bool: the gene carries an isoform switch
    abundance_effect: np.ndarray
    switch_effect: np.ndarray
    mean_count: np.ndarray
    size_factor: np.ndarray  # (samples,)
    up: np.ndarray  # transcript (index within the gene) going up with the factor
    down: np.ndarray  # and the one going down

    @property
    def n_modules(self) -> int:
        return self.factors.shape[0]


def _check_arguments(n_samples: int, n_genes: int, n_modules: int, genes_per_module: int,
                     transcripts_per_gene: tuple[int, int], nan_fraction: float
                     ) -> tuple[int, int]:
    lo, hi = (int(v) for v in transcripts_per_gene)
    if not 1 <= lo <= hi:
        raise InputError(f"transcripts_per_gene must satisfy 1 <= min <= max, got {transcripts_per_gene}")
    if n_modules * genes_per_module > n_genes:
        raise InputError(
            f"n_modules * genes_per_module = {n_modules * genes_per_module} exceeds n_genes = {n_genes}"
        )
    if n_samples < 3:
        raise InputError(f"n_samples must be >= 3, got {n_samples}")
    if not 0.0 <= nan_fraction < 1.0:
        raise InputError(f"nan_fraction must be in [0, 1), got {nan_fraction}")
    return lo, hi


def _plan_genes(rng: np.random.Generator, n_samples: int, n_genes: int, n_modules: int,
                genes_per_module: int, transcripts: tuple[int, int],
                switch_fraction: float) -> _GenePlan:
    """Module membership, factors, effects and switching transcripts of every gene."""
    lo, hi = transcripts
    n_tx = rng.integers(lo, hi + 1, size=n_genes)
    module_of = np.full(n_genes, -1, dtype=np.int64)
    planted = rng.permutation(n_genes)[: n_modules * genes_per_module]
    module_of[planted] = np.repeat(np.arange(n_modules), genes_per_module)

    factors = rng.standard_normal((n_modules, n_samples))
    factors = (factors - factors.mean(axis=1, keepdims=True)) / factors.std(axis=1, keepdims=True)
    # row n_modules is all zeros: the "factor" of genes outside every module
    factor_rows = np.vstack([factors, np.zeros((1, n_samples))])

    in_module = module_of >= 0
    switches = in_module & (n_tx >= 2) & (rng.random(n_genes) < switch_fraction)
    abundance_effect = np.where(
        in_module, rng.choice([-1.0, 1.0], n_genes) * rng.uniform(0.4, 1.0, n_genes), 0.0
    )
    switch_effect = np.where(switches, rng.uniform(1.0, 1.6, n_genes), 0.0)
    mean_count = np.exp(rng.normal(np.log(300.0), 0.8, n_genes))
    size_factor = np.exp(rng.normal(0.0, 0.2, n_samples))
    # the transcripts that go up / down with the factor (distinct; index within the gene)
    up = np.floor(rng.random(n_genes) * n_tx).astype(np.int64)
    down = (up + 1 + np.floor(rng.random(n_genes) * np.maximum(n_tx - 1, 1)).astype(np.int64)) % n_tx
    return _GenePlan(n_tx, module_of, planted, factors, factor_rows, switches,
                     abundance_effect, switch_effect, mean_count, size_factor, up, down)


def _simulate_transcripts(rng: np.random.Generator, plan: _GenePlan, n_samples: int,
                          n_psi_features: int, keep_counts: bool
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Counts of every transcript, in chunks of genes with equal transcript count.

    Returns the feature-table values (samples x [transcript usage | PSI], the PSI columns
    still to fill), gene counts (genes x samples), switch coordinates (genes x samples,
    NaN for one-transcript genes) and, with ``keep_counts``, the transcript counts."""
    n_transcripts_total = int(plan.n_tx.sum())
    n_genes = plan.n_tx.size
    values = np.empty((n_samples, n_transcripts_total + n_psi_features), dtype=np.float64)
    usage = values[:, :n_transcripts_total]
    gene_counts = np.empty((n_genes, n_samples), dtype=np.float64)
    switch_rows = np.full((n_genes, n_samples), np.nan, dtype=np.float64)
    kept_counts = np.empty((n_transcripts_total, n_samples)) if keep_counts else None
    for chunk in transcript_chunks(rng, plan, n_samples):
        gene_counts[chunk.genes] = chunk.gene_counts
        usage[:, chunk.columns] = chunk.usage.T
        if kept_counts is not None:
            kept_counts[chunk.columns] = chunk.counts
        if chunk.switch_rows is not None:
            switch_rows[chunk.genes] = chunk.switch_rows
    return values, gene_counts, switch_rows, kept_counts


@dataclass(frozen=True)
class TranscriptChunk:
    """One chunk of simulated genes (all with the same transcript count).

    ``genes``: gene indices [G]; ``columns``: their transcripts' feature-table columns
    [G * k] (gene-major); ``usage``: transcript usage [G * k, samples]; ``counts``: the
    transcript counts [G * k, samples]; ``gene_counts``: [G, samples]; ``switch_rows``:
    switch coordinates [G, samples], ``None`` for one-transcript genes. float64."""

    genes: np.ndarray
    columns: np.ndarray
    usage: np.ndarray
    counts: np.ndarray
    gene_counts: np.ndarray
    switch_rows: np.ndarray | None


def transcript_chunks(rng: np.random.Generator, plan: _GenePlan, n_samples: int
                      ) -> Iterator[TranscriptChunk]:
    """The simulated transcripts chunk by chunk, in the simulation's draw order (genes of
    equal transcript count together, ``_CHUNK_ELEMENTS`` values per chunk): what
    :func:`make_synthetic_dataset` assembles, and what a writer too large to hold the
    dataset streams to disk."""
    n_tx = plan.n_tx
    tx_offset = np.concatenate([[0], np.cumsum(n_tx)[:-1]])
    for k in np.unique(n_tx):
        genes_k = np.flatnonzero(n_tx == k)
        chunk = max(1, _CHUNK_ELEMENTS // (int(k) * n_samples))
        for start in range(0, genes_k.size, chunk):
            g = genes_k[start : start + chunk]
            counts = _transcript_counts(rng, plan, g, int(k), n_samples)
            totals = counts.sum(axis=1)  # (G, S)
            with np.errstate(invalid="ignore", divide="ignore"):
                chunk_usage = counts / totals[:, None, :]
            if np.any(totals == 0):  # an unexpressed gene in a sample: pseudocount usage
                pseudo = (counts + _PSEUDOCOUNT) / (totals[:, None, :] + _PSEUDOCOUNT * k)
                chunk_usage = np.where(totals[:, None, :] == 0, pseudo, chunk_usage)
            columns = (tx_offset[g, None] + np.arange(int(k))[None, :]).ravel()
            yield TranscriptChunk(g, columns, chunk_usage.reshape(-1, n_samples),
                                  counts.reshape(-1, n_samples), totals,
                                  switch_scores(counts) if k >= 2 else None)


def _transcript_counts(rng: np.random.Generator, plan: _GenePlan, g: np.ndarray, k: int,
                       n_samples: int) -> np.ndarray:
    """Poisson counts (genes g, k transcripts, samples): gene expression follows its
    module's factor, and a switching gene moves usage from ``down`` to ``up`` with it."""
    f = plan.factor_rows[np.where(plan.module_of[g] >= 0, plan.module_of[g], plan.n_modules)]
    expression = (
        plan.mean_count[g, None]
        * plan.size_factor[None, :]
        * np.exp(plan.abundance_effect[g, None] * f + 0.4 * rng.standard_normal(f.shape))
    )
    direction = np.zeros((g.size, k))
    if k >= 2:
        rows = np.arange(g.size)
        direction[rows, plan.up[g]] += 1.0
        direction[rows, plan.down[g]] -= 1.0
    logits = (
        rng.normal(0.0, 0.8, (g.size, k, 1))
        + 0.25 * rng.standard_normal((g.size, k, n_samples))
        + (plan.switch_effect[g, None] * direction)[:, :, None] * f[:, None, :]
    )
    logits -= logits.max(axis=1, keepdims=True)
    proportions = np.exp(logits)
    proportions /= proportions.sum(axis=1, keepdims=True)
    return rng.poisson(expression[:, None, :] * proportions).astype(np.float64)


def _mask_missing(rng: np.random.Generator, values: np.ndarray, nan_fraction: float) -> None:
    """Set each value to NaN with probability ``nan_fraction`` (in place, in row blocks)."""
    for start, stop, missing in missing_masks(rng, values.shape, nan_fraction):
        values[start:stop][missing] = np.nan


def missing_masks(rng: np.random.Generator, shape: tuple[int, int], nan_fraction: float
                  ) -> Iterator[tuple[int, int, np.ndarray]]:
    """The missing values of a (rows, columns) feature table, in blocks of rows
    ``start:stop`` (``_CHUNK_ELEMENTS`` values each): ``(start, stop, mask)``, mask bool
    [stop - start, columns], True where NaN; nothing when ``nan_fraction`` is 0."""
    n_rows, n_columns = shape
    if nan_fraction > 0:
        rows_per_block = max(1, _CHUNK_ELEMENTS // n_columns)
        for start in range(0, n_rows, rows_per_block):
            stop = min(n_rows, start + rows_per_block)
            yield start, stop, rng.random((stop - start, n_columns)) < nan_fraction


def _dataset_tables(plan: _GenePlan, values: np.ndarray, psi_genes: np.ndarray,
                    gene_ids: list[str], sample_ids: list[str], feature_scores: pd.DataFrame,
                    kept_counts: np.ndarray | None) -> SyntheticDataset:
    """The simulated arrays as the package's input tables (ids as strings) plus the truth."""
    n_tx, module_of = plan.n_tx, plan.module_of
    n_genes = n_tx.size
    module_names = [f"M{k:03d}" for k in range(plan.n_modules)]
    feature_ids, feature_meta, modules = id_tables(plan, psi_genes, gene_ids)
    feature_table = pd.DataFrame(values, columns=feature_ids, copy=False)
    feature_table.insert(0, "sample_id", text_column(sample_ids))

    switches, up, down = plan.switches, plan.up, plan.down
    truth = pd.DataFrame(
        {
            "gene_id": text_column(gene_ids),
            "module_id": text_column(
                [module_names[m] if m >= 0 else None for m in module_of]),
            "n_transcripts": n_tx.astype(np.int64),
            "switches": switches,
            "switch_up": text_column(
                [f"{gene_ids[i]}.T{up[i] + 1}" if switches[i] else None for i in range(n_genes)]),
            "switch_down": text_column(
                [f"{gene_ids[i]}.T{down[i] + 1}" if switches[i] else None for i in range(n_genes)]),
        }
    )
    module_factors = pd.DataFrame(plan.factors.T, columns=module_names)
    module_factors.insert(0, "sample_id", text_column(sample_ids))
    return SyntheticDataset(
        modules=modules,
        feature_scores=feature_scores,
        feature_table=feature_table,
        feature_meta=feature_meta,
        truth=truth,
        module_factors=module_factors,
        transcript_counts=kept_counts,
    )


def id_tables(plan: _GenePlan, psi_genes: np.ndarray, gene_ids: list[str]
              ) -> tuple[list[str], pd.DataFrame, pd.DataFrame]:
    """The feature table's feature ids (its column order), ``feature_meta`` and
    ``modules`` of a simulation (ids as strings)."""
    n_tx, module_of, planted = plan.n_tx, plan.module_of, plan.planted
    n_genes = n_tx.size
    module_names = [f"M{k:03d}" for k in range(plan.n_modules)]
    transcript_ids = [
        f"{gene_ids[gi]}.T{t + 1}" for gi in range(n_genes) for t in range(int(n_tx[gi]))
    ]
    psi_ids = [f"{gene_ids[gi]}:psi:E1" for gi in psi_genes]

    tx_gene = np.repeat(np.arange(n_genes), n_tx)
    meta_gene = [gene_ids[i] for i in tx_gene] + [gene_ids[i] for i in psi_genes]
    feature_meta = pd.DataFrame(
        {
            "feature_id": text_column([*transcript_ids, *psi_ids]),
            "gene_id": text_column(meta_gene),
            "feature_type": text_column(
                ["transcript_usage"] * len(transcript_ids) + ["psi"] * len(psi_ids)),
            "transcript_id": text_column([*transcript_ids, *([None] * len(psi_ids))]),
            "gene_name": text_column([f"{gid}_name" for gid in meta_gene]),
        }
    )

    modules = pd.DataFrame(
        {
            "gene_id": text_column([gene_ids[i] for i in planted]),
            "module_id": text_column([module_names[module_of[i]] for i in planted]),
        }
    ).sort_values(["module_id", "gene_id"], ignore_index=True)
    return [*transcript_ids, *psi_ids], feature_meta, modules


def switch_scores(counts: np.ndarray) -> np.ndarray:
    """Switch coordinates of genes with equal transcript count, as ``isograph fit`` makes them.

    ``counts``: (genes, transcripts, samples) float64, transcripts >= 2. Usage =
    (count + 0.5) / sum, CLR with eps 1e-8 clip, centre each transcript over samples, PC1 score
    (batched SVD); the largest-|loading| transcript is made positive (ties within 1e-9 * max go
    to the lowest index). Returns (genes, samples) float64.
    """
    pseudo = counts + _PSEUDOCOUNT
    composition = pseudo / np.clip(pseudo.sum(axis=1, keepdims=True), 1e-12, None)
    logs = np.log(np.clip(composition, _CLR_EPS, 1.0))
    clr = logs - logs.mean(axis=1, keepdims=True)
    centred = clr.transpose(0, 2, 1)  # (G, S, k)
    centred = centred - centred.mean(axis=1, keepdims=True)
    _, _, vh = np.linalg.svd(centred, full_matrices=False)
    loadings = vh[:, 0, :]  # (G, k)
    scores = np.matmul(centred, loadings[:, :, None])[:, :, 0]  # (G, S)
    magnitude = np.abs(loadings)
    top = magnitude.max(axis=1, keepdims=True)
    pivot = np.argmax(magnitude >= top - 1e-9 * top, axis=1)  # first of the tied maxima
    sign = np.where(loadings[np.arange(loadings.shape[0]), pivot] >= 0, 1.0, -1.0)
    return scores * sign[:, None]


def _zscore_rows(matrix: np.ndarray) -> np.ndarray:
    centred = matrix - matrix.mean(axis=1, keepdims=True)
    scale = centred.std(axis=1, keepdims=True)
    return centred / np.where(scale > 1e-12, scale, 1.0)


def _feature_scores_frame(
    gene_ids: list[str],
    n_tx: np.ndarray,
    abundance_rows: np.ndarray,
    switch_rows: np.ndarray,
    sample_ids: list[str],
) -> pd.DataFrame:
    """Interleave abundance and switch rows per gene (gene_ids are already sorted)."""
    n_genes = len(gene_ids)
    has_switch = n_tx >= 2
    per_gene = 1 + has_switch.astype(np.int64)
    gene_index = np.repeat(np.arange(n_genes), per_gene)
    is_switch = np.zeros(gene_index.size, dtype=bool)
    is_switch[np.cumsum(per_gene)[has_switch] - 1] = True
    matrix = np.empty((gene_index.size, abundance_rows.shape[1]), dtype=np.float64)
    matrix[~is_switch] = abundance_rows
    matrix[is_switch] = switch_rows[has_switch]
    gene_col = [gene_ids[i] for i in gene_index]
    kind = np.where(is_switch, "switch", "abundance")
    meta = pd.DataFrame(
        {
            "feature_id": text_column([f"{g}::{t}" for g, t in zip(gene_col, kind, strict=True)]),
            "gene_id": text_column(gene_col),
            "feature_type": text_column(kind.tolist()),
            "n_transcripts": np.where(is_switch, n_tx[gene_index].astype(np.float64), np.nan),
        }
    )
    scores = pd.DataFrame(matrix, columns=sample_ids, copy=False)
    return pd.concat([meta, scores], axis=1)


def _simulate_psi(
    rng: np.random.Generator,
    n_psi: int,
    module_of: np.ndarray,
    factor_rows: np.ndarray,
    n_modules: int,
) -> tuple[np.ndarray, np.ndarray]:
    """PSI of one exon for ``n_psi`` genes (module genes first, sorted): (genes, (S, n_psi))."""
    candidates = np.concatenate([np.flatnonzero(module_of >= 0), np.flatnonzero(module_of < 0)])
    genes = np.sort(candidates[: min(n_psi, candidates.size)])
    f = factor_rows[np.where(module_of[genes] >= 0, module_of[genes], n_modules)]
    n_samples = factor_rows.shape[1]
    logit = (
        rng.normal(0.0, 1.0, (genes.size, 1))
        + rng.uniform(0.8, 1.5, (genes.size, 1)) * f
        + 0.4 * rng.standard_normal((genes.size, n_samples))
    )
    return genes, (1.0 / (1.0 + np.exp(-logit))).T


def _ids(prefix: str, n: int, min_width: int) -> list[str]:
    width = max(min_width, len(str(max(n - 1, 0))))
    return [f"{prefix}{i:0{width}d}" for i in range(n)]


def _write_parquet_atomic(df: pd.DataFrame, path: Path) -> None:
    """Parquet without index, string columns as ``string`` (as the fit writes), atomically,
    with the permissions of any file the user creates (0666 less the umask)."""
    table = arrow_table(df)
    atomic_write(path, lambda fh: pq.write_table(table, fh))  # streamed, not held twice


def arrow_table(df: pd.DataFrame) -> pa.Table:
    """``df`` as the Arrow table the generator writes: no index, text as ``string``."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    fields = [
        pa.field(f.name, pa.string()) if pa.types.is_large_string(f.type) else f for f in table.schema
    ]
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))
