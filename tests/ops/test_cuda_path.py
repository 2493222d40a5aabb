"""The CUDA path (torch GEMMs on the device, CuPy or torch betainc for p-values) against
independent oracles: the float64 CPU path and numpy/scipy. Marked ``cuda``; skips cleanly
without a device."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers import oracles
from _helpers.testers import Tolerance, assert_matches

from isograph_gpu.engine import feature_statistics
from isograph_gpu.ops.contrast import percentile_split, tail_split
from isograph_gpu.ops.moments import moments_and_group_sums
from isograph_gpu.ops.pearson import pearson_from_moments
from isograph_gpu.ops.segments import segment_argmax, switch_strength

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _data(n: int = 300, f: int = 2000, k: int = 11, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.lognormal(size=(n, f)) * 5.0
    x[rng.random(x.shape) < 0.1] = np.nan
    y = rng.normal(size=(n, k))
    y[rng.random(y.shape) < 0.05] = np.nan
    return x, y


@pytest.mark.parametrize("dtype,r_tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_cuda_moments_and_r_match_cpu_float64(dtype: torch.dtype, r_tol: float) -> None:
    x, y = _data()
    got = moments_and_group_sums(torch.as_tensor(x, dtype=dtype).cuda(),
                                 torch.as_tensor(y, dtype=dtype).cuda())[0]
    want = moments_and_group_sums(torch.as_tensor(x), torch.as_tensor(y))[0]
    assert torch.equal(got.n.double().cpu(), want.n)
    r_got = pearson_from_moments(got, 3).double().cpu()
    r_want = pearson_from_moments(want, 3)
    assert torch.equal(r_got.isnan(), r_want.isnan())
    finite = ~r_want.isnan()
    assert (r_got[finite] - r_want[finite]).abs().max().item() <= r_tol


def test_cuda_segments_match_cpu() -> None:
    rng = np.random.default_rng(1)
    f, k, g = 5000, 9, 1400
    segment = torch.as_tensor(rng.integers(0, g, f))
    r = torch.as_tensor(rng.uniform(-1, 1, (f, k)))
    r[torch.as_tensor(rng.random((f, k)) < 0.2)] = float("nan")
    torch.testing.assert_close(switch_strength(r.cuda(), segment.cuda(), g).cpu(),
                               switch_strength(r, segment, g), rtol=0, atol=0, equal_nan=True)
    keyed = torch.where(r.isfinite(), r.abs(), torch.zeros_like(r))
    assert torch.equal(segment_argmax(keyed.cuda(), segment.cuda(), g).cpu(),
                       segment_argmax(keyed, segment, g))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cuda_engine_tails_and_pvalues_match_scipy(dtype: torch.dtype) -> None:
    """The engine on CUDA (chunks streamed through pinned buffers, CuPy p-values when
    installed): r, Pearson p and the Welch statistics of the overlapping tails split
    against scipy on a sample of features."""
    x, y = _data(n=200, f=600, k=4, seed=5)
    yt = torch.as_tensor(np.nan_to_num(y))
    splits = {"split": percentile_split(yt, 50.0), "tails": tail_split(yt, 20.0)}
    got = feature_statistics(x, yt, min_pairs=3, splits=splits, device=torch.device("cuda"),
                             dtype=dtype, memory_budget_bytes=1 << 30, chunk_features=128)
    r_tol, rel = (1e-12, 1e-9) if dtype == torch.float64 else (1e-5, 5e-3)
    tol = Tolerance(atol=r_tol, rtol=rel, log10=rel / 2.31)  # |dlog10| = rel / ln 10
    high, low = (m.numpy() for m in splits["tails"])
    sample = np.arange(0, 600, 37)
    r, p, _ = oracles.pearson(x[:, sample], yt.numpy())
    assert_matches({"r": got.r[sample], "pvalue": got.pvalue[sample]}, {"r": r, "pvalue": p},
                   tol)
    tails = got.contrasts["tails"]
    want = vars(oracles.welch(x[:, sample], high, low))
    assert_matches({name: getattr(tails, name)[sample] for name in want}, want, tol,
                   ("n_high", "n_low", "tstat", "pvalue"))


def test_chunk_statistics_do_not_synchronise_with_the_host():
    """One chunk's moments, group sums, r, Pearson p (masked), Welch t and p run with one
    host synchronisation: the nonzero that selects the pairs and groups to recompute from
    centred values (ops.moments; none here). A further per-chunk `.any()` or boolean
    indexing would count here."""
    from _helpers.cuda import counted_host_syncs

    from isograph_gpu.compute.step import chunk_statistics, prepare_scores

    device = torch.device("cuda")
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.normal(size=(40, 30))).to(device)
    y = torch.from_numpy(rng.normal(size=(40, 3))).to(device)
    where = torch.ones((30, 3), dtype=torch.bool, device=device)
    prepared = prepare_scores(y, {"split": percentile_split(y, 50.0)}, min_pairs=3,
                              dtype=torch.float64, device=device)  # once per run: may sync
    with counted_host_syncs() as syncs:
        out = chunk_statistics(x, prepared, pvalue_where=where)
    assert len(syncs) == 1, syncs
    assert torch.isfinite(out.r).all()


def test_engine_gemms_keep_the_x_block_orientation_on_cuda() -> None:
    """block' x is tuned for MKL only: the engine's packed block on CUDA runs every GEMM
    as x' block (``outer`` False); on the CPU it is the engine's orientation."""
    from isograph_gpu.ops.moments import RightBlock

    y = torch.randn(20, 40, dtype=torch.float64)
    assert RightBlock.build(y, dtype=torch.float64, device="cpu", pack=True).outer
    assert not RightBlock.build(y, dtype=torch.float64, device="cuda", pack=True).outer
