"""VAE attribution for every module at once: decoder attribution (``vae_drivers``) and
Captum Integrated Gradients (``ig_attributions``), reference-semantics §9-10.

Entry point for the explain pipeline: :func:`run_attribution`. The tensor-level pieces
(:mod:`.latent`, :mod:`.decoder`, :mod:`.integrated_gradients`) take and return tensors and
can be used inside a training loop.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import ExplainConfig
from ..errors import InputError
from ..io.explain_inputs import ExplainInputs
from ..progress import Progress
from .attribution_tables import (
    feature_id_rank,
    gene_row_index,
    ig_attribution_table,
    vae_driver_table,
)
from .checkpoint import VaeCheckpoint, checkpoint_feature_order, load_checkpoint
from .decoder import decoder_exact_derivative, decoder_finite_difference
from .encoder_input import encoder_input
from .integrated_gradients import encoder_integrated_gradients, require_captum
from .latent import latent_module_correlations, select_module_latents

__all__ = [
    "ModuleAttribution",
    "VaeCheckpoint",
    "attribution_dtype",
    "load_checkpoint",
    "run_attribution",
]


@dataclass
class ModuleAttribution:
    """Attribution outputs of one module (None for a part that did not run)."""

    vae_drivers: pd.DataFrame | None
    ig_attributions: pd.DataFrame | None
    #: max over samples of |sum_f attribution - (f(x) - f(baseline))|
    ig_convergence_delta: float | None


def attribution_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The VAE's working dtype: float64 for ``"float64"`` and for ``"auto"`` on the CPU
    (the package's rule: float64 on the CPU by default); float32 otherwise, as the
    reference's VAE and its float32 checkpoint weights."""
    if precision == "float64" or (precision == "auto" and device.type == "cpu"):
        return torch.float64
    return torch.float32


def run_attribution(inputs: ExplainInputs, eigengenes: np.ndarray,
                    driver_tables: dict[str, pd.DataFrame], config: ExplainConfig,
                    device: torch.device, progress: Progress) -> dict[str, ModuleAttribution]:
    """VAE decoder attribution and/or Integrated Gradients for every module of ``inputs``.

    ``eigengenes`` is (n_samples, n_modules) float64 in ``inputs.module_ids`` order;
    ``driver_tables`` maps module id -> finished gene_driver_table. Returns {} when neither
    part is enabled, or (with a ``UserWarning``) when the artifact has no checkpoint.
    """
    path = _checkpoint_to_use(inputs, config)
    module_ids = list(inputs.module_ids)
    if path is None or not module_ids:
        return {}
    eig = np.asarray(eigengenes, dtype=np.float64)
    if eig.ndim != 2 or eig.shape != (inputs.n_samples, len(module_ids)):
        raise InputError(
            f"eigengenes have shape {eig.shape} but {inputs.n_samples} samples x "
            f"{len(module_ids)} modules were expected"
        )
    with progress.stage("attribution: load VAE"):
        latents = _module_latents(inputs, path, eig, attribution_dtype(config.precision, device),
                                  device)
    deltas: dict[int, np.ndarray] = {}
    if config.vae_attribution:
        with progress.stage("attribution: VAE decoder"), _small_ops(device):
            deltas = _decoder_deltas(latents, config, device)
    ig: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}
    if config.integrated_gradients:
        with progress.stage("attribution: integrated gradients"):
            ig = _ig_summaries(latents, config, progress)
    with progress.stage("attribution: tables"):
        return _module_tables(inputs, driver_tables, latents, deltas, ig, config)


@dataclass
class _ModuleLatents:
    """The encoder pass shared by both attributions: the checkpoint, its feature order
    (model column c is feature_scores row ``order[c]``), the encoder input ``x`` and its
    first-layer values ``u_x``, the latent means ``z``, and each module's latent axis
    ``latent_idx[k]`` with its correlation ``latent_r[k]``."""

    ckpt: VaeCheckpoint
    order: np.ndarray
    x: torch.Tensor
    u_x: torch.Tensor
    z: torch.Tensor
    latent_idx: list[int]
    latent_r: list[float]

    @property
    def distinct(self) -> list[int]:
        return sorted(set(self.latent_idx))


def _checkpoint_to_use(inputs: ExplainInputs, config: ExplainConfig) -> Path | None:
    """The checkpoint path when an attribution is asked for and the artifact has one (a
    ``UserWarning`` when it does not); checks Captum is installed when IG is asked for."""
    if not (config.vae_attribution or config.integrated_gradients):
        return None
    path = inputs.checkpoint_path
    if path is None or not Path(path).is_file():
        warnings.warn(
            f"no vae_checkpoint.pt in {inputs.artifact_dir}; VAE attribution and Integrated "
            "Gradients were skipped", UserWarning, stacklevel=3,
        )
        return None
    if config.integrated_gradients:
        require_captum()
    return Path(path)


