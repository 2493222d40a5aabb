"""Read ``vae_checkpoint.pt`` (isograph 0.1.5 format) and rebuild its encoder and decoder.

Architecture (reference-semantics §9.1): hidden widths ``h_i = hidden_dim // 2**i`` for
``i = 0..n_hidden_layers-1``. Encoder ``shared`` = [Linear(d -> h_0), ELU, Linear(h_0 -> h_1),
ELU, ...] (keys ``shared.0``, ``shared.2``, ...) and heads ``mu_head`` / ``lv_head`` =
Linear(h_last -> latent). Decoder ``net`` = [Linear(latent -> h_last), ELU, ..., Linear(h_0 ->
d)] (keys ``net.0``, ``net.2``, ...).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import InputError, first_line

_REQUIRED_KEYS = ("encoder", "decoder", "n_genes", "latent_dim", "hidden_dim", "n_hidden_layers")


def hidden_widths(hidden_dim: int, n_hidden_layers: int) -> list[int]:
    """Encoder hidden widths in shrinking order: ``hidden_dim // 2**i``."""
    return [hidden_dim // 2**i for i in range(n_hidden_layers)]


class VaeEncoder(nn.Module):
    """Encoder of the reference VAE; ``forward(x)`` returns ``(mu, logvar)``, each (n, latent)."""

    def __init__(self, n_inputs: int, latent_dim: int, hidden_dim: int, n_hidden_layers: int):
        super().__init__()
        layers: list[nn.Module] = []
        width_in = n_inputs
        for width in hidden_widths(hidden_dim, n_hidden_layers):
            layers += [nn.Linear(width_in, width), nn.ELU()]
            width_in = width
        self.shared = nn.Sequential(*layers)
        self.mu_head = nn.Linear(width_in, latent_dim)
        self.lv_head = nn.Linear(width_in, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.shared(x)
        return self.mu_head(h), self.lv_head(h)

    @property
    def input_layer(self) -> nn.Linear:
        """The first Linear layer (d -> h_0); everything after it sees only h_0 values."""
        return self.shared[0]

    def mu_from_input_preactivation(self, u: torch.Tensor) -> torch.Tensor:
        """``mu`` from ``u = input_layer(x)``, shape (n, h_0) -> (n, latent)."""
        h = self.shared[1:](u)
        return self.mu_head(h)


class VaeDecoder(nn.Module):
    """Decoder of the reference VAE: (n, latent) -> (n, d)."""

    def __init__(self, n_outputs: int, latent_dim: int, hidden_dim: int, n_hidden_layers: int):
        super().__init__()
        layers: list[nn.Module] = []
        width_in = latent_dim
        for width in reversed(hidden_widths(hidden_dim, n_hidden_layers)):
            layers += [nn.Linear(width_in, width), nn.ELU()]
            width_in = width
        layers.append(nn.Linear(width_in, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


@dataclass
class VaeCheckpoint:
    """A loaded checkpoint: eval-mode encoder/decoder plus the feature ids it was fit on."""

    encoder: VaeEncoder
    decoder: VaeDecoder
    n_inputs: int
    latent_dim: int
    #: feature ids in the checkpoint's input order, or None when the checkpoint has none
    feature_ids: list[str] | None
    path: Path


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float64) -> VaeCheckpoint:
    """Load a reference ``vae_checkpoint.pt`` (``weights_only=True``) onto ``device``/``dtype``."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle refused, ...
        first = first_line(exc)
        raise InputError(f"{path}: cannot read the VAE checkpoint ({first})") from exc
    if not isinstance(payload, dict):
        raise InputError(f"{path}: VAE checkpoint is not a dict of weights and sizes")
    missing = [k for k in _REQUIRED_KEYS if k not in payload]
    if missing:
        raise InputError(f"{path}: VAE checkpoint lacks key(s) {missing}")
    n_inputs, latent_dim, hidden_dim, n_layers = _declared_sizes(path, payload)
    # built on the meta device and given the checkpoint's tensors (assign=True), converted
    # first as load_state_dict's copy would: no random init of the two d x h_0 layers,
    # which costs more than reading them
    with torch.device("meta"):
        encoder = VaeEncoder(n_inputs, latent_dim, hidden_dim, n_layers)
        decoder = VaeDecoder(n_inputs, latent_dim, hidden_dim, n_layers)
    for name, net in (("encoder", encoder), ("decoder", decoder)):
        state = {k: v.to(device=device, dtype=dtype) for k, v in payload[name].items()}
        try:
            net.load_state_dict(state, strict=True, assign=True)
        except (RuntimeError, TypeError, AttributeError) as exc:
            detail = " ".join(str(exc).split())[:300]
            raise InputError(
                f"{path}: {name} weights do not match the architecture in the checkpoint "
                f"(n_genes={n_inputs}, latent_dim={latent_dim}, hidden_dim={hidden_dim}, "
                f"n_hidden_layers={n_layers}): {detail}"
            ) from exc
        net.eval()
        net.requires_grad_(False)
    feature_ids = payload.get("feature_ids")
    if feature_ids is not None:
        feature_ids = [str(f) for f in feature_ids]
        if len(feature_ids) != n_inputs:
            raise InputError(
                f"{path}: checkpoint lists {len(feature_ids)} feature_ids but n_genes is {n_inputs}"
            )
    return VaeCheckpoint(encoder, decoder, n_inputs, latent_dim, feature_ids, path)


def _declared_sizes(path: Path, payload: dict) -> tuple[int, int, int, int]:
    """``(n_genes, latent_dim, hidden_dim, n_hidden_layers)`` of a checkpoint, each bounded
    by its weights before any network is built: ``n_hidden_layers`` by the number of weight
    tensors of either network, each width by the largest dimension of any of them. The
    exact shapes are then checked by ``load_state_dict``; an :class:`InputError` names the
    size at fault."""
    states = {}
    for name in ("encoder", "decoder"):
        state = payload[name]
        if not (isinstance(state, dict)
                and all(isinstance(v, torch.Tensor) for v in state.values())):
            raise InputError(f"{path}: VAE checkpoint {name} is not a dict of weight tensors")
        states[name] = state
    sizes = {}
    for key in _REQUIRED_KEYS[2:]:
        value = payload[key]
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, float | np.floating) and float(value).is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise InputError(f"{path}: VAE checkpoint {key} must be a whole number >= 1, "
                             f"got {value!r}")
        sizes[key] = int(value)
    declared = ", ".join(f"{k}={v}" for k, v in sizes.items())
    n_tensors = min(len(s) for s in states.values())
    if sizes["n_hidden_layers"] > n_tensors:
        raise InputError(f"{path}: VAE checkpoint n_hidden_layers={sizes['n_hidden_layers']} "
                         f"exceeds the {n_tensors} weight tensors it holds ({declared})")
    largest = max((max(v.shape, default=1) for s in states.values() for v in s.values()),
                  default=0)
    for key in ("n_genes", "latent_dim", "hidden_dim"):
        if sizes[key] > largest:
            raise InputError(f"{path}: VAE checkpoint {key}={sizes[key]} is larger than any "
                             f"dimension of its weights (at most {largest}; {declared})")
    if sizes["hidden_dim"] >> (sizes["n_hidden_layers"] - 1) < 1:
        raise InputError(f"{path}: VAE checkpoint sizes are invalid: hidden_dim // "
                         f"2**(n_hidden_layers - 1) is 0 ({declared})")
    return sizes["n_genes"], sizes["latent_dim"], sizes["hidden_dim"], sizes["n_hidden_layers"]


def checkpoint_feature_order(checkpoint: VaeCheckpoint, score_feature_ids: np.ndarray,
                             scores_name: str = "feature_scores.parquet") -> np.ndarray:
    """Row indices into feature_scores giving the checkpoint's input order, shape (d,) int64.

    Without checkpoint feature_ids the widths must agree and the order is the identity
    (as in the reference). With them, every checkpoint id must be a feature_scores row and
    vice versa; otherwise an :class:`InputError` names the ids at fault.
    """
    n_rows = len(score_feature_ids)
    if checkpoint.feature_ids is None:
        if n_rows != checkpoint.n_inputs:
            raise InputError(
                f"{checkpoint.path}: the VAE expects {checkpoint.n_inputs} input features "
                f"(n_genes) but {scores_name} has {n_rows} rows"
            )
        return np.arange(n_rows, dtype=np.int64)
    ids = [str(f) for f in score_feature_ids]
    position = {fid: i for i, fid in enumerate(ids)}
    if len(position) != len(ids):
        raise InputError(f"{scores_name} has duplicate feature_id values: {_duplicates(ids)}")
    ckpt_ids = checkpoint.feature_ids
    if ckpt_ids == ids:  # the usual case: the fit's own feature order
        return np.arange(n_rows, dtype=np.int64)
    if len(set(ckpt_ids)) != len(ckpt_ids):
        raise InputError(f"{checkpoint.path}: checkpoint has duplicate feature_ids: "
                         f"{_duplicates(ckpt_ids)}")
    missing = [f for f in ckpt_ids if f not in position]
    extra = sorted(set(ids) - set(ckpt_ids))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} checkpoint feature_id(s) missing from {scores_name}: "
                         f"{missing[:5]}")
        if extra:
            parts.append(f"{len(extra)} {scores_name} row(s) not in the checkpoint: {extra[:5]}")
        raise InputError(f"{checkpoint.path}: feature_ids do not match: " + "; ".join(parts))
    return np.asarray([position[f] for f in ckpt_ids], dtype=np.int64)


def _duplicates(ids: list[str], limit: int = 5) -> list[str]:
    """The first ``limit`` (sorted) ids that occur more than once."""
    return sorted(f for f, count in Counter(ids).items() if count > 1)[:limit]
