"""Reference tables from attribution arrays: ``vae_drivers`` (§9.3) and ``ig_attributions``
(§10 step 6), with isograph-gpu's deterministic tie rules (DESIGN deliberate differences 2, 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..text_columns import text_column
from .latent import direction_sign

VAE_DRIVER_COLUMNS = [
    "gene_id", "r", "qvalue", "feature_id", "feature_type", "decoded_delta", "latent_dim_idx",
    "latent_r", "decoded_delta_percentile", "sign_agreement", "passes_filter",
]
#: what the reference returns for an empty gene_driver_table
EMPTY_VAE_DRIVER_COLUMNS = [
    "gene_id", "decoded_delta", "latent_dim_idx", "latent_r", "decoded_delta_percentile",
    "sign_agreement", "passes_filter",
]
IG_COLUMNS = [
    "gene_id", "feature_id", "feature_type", "ig_score", "ig_score_corrected",
    "ig_score_abs_mean", "latent_dim_idx", "latent_r",
]
_DTYPES = {
    "gene_id": None, "feature_id": None, "feature_type": None, "r": "float64",
    "qvalue": "float64", "decoded_delta": "float64", "latent_dim_idx": "int64",
    "latent_r": "float64", "decoded_delta_percentile": "float64", "sign_agreement": "bool",
    "passes_filter": "bool",
}


def empty_vae_drivers() -> pd.DataFrame:
    """The reference's frame for a module without driver rows (7 columns, no rows)."""
    return pd.DataFrame({c: text_column([]) if _DTYPES[c] is None else pd.Series(dtype=_DTYPES[c])
                         for c in EMPTY_VAE_DRIVER_COLUMNS})


