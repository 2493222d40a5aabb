"""Sign-aligned module eigengenes for all modules at once (isograph 0.1.5 semantics).

Each module's channel rows are gathered into a padded tensor [K, R_max, n]; the sign
bootstrap against the first row and the (at most five) refinement rounds against the
running mean run batched over modules. The loop stops at the first round that changes no
sign of any module (one host sync per round on CUDA): once a module's signs stop changing,
further rounds reproduce them, so this equals the reference's per-module early stop.

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
    r0, n0 = paired_pearson(block, block[:, :1, :])
    flip = valid & (n0 >= SIGN_MIN_PAIRS) & (r0 < 0)
    flip[:, 0] = False
    signs = torch.where(flip, -ones, ones)

    for _ in range(REFINEMENT_ROUNDS):
        e = _nanmean_rows(block * signs[:, :, None])  # [K, n]
        r, n = paired_pearson(block, e[:, None, :])
        decided = valid & (n >= SIGN_MIN_PAIRS)
        new = torch.where(r >= 0, ones, -ones)  # NaN r -> -1, as the reference
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
