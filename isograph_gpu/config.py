"""Run configuration: every isograph 0.1.5 ``ExplainConfig`` field and default, plus
the device, precision and memory settings of isograph-gpu."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "float64", "float32"]

FDR_METHODS = ("bh", "by")
IG_BASELINES = ("zero", "mean", "feature-mean")
VAE_JACOBIANS = ("finite-difference", "exact")
PLOT_FORMATS = ("png", "pdf", "svg")
FEATURE_LAYOUTS = ("auto", "samples-by-features", "features-by-samples")


@dataclass(frozen=True)
class ExplainConfig:
    """Settings of one explain run.

    The first block mirrors isograph 0.1.5 field for field (same names, same defaults);
    the second block is isograph-gpu's own.
    """

    # --- isograph 0.1.5 fields -------------------------------------------------------
    split_percentile: float = 50.0
    min_complete_pairs: int = 3
    fdr_method: str = "bh"
    plot: bool = False
    output_format: str | tuple[str, ...] = "png"
    vae_attribution: bool = False
    vae_fdr_threshold: float = 0.05
    vae_percentile_threshold: float = 90.0
    vae_perturbation_eps: float = 1.0
    integrated_gradients: bool = False
    ig_n_steps: int = 50
    ig_baseline: str = "zero"
    transcript_usage_feature_type: str = "transcript_usage"

    # --- isograph-gpu ----------------------------------------------------------------
    #: Optional second contrast: top Q% vs bottom Q% of samples ranked by eigengene
    #: (0 < Q <= 50). ``None`` keeps only the reference median/percentile split.
    contrast_tails: float | None = None
    #: "auto" picks CUDA when available, else the CPU.
    device: Device = "auto"
    #: "auto" is float64 on the CPU and float32 on CUDA. P-values are always float64.
    precision: Precision = "auto"
    #: Upper bound, in bytes, on the working memory of one feature chunk.
    memory_budget_bytes: int = 2 * 1024**3
    #: Fixed feature-chunk size; ``None`` derives it from ``memory_budget_bytes``.
    chunk_features: int | None = None
    #: Read a parquet feature table chunk by chunk instead of loading it: host memory then
    #: holds one chunk, not the table. ``None``: stream only when loading would take more
    #: than half the memory available at start (see :mod:`isograph_gpu.io.memory`).
    stream_features: bool | None = None
    #: Layout of the feature table: "samples-by-features" (one row per sample),
    #: "features-by-samples" (one row per feature) or "auto" (from its sample_id or
    #: feature_id column; both is an error). An AnnData is always samples x features.
    feature_layout: str = "auto"
    #: Decoder Jacobian: central finite differences (reference) or exact forward-mode AD.
    vae_jacobian: str = "finite-difference"
    #: Progress lines on stderr.
    progress: bool = False
    #: Extra options the reference accepts and ignores (kept for drop-in calls).
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.split_percentile) <= 100.0:
            raise ValueError(
                f"split_percentile must be within [0, 100], got {self.split_percentile}"
            )
        if int(self.min_complete_pairs) < 2:
            raise ValueError(
                f"min_complete_pairs must be at least 2, got {self.min_complete_pairs}"
            )
        if self.contrast_tails is not None and not 0.0 < float(self.contrast_tails) <= 50.0:
            raise ValueError(
                f"contrast_tails must be within (0, 50] percent, got {self.contrast_tails}"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.precision not in ("auto", "float64", "float32"):
            raise ValueError(
                f"precision must be 'auto', 'float64' or 'float32', got {self.precision!r}"
            )
        if self.fdr_method not in FDR_METHODS:
            raise ValueError(
                f"fdr_method must be one of {list(FDR_METHODS)}, got {self.fdr_method!r}"
            )
        if self.ig_baseline not in IG_BASELINES:
            raise ValueError(
                f"ig_baseline must be one of {list(IG_BASELINES)}, got {self.ig_baseline!r}"
            )
        if self.vae_jacobian not in VAE_JACOBIANS:
            raise ValueError(
                f"vae_jacobian must be one of {list(VAE_JACOBIANS)}, got {self.vae_jacobian!r}"
            )
        if int(self.ig_n_steps) < 1:
            raise ValueError(f"ig_n_steps must be at least 1, got {self.ig_n_steps}")
        if float(self.vae_perturbation_eps) == 0.0:
            raise ValueError("vae_perturbation_eps must be non-zero")
        if self.feature_layout not in FEATURE_LAYOUTS:
            raise ValueError(f"feature_layout must be one of {list(FEATURE_LAYOUTS)}, "
                             f"got {self.feature_layout!r}")
        if int(self.memory_budget_bytes) <= 0:
            raise ValueError("memory_budget_bytes must be positive")
        for fmt in self.output_formats:
            if fmt not in PLOT_FORMATS:
                raise ValueError(
                    f"output_format must be among {list(PLOT_FORMATS)}, got {fmt!r}"
                )

    @property
    def output_formats(self) -> tuple[str, ...]:
        """``output_format`` as a tuple (the reference accepts a str or a list)."""
        fmt = self.output_format
        return (fmt,) if isinstance(fmt, str) else tuple(fmt)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (for the manifest)."""
        out = dataclasses.asdict(self)
        out["output_format"] = list(self.output_formats)
        return out

    def replace(self, **changes: Any) -> ExplainConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)
