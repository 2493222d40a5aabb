"""Table selections shared by the figures (pandas/numpy only, nothing drawn here)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.ndimage import uniform_filter1d

from ..errors import InputError

if TYPE_CHECKING:
    from ..result import ExplainResult

#: two-sided 95 % normal quantile
Z_95 = 1.959963984540054


def gene_name_map(feature_meta: pd.DataFrame | None) -> dict[str, str]:
    """gene_id -> gene_name from feature_meta (empty when it has no ``gene_name`` column)."""
    if feature_meta is None or "gene_name" not in feature_meta.columns \
            or "gene_id" not in feature_meta.columns:
        return {}
    meta = feature_meta[["gene_id", "gene_name"]].dropna().drop_duplicates("gene_id")
    return {str(g): str(n) for g, n in zip(meta["gene_id"], meta["gene_name"], strict=True)
            if str(n).strip()}


def feature_type_map(feature_meta: pd.DataFrame | None) -> dict[str, str]:
    """feature_id -> feature_type from feature_meta (empty without those columns)."""
    if feature_meta is None or "feature_id" not in feature_meta.columns \
            or "feature_type" not in feature_meta.columns:
        return {}
    meta = feature_meta[["feature_id", "feature_type"]].dropna().drop_duplicates("feature_id")
    return {str(f): str(t) for f, t in zip(meta["feature_id"], meta["feature_type"],
                                           strict=True)}


#: how a feature type reads on an axis ("mean <this>")
FEATURE_TYPE_NAMES = {"transcript_usage": "transcript usage", "psi": "PSI"}


def gene_label(gene_id: object, gene_names: Mapping[str, str] | None) -> str:
    """The gene's name when known, else its id."""
    gid = str(gene_id)
    return (gene_names or {}).get(gid, gid)


def feature_label(feature_id: object, gene_id: object,
                  gene_names: Mapping[str, str] | None) -> str:
    """``name · feature`` when the gene has a name, else the feature id alone."""
    fid, gid = str(feature_id), str(gene_id)
    name = (gene_names or {}).get(gid)
    return f"{name} · {fid}" if name and name != gid else fid


def transcript_label(row: pd.Series) -> str:
    """Transcript id when the polarity table has one, else the feature id."""
    tid = row.get("transcript_id") if "transcript_id" in row.index else None
    if tid is None or (isinstance(tid, float) and np.isnan(tid)) or tid is pd.NA:
        return str(row["feature_id"])
    return str(tid)


#: labels inside cells and bars longer than this lose the prefix they all share
CROWDED_LABEL_CHARS = 10
#: the shortest shared prefix worth replacing (ENST00000 of Ensembl transcripts is 9)
MIN_SHARED_PREFIX = 5
#: characters every compacted label keeps after the shared prefix, at least
MIN_KEPT_CHARS = 4


def compact_labels(labels: Sequence[str]) -> tuple[list[str], str]:
    """Labels for tight spaces (heatmap cells, inside bars): when any is longer than
    :data:`CROWDED_LABEL_CHARS`, the prefix all of them share (at least
    :data:`MIN_SHARED_PREFIX` characters, leaving each at least :data:`MIN_KEPT_CHARS`)
    becomes "…": ENST00000456328.2 / ENST00000450305.2 -> …456328.2 / …450305.2.
    Returns (labels, the prefix removed, "" when none)."""
    texts = [str(x) for x in labels]
    if not texts or max(map(len, texts)) <= CROWDED_LABEL_CHARS:
        return texts, ""
    prefix = texts[0][: min(map(len, texts)) - MIN_KEPT_CHARS]
    for text in texts[1:]:  # the longest prefix of characters every label starts with
        while not text.startswith(prefix):
            prefix = prefix[:-1]
    if len(prefix) < MIN_SHARED_PREFIX:
        return texts, ""
    return ["\u2026" + t[len(prefix):] for t in texts], prefix


def fisher_z_ci(r: np.ndarray, n: np.ndarray, z: float = Z_95) -> tuple[np.ndarray, np.ndarray]:
    """95 % CI of Pearson r via Fisher's z: ``tanh(atanh(r) ± z·se)``, se = 1/sqrt(max(n-3, 1)).

    r is clipped to ±0.9999 first (as the reference does); the interval is then widened to
    contain the unclipped r itself (|r| up to 1, e.g. a single-gene module's driver, which
    is its own eigengene), so ``lo <= r <= hi`` always. NaN r or n gives NaN ends.
    Shapes (k,), float64.
    """
    r = np.asarray(r, dtype=np.float64)
    clipped = np.clip(r, -0.9999, 0.9999)
    se = 1.0 / np.sqrt(np.maximum(np.asarray(n, dtype=np.float64) - 3.0, 1.0))
    zr = np.arctanh(clipped)
    lo, hi = np.tanh(zr - z * se), np.tanh(zr + z * se)
    return np.minimum(lo, r), np.maximum(hi, r)  # NaN propagates


