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

from ..config import IG_BASELINES, check_ig_n_steps
from ..errors import InputError, OptionalDependencyError
from .checkpoint import VaeEncoder

INSTALL_HINT = "pip install 'isograph-gpu[explain]'"
#: Captum releases [first, last] checked to call ``self.gradient_func(forward_fn, inputs,
#: target_ind, additional_forward_args)`` with ``captum._utils.gradient.compute_gradients``
#: as its default (tests/attribution/test_attribution_ig.py fails when the installed Captum leaves
#: this range or changes that hook). Outside it Captum's own gradients are used.
CAPTUM_GRADIENT_HOOK_VERSIONS = ((0, 9), (0, 9))


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
        if kind not in IG_BASELINES:
            raise InputError(f"ig_baseline must be one of {list(IG_BASELINES)}, got {kind!r}")
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
                                 memory_budget_bytes: int = 2 * 1024**3,
                                 u_x: torch.Tensor | None = None,
                                 on_batch: Callable[[int, int], None] | None = None
                                 ) -> dict[int, IgSummary]:
    """IG of ``mu(x)[j]`` for each latent ``j`` in ``latent_idx``, summarised per feature.

    ``x`` is the (n, d) encoder input (finite, on the encoder's device and dtype);
    ``baseline`` is ``"zero"``, ``"mean"`` (per-sample mean over that sample's features) or
    ``"feature-mean"`` (per-feature mean over samples, the reference's "mean"). Gauss-Legendre
    quadrature with ``n_steps`` nodes (Captum's default). Working memory beyond ``x`` stays
    within about ``memory_budget_bytes``. ``u_x``, when given, is ``encoder.input_layer(x)``
    already computed (n, h_0), so that X is not multiplied by W1 a second time.
    ``on_batch(done, total)``, when given, is called after each Captum batch (progress).
    An ``n_steps`` whose quadrature nodes need more than ``memory_budget_bytes``
    (:func:`~isograph_gpu.config.ig_quadrature_bytes`) is an :class:`InputError`.
    """
    check_ig_n_steps(int(n_steps), int(memory_budget_bytes))
    integrated_gradients_cls = require_captum()
    n, d = x.shape
    layer = encoder.input_layer
    itemsize = x.element_size()
    base = _Baseline(x, baseline)
    u_base = base.preactivation(layer, n)
    # input pre-activations, chunked over samples (x-space rows cost d values each)
    x_rows = _rows_per_chunk(n, 4 * d * itemsize, memory_budget_bytes)
    if u_x is None:
        with torch.no_grad():
            u_x = torch.cat([F.linear(x[i:i + x_rows], layer.weight, layer.bias)
                             for i in range(0, n, x_rows)])
    elif u_x.shape != (n, layer.out_features):
        raise ValueError(f"u_x has shape {tuple(u_x.shape)}, expected {(n, layer.out_features)}")

    widths = [m.out_features for m in encoder.modules() if isinstance(m, torch.nn.Linear)]
    u_row_bytes = 6 * itemsize * (sum(widths) + u_x.shape[1])
    latents = sorted({int(v) for v in latent_idx})
    u_rows = _rows_per_chunk(n_steps * n * len(latents), u_row_bytes, memory_budget_bytes)
    ig = integrated_gradients_cls(_selected_latent(encoder), multiply_by_inputs=False)
    use_batched_gradients(ig)
    g_u, f_gap = _latent_space_gradients(ig, encoder, u_x, u_base, latents, n_steps, u_rows,
                                         on_batch)
    ig_sum, abs_sum, total = _input_space_attributions(g_u, x, base, layer, x_rows)
    return {j: IgSummary(ig_sum[li] / n, abs_sum[li] / n, total[li] - f_gap[li])
            for li, j in enumerate(latents)}


