"""Training-loop API: ModuleStatistics against the scipy/numpy oracles of
``_helpers.oracles`` and autograd; the example script's reported figures against them."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch
from _helpers import oracles, paths
from _helpers.cuda import no_host_sync
from _helpers.testers import Tolerance, assert_matches

from isograph_gpu.errors import InputError
from isograph_gpu.training import ModuleStatistics

EXAMPLE = paths.REPO / "examples" / "train_vae_with_drivers.py"


def _example():
    spec = importlib.util.spec_from_file_location("train_vae_with_drivers", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _data(n=40, genes=("A", "A", "B", "B", "B", "C", "D", "D"), k=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(genes)))
    x[:, 1] += 0.8 * x[:, 0]
    x[rng.random(x.shape) < 0.15] = np.nan
    y = rng.normal(size=(n, k))
    y[:, 0] += 0.7 * np.nan_to_num(x[:, 0])
    y[rng.random(y.shape) < 0.05] = np.nan
    return list(genes), x, y


def test_statistics_match_scipy_and_numpy() -> None:
    genes, x, y = _data()
    stats = ModuleStatistics(genes, with_pvalues=True, with_contrast=True)
    out = stats(torch.as_tensor(x), torch.as_tensor(y))
    assert stats.gene_names == ["A", "B", "C", "D"]
    assert out.r.shape == (8, 3) and out.switch_strength.shape == (4, 3)
    assert out.r.dtype == torch.float64 and out.n.dtype == torch.int64
    r, p, n = oracles.pearson(x, y)
    seg = np.array([stats.gene_names.index(g) for g in genes])
    assert_matches(
        {"r": out.r.numpy(), "n": out.n.numpy(), "pvalue": out.pvalue.numpy(),
         "qvalue": out.qvalue.numpy(), "switch": out.switch_strength.numpy()},
        {"r": r, "n": n, "pvalue": p, "qvalue": oracles.fdr(p),
         "switch": oracles.switch_strength(r, seg, 4)},
        Tolerance(atol=1e-12, rtol=1e-9, log10=5e-9))
    # contrast: median split per score, NaN score in neither group, Welch t-test
    c = out.contrast
    assert c is not None
    high, low = oracles.percentile_split(y, 50.0)
    want = vars(oracles.welch(x, high, low))
    names = ("n_high", "n_low", "mean_high", "mean_low", "delta", "tstat", "pvalue")
    assert_matches({name: getattr(c, name).numpy() for name in names}, want,
                   Tolerance(atol=1e-12, rtol=1e-9, log10=4e-9), names)


def test_gradients_through_r_and_switch_strength() -> None:
    genes, x, y = _data(n=12, k=2, seed=3)
    missing = torch.as_tensor(np.isnan(x))
    stats = ModuleStatistics(genes)

    def fn(features: torch.Tensor, scores: torch.Tensor):
        features = torch.where(missing, torch.full_like(features, float("nan")), features)
        out = stats(features, scores)
        return torch.nan_to_num(out.r), out.switch_strength

    xs = torch.as_tensor(np.nan_to_num(x)).requires_grad_(True)
    ys = torch.as_tensor(np.nan_to_num(y, nan=0.3)).requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (xs, ys), eps=1e-6, atol=1e-6)


def test_bad_inputs_raise_one_line_errors() -> None:
    stats = ModuleStatistics(["A", "B"])
    with pytest.raises(InputError, match=r"features must be \[n, 2\]"):
        stats(torch.zeros(5, 3), torch.zeros(5, 1))
    with pytest.raises(InputError, match=r"scores must be \[5, K\]"):
        stats(torch.zeros(5, 2), torch.zeros(4, 1))
    with pytest.raises(InputError, match="gene_ids is empty"):
        ModuleStatistics([])
    with pytest.raises(InputError, match="fdr_method"):
        ModuleStatistics(["A"], fdr_method="holm")


def test_vae_training_loop_loss_decreases_and_stats_match_scipy() -> None:
    """Each epoch's statistics of the latent means against scipy (not against the ops
    ModuleStatistics is built from)."""
    ex = _example()
    torch.manual_seed(0)
    data = ex.make_data(n_samples=128, n_genes=12, seed=1)
    x = data.features
    stats = ModuleStatistics(data.gene_ids, with_pvalues=True)
    model = ex.TinyVAE(x.shape[1]).double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x_in = torch.nan_to_num(x)
    seg = stats.segment().numpy()
    losses = []
    for epoch in range(8):
        opt.zero_grad()
        recon, mu, logvar = model(x_in)
        out = stats(x, mu)
        loss = ex.vae_loss(x, recon, mu, logvar) - 0.1 * out.switch_strength.mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if epoch in (0, 3, 7):
            r, p, n = oracles.pearson(x.numpy(), mu.detach().numpy())
            assert_matches(
                {"r": out.r.detach().numpy(), "n": out.n.numpy(), "pvalue": out.pvalue.numpy(),
                 "switch": out.switch_strength.detach().numpy()},
                {"r": r, "n": n, "pvalue": p,
                 "switch": oracles.switch_strength(r, seg, stats.n_genes)},
                Tolerance(atol=1e-12, rtol=1e-9, log10=4e-10))
    assert losses[-1] < losses[0]
    assert np.all(np.isfinite(losses))


def test_example_reports_each_epoch_as_scipy_computes_it(capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    """The example's first-epoch figures (before any optimiser step) recomputed with scipy
    from the same seeded model and data; one printed line per epoch; the loss falls."""
    ex = _example()
    history = ex.train(epochs=4, verbose=True)
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert len(printed) == 4 and len(history) == 4
    assert history[-1]["loss"] < history[0]["loss"]
    torch.manual_seed(0)  # train(seed=0) replayed up to the first forward pass
    data = ex.make_data(seed=0)
    x = data.features.to(torch.float32)
    model = ex.TinyVAE(x.shape[1])
    _, mu, _ = model(torch.nan_to_num(x))
    r, p, _ = oracles.pearson(x.double().numpy(), mu.detach().double().numpy())
    genes = list(dict.fromkeys(data.gene_ids))
    seg = np.array([genes.index(g) for g in data.gene_ids])
    strength = oracles.switch_strength(r, seg, len(genes))
    first = history[0]
    assert first["mean_switch_strength"] == pytest.approx(strength.mean(), abs=1e-5)
    assert first["max_switch_strength"] == pytest.approx(strength.max(), abs=1e-5)
    assert first["max_abs_r"] == pytest.approx(np.nanmax(np.abs(r)), abs=1e-5)
    assert first["n_q_below_0.05"] == (oracles.fdr(p) < 0.05).sum()
    assert f"switch mean {strength.mean():.3f}" in printed[0]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_call_path_has_no_host_sync() -> None:
    genes, x, y = _data(n=200, seed=4)
    stats = ModuleStatistics(genes, with_pvalues=True, with_contrast=True).to("cuda")
    xc = torch.as_tensor(x, dtype=torch.float32).cuda()
    yc = torch.as_tensor(y, dtype=torch.float32).cuda().requires_grad_(True)
    stats(xc, yc)  # warm-up (lazy CUDA init may sync)
    with no_host_sync():
        out = stats(xc, yc)
        out.switch_strength.sum().backward()
    cpu = ModuleStatistics(genes, with_pvalues=True)(
        torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    )
    assert out.r.device.type == "cuda"
    torch.testing.assert_close(out.r.cpu(), cpu.r, atol=1e-5, rtol=0, equal_nan=True)
    torch.testing.assert_close(out.pvalue.cpu(), cpu.pvalue, rtol=1e-4, atol=1e-12, equal_nan=True)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_call_at_benchmark_size_has_no_host_sync(dtype: torch.dtype) -> None:
    """256 x 50,000 x 16 (bench/bench_training.py): forward + backward without a host
    sync, r and p against the float64 CPU path; results follow the inputs' dtype."""
    rng = np.random.default_rng(9)
    n, f, k = 256, 50_000, 16
    genes = [f"G{i // 4:05d}" for i in range(f)]
    x = rng.random((n, f))
    x[rng.random(x.shape) < 0.02] = np.nan
    y = rng.normal(size=(n, k))
    stats = ModuleStatistics(genes, with_pvalues=True).to("cuda")
    xc = torch.as_tensor(x, dtype=dtype).cuda()
    yc = torch.as_tensor(y, dtype=dtype).cuda().requires_grad_(True)
    stats(xc, yc).switch_strength.sum().backward()  # warm-up
    yc.grad = None
    with no_host_sync():
        out = stats(xc, yc)
        out.switch_strength.nanmean().backward()
    assert out.r.dtype == dtype and out.pvalue.dtype == torch.float64
    assert yc.grad is not None and yc.grad.dtype == dtype
    cpu = ModuleStatistics(genes, with_pvalues=True)(torch.as_tensor(x), torch.as_tensor(y))
    r_tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out.r.double().cpu(), cpu.r, atol=r_tol, rtol=0, equal_nan=True)
    p_rtol = 5e-3 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(out.pvalue.cpu(), cpu.pvalue, rtol=p_rtol, atol=1e-300,
                               equal_nan=True)
