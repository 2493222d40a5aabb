"""Decoder attribution: batched finite differences, exact jvp, latent choice, §9.3 filter."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from isograph_gpu.attribution.attribution_tables import (
    EMPTY_VAE_DRIVER_COLUMNS,
    best_channels,
    gene_row_index,
    vae_driver_table,
)
from isograph_gpu.attribution.checkpoint import VaeDecoder
from isograph_gpu.attribution.decoder import decoder_exact_derivative, decoder_finite_difference
from isograph_gpu.attribution.latent import latent_module_correlations, select_module_latents


def random_decoder(d: int = 30, latent: int = 5, seed: int = 0) -> VaeDecoder:
    torch.manual_seed(seed)
    return VaeDecoder(d, latent, 16, 2).double().eval()


def test_batched_finite_difference_equals_per_module_loop():
    dec = random_decoder()
    z = torch.randn(5, dtype=torch.float64)
    axes = torch.tensor([3, 0, 4])
    got = decoder_finite_difference(dec, z, axes, eps=0.7)
    for row, j in enumerate(axes.tolist()):
        e = torch.zeros(5, dtype=torch.float64)
        e[j] = 0.7
        with torch.no_grad():
            expect = (dec(z + e) - dec(z - e)) / 1.4
        torch.testing.assert_close(got[row], expect, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(decoder_finite_difference(dec, z, axes, eps=-0.7), got,
                               rtol=0, atol=0)


def test_exact_derivative_equals_autograd_jacobian_columns():
    dec = random_decoder()
    z = torch.randn(5, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(dec, z)  # (d, L)
    axes = torch.tensor([1, 1, 2])
    got = decoder_exact_derivative(dec, z, axes)
    torch.testing.assert_close(got, jac[:, axes].T, rtol=1e-12, atol=1e-12)


def test_finite_differences_converge_to_exact_on_a_smooth_decoder():
    """Central differences on a C-infinity (tanh) decoder: error falls like eps^2."""
    torch.manual_seed(1)
    smooth = nn.Sequential(nn.Linear(4, 12), nn.Tanh(), nn.Linear(12, 12), nn.Tanh(),
                           nn.Linear(12, 25)).double()
    z = torch.randn(4, dtype=torch.float64)
    axes = torch.arange(4)
    exact = decoder_exact_derivative(smooth, z, axes)
    errors = [float((decoder_finite_difference(smooth, z, axes, eps) - exact).abs().max())
              for eps in (1e-1, 1e-2, 1e-3)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[0] / errors[1] > 50 and errors[1] / errors[2] > 50  # second order
    assert errors[2] < 1e-7


def test_finite_differences_approach_exact_on_the_elu_decoder():
    dec = random_decoder(seed=3)
    z = torch.randn(5, dtype=torch.float64) * 0.1
    axes = torch.arange(5)
    exact = decoder_exact_derivative(dec, z, axes)
    assert float((decoder_finite_difference(dec, z, axes, 1e-5) - exact).abs().max()) < 1e-8


def numpy_latent_r(z: np.ndarray, e: np.ndarray) -> np.ndarray:
    """The reference formula: mean of products of population-standardised vectors."""
    out = np.zeros((e.shape[1], z.shape[1]))
    for k in range(e.shape[1]):
        ok = np.isfinite(e[:, k])
        ek = e[ok, k]
        if not ek.std() > 0:
            continue
        es = (ek - ek.mean()) / ek.std()
        for j in range(z.shape[1]):
            zj = z[ok, j]
            if zj.std() > 0:
                out[k, j] = np.mean(es * (zj - zj.mean()) / zj.std())
    return out


@settings(max_examples=40, deadline=None)
@given(n=st.integers(4, 30), k=st.integers(1, 4), nan_frac=st.sampled_from([0.0, 0.2]),
       seed=st.integers(0, 10_000))
def test_latent_correlations_match_numpy(n, k, nan_frac, seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3)) * rng.uniform(0.1, 10, 3)
    e = rng.normal(size=(n, k))
    e[rng.random(size=e.shape) < nan_frac] = np.nan
    e[: n - 2, 0] = np.where(np.isnan(e[: n - 2, 0]), np.nan, e[: n - 2, 0])
    got = latent_module_correlations(torch.from_numpy(z), torch.from_numpy(e)).numpy()
    np.testing.assert_allclose(got, numpy_latent_r(z, e), rtol=1e-9, atol=1e-9)


def test_latent_choice_rules():
    z = np.array([[1.0, 5.0, -1.0, 2.0], [2.0, 5.0, -2.0, 2.0], [3.0, 5.0, -3.0, 2.0]])
    e = np.column_stack([[1.0, 2.0, 3.0], [4.0, 4.0, 4.0]])
    r = latent_module_correlations(torch.from_numpy(z), torch.from_numpy(e))
    idx, val = select_module_latents(r)
    # module 0: |r| ties between latents 0 (+1) and 2 (-1) -> first; constant latents 1, 3 -> 0
    assert idx.tolist() == [0, 0] and val.tolist() == pytest.approx([1.0, 0.0])
    assert r[0, 1] == 0 and r[0, 3] == 0
    assert (r[1] == 0).all()  # constant eigengene: all zeros -> latent 0


def reference_filter(driver: pd.DataFrame, genes, features, types, delta, latent_r,
                     fdr=0.05, pct_thr=90.0) -> pd.DataFrame:
    """§9.3 written plainly (loops), with the DESIGN tie rules."""
    best: dict[str, tuple[str, str, float]] = {}
    for g, f, t, d in sorted(zip(genes, features, types, delta, strict=True),
                             key=lambda r: (-abs(r[3]) if not math.isnan(r[3]) else math.inf,
                                            r[1])):
        best.setdefault(g, (f, t, d))
    rows = []
    finite = [abs(best[g][2]) for g in driver.gene_id if not math.isnan(best[g][2])]
    direction = -1.0 if latent_r < 0 else 1.0
    for g, r, q in zip(driver.gene_id, driver.r, driver.qvalue, strict=True):
        f, t, d = best[g]
        if not finite or max(finite) == 0:
            pct = 0.0
        elif math.isnan(d):
            pct = math.nan
        else:
            a = abs(d)
            pct = 100.0 * (sum(v < a for v in finite) + (sum(v == a for v in finite) + 1) / 2) \
                / len(finite)
        agree = bool(np.sign(d * direction) == np.sign(r))
        rows.append(dict(gene_id=g, r=r, qvalue=q, feature_id=f, feature_type=t,
                         decoded_delta=d, latent_dim_idx=2, latent_r=latent_r,
                         decoded_delta_percentile=pct, sign_agreement=agree,
                         passes_filter=bool(q <= fdr and pct >= pct_thr and agree)))
    rows.sort(key=lambda r: (math.isnan(r["decoded_delta"]),
                             -abs(r["decoded_delta"]) if not math.isnan(r["decoded_delta"]) else 0,
                             r["gene_id"]))
    return pd.DataFrame(rows)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_filter_matches_plain_oracle(data):
    n_genes = data.draw(st.integers(1, 12))
    genes = [f"G{i:02d}" for i in range(n_genes)]
    value = st.one_of(st.sampled_from([0.0, 0.5, -0.5, float("nan")]),
                      st.floats(-2, 2, allow_nan=False))
    gene_rows, feature_rows, type_rows, deltas = [], [], [], []
    for g in genes:
        for t in data.draw(st.sampled_from([["abundance"], ["abundance", "switch"]])):
            gene_rows.append(g)
            feature_rows.append(f"{g}::{t}")
            type_rows.append(t)
            deltas.append(data.draw(value))
    order = data.draw(st.permutations(range(n_genes)))
    driver = pd.DataFrame({
        "gene_id": pd.array([genes[i] for i in order], dtype="str"),
        "r": [data.draw(value) for _ in genes],
        "qvalue": [data.draw(st.sampled_from([0.01, 0.05, 0.2, float("nan")])) for _ in genes],
    })
    latent_r = data.draw(st.sampled_from([0.4, -0.4, 0.0]))
    got = vae_driver_table(driver, np.array(gene_rows, dtype=object),
                           np.array(feature_rows, dtype=object),
                           np.array(type_rows, dtype=object), np.array(deltas), 2, latent_r)
    expect = reference_filter(driver, gene_rows, feature_rows, type_rows, deltas, latent_r)
    assert got["gene_id"].tolist() == expect["gene_id"].tolist()
    for col in ["feature_id", "feature_type", "sign_agreement", "passes_filter"]:
        assert got[col].tolist() == expect[col].tolist(), col
    for col in ["r", "qvalue", "decoded_delta", "decoded_delta_percentile", "latent_r"]:
        np.testing.assert_allclose(got[col].to_numpy(float), expect[col].to_numpy(float),
                                   rtol=1e-12, atol=1e-12, err_msg=col)
    assert got["latent_dim_idx"].dtype == np.int64 and (got["latent_dim_idx"] == 2).all()
    assert got["sign_agreement"].dtype == bool and got["passes_filter"].dtype == bool


def test_percentile_rule_with_20_genes_passes_at_most_three():
    genes = [f"G{i:02d}" for i in range(20)]
    deltas = np.linspace(0.1, 2.0, 20)
    driver = pd.DataFrame({"gene_id": pd.array(genes, dtype="str"), "r": np.ones(20),
                           "qvalue": np.full(20, 0.01)})
    got = vae_driver_table(driver, np.array(genes, dtype=object),
                           np.array([g + "::switch" for g in genes], dtype=object),
                           np.array(["switch"] * 20, dtype=object), deltas, 0, 0.9)
    assert got["gene_id"].tolist()[:3] == ["G19", "G18", "G17"]
    assert got["decoded_delta_percentile"].tolist()[:4] == [100.0, 95.0, 90.0, 85.0]
    assert got["passes_filter"].sum() == 3
    # a negative latent_r flips which sign agrees
    flipped = vae_driver_table(driver, np.array(genes, dtype=object),
                               np.array([g + "::switch" for g in genes], dtype=object),
                               np.array(["switch"] * 20, dtype=object), deltas, 0, -0.9)
    assert not flipped["sign_agreement"].any() and not flipped["passes_filter"].any()


def test_empty_driver_table_gives_the_reference_seven_columns():
    empty = pd.DataFrame({"gene_id": pd.array([], dtype="str"), "r": [], "qvalue": []})
    got = vae_driver_table(empty, np.array(["G0"], dtype=object),
                           np.array(["G0::switch"], dtype=object),
                           np.array(["switch"], dtype=object), np.array([1.0]), 0, 0.5)
    assert list(got.columns) == EMPTY_VAE_DRIVER_COLUMNS and len(got) == 0


def test_best_channel_per_gene_rules():
    """Largest |delta| per gene; ties and all-NaN genes go to the lowest feature_id; an
    infinite delta beats NaN; a gene without rows gets -1."""
    genes = np.array(["A", "A", "B", "B", "B", "C", "C", "D", "D", "E"], dtype=object)
    fids = np.array(["A::z", "A::a", "B::c", "B::b", "B::a", "C::b", "C::a", "D::b", "D::a",
                     "E::a"], dtype=object)
    delta = np.array([0.5, -0.5, 0.1, -0.7, 0.7, np.nan, np.nan, np.nan, -np.inf, np.nan])
    rows = gene_row_index(genes)
    got = best_channels(rows, np.array(["E", "D", "C", "B", "A", "X"], dtype=object), delta,
                        fids)
    assert [fids[i] if i >= 0 else None for i in got] == [
        "E::a", "D::a", "C::a", "B::a", "A::a", None]


def test_driver_gene_the_vae_does_not_decode_is_a_nan_row_sorted_last():
    genes = np.array(["G0", "G0", "G1"], dtype=object)
    driver = pd.DataFrame({"gene_id": pd.array(["G9", "G1", "G0"], dtype="str"),
                           "r": [0.5, 0.5, 0.5], "qvalue": [0.01, 0.01, 0.01]})
    got = vae_driver_table(driver, genes, np.array(["G0::a", "G0::b", "G1::a"], dtype=object),
                           np.array(["abundance", "switch", "abundance"], dtype=object),
                           np.array([0.2, -0.9, 0.4]), 1, 0.3)
    assert got["gene_id"].tolist() == ["G0", "G1", "G9"]
    assert got["feature_id"].tolist()[:2] == ["G0::b", "G1::a"]
    assert pd.isna(got["feature_id"].iloc[2]) and np.isnan(got["decoded_delta"].iloc[2])
    assert got["decoded_delta"].tolist()[:2] == [-0.9, 0.4]
    assert not got["sign_agreement"].iloc[2] and not got["passes_filter"].iloc[2]


@pytest.mark.parametrize(("latent_r", "sign"), [(-0.4, -1.0), (0.0, 1.0), (0.7, 1.0),
                                                (float("nan"), 1.0), (-0.0, 1.0)])
def test_direction_sign_orients_ig_scores_and_sign_agreement(latent_r, sign):
    """One direction helper for both tables: 0 and NaN count as +1 (as the former
    tables._direction did)."""
    from isograph_gpu.attribution.attribution_tables import ig_attribution_table
    from isograph_gpu.attribution.latent import direction_sign

    assert direction_sign(latent_r) == sign
    table = ig_attribution_table(np.array(["G1", "G2"]), np.array(["F1", "F2"]),
                                 np.array(["t", "t"]), np.array([0.5, -2.0]),
                                 np.array([0.5, 2.0]), 0, latent_r)
    np.testing.assert_array_equal(table["ig_score_corrected"], table["ig_score"] * sign)
