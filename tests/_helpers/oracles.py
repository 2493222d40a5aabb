"""The one set of reference implementations every statistic's test compares against:
scipy/numpy written plainly, one feature and one score column at a time. Inputs are
numpy float64 (NaN/inf = missing); outputs numpy, shapes [F, K] unless said otherwise.
Nothing here imports isograph_gpu."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats


def pearson(x: np.ndarray, y: np.ndarray, min_pairs: int = 3
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise-complete ``scipy.stats.pearsonr`` of every column of x [n, F] against every
    column of y [n, K]: (r, p, n); r and p NaN with fewer than ``min_pairs`` pairs."""
    x, y = _as_2d(x), _as_2d(y)
    f, k = x.shape[1], y.shape[1]
    r = np.full((f, k), np.nan)
    p = np.full((f, k), np.nan)
    n = np.zeros((f, k), dtype=np.int64)
    for i in range(f):
        for j in range(k):
            both = np.isfinite(x[:, i]) & np.isfinite(y[:, j])
            n[i, j] = both.sum()
            if n[i, j] < min_pairs:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = stats.pearsonr(x[both, i], y[both, j])
            r[i, j], p[i, j] = res.statistic, res.pvalue
    return r, p, n


@dataclass
class Welch:
    """scipy's Welch t-test of each feature, high vs low group of each score column."""

    mean_high: np.ndarray
    mean_low: np.ndarray
    delta: np.ndarray
    se: np.ndarray
    tstat: np.ndarray
    pvalue: np.ndarray
    n_high: np.ndarray
    n_low: np.ndarray


def welch(x: np.ndarray, high: np.ndarray, low: np.ndarray) -> Welch:
    """``scipy.stats.ttest_ind(equal_var=False)`` of the finite values of each column of
    x [n, F] in the high vs the low samples (bool [n, K]); NaN (but counts) when a group
    has fewer than 2 values; se from ddof=1 variances."""
    x, high, low = _as_2d(x), _as_2d(high), _as_2d(low)
    f, k = x.shape[1], high.shape[1]
    out = {name: np.full((f, k), np.nan) for name in
           ("mean_high", "mean_low", "delta", "se", "tstat", "pvalue")}
    n_high = np.zeros((f, k), dtype=np.int64)
    n_low = np.zeros((f, k), dtype=np.int64)
    for i in range(f):
        for j in range(k):
            a = x[high[:, j], i]
            b = x[low[:, j], i]
            a, b = a[np.isfinite(a)], b[np.isfinite(b)]
            n_high[i, j], n_low[i, j] = len(a), len(b)
            if len(a) < 2 or len(b) < 2:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = stats.ttest_ind(a, b, equal_var=False)
            out["mean_high"][i, j], out["mean_low"][i, j] = a.mean(), b.mean()
            out["delta"][i, j] = a.mean() - b.mean()
            out["se"][i, j] = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
            out["tstat"][i, j], out["pvalue"][i, j] = res.statistic, res.pvalue
    return Welch(n_high=n_high, n_low=n_low, **out)


@dataclass
class GroupSums:
    """Per feature x group column [F, G]: finite values in the group, and the sum and sum
    of squares of their deviations from the feature's mean over all samples."""

    count: np.ndarray
    total: np.ndarray
    squares: np.ndarray


def group_sums(x: np.ndarray, member: np.ndarray) -> GroupSums:
    """Each group column of ``member`` (bool [n, G]) on its own, overlaps included: the
    finite values of each column of x [n, F] in the group, centred by the column's mean
    over all its finite values (a column with none contributes nothing)."""
    x, member = _as_2d(x), _as_2d(member)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column: mean NaN
        centre = np.nanmean(x, axis=0)
    f, g = x.shape[1], member.shape[1]
    out = GroupSums(count=np.zeros((f, g), dtype=np.int64), total=np.zeros((f, g)),
                    squares=np.zeros((f, g)))
    for j in range(g):
        inside = member[:, j, None] & np.isfinite(x)
        v = np.where(inside, x - centre, 0.0)
        out.count[:, j] = inside.sum(axis=0)
        out.total[:, j] = v.sum(axis=0)
        out.squares[:, j] = (v * v).sum(axis=0)
    return out


def fdr(p: np.ndarray, family: np.ndarray | None = None, method: str = "bh") -> np.ndarray:
    """``scipy.stats.false_discovery_control`` per column of p [F, K] (or [F]) over the
    finite members of its family (bool, default all); NaN elsewhere."""
    p = np.asarray(p, dtype=float)
    if p.ndim == 1:
        return fdr(p[:, None], None if family is None else family[:, None], method)[:, 0]
    q = np.full_like(p, np.nan)
    for j in range(p.shape[1]):
        member = np.isfinite(p[:, j])
        if family is not None:
            member &= family[:, j]
        if member.any():
            q[member, j] = stats.false_discovery_control(p[member, j], method=method)
    return q


def switch_strength(r: np.ndarray, segment: np.ndarray, n_segments: int) -> np.ndarray:
    """max r - min r over each segment's finite r [G, K] when it has >= 2, else 0."""
    r = _as_2d(r)
    out = np.zeros((n_segments, r.shape[1]))
    for g in range(n_segments):
        for j in range(r.shape[1]):
            vals = r[segment == g, j]
            vals = vals[np.isfinite(vals)]
            if vals.size >= 2:
                out[g, j] = vals.max() - vals.min()
    return out


