"""Masked moments of every feature against every column of a second matrix, as GEMMs.

For features ``x`` (samples x F) and columns ``y`` (samples x K), both with NaN for
missing, the pairwise-complete moments over samples where both are finite are::

    n   = Mx' My          sx  = X0' My        sxx = (X0*X0)' My
    sy  = Mx' Y0          syy = Mx' (Y0*Y0)   sxy = X0' Y0

with ``M`` the finite masks and ``X0``/``Y0`` the values centred by their column nan-mean
and zero-filled. Centring first keeps float32 accurate. A column whose largest |value| is
far from 1 (beyond 2^±256 in float64, 2^±32 in float32) is first divided by a power of two
near that value (:func:`power_of_two_scale`; exact), so squares of 1e300 do not overflow
and squares of 1e-300 do not underflow; r is unchanged by it and the group sums carry the
scale for the means. All six moments, and the group sums of any contrast, come out of
three GEMMs of ``Mx``, ``X0`` and ``X0^2`` against prefixes of the stacked block
``[My | groups | Y0 | Y0^2 | 1]`` (:class:`RightBlock`, built once per y; when y has no
missing value ``My`` is all ones and one column stands for its K).

Sums around a column's centre cancel where a pair's or a group's own values sit far from it
(a feature offset on the samples whose eigengene is NaN, groups many sd apart, one huge
outlier): the centred second moment is the raw one minus a square of nearly its size. As
WGCNA's ``cor`` does, each pair and group whose raw second moment exceeds its centred one
by more than :func:`loss_limit` (a quarter of the significand's bits lost) is recomputed on
the device from its own centred values (:func:`centred_values`, two passes, its own power
of two; ordinary data has none, or a handful per chunk); the sums stay as the GEMMs gave
them and the recomputed entries (:class:`CentredPairs`, :class:`CentredGroups`) are put
into r and the Welch statistics by their consumers, entry by entry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Moments:
    """Pairwise-complete moments, each a tensor of shape ``[F, K]``.

    ``sx``/``sxx`` are moments of the centred (and possibly power-of-two scaled) x,
    ``sy``/``syy`` of the centred (and scaled) y: in units of each column's scale, which
    Pearson r does not depend on. These are the GEMMs' sums for every pair; the pairs
    whose sums cancel (module docstring) are in ``centred``, recomputed from their own
    centred values, and :func:`~isograph_gpu.ops.pearson.pearson_from_moments` takes their
    r from there.
    """

    n: Tensor
    sx: Tensor
    sy: Tensor
    sxx: Tensor
    syy: Tensor
    sxy: Tensor
    #: the pairs recomputed from their own centred values (None: none was)
    centred: CentredPairs | None = None


@dataclass
class CentredPairs:
    """Pairs recomputed from their own centred values: flat indices ``index`` [P] into
    the [F, K] moments (-1: padding of a sync-free selection, no pair), their count
    ``n``, cross product ``cov`` and sums of squares ``va`` / ``vb`` [P]
    (:func:`centred_pair_moments`, each side in units of its own power of two; x's dtype),
    and ``lost`` bool: the [F, K] pairs that cancel but found no room in a sync-free
    selection (their r is NaN), or [0, K] where none can be."""

    index: Tensor
    n: Tensor
    cov: Tensor
    va: Tensor
    vb: Tensor
    lost: Tensor


class InPlace:
    """Arithmetic on a function's own temporaries: in place, or out of place where autograd
    tracks any of ``tensors`` (an in-place op could overwrite a value saved for backward).
    ``own.mul_(a, b)`` is ``a.mul_(b)`` or ``a.mul(b)`` (any in-place tensor method by its
    name); :meth:`rsub_` writes ``b - a`` into ``a``. Same values either way."""

    def __init__(self, *tensors: Tensor | None) -> None:
        self.tracked = torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in tensors)

    def __getattr__(self, name: str):
        if not name.endswith("_"):
            raise AttributeError(name)
        method = name if not self.tracked else name[:-1]
        return lambda t, *args: getattr(t, method)(*args)

    def rsub_(self, a: Tensor, b: Tensor) -> Tensor:
        """``b - a``, into ``a`` (of the broadcast shape) unless tracked."""
        return b - a if self.tracked else torch.sub(b, a, out=a)


def broadcast_column(t: Tensor) -> Tensor:
    """``t`` [F, K] itself, or its one column [F, 1] when it is a broadcast view of it
    (the packed block's n, sx, sxx): element-wise work on it then costs F, not F K."""
    return t[:, :1] if t.ndim == 2 and t.shape[1] > 1 and t.stride(1) == 0 else t


def power_of_two_scale(values: Tensor, dim: int = 0) -> Tensor:
    """Per slice along ``dim`` (kept, size 1) a power of two to divide ``values`` by.

    1 where the largest finite |value| has a binary exponent within ±maxexp/4 of the
    dtype (±256 for float64, ±32 for float32): there sums of squares and products of
    sums over up to 2^31 samples do not overflow, the square of a one-ulp spread does
    not underflow, and results are those of unscaled arithmetic. Elsewhere 2^(e-1) for a
    largest |value| of m·2^e (m in [0.5, 1)), which brings every value into (-2, 2).
    Dividing by a power of two is exact. NaN/±inf are ignored; a slice without a nonzero
    finite value gets 1. Same dtype and device as ``values``; no gradient.
    """
    return _scale_of_finite(torch.nan_to_num(values.detach(), nan=0.0, posinf=0.0,
                                             neginf=0.0), dim)


def _scale_of_finite(finite: Tensor, dim: int) -> Tensor:
    """:func:`power_of_two_scale` of values that are all finite (no copy made)."""
    low, high = torch.aminmax(finite.detach(), dim=dim, keepdim=True)
    peak = torch.maximum(high, -low)
    mantissa, exponent = torch.frexp(peak)
    limit = math.frexp(torch.finfo(finite.dtype).max)[1] // 4  # maxexp: 1024 / 128
    extreme = (peak > 0) & (exponent.abs() > limit)
    return torch.where(extreme, peak / (2.0 * torch.where(extreme, mantissa, 1.0)),
                       torch.ones_like(peak))


class Workspace:
    """Buffers that :func:`centre_and_mask` writes a chunk's mask and centred values into
    instead of allocating two [n, F] tensors per chunk (on the CPU each is a fresh mmap
    whose pages fault in again every chunk). Holds [n, up to ``width``] in ``dtype`` on
    ``device``, column-major like the feature chunks."""

    def __init__(self, n: int, width: int, dtype: torch.dtype, device: torch.device | str
                 ) -> None:
        self._values = torch.empty((width, n), dtype=dtype, device=device)
        self._mask = torch.empty((width, n), dtype=dtype, device=device)
        self._scratch: dict[str, Tensor] = {}

    def buffers(self, x: Tensor) -> tuple[Tensor, Tensor] | None:
        """(values, mask) views [n, F] for ``x`` [n, F], or None when x does not fit (other
        n, wider, dtype or device) or autograd tracks it (its graph needs fresh tensors)."""
        width, n = self._values.shape
        if (x.ndim != 2 or x.shape[0] != n or x.shape[1] > width or x.dtype != self._values.dtype
                or x.device != self._values.device or (x.requires_grad
                                                       and torch.is_grad_enabled())):
            return None
        f = x.shape[1]
        return self._values[:f].T, self._mask[:f].T

    def scratch(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        """A row-major buffer of ``shape`` and ``dtype`` on the workspace's device, kept
        under ``name`` and reused by the next chunk (grown when too small): valid until
        the next call with that name. The cancellation test's temporaries live here."""
        numel = math.prod(shape)
        held = self._scratch.get(name)
        if held is None or held.numel() < numel or held.dtype != dtype:
            held = self._scratch[name] = torch.empty(numel, dtype=dtype,
                                                     device=self._values.device)
        return held[:numel].view(shape)


def centre_and_mask(x: Tensor, workspace: Workspace | None = None
                    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Split ``x`` [n, F] into (finite mask, centred zero-filled values, column centres,
    column scales).

    Values are divided by their column's :func:`power_of_two_scale` [F] first (only when
    some column needs it), so centres and centred values are in units of the scale. The
    mask has x's dtype (1.0 / 0.0) so it can enter GEMMs; a column with no finite value
    gets centre 0. ``x`` itself is never modified. Missing values are zero-filled first,
    so the mask is "zero-filled equals x" (false exactly for NaN and ±inf) and the
    centring ``x0 - mask * centre`` is one fused in-place pass (out of place when
    autograd tracks x). With a ``workspace`` that fits x, the mask and centred values are
    views of its buffers (valid until its next use).
    """
    reuse = None if workspace is None else workspace.buffers(x)
    if reuse is None:
        filled = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        mask = torch.eq(filled, x).to(x.dtype)
    else:
        filled, mask = reuse
        torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0, out=filled)
        torch.eq(filled, x, out=mask)
    tracked = filled.requires_grad and torch.is_grad_enabled()
    scale = _scale_of_finite(filled, 0)
    # dividing by 1 is exact: on CUDA always divide (asking whether to would synchronise
    # with the host every chunk); on the CPU skip the pass when no column needs it
    if filled.device.type != "cpu" or bool((scale != 1.0).any()):
        filled = filled / scale if tracked else filled.div_(scale)
    centre = filled.sum(dim=0) / mask.sum(dim=0).clamp_min(1.0)
    if tracked:
        return mask, filled - mask * centre, centre, scale[0]
    return mask, filled.addcmul_(mask, centre, value=-1.0), centre, scale[0]


def finite_column_means(x: Tensor) -> tuple[Tensor, Tensor]:
    """Mean [F] of the finite values of each column of ``x`` [n, F] (NaN where a column
    has none) and their count [F] (x's dtype): the centres of :func:`centre_and_mask` in
    x's units, so near the largest float the sums do not overflow. The one NaN-skipping
    mean of the package (eigengenes, encoder-input imputation)."""
    mask, _, centre, scale = centre_and_mask(x)
    count = mask.sum(dim=0)
    mean = torch.where(count > 0, centre * scale, torch.full_like(centre, float("nan")))
    return mean, count


@dataclass
class GroupSums:
    """Per-feature count, sum and sum of squares of the centred values in each group,
    each [F, G], in units of ``scale`` [F] (values divided by it; None: not scaled); add
    ``centre`` [F] (same units) back and multiply by ``scale`` for means. ``finite``
    [F]: finite values of each feature over all samples."""

    count: Tensor
    total: Tensor
    squares: Tensor
    centre: Tensor
    finite: Tensor
    scale: Tensor | None = None
    #: the groups whose sums above lose too many digits, recomputed (None: none was)
    centred: CentredGroups | None = None


@dataclass
class CentredGroups:
    """Groups recomputed from their own centred values: ``at`` [P, 2] int64, each group's
    (feature row, group column) in the [F, G] group sums (row -1: padding of a sync-free
    selection, no group), their ``mean`` and ``stderr`` [P] (sqrt(var / count), ddof 1; 0
    for a constant group) in x's units, and ``lost`` bool: the [F, G] groups that cancel
    but found no room in a sync-free selection (their Welch statistics NaN), or [0, G]
    where none can be (every flagged group recomputed)."""

    at: Tensor
    mean: Tensor
    stderr: Tensor
    lost: Tensor

    def columns(self, cols: slice) -> CentredGroups:
        """The group columns ``cols`` (a step-1 slice of G): positions in [F, len(cols)],
        the groups of other columns as padding. No host synchronisation."""
        start, stop, _ = cols.indices(self.lost.shape[1])
        row, col = self.at[:, 0], self.at[:, 1]
        inside = (row >= 0) & (col >= start) & (col < stop)
        at = torch.stack([torch.where(inside, row, -1), (col - start).clamp(min=0)], dim=1)
        return CentredGroups(at=at, mean=self.mean, stderr=self.stderr,
                             lost=self.lost[:, cols])


def loss_limit(dtype: torch.dtype) -> float:
    """How much larger than its centred second moment a pair's or group's raw one may be
    before it is recomputed: 2^(a quarter of the significand's bits), 8192 in float64 (the
    centred moment keeps >= 40 bits), 64 in float32."""
    return 2.0 ** (round(-math.log2(torch.finfo(dtype).eps) + 1) // 4)


def centred_values(values: Tensor, keep: Tensor, dim: int = 0
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``(deviation, count, mean, scale, constant)`` of the kept values along ``dim``
    (``keep`` bool, broadcast with ``values``, only where values are finite).

    Values are divided by the :func:`power_of_two_scale` of the kept ones (exact), centred
    by their mean in two passes (the mean of the first deviations is added back) and 0
    where not kept. count (values' dtype), mean (values' units), scale and constant
    (exactly one distinct kept value, or none) keep ``dim`` (size 1). Differentiable.
    """
    zero = torch.zeros((), dtype=values.dtype, device=values.device)
    kept = torch.where(keep, values, zero)
    scale = _scale_of_finite(kept, dim)
    scaled = kept / scale
    count = keep.sum(dim=dim, keepdim=True).to(values.dtype)
    safe = count.clamp_min(1.0)
    mean = scaled.sum(dim=dim, keepdim=True) / safe
    mean = mean + torch.where(keep, scaled - mean, zero).sum(dim=dim, keepdim=True) / safe
    deviation = torch.where(keep, scaled - mean, zero)
    inf = torch.full((), float("inf"), dtype=values.dtype, device=values.device)
    high = torch.where(keep, scaled, -inf).amax(dim=dim, keepdim=True)
    low = torch.where(keep, scaled, inf).amin(dim=dim, keepdim=True)
    return deviation, count, mean * scale, scale, ~(high > low)


def centred_pair_moments(a: Tensor, b: Tensor, dim: int = 0
                         ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(n, cov, va, vb)`` of the pairs where ``a`` and ``b`` (broadcast) are both finite
    along ``dim`` (removed): count, cross product and sums of squares of the deviations
    from the pairs' own means (:func:`centred_values`, each side in units of its own power
    of two), va / vb exactly 0 when that side is constant on the pairs."""
    a, b = torch.broadcast_tensors(a, b)
    keep = torch.isfinite(a) & torch.isfinite(b)
    da, n, _, _, flat_a = centred_values(a, keep, dim)
    db, _, _, _, flat_b = centred_values(b, keep, dim)
    zero = torch.zeros((), dtype=da.dtype, device=da.device)
    va = torch.where(flat_a.squeeze(dim), zero, (da * da).sum(dim=dim))
    vb = torch.where(flat_b.squeeze(dim), zero, (db * db).sum(dim=dim))
    return n.squeeze(dim), (da * db).sum(dim=dim), va, vb


def centred_group_stats(values: Tensor, member: Tensor) -> tuple[Tensor, Tensor]:
    """``(mean, stderr)`` [P] of the finite values of each column of ``values`` [n, P] in
    the samples ``member`` (bool [n, P]): :func:`centred_values`; stderr =
    sqrt(var / count) with ddof 1, exactly 0 for a constant group (finite for count < 2:
    the Welch statistics mask those)."""
    deviation, count, mean, scale, constant = centred_values(
        values, member & torch.isfinite(values), 0)
    squares = (deviation * deviation).sum(dim=0)
    count = count[0]
    stderr = torch.sqrt(squares / ((count - 1.0).clamp_min(1.0) * count.clamp_min(1.0)))
    stderr = torch.where(constant[0], torch.zeros_like(stderr), stderr * scale[0])
    return mean[0], stderr


def masked_moments(x: Tensor, y: Tensor) -> Moments:
    """Pairwise-complete moments of ``x`` [n, F] against ``y`` [n, K] (NaN = missing)."""
    return moments_and_group_sums(x, y)[0]




def block_x_orientation(device: torch.device | str) -> bool:
    """Whether the moment GEMMs on ``device`` run as block' x (:attr:`RightBlock.outer`):
    on the CPU. Their [F, W] results, and the statistics computed from them, are then
    column-major (each module's values contiguous over the features)."""
    return torch.device(device).type == "cpu"


@dataclass(frozen=True)
class RightBlock:
    """y's side of the moment GEMMs, built once for a fixed ``y`` [n, K] and group matrix
    [n, G] and used for every feature chunk (:func:`moments_from_block`).

    ``block`` [n, W] (x's dtype and device) is ``[My | groups | Y0 | Y0^2 | 1]`` (W = 3K +
    G + 1, G the block's group columns: :attr:`n_block_groups`). ``packed``: y has no
    missing value, so ``My`` is all ones and the moments that only depend on it (n, sx,
    sxx) are the same for every module: one ones column stands for My's K and for the
    trailing ones, ``[1 | groups | Y0 | Y0^2]`` (W = 2K + G + 1).

    ``segments`` (:attr:`GroupLayout.segments <isograph_gpu.ops.groups.GroupLayout>`):
    the group sums' K-column groups in order, each the block's group columns ``start :
    start + K`` or, derived, the pairs' sums (n, sx, sxx) less those columns' (a low group
    that is the complement of its high group among the pairs); ``n_groups`` counts the
    sums' columns, the block then carries fewer. Empty: the sums are the block's groups.
    """

    block: Tensor
    n_modules: int
    n_groups: int
    packed: bool
    segments: tuple[tuple[bool, int], ...] = ()
    #: y [n, K] itself (x's dtype and device; NaN/inf missing): the pairs recomputed from
    #: their own centred values read it (None: not kept, no pair is recomputed)
    values: Tensor | None = None

    @property
    def outer(self) -> bool:
        """A block on the CPU (:func:`block_x_orientation`): every GEMM runs as block' x
        [W, F] read back transposed (with MKL 1.6-2.7x faster than x' block on the engine's
        chunks, up to 19% slower on a few narrow ones:
        bench/results/gemm_orientation_cpu.json); one orientation for every caller, so the
        engine, a Dask task and a training loop get the same bits. Not measured on cuBLAS,
        so never on CUDA (False: x' block)."""
        return block_x_orientation(self.block.device)

    @property
    def n_block_groups(self) -> int:
        """Group columns of :attr:`block` (fewer than :attr:`n_groups` where some are
        derived)."""
        if not self.segments:
            return self.n_groups
        return max((start + self.n_modules for derived, start in self.segments
                    if not derived), default=0)

    def group_members(self, group: Tensor) -> Tensor:
        """bool [n, P]: the samples of the sums' group columns ``group`` [P] (int64)."""
        c = 1 if self.packed else self.n_modules
        if not self.segments:
            return _columns(self.block, c + group) > 0
        k = self.n_modules
        segment, module = group // k, group % k
        column = torch.zeros_like(group)
        derived = torch.zeros_like(group, dtype=torch.bool)
        for j, (is_derived, start) in enumerate(self.segments):  # <= 4: Python scalars only,
            at = segment == j  # so nothing is copied from the host (no sync on CUDA)
            column = torch.where(at, module + start, column)
            if is_derived:
                derived |= at
        member = _columns(self.block, c + column) > 0
        assert self.values is not None  # kept by build
        finite = torch.isfinite(_columns(self.values, module))
        return torch.where(derived, finite & ~member, member)

    @classmethod
    def build(cls, y: Tensor, groups: Tensor | None = None, *, dtype: torch.dtype,
              device: torch.device | str, pack: bool = False,
              segments: tuple[tuple[bool, int], ...] = ()) -> RightBlock:
        """Block of ``y`` [n, K] (NaN/inf = missing) and 0/1 ``groups`` [n, G] (None: no
        groups) in ``dtype`` on ``device``, one row per sample ([n, W], row-major as
        ``torch.cat`` makes it). ``pack`` (the engine's block): use the packed layout when
        y has no missing value (asks the device once: a host synchronisation on CUDA).
        ``segments``: how the group sums are laid out from ``groups``' columns (see the
        class; empty: they are ``groups``' columns). On the CPU every GEMM runs as block' x
        (:attr:`outer`)."""
        y = y.to(dtype=dtype, device=device)
        n, k = y.shape
        my, y0, _, _ = centre_and_mask(y)
        g = (groups.to(dtype=dtype, device=device) if groups is not None
             else torch.zeros((n, 0), dtype=dtype, device=device))
        ones = torch.ones((n, 1), dtype=dtype, device=device)
        packed = bool(pack and bool(torch.isfinite(y).all()))
        columns = [ones, g, y0, y0 * y0] if packed else [my, g, y0, y0 * y0, ones]
        n_groups = k * len(segments) if segments else g.shape[1]
        return cls(block=torch.cat(columns, dim=1), n_modules=k, n_groups=n_groups,
                   packed=packed, segments=tuple(segments), values=y)


def moments_and_group_sums(x: Tensor, y: Tensor, groups: Tensor | None = None, *,
                           recompute_limit: int | None = None
                           ) -> tuple[Moments, GroupSums | None]:
    """Pairwise-complete moments of ``x`` [n, F] against ``y`` [n, K], and optionally the
    group sums of x for 0/1 ``groups`` [n, G].

    All inputs on one device; NaN/inf mark missing values; results on x's device and
    dtype. :func:`moments_from_block` of the unpacked :class:`RightBlock` of y and groups
    (a caller with many chunks against one y builds the block once); ``recompute_limit``
    as there.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"masked_moments expects [n, F] and [n, K] with equal n, got {tuple(x.shape)} "
            f"and {tuple(y.shape)}"
        )
    right = RightBlock.build(y, groups, dtype=x.dtype, device=x.device)
    moments, sums = moments_from_block(x, right, recompute_limit=recompute_limit)
    return moments, None if groups is None else sums


def moments_from_block(x: Tensor, right: RightBlock, workspace: Workspace | None = None,
                       *, recompute_limit: int | None = None) -> tuple[Moments, GroupSums]:
    """Moments of ``x`` [n, F] against the y of ``right``, and the group sums of x over its
    groups (G = 0: empty [F, 0] sums), on x's device and dtype.

    Three GEMMs of [F, n] against prefixes of ``right.block``: the mask takes all of it,
    the centred values the first c + G + K columns, their squares the first c + G (c = K,
    or 1 when packed; G the block's group columns, :attr:`RightBlock.n_block_groups`; each
    GEMM only computes the moments it is needed for). Packed, n, sx and sxx are broadcast
    views ([F, 1] expanded to [F, K]). The group sums have ``right.n_groups`` columns:
    derived ones (``right.segments``) are the pairs' sums less their high group's.
    ``workspace``: buffers for :func:`centre_and_mask` reused across chunks (not used when
    autograd tracks ``right.block``: the GEMMs then save the mask and values for
    backward).

    Pairs and groups that cancel (module docstring) are then recomputed from x and
    ``right.values``: selected with one ``torch.nonzero`` (``recompute_limit`` None: a
    host synchronisation on CUDA, one per call), or without any, with room for at most
    ``recompute_limit`` entries (``torch.nonzero_static``: the work is that of the limit
    whether or not any entry needs it; a pair beyond it gets r NaN, a group NaN Welch
    statistics: never a wrong value).
    """
    if x.ndim != 2 or x.shape[0] != right.block.shape[0]:
        raise ValueError(f"moments expect x [{right.block.shape[0]}, F], got {tuple(x.shape)}")
    k, n_groups = right.n_modules, right.n_block_groups
    c = 1 if right.packed else k  # columns of My
    a, b = c + n_groups, c + n_groups + k  # prefix widths for squares / values
    block = right.block
    if block.requires_grad and torch.is_grad_enabled():
        workspace = None  # the GEMMs save x's mask and values for backward: fresh ones
    mx, x0, centre, scale = centre_and_mask(x, workspace)

    def times(left: Tensor, width: int) -> Tensor:  # left' block[:, :width], [F, width]
        if right.outer:
            return (block[:, :width].T @ left).T
        return left.T @ block[:, :width]

    by_mask = times(mx, block.shape[1])  # n | counts | sy | syy (| finite)
    by_value = times(x0, b)  # sx | totals | sxy
    # x0 is ours: square in place unless autograd needs it (training loops)
    tracked = torch.is_grad_enabled() and (x0.requires_grad or block.requires_grad)
    squared = x0 * x0 if tracked else x0.square_()  # x0 is saved for backward when tracked
    by_square = times(squared, a)  # sxx | squares
    f = x.shape[1]

    def per_module(t: Tensor) -> Tensor:
        return t.expand(f, k) if right.packed else t

    moments = Moments(n=per_module(by_mask[:, :c]), sx=per_module(by_value[:, :c]),
                      sy=by_mask[:, a:b], sxx=per_module(by_square[:, :c]),
                      syy=by_mask[:, b:b + k], sxy=by_value[:, a:b])
    cols = slice(c, a)
    count, total, squares = by_mask[:, cols], by_value[:, cols], by_square[:, cols]
    if right.segments:  # complement groups: the pairs' sums less their high group's
        count, total, squares = (
            _with_derived_groups(t, pair, right, workspace, name) for t, pair, name in (
                (count, by_mask[:, :c], "count"), (total, by_value[:, :c], "total"),
                (squares, by_square[:, :c], "squares")))
    sums = GroupSums(count=count, total=total, squares=squares, centre=centre,
                     finite=by_mask[:, 0] if right.packed else by_mask[:, -1], scale=scale)
    return _recompute_cancelled(x, right, moments, sums, recompute_limit, workspace,
                                by_square[:, :c])


def _with_derived_groups(gemm: Tensor, pair: Tensor, right: RightBlock,
                         workspace: Workspace | None, name: str) -> Tensor:
    """Group sums [F, G] laid out by ``right.segments`` from the GEMMs' group columns
    ``gemm`` [F, G'] and the pairs' sums ``pair`` [F, K] (or [F, 1] packed): each derived
    group is ``pair - gemm[:, start : start + K]``. Column-major where ``gemm`` is (the
    CPU's GEMMs), into the workspace's buffers when it has one; out of place where autograd
    tracks the inputs."""
    k = right.n_modules
    parts = [pair - gemm[:, start:start + k] if derived else gemm[:, start:start + k]
             for derived, start in right.segments] if InPlace(gemm, pair).tracked else None
    if parts is not None:
        return torch.cat(parts, dim=1)
    f, g = gemm.shape[0], right.n_groups
    if workspace is None:
        flat = torch.empty(f * g, dtype=gemm.dtype, device=gemm.device)
    else:
        flat = workspace.scratch(f"groups_{name}", (f * g,), gemm.dtype)
    out = flat.view(g, f).T if gemm.stride(0) == 1 and f > 1 else flat.view(f, g)
    for j, (derived, start) in enumerate(right.segments):
        target = out[:, j * k:(j + 1) * k]
        if derived:
            torch.sub(pair, gemm[:, start:start + k], out=target)
        else:
            target.copy_(gemm[:, start:start + k])
    return out


def _lossy(total: Tensor, count: Tensor, squares: Tensor, limit: float, out: Tensor,
           space: tuple[Tensor, Tensor], reference: Tensor | None = None) -> None:
    """Into bool ``out``: where the centred second moment ``squares - total^2 / count`` is
    below ``(count - 1) / count / limit`` of the raw one ``squares`` (about 1 / limit; a
    single value, whose total^2 is its squares, never): total^2 > (count (1 - 1 / limit)
    + 1 / limit) squares, in four passes through the two buffers ``space`` of out's shape
    (``count`` may be a column [F, 1]: the packed block's pair counts).

    ``reference`` [F, K] or [F, 1] (a derived group's pairs' squares, which its
    subtraction rounds with; at least its own squares): below ``reference / limit``
    instead, for groups of at least two values: total^2 > count (squares - reference /
    limit)."""
    square, bound = space
    torch.mul(total, total, out=square)
    if reference is not None:
        torch.sub(squares, reference, alpha=1.0 / limit, out=bound).mul_(count)
        torch.gt(square, bound, out=out)
        out &= count >= 2
    elif count.shape == out.shape:
        torch.add(1.0 / limit, count, alpha=1.0 - 1.0 / limit, out=bound).mul_(squares)
    else:
        torch.mul(torch.add(1.0 / limit, count, alpha=1.0 - 1.0 / limit), squares, out=bound)
    torch.gt(square, bound, out=out)


def _recompute_cancelled(x: Tensor, right: RightBlock, m: Moments, sums: GroupSums,
                         capacity: int | None, workspace: Workspace | None = None,
                         pair_squares: Tensor | None = None) -> tuple[Moments, GroupSums]:
    """:func:`moments_from_block`'s fast sums with the pairs and groups that cancel
    recomputed into ``m.centred`` and ``sums.centred`` (see there); ``capacity``: its
    ``recompute_limit``; ``workspace``: where the test's flags and temporaries are kept
    from chunk to chunk (None: fresh ones). The sums themselves are left as the GEMMs
    gave them: the consumers (:func:`~isograph_gpu.ops.pearson.pearson_from_moments`,
    :func:`~isograph_gpu.ops.contrast.welch_from_sums`) put the recomputed entries into
    their results, so a recompute costs its entries, not the chunk (derived group sums,
    ``right.segments``, stay as :func:`moments_from_block` assembled them). ``pair_squares``
    [F, K] (or [F, 1] packed): the pairs' sums of squares, the reference of derived groups
    (``right.segments``): one is recomputed where its centred second moment is below
    1 / :func:`loss_limit` of its pairs' squares, which its subtraction rounds with (a
    test that covers the one against its own squares, never larger)."""
    f, k = m.sxy.shape
    g = sums.count.shape[1]
    limit = loss_limit(x.dtype)

    def buffer(name: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        if workspace is None:
            return torch.empty(shape, dtype=dtype, device=x.device)
        return workspace.scratch(name, shape, dtype)

    # the flags and temporaries in the sums' own layout: column-major where the GEMMs
    # ran as block' x (each module's / group's sums contiguous over the features)
    by_column = f > 1 and sums.total.stride(0) == 1

    def shaped(flat: Tensor, w: int) -> Tensor:  # [f, w] view of f w elements
        return flat.view(w, f).T if by_column else flat.view(f, w)

    flags = buffer("flags", (f * (k + g),), torch.bool)
    pairs, groups = shaped(flags[:f * k], k), shaped(flags[f * k:], g)
    wide = max(k, g)
    space = buffer("square", (f * wide,), sums.count.dtype), buffer(
        "bound", (f * wide,), sums.count.dtype)

    def room(w: int) -> tuple[Tensor, Tensor]:
        return shaped(space[0][:f * w], w), shaped(space[1][:f * w], w)

    with torch.no_grad():  # bools: nothing to differentiate
        if right.values is None:
            pairs.zero_()
        else:
            n, sx, sxx = (t[:, :1] if right.packed else t for t in (m.n, m.sx, m.sxx))
            _lossy(m.sy, n, m.syy, limit, pairs, room(k))
            x_side = torch.empty(sx.shape, dtype=torch.bool, device=x.device)
            _lossy(sx, n, sxx, limit, x_side, room(sx.shape[1]))
            pairs |= x_side
        if pair_squares is None or not right.segments:
            _lossy(sums.total, sums.count, sums.squares, limit, groups, room(g))
        else:  # each group of K columns, derived ones against their pairs' squares
            for j, (derived, _) in enumerate(right.segments):
                cols = slice(j * k, (j + 1) * k)
                _lossy(sums.total[:, cols], sums.count[:, cols], sums.squares[:, cols],
                       limit, groups[:, cols], room(k), pair_squares if derived else None)
    if flags.numel() == 0:  # no feature, or neither modules nor groups: nothing to redo
        return m, sums
    if capacity is None:
        if x.device.type == "cpu" and not bool(flags.any()):  # faster than nonzero
            return m, sums
        index = torch.nonzero(flags)[:, 0]  # the one host synchronisation (CUDA)
        if index.numel() == 0:
            return m, sums
    else:
        if capacity < 1:
            raise ValueError(f"recompute_limit must be at least 1, got {capacity}")
        index = torch.nonzero_static(flags, size=int(capacity), fill_value=-1)[:, 0]
    # one list of flat indices into the flags: pairs [0, f k), then groups [f k, f k + f g),
    # -1 padding; every entry is computed as both and kept where it is one (-1 elsewhere)
    is_pair = (index >= 0) & (index < f * k)
    is_group = index >= f * k
    at_pair, at_group = index.clamp(0, max(f * k - 1, 0)), (index - f * k).clamp_min(0)
    if by_column:  # flat index = column f + row
        pair_row, module = at_pair % max(f, 1), at_pair // max(f, 1)
        group_row, group = at_group % max(f, 1), at_group // max(f, 1)
    else:  # flat index = row width + column
        pair_row, module = at_pair // max(k, 1), at_pair % max(k, 1)
        group_row, group = at_group // max(g, 1), at_group % max(g, 1)
    row = torch.where(is_pair, pair_row, group_row).clamp(0, max(f - 1, 0))
    module = torch.where(is_pair, module, 0).clamp(0, max(k - 1, 0))
    group = torch.where(is_group, group, 0).clamp(0, max(g - 1, 0))
    if by_column:  # recompute in row-major order, as every other layout does (same bits)
        key = torch.where(is_pair, row * k + module, f * k + row * g + group)
        order = torch.argsort(torch.where(index >= 0, key, f * (k + g)), stable=True)
        is_pair, is_group, row, module, group = (
            t[order] for t in (is_pair, is_group, row, module, group))
    batch = max(1, f // 2)  # temporaries of ~4 [n, batch] values at a time
    parts = [_recompute_entries(x, right, row[i:i + batch], module[i:i + batch],
                                group[i:i + batch]) for i in range(0, index.numel(), batch)]
    count, cov, va, vb, mean, stderr = (torch.cat(t) for t in zip(*parts, strict=True))
    pair_at = torch.where(is_pair, row * k + module, -1)  # row-major flat [F, K]
    group_at = torch.where(is_group, row * g + group, -1)  # row-major flat [F, G]
    lost_pairs, lost_groups = pairs[:0], groups[:0]  # [0, K], [0, G]: none lost
    if capacity is not None:  # flagged entries without room: NaN, never a wrong value
        lost_pairs = pairs & ~_put(torch.zeros_like(pairs), pair_at, is_pair)
        lost_groups = groups & ~_put(torch.zeros_like(groups), group_at, is_group)
    m.centred = CentredPairs(index=pair_at, n=count, cov=cov, va=va, vb=vb, lost=lost_pairs)
    sums.centred = CentredGroups(at=torch.stack([torch.where(is_group, row, -1), group],
                                                dim=1), mean=mean,
                                 stderr=stderr, lost=lost_groups)
    return m, sums


def _recompute_entries(x: Tensor, right: RightBlock, row: Tensor, module: Tensor,
                       group: Tensor) -> tuple[Tensor, ...]:
    """For entries (feature ``row``, ``module``, ``group``) [P]: the centred pair moments
    (n, cov, va, vb) of x's column against y's, and the (mean, stderr) of x's column in
    the group."""
    xs = _columns(x, row)
    ys = _columns(right.values, module) if right.values is not None else xs
    n, cov, va, vb = centred_pair_moments(xs, ys, 0)
    mean, stderr = centred_group_stats(xs, right.group_members(group))
    return n, cov, va, vb, mean, stderr


def _columns(t: Tensor, index: Tensor) -> Tensor:
    """``t.index_select(1, index)`` of ``t`` [n, F] read along its memory order: a
    column-major t (the engine's chunks) by rows of its transpose (index_select along a
    strided dimension would first copy the whole of t); row-major [n, P] either way, so
    the sums over it are those of index_select's."""
    if t.ndim == 2 and t.stride(0) == 1 and t.shape[1] > 1:
        return t.T.index_select(0, index).T.contiguous()  # row-major, as index_select's
    return t.index_select(1, index)


def _put(target: Tensor, flat: Tensor, values: Tensor) -> Tensor:
    """``target`` [F, W] (out of place) with ``values`` [P] at flat indices ``flat`` [P];
    the index -1 (padding) writes nowhere. Differentiable."""
    f, w = target.shape
    flat = torch.where(flat >= 0, flat, f * w)
    padded = torch.cat([target.reshape(-1), target.new_zeros(1)])
    return padded.index_put((flat,), values.to(target.dtype))[:-1].view(f, w)


def put_entries(target: Tensor, flat: Tensor, values: Tensor) -> Tensor:
    """``target`` [F, W] with ``values`` [P] at the flat indices ``flat`` [P] (-1:
    padding, written nowhere): in place into a CPU tensor that autograd does not track
    (selecting the real indices synchronises with nothing there), else out of place
    (:func:`_put`: no host synchronisation, differentiable). Returns the result."""
    tracked = torch.is_grad_enabled() and (target.requires_grad or values.requires_grad)
    if tracked or target.device.type != "cpu":
        return _put(target, flat, values)
    keep = flat >= 0
    flat = flat[keep]
    w = max(target.shape[1], 1)
    target.index_put_((flat // w, flat % w), values[keep].to(target.dtype))
    return target
