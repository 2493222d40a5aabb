"""High-vs-low contrasts: percentile / tail group split per eigengene and Welch statistics
from masked group sums (computed as GEMMs with one-hot group matrices by
:func:`isograph_gpu.ops.moments.moments_and_group_sums`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .moments import CentredGroups


def percentile_split(scores: Tensor, percentile: float) -> tuple[Tensor, Tensor]:
    """Reference split per column of ``scores`` [n, K]: high = score >= nanpercentile
    (linear interpolation), low = the other samples with a finite score.

    Returns two bool tensors [n, K]. Samples with a NaN score join neither group
    (isograph 0.1.5 puts them in low; a documented deliberate difference).
    """
    threshold = torch.nanquantile(scores.to(torch.float64), percentile / 100.0, dim=0,
                                  interpolation="linear")
    finite = torch.isfinite(scores)
    high = finite & (scores.to(torch.float64) >= threshold)
    return high, finite & ~high


def tail_split(scores: Tensor, tail_percent: float) -> tuple[Tensor, Tensor]:
    """Top vs bottom ``tail_percent`` % of samples ranked by each column of ``scores``.

    high = score >= nanpercentile(100 - Q), low = score <= nanpercentile(Q); NaN scores
    join neither group. Returns two bool tensors [n, K].
    """
    s = scores.to(torch.float64)
    upper = torch.nanquantile(s, 1.0 - tail_percent / 100.0, dim=0, interpolation="linear")
    lower = torch.nanquantile(s, tail_percent / 100.0, dim=0, interpolation="linear")
    finite = torch.isfinite(s)
    return finite & (s >= upper), finite & (s <= lower) & ~(s >= upper)


@dataclass
class WelchResult:
    """Welch two-sample statistics, each [F, K] (float64 except counts, int64): the one
    Welch container of the package (the chunk step's, the engine's [F, K] results, the
    training API's). ``df`` is None where it is not kept (the engine's results: the tables
    do not need it); ``pvalue`` (float64) is None until computed."""

    mean_high: Tensor
    mean_low: Tensor
    delta: Tensor
    se: Tensor
    tstat: Tensor
    df: Tensor | None
    n_high: Tensor
    n_low: Tensor
    pvalue: Tensor | None = None


def welch_from_sums(
    count_h: Tensor, sum_h: Tensor, sq_h: Tensor,
    count_l: Tensor, sum_l: Tensor, sq_l: Tensor,
    centre: Tensor,
    scale: Tensor | None = None,
    *,
    centred: tuple[CentredGroups, CentredGroups] | None = None,
) -> WelchResult:
    """Welch statistics from group sums of centred values (centre [F] added back), in
    units of ``scale`` [F] (:attr:`GroupSums.scale <isograph_gpu.ops.moments.GroupSums>`;
    None: unscaled): means, delta and se are multiplied by it, t and df do not depend on it.

    As the reference (scipy.stats.ttest_ind, equal_var=False): NaN everything (but counts)
    when a group has < 2 values; se from ddof=1 variances; when both groups are constant
    (se = 0) equal means give t = NaN and different means t = ±inf, and df, 0/0 there, is
    1 as scipy sets it, so the p-value follows from t alone (NaN or 0).

    ``centred``: (high, low) :class:`~isograph_gpu.ops.moments.CentredGroups` of the
    same columns (:attr:`GroupSums.centred`): where either group was recomputed, the
    statistics come from each group's mean and standard error (:func:`_welch_from_means`)
    instead of the sums.
    """
    f64 = torch.float64
    nh, nl = count_h.to(f64), count_l.to(f64)
    sh, sl, qh, ql = sum_h.to(f64), sum_l.to(f64), sq_h.to(f64), sq_l.to(f64)
    ok = (nh >= 2) & (nl >= 2)
    nh_s, nl_s = nh.clamp_min(2.0), nl.clamp_min(2.0)
    mh, ml = sh / nh_s, sl / nl_s
    tol = 1024.0 * torch.finfo(sum_h.dtype).eps
    ssh = qh - sh * mh
    ssl = ql - sl * ml
    ssh = torch.where(ssh <= tol * qh, torch.zeros_like(ssh), ssh)
    ssl = torch.where(ssl <= tol * ql, torch.zeros_like(ssl), ssl)
    vh, vl = ssh / (nh_s - 1.0), ssl / (nl_s - 1.0)
    ah, al = vh / nh_s, vl / nl_s
    se = torch.sqrt(ah + al)
    c = centre.to(f64)[:, None]
    delta = mh - ml
    magnitude = mh.abs() + ml.abs() + c.abs()
    same = delta.abs() <= tol * magnitude
    zero_se = se == 0
    t = torch.where(zero_se, torch.where(same, torch.full_like(se, float("nan")),
                                         torch.sign(delta) * float("inf")), delta / se)
    delta = torch.where(zero_se & same, torch.zeros_like(delta), delta)
    unit = 1.0 if scale is None else scale.to(f64)[:, None]
    mean_high, mean_low = (mh + c) * unit, (ml + c) * unit
    delta, se = delta * unit, se * unit
    df = torch.where(zero_se, torch.ones_like(se),
                     (ah + al) ** 2 / (ah**2 / (nh_s - 1.0) + al**2 / (nl_s - 1.0)))
    if centred is not None:
        high, low = centred
        exact = _welch_from_means(
            nh_s, torch.where(high.recomputed, high.mean.to(f64), mean_high),
            torch.where(high.recomputed, high.stderr.to(f64), torch.sqrt(ah) * unit),
            nl_s, torch.where(low.recomputed, low.mean.to(f64), mean_low),
            torch.where(low.recomputed, low.stderr.to(f64), torch.sqrt(al) * unit), tol)
        either = high.recomputed | low.recomputed
        mean_high, mean_low, delta, se, t, df = (
            torch.where(either, e, v) for e, v in
            zip(exact, (mean_high, mean_low, delta, se, t, df), strict=True))
    nan = torch.full_like(se, float("nan"))
    return WelchResult(
        mean_high=torch.where(ok, mean_high, nan),
        mean_low=torch.where(ok, mean_low, nan),
        delta=torch.where(ok, delta, nan),
        se=torch.where(ok, se, nan),
        tstat=torch.where(ok, t, nan),
        df=torch.where(ok, df, nan),
        n_high=count_h.round().to(torch.int64),
        n_low=count_l.round().to(torch.int64),
    )


def _welch_from_means(nh: Tensor, mh: Tensor, eh: Tensor, nl: Tensor, ml: Tensor,
                      el: Tensor, tol: float) -> tuple[Tensor, ...]:
    """(mean_high, mean_low, delta, se, t, df) from each group's count, mean and standard
    error ``e = sqrt(var / n)`` in the data's units: se = hypot(eh, el) and df from the
    errors relative to the larger one, so neither overflows nor underflows where the
    groups' scales are far apart; constant groups as :func:`welch_from_sums`."""
    delta = mh - ml
    se = torch.hypot(eh, el)
    zero_se = se == 0
    same = delta.abs() <= tol * (mh.abs() + ml.abs())
    t = torch.where(zero_se, torch.where(same, torch.full_like(se, float("nan")),
                                         torch.sign(delta) * float("inf")), delta / se)
    delta = torch.where(zero_se & same, torch.zeros_like(delta), delta)
    larger = torch.where(zero_se, torch.ones_like(se), torch.maximum(eh, el))
    ah, al = (eh / larger) ** 2, (el / larger) ** 2
    df = torch.where(zero_se, torch.ones_like(se),
                     (ah + al) ** 2 / (ah**2 / (nh - 1.0) + al**2 / (nl - 1.0)))
    return mh, ml, delta, se, t, df
