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
from ..progress import Progress
from ..results import ExplainInputs
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
    if not (config.vae_attribution or config.integrated_gradients):
        return {}
    path = inputs.checkpoint_path
    if path is None or not Path(path).is_file():
        warnings.warn(
            f"no vae_checkpoint.pt in {inputs.artifact_dir}; VAE attribution and Integrated "
            "Gradients were skipped", UserWarning, stacklevel=2,
        )
        return {}
    if config.integrated_gradients:
        require_captum()
    module_ids = list(inputs.module_ids)
    if not module_ids:
        return {}
    eig = np.asarray(eigengenes, dtype=np.float64)
    if eig.ndim != 2 or eig.shape != (inputs.n_samples, len(module_ids)):
        raise InputError(
            f"eigengenes have shape {eig.shape} but {inputs.n_samples} samples x "
            f"{len(module_ids)} modules were expected"
        )
    dtype = attribution_dtype(config.precision, device)

    with progress.stage("attribution: load VAE"):
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
        latent_idx = [int(v) for v in latent_idx_t.cpu()]
        latent_r = [float(v) for v in latent_r_t.cpu()]
    distinct = sorted(set(latent_idx))
    # model column c is feature_scores row order[c]
    meta = (inputs.score_gene_ids, inputs.score_feature_ids, inputs.score_feature_types)

    deltas: dict[int, np.ndarray] = {}
    if config.vae_attribution:
        with progress.stage("attribution: VAE decoder"), _small_ops(device):
            z_mean = z.mean(0)
            axes = torch.as_tensor(distinct, dtype=torch.int64, device=device)
            if config.vae_jacobian == "exact":
                d_model = decoder_exact_derivative(ckpt.decoder, z_mean, axes)
            else:
                d_model = decoder_finite_difference(ckpt.decoder, z_mean, axes,
                                                    float(config.vae_perturbation_eps))
            d_rows = _to_score_order(d_model, order)
            deltas = {j: d_rows[i] for i, j in enumerate(distinct)}

    ig: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}
    if config.integrated_gradients:
        with progress.stage("attribution: integrated gradients"):
            summaries = encoder_integrated_gradients(
                ckpt.encoder, x, distinct, baseline=config.ig_baseline,
                n_steps=int(config.ig_n_steps),
                memory_budget_bytes=int(config.memory_budget_bytes), u_x=u_x,
                on_batch=lambda done, total: progress.chunk(
                    "integrated gradients", done, total, unit="batch"),
            )
            for j, s in summaries.items():
                both = _to_score_order(torch.stack([s.ig_mean, s.ig_abs_mean]), order)
                ig[j] = (both[0], both[1], s.convergence_delta)

    out: dict[str, ModuleAttribution] = {}
    rank = feature_id_rank(inputs.score_feature_ids) if config.integrated_gradients else None
    gene_rows = gene_row_index(inputs.score_gene_ids) if config.vae_attribution else None
    with progress.stage("attribution: tables"):
        for k, module_id in enumerate(module_ids):
            j, r = latent_idx[k], latent_r[k]
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
    worker, measured at 10-20 ms per op (0.2 s for these ops instead of 0.01 s). The input
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
