"""High-vs-low contrasts: percentile / tail group split per eigengene and Welch statistics
from masked group sums (computed as GEMMs with one-hot group matrices by
:func:`isograph_gpu.ops.moments.moments_and_group_sums`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .moments import CentredGroups, InPlace, put_entries


class ComplementSplit(tuple):
    """``(high, low)`` bool [n, K] of a split whose low group is exactly the other samples
    with a finite score (:func:`percentile_split`). Unpacks as a pair; a
    :class:`~isograph_gpu.ops.groups.GroupLayout` takes its low group's sums as the
    pairwise-complete sums less the high group's, so the GEMMs carry only the high columns.
    A plain ``(high, low)`` tuple is summed column by column."""

    __slots__ = ()

    def __new__(cls, high: Tensor, low: Tensor) -> ComplementSplit:
        return super().__new__(cls, (high, low))

    def __getnewargs__(self) -> tuple[Any, Any]:  # pickles (a Dask task's splits)
        return tuple(self)


def split_like(split: tuple[Any, Any], high: Any, low: Any) -> tuple[Any, Any]:
    """``(high, low)`` as the same kind of split as ``split`` (a :class:`ComplementSplit`
    stays one): for a caller that moves a split's masks to another device or to numpy."""
    return ComplementSplit(high, low) if isinstance(split, ComplementSplit) else (high, low)