def abs_r_interval(r: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The CI ``[lo, hi]`` of r mapped to |r| (lower end floored at 0 when it spans 0)."""
    r = np.asarray(r, dtype=np.float64)
    abs_lo = np.where(r >= 0, lo, -hi)
    abs_hi = np.where(r >= 0, hi, -lo)
    return np.clip(abs_lo, 0.0, 1.0), np.clip(abs_hi, 0.0, 1.0)


def top_drivers(driver_table: pd.DataFrame, top_n: int) -> pd.DataFrame:
    """Driver rows with finite r, |r| descending, ties by gene_id ascending; first ``top_n``."""
    if driver_table is None or len(driver_table) == 0 or "r" not in driver_table.columns:
        return pd.DataFrame(columns=["gene_id", "r", "n_samples"])
    abs_r = np.abs(pd.to_numeric(driver_table["r"], errors="coerce").to_numpy(np.float64))
    genes = driver_table["gene_id"].astype(str).to_numpy(dtype=object)
    finite = np.flatnonzero(np.isfinite(abs_r))
    # stable: equal |r| and gene keep their table order (numpy, not pandas: these tables
    # are tens of rows, where every pandas call costs more than the work)
    order = sorted(finite.tolist(), key=lambda i: (-abs_r[i], genes[i]))[: max(int(top_n), 0)]
    return driver_table.iloc[order].reset_index(drop=True)


def transcript_ranks(gene_ids: Sequence[str], feature_ids: Sequence[str],
                     r: np.ndarray) -> dict[str, list[int]]:
    """Row positions of each gene's transcripts, r descending (NaN last), ties by
    feature_id then table order; genes in first-seen order."""
    key = np.where(np.isnan(r), -np.inf, r)
    ranks: dict[str, list[int]] = {}
    for i in range(len(gene_ids)):
        ranks.setdefault(gene_ids[i], []).append(i)
    for positions in ranks.values():
        positions.sort(key=lambda i: (-key[i], feature_ids[i]))
    return ranks


def gene_switch_strength(polarity: pd.DataFrame) -> pd.Series:
    """One switch_strength per gene (gene_id index, sorted ascending), from the polarity table."""
    if polarity is None or len(polarity) == 0:
        return pd.Series(dtype=np.float64)
    table = polarity.assign(gene_id=polarity["gene_id"].astype(str))
    return table.groupby("gene_id", sort=True)["switch_strength"].first().astype(np.float64)


def figure_feature_ids(results: Iterable[ExplainResult]) -> list[str]:
    """The feature ids whose usage the figures of ``results`` draw: each module's
    transcripts (its polarity table's feature_id), first appearance first, no repeats."""
    ids: dict[str, None] = {}
    for result in results:
        polarity = result.transcript_polarity_table
        if polarity is not None and "feature_id" in polarity.columns:
            ids.update(dict.fromkeys(polarity["feature_id"].astype(str)))
    return list(ids)


def usage_frame(feature_usage: pd.DataFrame) -> pd.DataFrame:
    """Samples x features usage with string sample ids as index (a ``sample_id`` column,
    when present, becomes the index) and string column names. No copy when already so."""
    usage = feature_usage
    if "sample_id" in usage.columns:
        usage = usage.set_index("sample_id")
    # inferred_type is cached on the Index: no per-call scan of every label
    if len(usage.index) and usage.index.inferred_type != "string":
        usage = usage.set_axis(usage.index.astype(str), axis=0)
    if len(usage.columns) and usage.columns.inferred_type != "string":
        usage = usage.set_axis(usage.columns.astype(str), axis=1)
    return usage


def aligned_usage(feature_usage: pd.DataFrame, sample_ids: list[str],
                  feature_ids: list[str]) -> np.ndarray:
    """Usage of ``feature_ids`` at ``sample_ids`` (NaN where absent): float64 (samples, feats)."""
    usage = usage_frame(feature_usage)
    missing = [f for f in feature_ids if f not in usage.columns]
    if missing:
        raise InputError(f"feature usage table has no column for feature {missing[0]!r}")
    sub = usage[list(feature_ids)].reindex(index=[str(s) for s in sample_ids])
    return sub.to_numpy(dtype=np.float64)


def moving_average_trend(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference trend: sort the finite pairs by x and smooth y with a centred moving average
    (window max(3, n // 8), ``uniform_filter1d`` in ``nearest`` mode). Returns (x, trend)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    xs, ys = x[ok], y[ok]
    if xs.size == 0:
        return xs, ys
    order = np.argsort(xs, kind="stable")
    window = max(3, xs.size // 8)
    return xs[order], uniform_filter1d(ys[order], size=window, mode="nearest")


def zscore_rows(values: np.ndarray, clip: float = 2.5) -> np.ndarray:
    """Per-row z-score ignoring NaN (population SD; constant rows -> 0), clipped to ±clip."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full_like(values, np.nan)
    for i, row in enumerate(values):
        ok = np.isfinite(row)
        if not ok.any():
            continue
        mean = row[ok].mean()
        sd = row[ok].std()
        out[i, ok] = (row[ok] - mean) / sd if sd > 1e-12 else 0.0
    return np.clip(out, -clip, clip)