def _latent_space_gradients(ig: Any, encoder: VaeEncoder, u_x: torch.Tensor,
                            u_base: torch.Tensor, latents: list[int], n_steps: int,
                            u_rows: int, on_batch: Callable[[int, int], None] | None
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """``G_u`` (latents, n, h_0) from Captum, at most ``u_rows`` path rows per batch, and
    ``f(u_x) - f(u_b)`` (latents, n). One Captum problem for every distinct latent: row
    (l, s) explains ``mu(u_s)[latents[l]]``."""
    n = u_x.shape[0]
    n_lat = len(latents)
    u_in = u_x.repeat(n_lat, 1)
    u_b = u_base.repeat(n_lat, 1)
    which = torch.tensor(latents, device=u_x.device).repeat_interleave(n)
    g_flat = torch.empty_like(u_in)
    rows_total = n_lat * n
    sample_chunk = min(rows_total, u_rows)
    n_batches = -(-rows_total // sample_chunk)
    for i in range(0, rows_total, sample_chunk):
        rows = slice(i, min(rows_total, i + sample_chunk))
        n_chunk = rows.stop - rows.start
        internal = max(n_chunk, (u_rows // n_chunk) * n_chunk)
        with torch.enable_grad():
            g_flat[rows] = ig.attribute(
                inputs=u_in[rows], baselines=u_b[rows], n_steps=n_steps,
                method="gausslegendre", additional_forward_args=(which[rows],),
                internal_batch_size=min(internal, n_steps * n_chunk),
            ).detach()
        if on_batch is not None:
            on_batch(i // sample_chunk + 1, n_batches)
    with torch.no_grad():
        f_gap = (_selected_latent(encoder)(u_in, which)
                 - _selected_latent(encoder)(u_b, which)).view(n_lat, n)
    return g_flat.view(n_lat, n, -1), f_gap


def _input_space_attributions(g_u: torch.Tensor, x: torch.Tensor, base: _Baseline,
                              layer: torch.nn.Linear, x_rows: int
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per latent: the sums over samples of the attribution ``(x - b) * (G_u @ W1)`` and of
    its absolute value (latents, d), and each sample's total (latents, n); at most
    ``x_rows`` samples at a time."""
    n_lat = g_u.shape[0]
    n, d = x.shape
    ig_sum = torch.zeros(n_lat, d, dtype=x.dtype, device=x.device)
    abs_sum = torch.zeros_like(ig_sum)
    total = torch.empty(n_lat, n, dtype=x.dtype, device=x.device)
    with torch.no_grad():
        for i in range(0, n, x_rows):
            rows = slice(i, min(n, i + x_rows))
            diff = base.difference(x[rows], rows)
            for li in range(n_lat):
                attribution = torch.mm(g_u[li, rows], layer.weight)
                attribution.mul_(diff)
                ig_sum[li] += attribution.sum(0)
                total[li, rows] = attribution.sum(1)
                abs_sum[li] += attribution.abs_().sum(0)
            del diff, attribution
    return ig_sum, abs_sum, total


def captum_gradient_hook_known(ig: Any) -> bool:
    """Whether ``ig`` (a Captum ``IntegratedGradients``) is a release in
    :data:`CAPTUM_GRADIENT_HOOK_VERSIONS` whose private ``gradient_func`` is still Captum's
    ``compute_gradients``, the function :func:`_batched_gradients` stands in for."""
    import captum
    from captum._utils import gradient

    release = tuple(int(p) for p in captum.__version__.split(".")[:2] if p.isdigit())
    first, last = CAPTUM_GRADIENT_HOOK_VERSIONS
    return (first <= release <= last
            and getattr(ig, "gradient_func", None) is gradient.compute_gradients)


def use_batched_gradients(ig: Any) -> bool:
    """Give ``ig`` :func:`_batched_gradients` (the same gradients, without Captum's unbind
    over every row) where :func:`captum_gradient_hook_known`; else leave Captum's own.
    Returns whether it did. Captum has no public hook for this: the one monkeypatch of a
    Captum private, kept here behind the version check."""
    if not captum_gradient_hook_known(ig):
        return False
    ig.gradient_func = _batched_gradients
    return True


def _batched_gradients(forward_fn: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...],
                       target_ind: Any = None, additional_forward_args: Any = None
                       ) -> tuple[torch.Tensor, ...]:
    """Captum's ``compute_gradients`` without ``torch.unbind`` over every output row.

    Each output row depends only on its own input row, so the gradient of the sum equals
    the per-row gradients Captum collects (its unbind costs seconds per call at 50k rows).
    """
    with torch.enable_grad():
        args = additional_forward_args if additional_forward_args is not None else ()
        args = args if isinstance(args, tuple) else (args,)
        outputs = forward_fn(*inputs, *args)
        if target_ind is not None:
            raise ValueError("target is not used here")
        return torch.autograd.grad(outputs.sum(), inputs)


def _selected_latent(encoder: VaeEncoder) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``f(u, j) = mu(u)[row, j[row]]``: one scalar per row, from first-layer values ``u``."""
    def forward(u: torch.Tensor, latent_of_row: torch.Tensor) -> torch.Tensor:
        return encoder.mu_from_input_preactivation(u).gather(1, latent_of_row[:, None])[:, 0]

    return forward