@dataclass(frozen=True)
class GeneRows:
    """feature_scores rows grouped by gene; build once (:func:`gene_row_index`), reuse."""

    #: gene id (str) -> gene code (first-appearance order)
    codes: dict[str, int]
    #: row indices sorted by gene code, ascending within a gene
    order: np.ndarray
    #: rows of gene code c are ``order[bounds[c]:bounds[c + 1]]``
    bounds: np.ndarray

    def rows_of(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All rows of ``genes`` flattened, and per row the position of its gene in ``genes``
        (a gene without rows contributes none)."""
        codes = np.fromiter((self.codes.get(g, -1) for g in genes), dtype=np.int64,
                            count=len(genes))
        known = codes >= 0
        starts = np.where(known, self.bounds[codes], 0)
        counts = np.where(known, self.bounds[codes + 1] - starts, 0)
        owner = np.repeat(np.arange(len(genes)), counts)
        offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        return self.order[np.repeat(starts, counts) + offsets], owner


def gene_row_index(gene_ids: np.ndarray) -> GeneRows:
    """Group feature_scores rows by gene id (compared as str)."""
    codes, uniques = pd.factorize(np.array([str(g) for g in gene_ids], dtype=object),
                                  sort=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    return GeneRows({g: i for i, g in enumerate(uniques)}, order, bounds)


def best_channels(gene_rows: GeneRows, genes: np.ndarray, decoded_delta: np.ndarray,
                  feature_ids: np.ndarray) -> np.ndarray:
    """Per gene of ``genes``, the row with the largest |decoded_delta| (-1 when the gene has
    no row). Ties, and genes whose values are all NaN, go to the lowest feature_id."""
    rows, owner = gene_rows.rows_of(genes)
    best = np.full(len(genes), -1, dtype=np.int64)
    if len(rows) == 0:
        return best
    size = np.abs(decoded_delta[rows])
    srt = np.lexsort((-size, owner))  # per gene: largest first, NaN last
    rows, owner, size = rows[srt], owner[srt], size[srt]
    lead = np.ones(len(rows), dtype=bool)
    lead[1:] = owner[1:] != owner[:-1]
    best[owner[lead]] = rows[lead]
    # a runner-up equal to its gene's leader (same size, or both NaN): decide by feature_id
    tied = ~lead[1:] & lead[:-1] & ((size[1:] == size[:-1])
                                    | (np.isnan(size[1:]) & np.isnan(size[:-1])))
    for i in np.flatnonzero(tied):
        same = owner == owner[i]
        top = size[i]
        equal = np.isnan(size) if np.isnan(top) else size == top
        candidates = rows[same & equal]
        best[owner[i]] = min(candidates, key=lambda row: str(feature_ids[row]))
    return best


def _as_str_objects(values: pd.Series) -> np.ndarray:
    out = values.to_numpy(dtype=object)
    return np.array([v if type(v) is str else str(v) for v in out], dtype=object)


def vae_driver_table(driver_table: pd.DataFrame, gene_ids: np.ndarray, feature_ids: np.ndarray,
                     feature_types: np.ndarray, decoded_delta: np.ndarray, latent_dim_idx: int,
                     latent_r: float, fdr_threshold: float = 0.05,
                     percentile_threshold: float = 90.0,
                     gene_rows: GeneRows | None = None) -> pd.DataFrame:
    """``vae_drivers`` for one module.

    ``gene_ids``/``feature_ids``/``feature_types``/``decoded_delta`` are per feature_scores
    row (length d); ``gene_rows`` (from :func:`gene_row_index`) may be passed to reuse it
    across modules. Per gene the channel with the largest |decoded_delta| is kept (ties and
    all-NaN: lowest feature_id), left-joined onto the driver table's ``gene_id, r, qvalue``;
    then the percentile rank of |decoded_delta|, the direction-corrected sign rule and
    ``passes_filter``; rows sorted by |decoded_delta| descending, NaN last, ties by gene_id.
    """
    if len(driver_table) == 0:
        return empty_vae_drivers()
    if gene_rows is None:
        gene_rows = gene_row_index(gene_ids)
    delta_all = np.asarray(decoded_delta, dtype=np.float64)
    fids = np.asarray(feature_ids, dtype=object)
    ftypes = np.asarray(feature_types, dtype=object)
    genes = _as_str_objects(driver_table["gene_id"])
    m = len(genes)
    pick = best_channels(gene_rows, genes, delta_all, fids)
    found = pick >= 0  # a driver gene the VAE does not decode: NaN, as a left join gives
    safe = np.where(found, pick, 0)
    best_fid = np.where(found, fids[safe], None)
    best_type = np.where(found, ftypes[safe], None)
    delta = np.where(found, delta_all[safe], np.nan)

    size = np.abs(delta)
    if np.isfinite(size).any() and np.nanmax(size) > 0:
        percentile = pd.Series(size).rank(method="average", pct=True).to_numpy() * 100.0
    else:
        percentile = np.zeros(m)
    r = driver_table["r"].to_numpy(dtype=np.float64)
    q = driver_table["qvalue"].to_numpy(dtype=np.float64)
    sign_agreement = np.sign(delta * direction_sign(float(latent_r))) == np.sign(r)
    with np.errstate(invalid="ignore"):
        passes = (q <= fdr_threshold) & (percentile >= percentile_threshold) & sign_agreement
    gene_rank = np.empty(m, dtype=np.int64)
    gene_rank[np.argsort(genes.astype(str), kind="stable")] = np.arange(m)
    order = np.lexsort((gene_rank, -size))  # NaN last
    return pd.DataFrame({  # columns in VAE_DRIVER_COLUMNS order
        "gene_id": text_column(genes[order]),
        "r": r[order], "qvalue": q[order],
        "feature_id": text_column(best_fid[order]),
        "feature_type": text_column(best_type[order]),
        "decoded_delta": delta[order],
        "latent_dim_idx": np.full(m, latent_dim_idx, dtype=np.int64),
        "latent_r": np.full(m, float(latent_r)),
        "decoded_delta_percentile": percentile[order],
        "sign_agreement": sign_agreement[order],
        "passes_filter": passes[order],
    })


def feature_id_rank(feature_ids: np.ndarray) -> np.ndarray:
    """Rank of each feature id in ascending string order (int64), for tie-breaking."""
    ids = np.asarray(feature_ids).astype(str)
    rank = np.empty(len(ids), dtype=np.int64)
    rank[np.argsort(ids, kind="stable")] = np.arange(len(ids))
    return rank


def ig_attribution_table(gene_ids: np.ndarray, feature_ids: np.ndarray,
                         feature_types: np.ndarray, ig_score: np.ndarray,
                         ig_score_abs_mean: np.ndarray, latent_dim_idx: int,
                         latent_r: float, feature_rank: np.ndarray | None = None
                         ) -> pd.DataFrame:
    """``ig_attributions`` for one module: one row per feature_scores row, sorted by
    |ig_score| descending (NaN last), ties by feature_id ascending.

    ``feature_rank`` (from :func:`feature_id_rank`) may be passed to reuse it across modules.
    """
    score = np.asarray(ig_score, dtype=np.float64)
    rank = feature_id_rank(feature_ids) if feature_rank is None else feature_rank
    order = np.lexsort((rank, -np.abs(score)))  # NaN sorts last
    direction = direction_sign(float(latent_r))
    return pd.DataFrame({
        "gene_id": text_column(np.asarray(gene_ids, dtype=object)[order]),
        "feature_id": text_column(np.asarray(feature_ids, dtype=object)[order]),
        "feature_type": text_column(np.asarray(feature_types, dtype=object)[order]),
        "ig_score": score[order],
        "ig_score_corrected": score[order] * direction,
        "ig_score_abs_mean": np.asarray(ig_score_abs_mean, dtype=np.float64)[order],
        "latent_dim_idx": np.full(len(score), latent_dim_idx, dtype=np.int64),
        "latent_r": np.full(len(score), float(latent_r), dtype=np.float64),
    })
