"""Reference tables from attribution arrays: ``vae_drivers`` (§9.3) and ``ig_attributions``
(§10 step 6), with isograph-gpu's deterministic tie rules (DESIGN deliberate differences 2, 3).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

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
    "gene_id": "str", "feature_id": "str", "feature_type": "str", "r": "float64",
    "qvalue": "float64", "decoded_delta": "float64", "latent_dim_idx": "int64",
    "latent_r": "float64", "decoded_delta_percentile": "float64", "sign_agreement": "bool",
    "passes_filter": "bool",
}


def _direction(latent_r: float) -> float:
    return -1.0 if latent_r < 0 else 1.0


def empty_vae_drivers() -> pd.DataFrame:
    """The reference's frame for a module without driver rows (7 columns, no rows)."""
    return pd.DataFrame({c: pd.Series(dtype=_DTYPES[c]) for c in EMPTY_VAE_DRIVER_COLUMNS})


def vae_driver_table(driver_table: pd.DataFrame, gene_ids: np.ndarray, feature_ids: np.ndarray,
                     feature_types: np.ndarray, decoded_delta: np.ndarray, latent_dim_idx: int,
                     latent_r: float, fdr_threshold: float = 0.05,
                     percentile_threshold: float = 90.0) -> pd.DataFrame:
    """``vae_drivers`` for one module.

    ``gene_ids``/``feature_ids``/``feature_types``/``decoded_delta`` are per feature_scores
    row (length d). Per gene the channel with the largest |decoded_delta| is kept (ties: lowest
    feature_id), left-joined onto the driver table's ``gene_id, r, qvalue``; then the
    percentile rank of |decoded_delta|, the direction-corrected sign rule and
    ``passes_filter``; rows sorted by |decoded_delta| descending, NaN last, ties by gene_id.
    """
    if len(driver_table) == 0:
        return empty_vae_drivers()
    delta = np.asarray(decoded_delta, dtype=np.float64)
    jac = pd.DataFrame({
        "gene_id": pd.array(np.asarray(gene_ids, dtype=object), dtype="str"),
        "feature_id": pd.array(np.asarray(feature_ids, dtype=object), dtype="str"),
        "feature_type": pd.array(np.asarray(feature_types, dtype=object), dtype="str"),
        "decoded_delta": delta,
    })
    jac["_abs"] = np.abs(delta)
    best = (jac.sort_values(["_abs", "feature_id"], ascending=[False, True],
                            na_position="last", kind="mergesort")
            .drop_duplicates("gene_id", keep="first")
            .drop(columns="_abs"))
    best["latent_dim_idx"] = np.int64(latent_dim_idx)
    best["latent_r"] = float(latent_r)
    drivers = driver_table[["gene_id", "r", "qvalue"]].copy()
    drivers["gene_id"] = drivers["gene_id"].astype("str")
    out = drivers.merge(best, on="gene_id", how="left")
    out["latent_dim_idx"] = np.int64(latent_dim_idx)  # a driver gene absent from the VAE
    out["latent_r"] = float(latent_r)

    abs_delta = out["decoded_delta"].abs()
    if abs_delta.notna().any() and float(abs_delta.max()) > 0:
        pct = abs_delta.rank(method="average", pct=True) * 100.0
    else:
        pct = pd.Series(0.0, index=out.index)
    out["decoded_delta_percentile"] = pct.astype("float64")
    dd = out["decoded_delta"].to_numpy(dtype=np.float64)
    r = out["r"].to_numpy(dtype=np.float64)
    q = out["qvalue"].to_numpy(dtype=np.float64)
    sign_agreement = np.sign(dd * _direction(float(latent_r))) == np.sign(r)
    out["sign_agreement"] = sign_agreement
    with np.errstate(invalid="ignore"):
        out["passes_filter"] = ((q <= fdr_threshold)
                                & (out["decoded_delta_percentile"].to_numpy() >= percentile_threshold)
                                & sign_agreement)
    out["_abs"] = np.abs(dd)
    out = (out.sort_values(["_abs", "gene_id"], ascending=[False, True], na_position="last",
                           kind="mergesort")
           .drop(columns="_abs").reset_index(drop=True))
    return out[VAE_DRIVER_COLUMNS].astype(_DTYPES)


def ig_attribution_table(gene_ids: np.ndarray, feature_ids: np.ndarray,
                         feature_types: np.ndarray, ig_score: np.ndarray,
                         ig_score_abs_mean: np.ndarray, latent_dim_idx: int,
                         latent_r: float) -> pd.DataFrame:
    """``ig_attributions`` for one module: one row per feature_scores row, sorted by
    |ig_score| descending (NaN last), ties by feature_id ascending."""
    score = np.asarray(ig_score, dtype=np.float64)
    out = pd.DataFrame({
        "gene_id": pd.array(np.asarray(gene_ids, dtype=object), dtype="str"),
        "feature_id": pd.array(np.asarray(feature_ids, dtype=object), dtype="str"),
        "feature_type": pd.array(np.asarray(feature_types, dtype=object), dtype="str"),
        "ig_score": score,
        "ig_score_corrected": score * _direction(float(latent_r)),
        "ig_score_abs_mean": np.asarray(ig_score_abs_mean, dtype=np.float64),
        "latent_dim_idx": np.full(len(score), latent_dim_idx, dtype=np.int64),
        "latent_r": np.full(len(score), float(latent_r), dtype=np.float64),
    })
    out["_abs"] = np.abs(score)
    return (out.sort_values(["_abs", "feature_id"], ascending=[False, True], na_position="last",
                            kind="mergesort")
            .drop(columns="_abs").reset_index(drop=True))
