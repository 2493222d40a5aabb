"""Decoder attribution: how each decoded feature moves along a module's latent axis
(reference-semantics §9.2 step 6), for many latent axes in one decoder call.

Pure torch: tensors in, tensors out, any device.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def decoder_finite_difference(decoder: Callable[[torch.Tensor], torch.Tensor],
                              z_center: torch.Tensor, latent_idx: torch.Tensor,
                              eps: float) -> torch.Tensor:
    """Central differences ``(dec(z + eps e_j) - dec(z - eps e_j)) / (2 eps)``, shape (m, d).

    ``z_center`` is (L,), ``latent_idx`` (m,) int64 latent axes; all 2m perturbed latents
    go through the decoder as one batch. Only ``|eps|`` matters (the formula is symmetric in
    its sign), so ``eps`` and ``-eps`` give bit-identical results.
    """
    eps = abs(float(eps))
    m = int(latent_idx.shape[0])
    if m == 0:
        raise ValueError("latent_idx is empty")
    eye = torch.zeros(m, z_center.shape[0], dtype=z_center.dtype, device=z_center.device)
    eye[torch.arange(m, device=z_center.device), latent_idx.to(z_center.device)] = 1.0
    step = eps * eye
    batch = torch.cat([z_center[None, :] + step, z_center[None, :] - step], dim=0)
    with torch.no_grad():
        out = decoder(batch)
    return (out[:m] - out[m:]) / (2.0 * eps)


def decoder_exact_derivative(decoder: Callable[[torch.Tensor], torch.Tensor],
                             z_center: torch.Tensor, latent_idx: torch.Tensor) -> torch.Tensor:
    """Exact directional derivative ``d dec(z) / d z_j`` at ``z_center``, shape (m, d).

    Forward-mode AD (``torch.func.jvp``), vectorised over the m tangents ``e_j``.
    """
    m = int(latent_idx.shape[0])
    tangents = torch.zeros(m, z_center.shape[0], dtype=z_center.dtype, device=z_center.device)
    tangents[torch.arange(m, device=z_center.device), latent_idx.to(z_center.device)] = 1.0

    def one(tangent: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(decoder, (z_center,), (tangent,))[1]

    with torch.no_grad():
        return torch.func.vmap(one)(tangents)
