"""Sign-aligned module eigengenes for all modules at once (isograph 0.1.5 semantics).

Each module's channel rows are gathered into a padded tensor [K, R_max, n]; the sign
bootstrap against the first row and the (at most five) refinement rounds against the
running mean run batched over modules. The loop stops at the first round that changes no
sign of any module (one host sync per round on CUDA): once a module's signs stop changing,
further rounds reproduce them, so this equals the reference's per-module early stop.

Each sign decision needs only whether a row's pairwise-complete r with its reference (the
first row, then the running mean) is >= 0, and the row's pairs n: :func:`row_signs` takes
both from batched matrix-vector sums of the centred rows (a few passes over the rows, not
the ~30 of an exactly centred r), and recomputes exactly (:func:`~.pearson.paired_pearson`)
only the rows whose sums cannot fix the sign: |cov| or a variance within a rounding
bound of zero (r near 0, a constant row, magnitudes whose squares overflow). The
decisions, hence the eigengenes, are those of the exact r.

The overall sign is the reference's: anchored to each module's first row (in the order the
caller gives the rows). ``orient_to_mean`` then makes it the module's own: the eigengene is
negated where it correlates negatively with the plain (unsigned) mean of the module's rows
(the ``canonical`` sign of ``ExplainConfig.eigengene_sign``, given rows in feature_id
order).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .moments import finite_column_means
from .pearson import paired_pearson

#: the reference's hard-coded minimum of complete pairs in the sign alignment
SIGN_MIN_PAIRS = 3
REFINEMENT_ROUNDS = 5
#: bytes of each [K, rows, n] temporary of :func:`row_signs` (rows taken this many at a time)
_SIGN_BLOCK_BYTES = 32 << 20


def _matmul_eps(dtype: torch.dtype) -> float:
    """The unit roundoff of ``dtype`` matrix products: float32 products may run in TF32
    (10 significand bits) or bfloat16 (7) where the user allows it
    (``torch.set_float32_matmul_precision``, ``torch.backends.cuda.matmul.allow_tf32``)."""
    eps = torch.finfo(dtype).eps
    if dtype == torch.float32:
        precision = torch.get_float32_matmul_precision()
        if precision == "medium":
            eps = max(eps, 2.0 ** -7)
        elif precision == "high" or torch.backends.cuda.matmul.allow_tf32:
            eps = max(eps, 2.0 ** -10)
    return eps


def _sign_tolerance(dtype: torch.dtype, n: int) -> float:
    """Fraction of sqrt(saa) sqrt(see) (of saa, see) that cov (va, vb) must exceed for
    the sums of :func:`row_signs` to fix r's sign: 64 n eps, far above their rounding
    error (at most ~(n + 3) eps of it, by Cauchy-Schwarz on the sums of products)."""
    return min(0.5, 64.0 * max(n, 1) * _matmul_eps(dtype))


def row_signs(block: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
    """``(sign, n)`` [K, R]: the sign of the pairwise-complete Pearson r of each row of
    ``block`` [K, R, n] with its module's ``ref`` [K, n] (NaN = missing) as int8, 1 for
    r >= 0, -1 for r < 0 and 0 for a NaN r, and the row's complete pairs n (int64): those
    of :func:`~.pearson.paired_pearson`, from the centred sums where they fix the sign
    and from paired_pearson itself on the rows where they do not."""
    k, rows, n = block.shape
    dtype = block.dtype
    me = torch.isfinite(ref)
    mef = me.to(dtype)
    zero = torch.zeros((), dtype=dtype, device=block.device)
    ref0 = torch.where(me, ref, zero)
    ce = ref0.sum(-1, keepdim=True) / mef.sum(-1, keepdim=True).clamp_min(1.0)
    e0 = torch.where(me, ref0 - ce, zero)
    by_mask = torch.stack([mef, e0, e0 * e0], dim=2)  # [K, n, 3]: n | se | see
    by_value = torch.stack([mef, e0], dim=2)  # [K, n, 2]: sa | sae
    tol = _sign_tolerance(dtype, n)
    normal = torch.finfo(dtype).tiny / torch.finfo(dtype).eps
    sign = torch.empty((k, rows), dtype=torch.int8, device=block.device)
    count = torch.empty((k, rows), dtype=torch.int64, device=block.device)
    unclear = torch.empty((k, rows), dtype=torch.bool, device=block.device)
    step = max(1, _SIGN_BLOCK_BYTES // max(1, k * n * block.element_size()))
    for a in range(0, rows, step):
        x = block[:, a:a + step]
        mx = torch.isfinite(x)
        mxf = mx.to(dtype)
        x0 = torch.where(mx, x, zero)
        x0 = torch.where(mx, x0 - x0.sum(-1, keepdim=True) / mxf.sum(-1, keepdim=True)
                         .clamp_min(1.0), zero)
        pairs, se, see = (mxf @ by_mask).unbind(-1)
        sa, sae = (x0 @ by_value).unbind(-1)
        saa = (x0.square_() @ mef[:, :, None])[..., 0]
        safe = pairs.clamp_min(1.0)
        cov = sae - sa * se / safe
        # the bound holds for normal sums: a side whose squares reach the subnormal
        # range (or whose product would) goes to the exact recompute
        clear = (cov.abs() > tol * torch.sqrt(saa) * torch.sqrt(see)) & (
            saa - sa * sa / safe > tol * saa) & (see - se * se / safe > tol * see) & (
            saa > normal) & (see > normal)
        sign[:, a:a + step] = torch.where(cov > 0, 1, -1)
        count[:, a:a + step] = pairs.round().to(torch.int64)
        unclear[:, a:a + step] = ~clear
    sign.masked_fill_(count < 2, 0)  # fewer than 2 pairs: r is NaN
    redo = torch.nonzero(unclear & (count >= 2))  # one host synchronisation (CUDA)
    if redo.shape[0]:
        module, row = redo[:, 0], redo[:, 1]
        r, _ = paired_pearson(block[module, row], ref[module])
        sign[module, row] = torch.where(r >= 0, 1, torch.where(r < 0, -1, 0)).to(torch.int8)
    return sign, count


def gather_module_rows(scores: Tensor, rows: Tensor) -> Tensor:
    """Gather module rows of ``scores`` [n, R] into [K, R_max, n].

    ``rows`` [K, R_max] int64 holds row indices per module, -1 for padding (NaN rows).
    Only the gathered rows are copied.
    """
    block = scores.T[rows.clamp_min(0)]  # [K, R_max, n]
    return block.masked_fill((rows < 0)[:, :, None], float("nan"))


def _nanmean_rows(values: Tensor) -> Tensor:
    """NaN-skipping mean over dim 1 of ``values`` [K, R, n] -> [K, n] (NaN where a module
    has no finite value for a sample), by :func:`~.moments.finite_column_means`."""
    k, r, n = values.shape
    mean, _ = finite_column_means(values.transpose(0, 1).reshape(r, k * n))
    return mean.reshape(k, n)


def module_eigengenes(scores: Tensor, rows: Tensor, orient_to_mean: bool = False) -> Tensor:
    """Sign-aligned eigengenes [n, K].

    ``scores`` [n, R]: feature_scores channels (samples x rows). ``rows`` [K, R_max]:
    each module's row indices, -1 padded; the first row of each module anchors the
    reference's sign (feature_scores order gives the reference's eigengene). A module with
    one row returns that row; a module without rows returns NaN. ``orient_to_mean``:
    negate each eigengene whose pairwise-complete Pearson r with the unsigned mean of its
    module's rows is negative on at least :data:`SIGN_MIN_PAIRS` samples (r = 0, NaN or
    fewer pairs keep the anchored sign).
    """
    block = gather_module_rows(scores, rows)  # [K, R, n]
    valid = rows >= 0  # [K, R]
    n_rows = valid.sum(dim=1)  # [K]
    ones = torch.ones(rows.shape, dtype=scores.dtype, device=scores.device)

    # bootstrap: orient rows i >= 1 against row 0
    sign0, n0 = row_signs(block, block[:, 0, :])
    flip = valid & (n0 >= SIGN_MIN_PAIRS) & (sign0 < 0)
    flip[:, 0] = False
    signs = torch.where(flip, -ones, ones)

    for _ in range(REFINEMENT_ROUNDS):
        e = _nanmean_rows(block * signs[:, :, None])  # [K, n]
        sign, n = row_signs(block, e)
        decided = valid & (n >= SIGN_MIN_PAIRS)
        new = torch.where(sign > 0, ones, -ones)  # NaN r -> -1, as the reference
        new = torch.where(decided, new, signs)
        if torch.equal(new, signs):  # a fixed point: further rounds reproduce it
            break
        signs = new

    single = (n_rows == 1)[:, None]
    signs = torch.where(single, ones, signs)
    eigen = _nanmean_rows(block * signs[:, :, None])  # [K, n]
    if orient_to_mean:
        r_mean, n_mean = paired_pearson(eigen, _nanmean_rows(block))  # [K]
        against = (n_mean >= SIGN_MIN_PAIRS) & (r_mean < 0)
        eigen = torch.where(against[:, None], -eigen, eigen)
    return eigen.T.contiguous()
