"""Checkpoint loading: the reference architecture, feature-id alignment and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _helpers import paths

from isograph_gpu.attribution import ModuleAttribution, attribution_dtype, run_attribution
from isograph_gpu.attribution.checkpoint import (
    VaeDecoder,
    VaeEncoder,
    checkpoint_feature_order,
    load_checkpoint,
)
from isograph_gpu.config import ExplainConfig
from isograph_gpu.errors import InputError
from isograph_gpu.io.explain_inputs import ExplainInputs
from isograph_gpu.progress import Progress

# these tests run the encoder through Captum (optional extra `explain`)
captum_attr = pytest.importorskip("captum.attr", reason="captum is not installed")

CKPT = paths.DATA / "isograph-0.1.5" / "inputs" / "artifact" / "vae_checkpoint.pt"


def elu(v: np.ndarray) -> np.ndarray:
    return np.where(v > 0, v, np.expm1(np.minimum(v, 0)))


def test_fixture_checkpoint_rebuilds_reference_architecture():
    """Encoder/decoder recomputed by hand from the raw state dicts (numpy oracle)."""
    raw = torch.load(CKPT, map_location="cpu", weights_only=True)
    ckpt = load_checkpoint(CKPT)
    assert (ckpt.n_inputs, ckpt.latent_dim) == (600, 8)
    assert ckpt.feature_ids == [str(f) for f in raw["feature_ids"]]
    assert set(ckpt.encoder.state_dict()) == set(raw["encoder"])
    assert set(ckpt.decoder.state_dict()) == set(raw["decoder"])
    enc = {k: v.double().numpy() for k, v in raw["encoder"].items()}
    dec = {k: v.double().numpy() for k, v in raw["decoder"].items()}
    x = np.random.default_rng(0).normal(size=(7, 600))
    h = elu(x @ enc["shared.0.weight"].T + enc["shared.0.bias"])
    h = elu(h @ enc["shared.2.weight"].T + enc["shared.2.bias"])
    mu = h @ enc["mu_head.weight"].T + enc["mu_head.bias"]
    lv = h @ enc["lv_head.weight"].T + enc["lv_head.bias"]
    got_mu, got_lv = ckpt.encoder(torch.from_numpy(x))
    np.testing.assert_allclose(got_mu.numpy(), mu, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_lv.numpy(), lv, rtol=1e-12, atol=1e-12)
    g = elu(mu @ dec["net.0.weight"].T + dec["net.0.bias"])
    g = elu(g @ dec["net.2.weight"].T + dec["net.2.bias"])
    out = g @ dec["net.4.weight"].T + dec["net.4.bias"]
    np.testing.assert_allclose(ckpt.decoder(got_mu).numpy(), out, rtol=1e-12, atol=1e-12)
    assert ckpt.encoder.shared[0].weight.dtype == torch.float64
    assert not any(p.requires_grad for p in ckpt.encoder.parameters())


def save_random_checkpoint(path: Path, n_inputs: int, latent: int = 3, hidden: int = 8,
                           layers: int = 2, feature_ids: list[str] | None = None,
                           seed: int = 0) -> Path:
    torch.manual_seed(seed)
    payload = {
        "encoder": VaeEncoder(n_inputs, latent, hidden, layers).state_dict(),
        "decoder": VaeDecoder(n_inputs, latent, hidden, layers).state_dict(),
        "n_genes": n_inputs, "latent_dim": latent, "hidden_dim": hidden,
        "n_hidden_layers": layers,
    }
    if feature_ids is not None:
        payload["feature_ids"] = feature_ids
    torch.save(payload, path)
    return path


def make_inputs(path: Path | None, scores: np.ndarray, feature_ids: list[str],
                module_ids: list[str]) -> ExplainInputs:
    n = scores.shape[0]
    genes = np.array([f.split("::")[0] for f in feature_ids], dtype=object)
    types = np.array([f.split("::")[1] for f in feature_ids], dtype=object)
    return ExplainInputs(
        artifact_dir=Path("artifact"), sample_ids=[f"S{i:03d}" for i in range(n)],
        module_ids=module_ids, module_genes={}, n_module_genes={}, scores=scores,
        score_feature_ids=np.array(feature_ids, dtype=object), score_gene_ids=genes,
        score_feature_types=types, features=np.zeros((n, 0)),
        feature_ids=np.array([], dtype=object), feature_gene_ids=np.array([], dtype=object),
        feature_types=np.array([], dtype=object), feature_transcript_ids=None,
        checkpoint_path=path,
    )


def driver_table(genes: list[str], rng: np.random.Generator) -> pd.DataFrame:
    k = len(genes)
    return pd.DataFrame({
        "gene_id": pd.array(genes, dtype="str"),
        "feature_id": pd.array([g + "::abundance" for g in genes], dtype="str"),
        "feature_type": pd.array(["abundance"] * k, dtype="str"),
        "r": rng.uniform(-1, 1, k), "pvalue": rng.uniform(0, 0.1, k),
        "qvalue": rng.uniform(0, 0.1, k), "n_samples": np.full(k, 20, dtype=np.int64),
        "missing_fraction": np.zeros(k),
    })


FEATURES = [f"G{g}::{t}" for g in range(6) for t in ("abundance", "switch")]


def test_feature_scores_rows_are_aligned_to_checkpoint_feature_ids(tmp_path):
    """Shuffling the feature_scores rows gives the same per-feature numbers."""
    rng = np.random.default_rng(1)
    path = save_random_checkpoint(tmp_path / "vae_checkpoint.pt", len(FEATURES),
                                  feature_ids=FEATURES)
    scores = rng.normal(size=(20, len(FEATURES)))
    eig = rng.normal(size=(20, 2))
    drivers = {"M0": driver_table(["G0", "G1", "G2"], rng), "M1": driver_table(["G3", "G4"], rng)}
    # float64: moving the columns changes the GEMM's summation order, which float32 would
    # show at ~1e-8; this test is about alignment, compared to 1e-12
    config = ExplainConfig(vae_attribution=True, integrated_gradients=True, ig_n_steps=8,
                           precision="float64")
    base = run_attribution(make_inputs(path, scores, FEATURES, ["M0", "M1"]), eig, drivers,
                           config, torch.device("cpu"), Progress())
    perm = rng.permutation(len(FEATURES))
    shuffled = make_inputs(path, scores[:, perm], [FEATURES[i] for i in perm], ["M0", "M1"])
    moved = run_attribution(shuffled, eig, drivers, config, torch.device("cpu"), Progress())
    for m in ("M0", "M1"):
        assert isinstance(moved[m], ModuleAttribution)
        pd.testing.assert_frame_equal(moved[m].vae_drivers, base[m].vae_drivers, atol=1e-12)
        a = base[m].ig_attributions.sort_values("feature_id").reset_index(drop=True)
        b = moved[m].ig_attributions.sort_values("feature_id").reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, atol=1e-12)


def test_missing_checkpoint_feature_ids_are_named(tmp_path):
    ckpt_ids = [*FEATURES[:-1], "G9::switch"]
    path = save_random_checkpoint(tmp_path / "vae_checkpoint.pt", len(FEATURES),
                                  feature_ids=ckpt_ids)
    with pytest.raises(InputError, match=r"G9::switch") as err:
        checkpoint_feature_order(load_checkpoint(path), np.array(FEATURES, dtype=object))
    assert "G5::switch" in str(err.value)  # the feature_scores row the checkpoint lacks
    assert "\n" not in str(err.value)


def test_width_mismatch_without_feature_ids_is_a_clear_error(tmp_path):
    path = save_random_checkpoint(tmp_path / "vae_checkpoint.pt", len(FEATURES) + 1)
    rng = np.random.default_rng(2)
    inputs = make_inputs(path, rng.normal(size=(20, len(FEATURES))), FEATURES, ["M0"])
    with pytest.raises(InputError, match=r"expects 13 input features .* has 12 rows"):
        run_attribution(inputs, rng.normal(size=(20, 1)), {"M0": driver_table(["G0"], rng)},
                        ExplainConfig(vae_attribution=True), torch.device("cpu"), Progress())


def test_weights_not_matching_declared_sizes(tmp_path):
    path = save_random_checkpoint(tmp_path / "vae_checkpoint.pt", 12, hidden=8)
    payload = torch.load(path, weights_only=True)
    payload["hidden_dim"] = 10  # within the weights' dimensions, not their shapes
    torch.save(payload, path)
    with pytest.raises(InputError, match=r"encoder weights do not match"):
        load_checkpoint(path)


def test_missing_key_and_unreadable_file(tmp_path):
    path = save_random_checkpoint(tmp_path / "vae_checkpoint.pt", 12)
    payload = torch.load(path, weights_only=True)
    del payload["latent_dim"]
    torch.save(payload, path)
    with pytest.raises(InputError, match=r"lacks key\(s\) \['latent_dim'\]"):
        load_checkpoint(path)
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"broken.pt: cannot read"):
        load_checkpoint(bad)


def test_absent_checkpoint_warns_and_skips(tmp_path):
    rng = np.random.default_rng(3)
    inputs = make_inputs(None, rng.normal(size=(20, 12)), FEATURES, ["M0"])
    with pytest.warns(UserWarning, match="skipped"):
        out = run_attribution(inputs, rng.normal(size=(20, 1)), {}, ExplainConfig(
            vae_attribution=True), torch.device("cpu"), Progress())
    assert out == {}
    inputs.checkpoint_path = tmp_path / "vae_checkpoint.pt"  # does not exist
    with pytest.warns(UserWarning, match="skipped"):
        assert run_attribution(inputs, rng.normal(size=(20, 1)), {}, ExplainConfig(
            integrated_gradients=True), torch.device("cpu"), Progress()) == {}


def test_disabled_does_nothing(tmp_path, recwarn):
    rng = np.random.default_rng(4)
    inputs = make_inputs(tmp_path / "nope.pt", rng.normal(size=(20, 12)), FEATURES, ["M0"])
    assert run_attribution(inputs, rng.normal(size=(20, 1)), {}, ExplainConfig(),
                           torch.device("cpu"), Progress()) == {}
    assert len(recwarn) == 0


def test_loading_skips_random_init_and_converts_like_a_copy(tmp_path, monkeypatch):
    """Modules are built on the meta device and given the checkpoint's tensors: Linear's
    random init never runs, and weights stored in another dtype are converted as
    load_state_dict's copy would."""
    path = save_random_checkpoint(tmp_path / "vae_checkpoint.pt", 12)
    payload = torch.load(path, weights_only=True)
    payload["encoder"] = {k: v.double() for k, v in payload["encoder"].items()}
    torch.save(payload, path)

    init_devices = []
    original = torch.nn.Linear.reset_parameters

    def spy(self):
        init_devices.append(self.weight.device.type)
        return original(self)

    monkeypatch.setattr(torch.nn.Linear, "reset_parameters", spy)
    ckpt = load_checkpoint(path, dtype=torch.float32)
    assert init_devices and set(init_devices) == {"meta"}  # no init on real memory
    for net, raw in ((ckpt.encoder, payload["encoder"]), (ckpt.decoder, payload["decoder"])):
        state = net.state_dict()
        assert set(state) == set(raw)
        for key, value in state.items():
            assert value.device.type == "cpu" and value.dtype == torch.float32
            torch.testing.assert_close(value, raw[key].float(), rtol=0, atol=0)
        assert not any(p.requires_grad for p in net.parameters())
    x = torch.randn(3, 12)
    assert torch.isfinite(ckpt.decoder(ckpt.encoder(x)[0])).all()


