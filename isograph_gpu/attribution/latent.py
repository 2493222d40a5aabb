"""Which VAE latent dimension each module maps to (reference-semantics §9.2 step 4).

Pure torch: tensors in, tensors out, any device.
"""

from __future__ import annotations

import torch


def latent_module_correlations(latents: torch.Tensor, eigengenes: torch.Tensor) -> torch.Tensor:
    """Pearson r of every module eigengene with every latent coordinate, shape (K, L).

    ``latents`` is (n, L) posterior means, ``eigengenes`` (n, K). Population-standardised
    products as the reference; an eigengene whose SD is not > 0 gives a row of zeros, a
    latent column whose SD is not > 0 gives 0. Samples where an eigengene is NaN are left
    out of that module's correlation (the reference would return all zeros).
    """
    dtype = torch.float64  # tiny (n x L, n x K): always float64
    z = latents.to(dtype)
    e = eigengenes.to(device=z.device, dtype=dtype)
    mask = torch.isfinite(e)
    if bool(mask.all()):
        n = float(z.shape[0])
        zc = z - z.mean(0, keepdim=True)
        ec = e - e.mean(0, keepdim=True)
        sd_z = torch.sqrt((zc * zc).sum(0) / n)  # (L,)
        sd_e = torch.sqrt((ec * ec).sum(0) / n)  # (K,)
        cov = ec.T @ zc / n  # (K, L)
    else:
        m = mask.to(dtype)
        n_k = m.sum(0)  # (K,)
        e0 = torch.where(mask, e, torch.zeros((), dtype=dtype, device=e.device))
        mean_e = e0.sum(0) / n_k
        ec = torch.where(mask, e - mean_e, torch.zeros((), dtype=dtype, device=e.device))
        sd_e = torch.sqrt((ec * ec).sum(0) / n_k)
        zg = z - z.mean(0, keepdim=True)  # global centring keeps the moments accurate
        mean_z = (m.T @ zg) / n_k[:, None]  # (K, L)
        var_z = (m.T @ (zg * zg)) / n_k[:, None] - mean_z * mean_z
        sd_z = torch.sqrt(torch.clamp(var_z, min=0.0))  # (K, L)
        cov = (ec.T @ zg) / n_k[:, None]
    sd_z_b = sd_z if sd_z.dim() == 2 else sd_z.expand_as(cov)
    denom = sd_e[:, None] * sd_z_b
    ok = (sd_e[:, None] > 0) & (sd_z_b > 0) & torch.isfinite(denom)
    r = torch.where(ok, cov / torch.where(ok, denom, torch.ones_like(denom)),
                    torch.zeros_like(cov))
    return torch.nan_to_num(r, nan=0.0)


def select_module_latents(correlations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(j*, r[j*])`` per module from the (K, L) correlations: argmax |r|, first on ties.

    Returns int64 (K,) indices and (K,) correlations; an all-zero row gives index 0.
    """
    idx = torch.argmax(correlations.abs(), dim=1)
    return idx, correlations.gather(1, idx[:, None])[:, 0]


def direction_sign(latent_r: float) -> float:
    """The module's direction along its latent axis: ``sign(latent_r)`` with 0 -> +1 (the
    reference's) and NaN -> +1. It orients ``sign_agreement`` and ``ig_score_corrected``."""
    return -1.0 if latent_r < 0 else 1.0
