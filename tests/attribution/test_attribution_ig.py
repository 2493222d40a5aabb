"""Integrated Gradients: equal to plain Captum IG on the whole encoder, bounded memory,
shared work across modules, baselines, completeness, the captum-missing error."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from isograph_gpu.attribution import run_attribution
from isograph_gpu.attribution.checkpoint import VaeDecoder, VaeEncoder, load_checkpoint
from isograph_gpu.attribution.integrated_gradients import encoder_integrated_gradients
from isograph_gpu.config import ExplainConfig
from isograph_gpu.errors import InputError, OptionalDependencyError
from isograph_gpu.io.explain_inputs import ExplainInputs
from isograph_gpu.progress import Progress

# these tests run the encoder through Captum (optional extra `explain`)
captum_attr = pytest.importorskip("captum.attr", reason="captum is not installed")
IntegratedGradients = captum_attr.IntegratedGradients

N, D, LATENT = 24, 40, 4


def encoder(seed: int = 0) -> VaeEncoder:
    torch.manual_seed(seed)
    return VaeEncoder(D, LATENT, 16, 2).double().eval().requires_grad_(False)


def data(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, D, generator=g, dtype=torch.float64) * 1.5 + 0.3


def plain_captum(enc: VaeEncoder, x: torch.Tensor, j: int, baseline: torch.Tensor,
                 n_steps: int):
    """The reference's call: Captum IG on the full input, all steps in one batch."""
    ig = IntegratedGradients(lambda v: enc(v)[0][:, j])
    attr, delta = ig.attribute(x, baselines=baseline, n_steps=n_steps,
                               return_convergence_delta=True)
    return attr, delta


