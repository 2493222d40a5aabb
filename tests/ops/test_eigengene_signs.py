"""The eigengene's sign decisions (ops.eigengene.row_signs) from centred sums are those of
the exactly centred pairwise r (ops.pearson.paired_pearson) on adversarial rows: missing
values, rows constant on their pairs, huge offsets, magnitudes whose squares overflow or
underflow, correlations at rounding level, too few pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from isograph_gpu.ops import eigengene
from isograph_gpu.ops.eigengene import module_eigengenes, row_signs
from isograph_gpu.ops.pearson import paired_pearson


def _exact(block: torch.Tensor, ref: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    r, n = paired_pearson(block, ref[:, None, :])
    sign = np.where(r.numpy() >= 0, 1, np.where(r.numpy() < 0, -1, 0))
    return sign, n.numpy()


def _adversarial_block(seed: int, k: int, rows: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(k, n))
    block = rng.normal(size=(k, rows, n)) + rng.normal(size=(k, rows, 1)) * ref[:, None, :]
    kind = rng.integers(0, 8, size=(k, rows))
    for m in range(k):
        for i in range(rows):
            x = block[m, i]
            if kind[m, i] == 1:
                x[:] = 3.0  # constant: r NaN
            elif kind[m, i] == 2:
                x += 1e12  # huge offset
            elif kind[m, i] == 3:
                x *= 10.0 ** rng.choice([-300, 300])  # squares under / overflow
            elif kind[m, i] == 4:  # uncorrelated to rounding: x orthogonal to centred ref
                e = ref[m] - ref[m].mean()
                x -= (x @ e) / (e @ e) * e
            elif kind[m, i] == 5:
                x[rng.random(n) < 0.9] = np.nan  # few pairs
            elif kind[m, i] == 6:  # constant on the pairs only
                x[:] = np.where(rng.random(n) < 0.5, 2.0, np.nan)
    block[rng.random(block.shape) < 0.1] = np.nan
    ref[rng.random(ref.shape) < 0.05] = np.nan
    return block, ref


@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 4), rows=st.integers(1, 12),
       n=st.integers(2, 60))
@example(seed=0, k=1, rows=1, n=2)
def test_row_signs_are_those_of_the_exact_r(seed, k, rows, n):
    block, ref = _adversarial_block(seed, k, rows, n)
    tb, tr = torch.from_numpy(block), torch.from_numpy(ref)
    sign, count = row_signs(tb, tr)
    want_sign, want_n = _exact(tb, tr)
    np.testing.assert_array_equal(count.numpy(), want_n)
    np.testing.assert_array_equal(sign.numpy(), want_sign)


@pytest.mark.parametrize(("dtype", "magnitudes"), [
    (torch.float64, (1e-100, 1e-150, 1e-160, 1e-170)),
    (torch.float32, (1e-13, 1e-15, 1e-19, 1e-21))])
def test_row_signs_of_tiny_rows_and_references_are_those_of_the_exact_r(dtype, magnitudes):
    """Both sides tiny: the product of their sums of squares underflows (and the sums
    reach the subnormal range), so the sums cannot bound cov's rounding; those rows are
    recomputed exactly. Rows uncorrelated with their reference to rounding level."""
    rng = np.random.default_rng(17)
    for magnitude in magnitudes:
        ref = rng.normal(size=(2, 50))
        block = rng.normal(size=(2, 100, 50))
        e = ref - ref.mean(axis=1, keepdims=True)
        block -= (block @ e[:, :, None]) / (e * e).sum(axis=1)[:, None, None] * e[:, None, :]
        tb = torch.from_numpy(block * magnitude).to(dtype)
        tr = torch.from_numpy(ref * magnitude).to(dtype)
        sign, count = row_signs(tb, tr)
        want_sign, want_n = _exact(tb, tr)
        np.testing.assert_array_equal(count.numpy(), want_n)
        np.testing.assert_array_equal(sign.numpy(), want_sign, err_msg=f"{magnitude:g}")


def test_reduced_precision_float32_products_widen_the_bound():
    """Where float32 matrix products may run in TF32 or bfloat16, the tolerance follows
    their roundoff, not float32's."""
    before = torch.get_float32_matmul_precision()
    try:
        full = eigengene._sign_tolerance(torch.float32, 100)
        torch.set_float32_matmul_precision("high")
        assert eigengene._sign_tolerance(torch.float32, 2) == pytest.approx(
            64 * 2 * 2.0 ** -10)
        torch.set_float32_matmul_precision("medium")
        assert eigengene._sign_tolerance(torch.float32, 2) == 0.5  # capped: 64 * 2 * 2^-7
    finally:
        torch.set_float32_matmul_precision(before)
    assert full == pytest.approx(64 * 100 * torch.finfo(torch.float32).eps)
    assert eigengene._sign_tolerance(torch.float64, 100) == pytest.approx(
        64 * 100 * torch.finfo(torch.float64).eps)


def test_row_signs_in_float32_are_those_of_the_exact_float32_r():
    block, ref = _adversarial_block(11, 3, 40, 80)
    block = np.clip(np.nan_to_num(block, nan=np.nan, posinf=1e30, neginf=-1e30), -1e30, 1e30)
    tb, tr = torch.from_numpy(block).float(), torch.from_numpy(ref).float()
    sign, count = row_signs(tb, tr)
    want_sign, want_n = _exact(tb, tr)
    np.testing.assert_array_equal(count.numpy(), want_n)
    np.testing.assert_array_equal(sign.numpy(), want_sign)


def test_ordinary_rows_are_decided_from_the_sums(monkeypatch):
    """Well-conditioned rows never take the exact recompute: paired_pearson sees only the
    rows whose sums cannot fix the sign (here: a constant row and a row uncorrelated with
    its reference to rounding level)."""
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(2, 300))
    block = rng.normal(size=(2, 50, 300)) + 0.5 * ref[:, None, :]
    block[1, 7] = 1.0
    e = ref[0] - ref[0].mean()
    block[0, 3] -= (block[0, 3] @ e) / (e @ e) * e
    seen = []
    real = eigengene.paired_pearson

    def counting(a, b, dim=-1):
        seen.append(a.shape[0])
        return real(a, b, dim)

    monkeypatch.setattr(eigengene, "paired_pearson", counting)
    sign, _ = row_signs(torch.from_numpy(block), torch.from_numpy(ref))
    assert seen == [2] and sign[1, 7] == 0
    assert (np.delete(sign[0].numpy(), 3) == 1).all()


@pytest.mark.parametrize("block_bytes", [1, 1 << 20])
def test_eigengenes_do_not_depend_on_the_row_blocks(monkeypatch, block_bytes):
    """Rows taken one at a time or all at once: the same eigengene bits."""
    rng = np.random.default_rng(9)
    scores = rng.normal(size=(70, 30)) + rng.normal(size=(70, 1)) * rng.choice(
        [-1.0, 1.0], size=30)
    scores[rng.random(scores.shape) < 0.1] = np.nan
    rows = torch.tensor([[0, 3, 5, 7, 9, 11], [1, 2, 4, 6, -1, -1], [8, 10, 12, 14, 16, 18]])
    want = module_eigengenes(torch.from_numpy(scores), rows)
    monkeypatch.setattr(eigengene, "_SIGN_BLOCK_BYTES", block_bytes)
    got = module_eigengenes(torch.from_numpy(scores), rows)
    assert torch.equal(got.nan_to_num(7.0), want.nan_to_num(7.0))
