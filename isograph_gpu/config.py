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
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "float64", "float32")
FDR_METHODS = ("bh", "by")
IG_BASELINES = ("zero", "mean", "feature-mean")
VAE_JACOBIANS = ("finite-difference", "exact")
PLOT_FORMATS = ("png", "pdf", "svg")
FEATURE_LAYOUTS = ("auto", "samples-by-features", "features-by-samples")
EIGENGENE_SIGNS = ("reference", "canonical")


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
    #: The eigengene's sign and row order: "reference" (isograph 0.1.5: rows in
    #: feature_scores order, the sign anchored to each module's first row, so reordering
    #: feature_scores can flip it) or "canonical" (rows in feature_id order, the sign that
    #: makes the eigengene correlate non-negatively with the module's mean row: the same
    #: for any row order). See the README.
    eigengene_sign: str = "reference"
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
    #: Samples table of traits (path or DataFrame; ``sample_id`` column or index):
    #: module_trait_table.parquet (docs/module_traits.md). ``None``: no trait table.
    sample_traits: Any = None
    #: Trait columns of ``sample_traits`` to test; ``None``: every column.
    trait_columns: tuple[str, ...] | None = None
    #: Samples table of covariates (path or DataFrame): the module-trait statistics are
    #: partial correlations / ANCOVA given them (docs/covariates.md).
    covariates: Any = None
    #: Covariate columns of ``covariates``; ``None``: every column.
    covariate_columns: tuple[str, ...] | None = None
    #: A numeric or binary trait of ``sample_traits``: the polarity table's r, p, q and
    #: switch strength (and its null) are against it instead of each module's score.
    trait_switch: str | None = None
    #: Sample permutations of the switch-strength null (0: off): switch_pvalue and
    #: switch_qvalue columns (docs/switch_significance.md).
    switch_permutations: int = 0
    #: Seed of the permutations (recorded in the manifest).
    seed: int = 0
    #: Seconds to wait for a scheduler address to connect and answer (its handshake and
    #: first reply) before the run fails with one line naming it.
    scheduler_timeout: float = 30.0
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
        if self.integrated_gradients:
            check_ig_n_steps(int(self.ig_n_steps), int(self.memory_budget_bytes))
        if self.chunk_features is not None:
            _integer("chunk_features", self.chunk_features, 1)
        _integer("switch_permutations", self.switch_permutations, 0)
        _integer("seed", self.seed, 0)
        for name in ("trait_columns", "covariate_columns"):
            columns = getattr(self, name)
            if columns is not None:
                object.__setattr__(self, name, tuple(str(c) for c in columns))
        if self.trait_columns is not None and self.sample_traits is None:
            raise InputError("trait_columns (--trait-columns) needs sample_traits "
                             "(--sample-traits)")
        if self.trait_switch is not None and self.sample_traits is None:
            raise InputError("trait_switch (--trait-switch) needs sample_traits "
                             "(--sample-traits)")
        if self.covariate_columns is not None and self.covariates is None:
            raise InputError("covariate_columns (--covariate-columns) needs covariates "
                             "(--covariates)")
        _choice("device", self.device, DEVICES)
        _choice("precision", self.precision, PRECISIONS)
        _choice("fdr_method", self.fdr_method, FDR_METHODS)
        _choice("ig_baseline", self.ig_baseline, IG_BASELINES)
        _choice("vae_jacobian", self.vae_jacobian, VAE_JACOBIANS)
        _choice("eigengene_sign", self.eigengene_sign, EIGENGENE_SIGNS)
        _choice("feature_layout", self.feature_layout, FEATURE_LAYOUTS)
        if self.scheduler is not None:
            _scheduler(self.scheduler)
        if self.feature_cache is not None:  # a plain string: the manifest stores it as JSON
            object.__setattr__(self, "feature_cache", os.fspath(self.feature_cache))
        _number("scheduler_timeout", self.scheduler_timeout, 0.0, math.inf, low_open=True)
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
        for name in ("sample_traits", "covariates"):  # a path as text, a table by its type
            value = getattr(self, name)
            if value is not None:
                out[name] = (str(value) if isinstance(value, str | os.PathLike)
                             else type(value).__name__)
        for name in ("trait_columns", "covariate_columns"):
            if out[name] is not None:
                out[name] = list(out[name])
        return out

    def replace(self, **changes: Any) -> ExplainConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def ig_quadrature_bytes(n_steps: int) -> int:
    """Bytes Integrated Gradients needs for its ``n_steps`` Gauss-Legendre nodes: Captum
    takes them from numpy's ``leggauss``, the eigenvalues of an ``n_steps x n_steps``
    float64 companion matrix, built and copied once (time grows as ``n_steps**3``)."""
    return 2 * 8 * n_steps * n_steps


def check_ig_n_steps(n_steps: int, memory_budget_bytes: int) -> None:
    """An :class:`InputError` naming ``--ig-n-steps`` and ``--memory-budget`` when the
    quadrature of ``n_steps`` nodes would need more than the memory budget; checked
    before any work (the budget bounds every working allocation of a run)."""
    needed = ig_quadrature_bytes(n_steps)
    if needed > memory_budget_bytes:
        raise InputError(
            f"{_label('ig_n_steps')} = {n_steps} needs {_size(needed)} for its quadrature "
            f"nodes (2 x 8 x n_steps**2 bytes), more than {_label('memory_budget_bytes')} = "
            f"{_size(memory_budget_bytes)}: lower the steps (Captum's default is 50) or "
            f"raise the budget")


def _size(n_bytes: int) -> str:
    """A byte count in binary units, e.g. '5.96 GiB'."""
    value, unit = float(n_bytes), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if value < 1024 or unit == "EiB":
            break
        value /= 1024
    return f"{value:.3g} {unit}" if unit != "B" else f"{n_bytes} B"


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