def _module_latents(inputs: ExplainInputs, path: Path, eig: np.ndarray, dtype: torch.dtype,
                    device: torch.device) -> _ModuleLatents:
    """Load the VAE, encode feature_scores once and pick each module's latent axis."""
    ckpt = load_checkpoint(path, device=device, dtype=dtype)
    order = checkpoint_feature_order(ckpt, inputs.score_feature_ids)
    x = encoder_input(inputs.scores, order, device, dtype)
    with torch.no_grad():
        # the one pass over X: first-layer pre-activations, shared with IG
        u_x = ckpt.encoder.input_layer(x)
    with _small_ops(device), torch.no_grad():
        z = ckpt.encoder.mu_from_input_preactivation(u_x)
        corr = latent_module_correlations(z, torch.tensor(eig, device=device))
        latent_idx_t, latent_r_t = select_module_latents(corr)
    return _ModuleLatents(ckpt, order, x, u_x, z, [int(v) for v in latent_idx_t.cpu()],
                          [float(v) for v in latent_r_t.cpu()])


def _decoder_deltas(latents: _ModuleLatents, config: ExplainConfig, device: torch.device
                    ) -> dict[int, np.ndarray]:
    """decoded_delta of every feature_scores row for each distinct latent axis."""
    distinct = latents.distinct
    decoder = latents.ckpt.decoder
    z_mean = latents.z.mean(0)
    axes = torch.as_tensor(distinct, dtype=torch.int64, device=device)
    if config.vae_jacobian == "exact":
        d_model = decoder_exact_derivative(decoder, z_mean, axes)
    else:
        d_model = decoder_finite_difference(decoder, z_mean, axes,
                                            float(config.vae_perturbation_eps))
    d_rows = _to_score_order(d_model, latents.order)
    return {j: d_rows[i] for i, j in enumerate(distinct)}


def _ig_summaries(latents: _ModuleLatents, config: ExplainConfig, progress: Progress
                  ) -> dict[int, tuple[np.ndarray, np.ndarray, float]]:
    """(ig_score, ig_score_abs_mean, convergence delta) per distinct latent axis, rows in
    feature_scores order."""
    summaries = encoder_integrated_gradients(
        latents.ckpt.encoder, latents.x, latents.distinct, baseline=config.ig_baseline,
        n_steps=int(config.ig_n_steps), memory_budget_bytes=int(config.memory_budget_bytes),
        u_x=latents.u_x,
        on_batch=lambda done, total: progress.chunk(
            "integrated gradients", done, total, unit="batch"),
    )
    ig = {}
    for j, s in summaries.items():
        both = _to_score_order(torch.stack([s.ig_mean, s.ig_abs_mean]), latents.order)
        ig[j] = (both[0], both[1], s.convergence_delta)
    return ig


def _module_tables(inputs: ExplainInputs, driver_tables: dict[str, pd.DataFrame],
                   latents: _ModuleLatents, deltas: dict[int, np.ndarray],
                   ig: dict[int, tuple[np.ndarray, np.ndarray, float]],
                   config: ExplainConfig) -> dict[str, ModuleAttribution]:
    """vae_drivers and ig_attributions of each module from its latent axis' results."""
    meta = (inputs.score_gene_ids, inputs.score_feature_ids, inputs.score_feature_types)
    rank = feature_id_rank(inputs.score_feature_ids) if config.integrated_gradients else None
    gene_rows = gene_row_index(inputs.score_gene_ids) if config.vae_attribution else None
    out: dict[str, ModuleAttribution] = {}
    for k, module_id in enumerate(inputs.module_ids):
        j, r = latents.latent_idx[k], latents.latent_r[k]
        vae = None
        if config.vae_attribution:
            vae = vae_driver_table(
                driver_tables[module_id], *meta, deltas[j], j, r,
                fdr_threshold=float(config.vae_fdr_threshold),
                percentile_threshold=float(config.vae_percentile_threshold),
                gene_rows=gene_rows,
            )
        ig_table, ig_delta = None, None
        if config.integrated_gradients:
            score, abs_mean, ig_delta = ig[j]
            ig_table = ig_attribution_table(*meta, score, abs_mean, j, r, feature_rank=rank)
        out[module_id] = ModuleAttribution(vae, ig_table, ig_delta)
    return out


@contextmanager
def _small_ops(device: torch.device) -> Iterator[None]:
    """One intra-op CPU thread for the small tensor operations after the input layer.

    Each of them (hidden layers, latent correlations, the decoder batch) takes well under a
    millisecond on one thread, but with several threads every op ends on an OpenMP barrier;
    on a host whose cores are busy with other jobs the barrier waits for a descheduled
    worker, far longer than the op (docs/attribution.md has the figures). The input
    layer GEMM and Integrated Gradients keep the configured thread count. The setting is
    process-wide, so it is restored on exit.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _to_score_order(values: torch.Tensor, order: np.ndarray) -> np.ndarray:
    """(m, d) model-order values -> float64 numpy in feature_scores row order."""
    host = values.detach().to(device="cpu", dtype=torch.float64).numpy()
    result = np.empty_like(host)
    result[:, order] = host
    return result