def segment_argmax(values: np.ndarray, segment: np.ndarray, n_segments: int) -> np.ndarray:
    """Row index of the first maximum of values [F, K] within each segment; -1 if empty."""
    values = _as_2d(values)
    out = np.full((n_segments, values.shape[1]), -1, dtype=np.int64)
    for g in range(n_segments):
        rows = np.flatnonzero(segment == g)
        if rows.size:
            out[g] = rows[np.argmax(values[rows], axis=0)]
    return out


def percentile_split(scores: np.ndarray, percentile: float) -> tuple[np.ndarray, np.ndarray]:
    """high = finite score >= np.nanpercentile (linear), low = the other finite scores."""
    scores = _as_2d(scores)
    finite = np.isfinite(scores)
    high = np.zeros(scores.shape, dtype=bool)
    for j in range(scores.shape[1]):
        if finite[:, j].any():
            high[:, j] = finite[:, j] & (scores[:, j] >= np.nanpercentile(scores[:, j],
                                                                          percentile))
    return high, finite & ~high


def tail_split(scores: np.ndarray, tail_percent: float) -> tuple[np.ndarray, np.ndarray]:
    """high = score >= nanpercentile(100 - Q), low = score <= nanpercentile(Q), not high."""
    scores = _as_2d(scores)
    finite = np.isfinite(scores)
    high = np.zeros(scores.shape, dtype=bool)
    low = np.zeros(scores.shape, dtype=bool)
    for j in range(scores.shape[1]):
        e = scores[:, j]
        if finite[:, j].any():
            high[:, j] = finite[:, j] & (e >= np.nanpercentile(e, 100.0 - tail_percent))
            low[:, j] = finite[:, j] & (e <= np.nanpercentile(e, tail_percent)) & ~high[:, j]
    return high, low


def eigengene(matrix: np.ndarray) -> np.ndarray:
    """isograph 0.1.5's compute_eigengene, written plainly (module rows x samples)."""
    if len(matrix) == 1:
        return matrix[0]
    signs = np.ones(len(matrix))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(1, len(matrix)):
            m = np.isfinite(matrix[i]) & np.isfinite(matrix[0])
            if m.sum() >= 3 and np.corrcoef(matrix[i][m], matrix[0][m])[0, 1] < 0:
                signs[i] = -1.0
        for _ in range(5):
            e = np.nanmean(matrix * signs[:, None], axis=0)
            new = signs.copy()
            for i in range(len(matrix)):
                m = np.isfinite(matrix[i]) & np.isfinite(e)
                if m.sum() >= 3:
                    new[i] = 1.0 if np.corrcoef(matrix[i][m], e[m])[0, 1] >= 0 else -1.0
            if np.all(new == signs):
                break
            signs = new
        return np.nanmean(matrix * signs[:, None], axis=0)


def _as_2d(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a[:, None] if a.ndim == 1 else a


def canonical_eigengene(matrix: np.ndarray) -> np.ndarray:
    """The ``canonical`` eigengene (module rows x samples, rows already in feature_id
    order): :func:`eigengene`, negated when its Pearson r with the plain mean of the rows
    is negative on at least 3 complete samples."""
    e = eigengene(matrix)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mean = np.nanmean(matrix, axis=0)
        both = np.isfinite(e) & np.isfinite(mean)
        if both.sum() >= 3 and np.corrcoef(e[both], mean[both])[0, 1] < 0:
            return -e
    return e


def complete(*columns: np.ndarray) -> np.ndarray:
    """Rows [n] finite in every column given ([n] or [n, c] each)."""
    return np.all([np.isfinite(c).all(axis=1) if c.ndim == 2 else np.isfinite(c)
                   for c in columns], axis=0)


def partial_pearson(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[float, int]:
    """Pearson r of the OLS residuals of x [n] and y [n] on [1, z] (z [n, c]) over their
    complete samples, and the number of those samples."""
    ok = complete(x, y, z)
    design = np.column_stack([np.ones(ok.sum()), z[ok]])
    rx = x[ok] - design @ np.linalg.lstsq(design, x[ok], rcond=None)[0]
    ry = y[ok] - design @ np.linalg.lstsq(design, y[ok], rcond=None)[0]
    return float(np.corrcoef(rx, ry)[0, 1]), int(ok.sum())


def _plain_r(x: np.ndarray, y: np.ndarray, min_pairs: int = 3) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < min_pairs or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return np.nan
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def gene_switch_strength(x: np.ndarray, y: np.ndarray, segments: np.ndarray,
                         gene: int) -> float:
    """max r - min r of the finite pairwise-complete r of gene's columns of x [n, F] with
    y [n]; 0 with fewer than 2."""
    r = np.array([_plain_r(x[:, f], y) for f in np.flatnonzero(segments == gene)])
    r = r[np.isfinite(r)]
    return float(r.max() - r.min()) if len(r) >= 2 else 0.0


def switch_permutation_pvalues(x: np.ndarray, scores: np.ndarray, segments: np.ndarray,
                               permutations: np.ndarray) -> np.ndarray:
    """Permutation p [G, K] of each gene's switch strength by a plain loop over genes,
    score columns (scores [n, K]) and permutations ([P, n] sample orders: the scores move,
    the masks of x stay): (1 + #null >= observed) / (P + 1)."""
    genes = segments.max() + 1
    p = np.empty((genes, scores.shape[1]))
    for k in range(scores.shape[1]):
        for g in range(genes):
            observed = gene_switch_strength(x, scores[:, k], segments, g)
            null = [gene_switch_strength(x, scores[order, k], segments, g)
                    for order in permutations]
            p[g, k] = (1 + sum(v >= observed for v in null)) / (len(permutations) + 1)
    return p
