"""Integrated Gradients of the module latent ``mu(x)[j*]`` with respect to the encoder input
(reference-semantics §10), through Captum, with bounded memory.

The encoder's first layer is linear, ``u = W1 x + b1``, so the straight IG path from the
baseline ``b`` to ``x`` maps onto the straight path from ``u_b`` to ``u_x`` and the chain
rule gives, exactly,

    IG_x = (x - b) * (G_u @ W1),   G_u = sum_k w_k grad_u f(u_b + a_k (u_x - u_b)),

with ``G_u`` the integrated gradient (not multiplied by inputs) of the rest of the encoder in
the h_0-dimensional ``u`` space. Captum computes ``G_u`` with its own Gauss-Legendre nodes
and weights (``multiply_by_inputs=False``); the d-dimensional work is then two GEMMs per
sample chunk instead of ``n_steps`` forward/backward passes over (n_steps * n) x d rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import InputError, OptionalDependencyError
from .checkpoint import VaeEncoder

INSTALL_HINT = "pip install 'isograph-gpu[explain]'"
BASELINES = ("zero", "mean", "feature-mean")


def require_captum() -> Any:
    """Captum's ``IntegratedGradients`` class, or :class:`OptionalDependencyError`."""
    try:
        from captum.attr import IntegratedGradients
    except ImportError as exc:
        raise OptionalDependencyError(
            f"Integrated Gradients needs the optional package captum: {INSTALL_HINT}"
        ) from exc
    return IntegratedGradients


@dataclass
class IgSummary:
    """Per-feature IG summaries for one latent axis (all tensors on the input's device)."""

    #: mean over samples of the attribution, (d,)
    ig_mean: torch.Tensor
    #: mean over samples of |attribution|, (d,)
    ig_abs_mean: torch.Tensor
    #: per sample: sum_f attribution - (f(x) - f(baseline)), (n,)
    completeness_error: torch.Tensor

    @property
    def convergence_delta(self) -> float:
        """Largest |completeness error| over samples."""
        return float(self.completeness_error.abs().max()) if self.completeness_error.numel() else 0.0


class _Baseline:
    """Baseline ``b`` for a (n, d) input, without materialising an (n, d) matrix."""

    def __init__(self, x: torch.Tensor, kind: str) -> None:
        if kind not in BASELINES:
            raise InputError(f"ig_baseline must be one of {list(BASELINES)}, got {kind!r}")
        self.kind = kind
        self.feature_mean = x.mean(0) if kind == "feature-mean" else None  # (d,)
        self.sample_mean = x.mean(1) if kind == "mean" else None  # (n,)

    def difference(self, x_chunk: torch.Tensor, rows: slice) -> torch.Tensor:
        """``x - b`` for the rows ``rows`` of the input."""
        if self.kind == "zero":
            return x_chunk
        if self.kind == "feature-mean":
            return x_chunk - self.feature_mean
        return x_chunk - self.sample_mean[rows, None]

    def preactivation(self, layer: torch.nn.Linear, n: int) -> torch.Tensor:
        """``u_b = W1 b + b1`` for every sample, (n, h_0)."""
        w, bias = layer.weight, layer.bias
        if self.kind == "zero":
            u = torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
            u = u + bias if bias is not None else u
            return u.expand(n, -1)
        if self.kind == "feature-mean":
            return F.linear(self.feature_mean[None, :], w, bias).expand(n, -1)
        u = self.sample_mean[:, None] * w.sum(1)[None, :]
        return u + bias if bias is not None else u


def _rows_per_chunk(n: int, bytes_per_row: int, budget: int) -> int:
    return max(1, min(n, budget // max(1, bytes_per_row)))


def encoder_integrated_gradients(encoder: VaeEncoder, x: torch.Tensor, latent_idx: list[int],
                                 baseline: str = "zero", n_steps: int = 50,
                                 memory_budget_bytes: int = 2 * 1024**3
                                 ) -> dict[int, IgSummary]:
    """IG of ``mu(x)[j]`` for each latent ``j`` in ``latent_idx``, summarised per feature.

    ``x`` is the (n, d) encoder input (finite, on the encoder's device and dtype);
    ``baseline`` is ``"zero"``, ``"mean"`` (per-sample mean over that sample's features) or
    ``"feature-mean"`` (per-feature mean over samples, the reference's "mean"). Gauss-Legendre
    quadrature with ``n_steps`` nodes (Captum's default). Working memory beyond ``x`` stays
    within about ``memory_budget_bytes``.
    """
    integrated_gradients_cls = require_captum()
    n, d = x.shape
    layer = encoder.input_layer
    itemsize = x.element_size()
    base = _Baseline(x, baseline)
    u_base = base.preactivation(layer, n)
    # input pre-activations, chunked over samples (x-space rows cost d values each)
    x_rows = _rows_per_chunk(n, 4 * d * itemsize, memory_budget_bytes)
    with torch.no_grad():
        u_x = torch.cat([F.linear(x[i:i + x_rows], layer.weight, layer.bias)
                         for i in range(0, n, x_rows)])

    widths = [m.out_features for m in encoder.modules() if isinstance(m, torch.nn.Linear)]
    u_row_bytes = 6 * itemsize * (sum(widths) + u_x.shape[1])
    u_rows = _rows_per_chunk(n_steps * n, u_row_bytes, memory_budget_bytes)
    out: dict[int, IgSummary] = {}
    for j in sorted(set(int(v) for v in latent_idx)):
        forward = _latent_forward(encoder, j)
        ig = integrated_gradients_cls(forward, multiply_by_inputs=False)
        g_u = torch.empty_like(u_x)
        sample_chunk = min(n, u_rows)
        for i in range(0, n, sample_chunk):
            rows = slice(i, min(n, i + sample_chunk))
            n_chunk = rows.stop - rows.start
            internal = max(n_chunk, (u_rows // n_chunk) * n_chunk)
            with torch.enable_grad():
                g_u[rows] = ig.attribute(
                    inputs=u_x[rows], baselines=u_base[rows].contiguous(), n_steps=n_steps,
                    method="gausslegendre",
                    internal_batch_size=min(internal, n_steps * n_chunk),
                ).detach()
        with torch.no_grad():
            f_gap = forward(u_x) - forward(u_base)
            ig_sum = torch.zeros(d, dtype=x.dtype, device=x.device)
            abs_sum = torch.zeros_like(ig_sum)
            total = torch.empty(n, dtype=x.dtype, device=x.device)
            for i in range(0, n, x_rows):
                rows = slice(i, min(n, i + x_rows))
                attribution = base.difference(x[rows], rows) * (g_u[rows] @ layer.weight)
                ig_sum += attribution.sum(0)
                abs_sum += attribution.abs().sum(0)
                total[rows] = attribution.sum(1)
                del attribution
        out[j] = IgSummary(ig_sum / n, abs_sum / n, total - f_gap)
    return out


def _latent_forward(encoder: VaeEncoder, j: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(u: torch.Tensor) -> torch.Tensor:
        return encoder.mu_from_input_preactivation(u)[:, j]

    return forward