@pytest.mark.parametrize("kind", ["zero", "feature-mean", "mean"])
def test_equals_plain_captum_on_the_whole_encoder(kind):
    enc, x = encoder(), data()
    baseline = {"zero": torch.zeros_like(x),
                "feature-mean": x.mean(0, keepdim=True).expand_as(x),
                # DESIGN difference 3: the per-sample mean across that sample's features
                "mean": x.mean(1, keepdim=True).expand_as(x)}[kind]
    got = encoder_integrated_gradients(enc, x, [2, 0], baseline=kind, n_steps=17)
    assert sorted(got) == [0, 2]
    for j in (0, 2):
        attr, delta = plain_captum(enc, x, j, baseline.contiguous(), 17)
        torch.testing.assert_close(got[j].ig_mean, attr.mean(0), rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(got[j].ig_abs_mean, attr.abs().mean(0), rtol=1e-9,
                                   atol=1e-12)
        torch.testing.assert_close(got[j].completeness_error, delta, rtol=1e-7, atol=1e-12)
        assert got[j].convergence_delta == pytest.approx(float(delta.abs().max()), rel=1e-6)


def test_precomputed_input_layer_gives_the_same_result():
    """run_attribution passes the encoder pass's first-layer values to IG (X is multiplied
    by W1 once); the result is the one IG computes for itself."""
    enc, x = encoder(), data(1)
    with torch.no_grad():
        u_x = enc.input_layer(x)
    own = encoder_integrated_gradients(enc, x, [1, 3], n_steps=9)
    given = encoder_integrated_gradients(enc, x, [1, 3], n_steps=9, u_x=u_x)
    for j in (1, 3):
        torch.testing.assert_close(given[j].ig_mean, own[j].ig_mean, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(given[j].ig_abs_mean, own[j].ig_abs_mean, rtol=1e-12,
                                   atol=1e-15)
    with pytest.raises(ValueError, match="u_x has shape"):
        encoder_integrated_gradients(enc, x, [1], n_steps=9, u_x=u_x[:-1])


def test_small_memory_budget_batches_without_changing_results(monkeypatch):
    enc, x = encoder(1), data(1)
    full = encoder_integrated_gradients(enc, x, [1], n_steps=30, memory_budget_bytes=1 << 30)
    calls: list[tuple[int, int]] = []
    original = IntegratedGradients.attribute

    def spy(self, inputs, *args, **kwargs):
        calls.append((inputs.shape[0], kwargs["internal_batch_size"]))
        return original(self, inputs, *args, **kwargs)

    monkeypatch.setattr(IntegratedGradients, "attribute", spy)
    small = encoder_integrated_gradients(enc, x, [1], n_steps=30, memory_budget_bytes=16_000)
    assert len(calls) > 1  # samples were split into chunks
    assert max(rows for rows, _ in calls) < N and max(b for _, b in calls) < 30 * N
    torch.testing.assert_close(small[1].ig_mean, full[1].ig_mean, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(small[1].ig_abs_mean, full[1].ig_abs_mean, rtol=1e-10,
                               atol=1e-13)


def test_each_captum_batch_reports_progress(monkeypatch):
    """Issue 13.3: IG is a long stage; it reports done/total after every Captum batch."""
    enc, x = encoder(1), data(1)
    batches: list[int] = []
    original = IntegratedGradients.attribute

    def spy(self, inputs, *args, **kwargs):
        batches.append(inputs.shape[0])
        return original(self, inputs, *args, **kwargs)

    monkeypatch.setattr(IntegratedGradients, "attribute", spy)
    reported: list[tuple[int, int]] = []
    encoder_integrated_gradients(enc, x, [1, 2], n_steps=30, memory_budget_bytes=16_000,
                                 on_batch=lambda done, total: reported.append((done, total)))
    assert len(batches) > 1
    assert reported == [(k, len(batches)) for k in range(1, len(batches) + 1)]


def test_more_steps_converge():
    enc, x = encoder(2), data(2)
    deltas = [encoder_integrated_gradients(enc, x, [3], n_steps=s)[3].convergence_delta
              for s in (2, 8, 64)]
    # ELU is only C1, so Gauss-Legendre converges algebraically rather than spectrally
    assert deltas[0] > deltas[1] > deltas[2] and deltas[2] < 1e-2 * deltas[0]


def test_bad_baseline_is_an_input_error():
    with pytest.raises(InputError, match="ig_baseline"):
        encoder_integrated_gradients(encoder(), data(), [0], baseline="median")


def save_checkpoint(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    torch.save({"encoder": VaeEncoder(D, LATENT, 16, 2).state_dict(),
                "decoder": VaeDecoder(D, LATENT, 16, 2).state_dict(), "n_genes": D,
                "latent_dim": LATENT, "hidden_dim": 16, "n_hidden_layers": 2}, path)
    return path


def inputs_for(path: Path, x: np.ndarray, module_ids: list[str]) -> ExplainInputs:
    genes = np.array([f"G{i // 2:02d}" for i in range(D)], dtype=object)
    types = np.array(["abundance", "switch"] * (D // 2), dtype=object)
    fids = np.array([f"{g}::{t}" for g, t in zip(genes, types, strict=True)], dtype=object)
    return ExplainInputs(
        artifact_dir=path.parent, sample_ids=[f"S{i:02d}" for i in range(N)],
        module_ids=module_ids, module_genes={}, n_module_genes={}, scores=x,
        score_feature_ids=fids, score_gene_ids=genes, score_feature_types=types,
        features=np.zeros((N, 0)), feature_ids=np.array([], dtype=object),
        feature_gene_ids=np.array([], dtype=object), feature_types=np.array([], dtype=object),
        feature_transcript_ids=None, checkpoint_path=path)


def test_modules_sharing_a_latent_share_the_work(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "vae_checkpoint.pt")
    x = data(3).numpy()
    mu = load_checkpoint(path).encoder(torch.from_numpy(x))[0].numpy()
    # modules A and B follow latent 0 (B reversed), C follows latent 2
    eig = np.column_stack([mu[:, 0], -2 * mu[:, 0] + 0.01 * mu[:, 1], mu[:, 2]])
    calls = []
    original = IntegratedGradients.attribute

    def spy(self, inputs, *args, **kwargs):
        calls.append(inputs.shape[0])
        return original(self, inputs, *args, **kwargs)

    monkeypatch.setattr(IntegratedGradients, "attribute", spy)
    # float64: compared with plain Captum to 1e-9 below (auto would be float32)
    out = run_attribution(inputs_for(path, x, ["A", "B", "C"]), eig, {}, ExplainConfig(
        integrated_gradients=True, ig_n_steps=10, precision="float64"), torch.device("cpu"),
        Progress())
    assert sum(calls) == 2 * N  # each distinct latent explained once for every sample
    tables = {m: out[m].ig_attributions.sort_values("feature_id").reset_index(drop=True)
              for m in "ABC"}
    assert tables["A"]["latent_dim_idx"].iloc[0] == 0 == tables["B"]["latent_dim_idx"].iloc[0]
    assert tables["C"]["latent_dim_idx"].iloc[0] == 2
    assert tables["A"]["latent_r"].iloc[0] > 0 > tables["B"]["latent_r"].iloc[0]
    np.testing.assert_array_equal(tables["A"]["ig_score"], tables["B"]["ig_score"])
    np.testing.assert_array_equal(tables["A"]["ig_score_corrected"],
                                  -tables["B"]["ig_score_corrected"])
    assert out["A"].ig_convergence_delta == out["B"].ig_convergence_delta
    # against plain captum for module C, via the table
    enc = load_checkpoint(path).encoder
    attr, _ = plain_captum(enc, torch.from_numpy(x), 2, torch.zeros(N, D, dtype=torch.float64),
                           10)
    by_id = pd.Series(attr.mean(0).numpy(), index=inputs_for(path, x, ["C"]).score_feature_ids)
    np.testing.assert_allclose(tables["C"]["ig_score"],
                               by_id.loc[tables["C"]["feature_id"]].to_numpy(), rtol=1e-9,
                               atol=1e-13)
    score = out["C"].ig_attributions["ig_score"].abs().to_numpy()
    assert (np.diff(score) <= 0).all()  # sorted by |ig_score| descending


def test_missing_captum_is_an_optional_dependency_error(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "vae_checkpoint.pt")
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    with pytest.raises(OptionalDependencyError, match=r"pip install 'isograph-gpu\[explain\]'"):
        run_attribution(inputs_for(path, data().numpy(), ["A"]), np.zeros((N, 1)), {},
                        ExplainConfig(integrated_gradients=True), torch.device("cpu"),
                        Progress())


def test_eigengene_shape_must_match(tmp_path):
    path = save_checkpoint(tmp_path / "vae_checkpoint.pt")
    with pytest.raises(InputError, match=r"24 samples x 2 modules"):
        run_attribution(inputs_for(path, data().numpy(), ["A", "B"]), np.zeros((N, 1)), {},
                        ExplainConfig(vae_attribution=True), torch.device("cpu"), Progress())


def test_all_nan_eigengene_and_empty_driver_table(tmp_path):
    """A module whose genes are all absent: NaN eigengene -> latent 0 with r 0 (as the
    reference), an empty driver table -> the reference's 7-column empty vae_drivers."""
    path = save_checkpoint(tmp_path / "vae_checkpoint.pt")
    x = data(5).numpy()
    mu = load_checkpoint(path).encoder(torch.from_numpy(x))[0].numpy()
    eig = np.column_stack([np.full(N, np.nan), mu[:, 1]])
    empty = pd.DataFrame({"gene_id": pd.array([], dtype="str"), "r": [], "qvalue": []})
    full = pd.DataFrame({"gene_id": pd.array(["G00", "G01"], dtype="str"), "r": [0.5, -0.5],
                         "qvalue": [0.01, 0.01]})
    out = run_attribution(inputs_for(path, x, ["A", "B"]), eig, {"A": empty, "B": full},
                          ExplainConfig(vae_attribution=True, integrated_gradients=True,
                                        ig_n_steps=5), torch.device("cpu"), Progress())
    assert len(out["A"].vae_drivers) == 0 and len(out["A"].vae_drivers.columns) == 7
    assert (out["A"].ig_attributions["latent_dim_idx"] == 0).all()
    assert (out["A"].ig_attributions["latent_r"] == 0).all()
    assert out["B"].vae_drivers["latent_dim_idx"].tolist() == [1, 1]
    assert out["B"].vae_drivers["latent_r"].iloc[0] == pytest.approx(1.0)
    inputs = inputs_for(path, x, [])
    assert run_attribution(inputs, np.zeros((N, 0)), {}, ExplainConfig(vae_attribution=True),
                           torch.device("cpu"), Progress()) == {}


def test_captum_gradient_hook_is_the_one_we_replace():
    """Fails loudly when a Captum upgrade moves the private hook _batched_gradients
    replaces: then re-check captum's compute_gradients and widen
    CAPTUM_GRADIENT_HOOK_VERSIONS (until then Captum's own, slower gradients are used)."""
    import inspect

    from captum._utils import gradient

    from isograph_gpu.attribution import integrated_gradients as igmod

    ig = IntegratedGradients(lambda v: v.sum(1), multiply_by_inputs=False)
    assert igmod.captum_gradient_hook_known(ig), (
        "the installed Captum is outside CAPTUM_GRADIENT_HOOK_VERSIONS or no longer uses "
        "ig.gradient_func = compute_gradients")
    assert list(inspect.signature(gradient.compute_gradients).parameters) == list(
        inspect.signature(igmod._batched_gradients).parameters)
    assert igmod.use_batched_gradients(ig) and ig.gradient_func is igmod._batched_gradients


def test_unknown_captum_release_keeps_captums_own_gradients(monkeypatch):
    import captum

    from isograph_gpu.attribution import integrated_gradients as igmod

    enc, x = encoder(2), data(2)
    patched = encoder_integrated_gradients(enc, x, [0, 3], n_steps=11)
    monkeypatch.setattr(captum, "__version__", "0.10.0")
    ig = IntegratedGradients(lambda v: v.sum(1), multiply_by_inputs=False)
    assert not igmod.use_batched_gradients(ig)
    assert ig.gradient_func is not igmod._batched_gradients
    own = encoder_integrated_gradients(enc, x, [0, 3], n_steps=11)
    for j in (0, 3):
        torch.testing.assert_close(own[j].ig_mean, patched[j].ig_mean, rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(own[j].completeness_error, patched[j].completeness_error,
                                   rtol=1e-8, atol=1e-12)