def test_duplicate_feature_ids_are_named(tmp_path):
    path = save_random_checkpoint(tmp_path / "vae_checkpoint.pt", len(FEATURES),
                                  feature_ids=FEATURES)
    doubled = [*FEATURES[:-2], FEATURES[0], FEATURES[1]]
    with pytest.raises(InputError, match=r"duplicate feature_id values: \['G0::abundance', "
                                         r"'G0::switch'\]"):
        checkpoint_feature_order(load_checkpoint(path), np.array(doubled, dtype=object))
    path = save_random_checkpoint(tmp_path / "dup.pt", len(FEATURES), feature_ids=doubled)
    with pytest.raises(InputError, match=r"checkpoint has duplicate feature_ids: "
                                         r"\['G0::abundance', 'G0::switch'\]"):
        checkpoint_feature_order(load_checkpoint(path), np.array(FEATURES, dtype=object))
    # the usual case, the fit's own order, is the identity
    order = checkpoint_feature_order(load_checkpoint(tmp_path / "vae_checkpoint.pt"),
                                     np.array(FEATURES, dtype=object))
    assert order.tolist() == list(range(len(FEATURES)))


def test_auto_precision_is_float64_on_the_cpu_float32_on_cuda():
    assert attribution_dtype("auto", torch.device("cpu")) == torch.float64
    assert attribution_dtype("auto", torch.device("cuda")) == torch.float32
    for device in (torch.device("cpu"), torch.device("cuda")):
        assert attribution_dtype("float32", device) == torch.float32
        assert attribution_dtype("float64", device) == torch.float64


