"""Run configuration: every isograph 0.1.5 ``ExplainConfig`` field and default, plus
the device, precision and memory settings of isograph-gpu."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import InputError

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "float64", "float32"]

# The choices of each option, defined here only (config imports no torch, so the CLI's
# --help stays light); ops.fdr, attribution and plots import them from here.
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
    #: "auto" is float64 on every device (CUDA too); "float32" is opt-in and off the 1e-6
    #: contract (p/q up to ~1e-3 in log10, t ~3e-4 relative). P-values are always float64.
    precision: Precision = "auto"
    #: Upper bound, in bytes, on the working memory of one feature chunk.
    memory_budget_bytes: int = 2 * 1024**3
    #: Fixed feature-chunk size; ``None`` derives it from ``memory_budget_bytes``.
    chunk_features: int | None = None
    #: Read a parquet feature table chunk by chunk instead of loading it: host memory then
    #: holds one chunk, not the table. ``None``: stream only when loading would take more
    #: than half the memory available at start (see :mod:`isograph_gpu.io.memory`).
    stream_features: bool | None = None
    #: A feature-matrix cache file (``--feature-cache``): the first run writes the decoded
    #: feature table there, later runs on the same table map it instead of decoding
    #: (docs/input_formats.md). ``None``: no cache.
    feature_cache: str | os.PathLike[str] | None = None
    #: Layout of the feature table: "samples-by-features" (one row per sample),
    #: "features-by-samples" (one row per feature) or "auto" (from its sample_id or
    #: feature_id column; both is an error). An AnnData is always samples x features.
    feature_layout: str = "auto"
    #: Decoder Jacobian: central finite differences (reference) or exact forward-mode AD.
    vae_jacobian: str = "finite-difference"
    #: Write report.html (every module on one self-contained page) into the output dir.
    report: bool = True
    #: Progress lines on stderr (the API is silent by default; the CLI turns them on).
    progress: bool = False
    #: Allow the output dir to be a non-empty folder that is not an earlier output (it is
    #: replaced as a whole); by default such a folder is refused before any computing.
    replace_output_dir: bool = False
    #: Run the feature statistics as Dask tasks, one per read block of the feature table: a scheduler
    #: address ("tcp://host:8786") or "local[:N]" (a local cluster of N one-thread worker
    #: processes for the run); ``None``: one process. Needs the ``distributed`` extra
    #: (docs/distributed.md).
    scheduler: str | None = None
    #: Extra options the reference accepts and ignores (kept for drop-in calls).
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Range-check every field; an :class:`InputError` (a ValueError) names the field
        and its CLI flag, so the API and the CLI give the same one-line message."""
        _number("split_percentile", self.split_percentile, 0.0, 100.0)
        _integer("min_complete_pairs", self.min_complete_pairs, 2)
        if self.contrast_tails is not None:
            _number("contrast_tails", self.contrast_tails, 0.0, 50.0, low_open=True)
        _number("vae_fdr_threshold", self.vae_fdr_threshold, 0.0, 1.0)
        _number("vae_percentile_threshold", self.vae_percentile_threshold, 0.0, 100.0)
        _number("vae_perturbation_eps", self.vae_perturbation_eps, 0.0, math.inf,
                low_open=True)
        _integer("ig_n_steps", self.ig_n_steps, 1)
        _integer("memory_budget_bytes", self.memory_budget_bytes, 1)
        if self.chunk_features is not None:
            _integer("chunk_features", self.chunk_features, 1)
        _choice("device", self.device, ("auto", "cpu", "cuda"))
        _choice("precision", self.precision, ("auto", "float64", "float32"))
        _choice("fdr_method", self.fdr_method, FDR_METHODS)
        _choice("ig_baseline", self.ig_baseline, IG_BASELINES)
        _choice("vae_jacobian", self.vae_jacobian, VAE_JACOBIANS)
        _choice("feature_layout", self.feature_layout, FEATURE_LAYOUTS)
        if self.scheduler is not None:
            _scheduler(self.scheduler)
        if self.feature_cache is not None:  # a plain string: the manifest stores it as JSON
            object.__setattr__(self, "feature_cache", os.fspath(self.feature_cache))
        for fmt in self.output_formats:
            _choice("output_format", fmt, PLOT_FORMATS)

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


#: the explain-module flag of each range-checked field (where the names differ)
CLI_FLAGS = {"vae_perturbation_eps": "--vae-epsilon", "memory_budget_bytes": "--memory-budget",
             "chunk_features": None}


def _label(name: str) -> str:
    flag = CLI_FLAGS.get(name, "--" + name.replace("_", "-"))
    return f"{name} ({flag})" if flag else name


def _number(name: str, value: Any, low: float, high: float, low_open: bool = False) -> None:
    """A real, non-NaN number within [low, high] ((low, high] with ``low_open``)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    inside = (low < x if low_open else low <= x) and x <= high and not math.isinf(x)
    if isinstance(value, bool) or not inside:
        if math.isinf(high):
            wanted = f"finite and {'>' if low_open else '>='} {low:g}"
        else:
            wanted = f"within {'(' if low_open else '['}{low:g}, {high:g}]"
        raise InputError(f"{_label(name)} must be {wanted}, got {value!r}")


def _integer(name: str, value: Any, low: int) -> None:
    """A whole number (int, or a float without fraction) of at least ``low``."""
    try:
        ok = (not isinstance(value, bool) and float(value) == int(value)
              and int(value) >= low)
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise InputError(f"{_label(name)} must be a whole number >= {low}, got {value!r}")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"{_label(name)} must be one of {list(choices)}, got {value!r}")


def _scheduler(value: Any) -> None:
    """A scheduler address or ``local`` / ``local:N`` (N >= 1)."""
    text = value if isinstance(value, str) else ""
    count = text.partition(":")[2] if text.startswith("local:") else "1"
    if not text.strip() or not count.isdigit() or int(count) < 1:
        raise InputError(f"{_label('scheduler')} must be a scheduler address or local[:N] "
                          f"with N >= 1 workers, got {value!r}")
