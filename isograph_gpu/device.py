"""Device and working-precision resolution."""

from __future__ import annotations

import torch

from .errors import InputError


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" -> CUDA when available, else CPU. Asking for "cuda" without one is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError(
            "--device cuda was requested but no CUDA device is available "
            "(torch.cuda.is_available() is False); use --device cpu or auto"
        )
    if device not in ("cpu", "cuda"):
        raise InputError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return torch.device(device)


def resolve_dtype(precision: str) -> torch.dtype:
    """Working dtype of the statistics, the same rule on every device: "auto" and
    "float64" -> float64 (a CUDA run then matches the reference within the 1e-6
    contract); "float32" -> float32 (off that contract; its deviations are in
    docs/gpu.md, Precision)."""
    return torch.float32 if precision == "float32" else torch.float64


def disable_reduced_precision() -> None:
    """Full-precision matmuls on CUDA: TF32 and bf16 reductions off."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