def test_small_ops_use_one_thread_and_restore_the_setting(tmp_path, monkeypatch):
    """The small tensor ops after the input layer run on one CPU thread (an OpenMP barrier
    per op is what costs on a busy host); the caller's thread count comes back, also when
    the run fails."""
    from isograph_gpu import attribution

    rng = np.random.default_rng(5)
    path = save_random_checkpoint(tmp_path / "vae_checkpoint.pt", len(FEATURES),
                                  feature_ids=FEATURES)
    inputs = make_inputs(path, rng.normal(size=(20, len(FEATURES))), FEATURES, ["M0"])
    drivers = {"M0": driver_table(["G0", "G1"], rng)}
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        original = attribution.decoder_finite_difference

        def spy(*args, **kwargs):
            seen.append(torch.get_num_threads())
            return original(*args, **kwargs)

        monkeypatch.setattr(attribution, "decoder_finite_difference", spy)
        run_attribution(inputs, rng.normal(size=(20, 1)), drivers,
                        ExplainConfig(vae_attribution=True), torch.device("cpu"), Progress())
        assert seen == [1] and torch.get_num_threads() == 2

        def boom(*args, **kwargs):
            raise RuntimeError("boom")

        monkeypatch.setattr(attribution, "decoder_finite_difference", boom)
        with pytest.raises(RuntimeError, match="boom"):
            run_attribution(inputs, rng.normal(size=(20, 1)), drivers,
                            ExplainConfig(vae_attribution=True), torch.device("cpu"), Progress())
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