def percentile_split(scores: Tensor, percentile: float) -> ComplementSplit:
    """Reference split per column of ``scores`` [n, K]: high = score >= nanpercentile
    (linear interpolation), low = the other samples with a finite score.

    Returns two bool tensors [n, K] (a :class:`ComplementSplit`). Samples with a NaN score
    join neither group (isograph 0.1.5 puts them in low; a documented deliberate
    difference).
    """
    threshold = torch.nanquantile(scores.to(torch.float64), percentile / 100.0, dim=0,
                                  interpolation="linear")
    finite = torch.isfinite(scores)
    high = finite & (scores.to(torch.float64) >= threshold)
    return ComplementSplit(high, finite & ~high)


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
    same columns (:attr:`GroupSums.centred`, :meth:`~isograph_gpu.ops.moments.CentredGroups.columns`):
    where either group was recomputed, the statistics come from each group's mean and
    standard error (:func:`_welch_from_means`) instead of the sums, computed for those
    entries only. Without autograd the work is done in place on its own temporaries.
    """
    f64 = torch.float64
    nh, nl = count_h.to(f64), count_l.to(f64)
    sh, sl, qh, ql = sum_h.to(f64), sum_l.to(f64), sq_h.to(f64), sq_l.to(f64)
    own = InPlace(nh, nl, sh, sl, qh, ql, centre, scale)
    ok = nh >= 2  # bools: in place whatever autograd does
    ok &= nl >= 2
    nh_s, nl_s = nh.clamp_min(2.0), nl.clamp_min(2.0)
    mh, ml = sh / nh_s, sl / nl_s
    tol = 1024.0 * torch.finfo(sum_h.dtype).eps
    nh1, nl1 = nh_s - 1.0, nl_s - 1.0
    ah = own.div_(own.div_(_sum_of_squares(own, qh, sh, mh, tol), nh1), nh_s)  # var / n
    al = own.div_(own.div_(_sum_of_squares(own, ql, sl, ml, tol), nl1), nl_s)
    total = ah + al
    se = torch.sqrt(total)
    c = centre.to(f64)[:, None]
    delta = mh - ml
    magnitude = own.add_(own.add_(mh.abs(), ml.abs()), c.abs())
    same = delta.abs() <= own.mul_(magnitude, tol)
    zero_se = se == 0
    # delta / 0 is already ±inf where the means differ; NaN where they are the same
    t = delta / se
    equal = zero_se & same
    t = own.masked_fill_(t, equal, float("nan"))
    delta = own.masked_fill_(delta, equal, 0.0)
    unit = None if scale is None else scale.to(f64)[:, None]
    mean_high, mean_low = own.add_(mh, c), own.add_(ml, c)
    if unit is not None:
        mean_high, mean_low = own.mul_(mean_high, unit), own.mul_(mean_low, unit)
        delta, se = own.mul_(delta, unit), own.mul_(se, unit)
    exact = None
    if centred is not None:  # before df: ah, al are its fast standard errors
        exact = _welch_of_centred(centred, nh_s, nl_s, mean_high, mean_low, ah, al, unit, tol)
    ah, al = own.div_(own.pow_(ah, 2), nh1), own.div_(own.pow_(al, 2), nl1)
    df = own.masked_fill_(own.div_(own.pow_(total, 2), own.add_(ah, al)), zero_se, 1.0)
    values = [mean_high, mean_low, delta, se, t, df]
    if exact is not None:
        entries, exact_values, lost_h, lost_l = exact
        values = [put_entries(v, entries, e) for v, e in zip(values, exact_values, strict=True)]
        nan = torch.full_like(se, float("nan"))
        for lost, kept in ((lost_h, 1), (lost_l, 0)):  # no room: that group's mean and all
            if lost.shape[0]:                         # that depends on it NaN
                values = [v if i == kept else torch.where(lost, nan, v)
                          for i, v in enumerate(values)]
    bad = ~ok
    mean_high, mean_low, delta, se, t, df = (own.masked_fill_(v, bad, float("nan"))
                                             for v in values)
    return WelchResult(
        mean_high=mean_high, mean_low=mean_low, delta=delta, se=se, tstat=t, df=df,
        n_high=count_h.round().to(torch.int64),
        n_low=count_l.round().to(torch.int64),
    )


def _sum_of_squares(own: InPlace, squares: Tensor, total: Tensor, mean: Tensor,
                    tol: float) -> Tensor:
    """``squares - total * mean`` (a new tensor), 0 where at most ``tol`` of ``squares``."""
    spread = own.rsub_(total * mean, squares)
    return own.masked_fill_(spread, spread <= squares * tol, 0.0)


def _welch_of_centred(centred: tuple[CentredGroups, CentredGroups], nh: Tensor, nl: Tensor,
                      mean_high: Tensor, mean_low: Tensor, ah: Tensor, al: Tensor,
                      unit: Tensor | None, tol: float
                      ) -> tuple[Tensor, tuple[Tensor, ...], Tensor, Tensor]:
    """``(entries, values, lost_high, lost_low)``: the flat [F, K] indices [P] (-1:
    padding) where the high or the low group was recomputed and the six Welch values
    (:func:`_welch_from_means`) there, each group's mean and standard error its
    recomputed one or the fast one (``mean_*``, sqrt(a) * unit); and the groups a
    sync-free selection had no room for (:attr:`CentredGroups.lost`). O(P) work, no host
    synchronisation."""
    f64 = torch.float64
    high, low = centred
    k = max(mean_high.shape[1], 1)

    def flat(group: CentredGroups) -> Tensor:
        return torch.where(group.at[:, 0] >= 0, group.at[:, 0] * k + group.at[:, 1], -1)

    entries = torch.cat([flat(high), flat(low)])
    at = entries.clamp_min(0)
    row, col = at // k, at % k

    def side(group: CentredGroups, mean: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
        keys, order = torch.sort(flat(group))
        pos = torch.searchsorted(keys, entries).clamp_max(keys.numel() - 1)
        found = (keys[pos] == entries) & (entries >= 0)
        pos = order[pos]
        stderr = torch.sqrt(a[row, col])
        if unit is not None:
            stderr = stderr * unit[row, 0]
        return (torch.where(found, group.mean.to(f64)[pos], mean[row, col]),
                torch.where(found, group.stderr.to(f64)[pos], stderr))

    mh, eh = side(high, mean_high, ah)
    ml, el = side(low, mean_low, al)
    values = _welch_from_means(nh[row, col], mh, eh, nl[row, col], ml, el, tol)
    return entries, values, high.lost, low.lost


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
