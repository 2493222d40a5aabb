"""``isograph-gpu explain-module``: every isograph 0.1.5 flag and default, plus device,
contrast tails, memory budget, attribution and quiet/progress options."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import IG_BASELINES, PLOT_FORMATS, VAE_JACOBIANS, ExplainConfig
from .common import run_command


def parse_size(text: str) -> int:
    """'2G', '512M', '1.5GB' or a byte count -> bytes."""
    units = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    num, unit = (t[:-1], t[-1]) if t and t[-1] in units else (t, "")
    try:
        value = float(num) * units[unit]
    except ValueError as exc:
        raise click.BadParameter(f"cannot read memory size {text!r} (e.g. 4G, 512M)") from exc
    if value <= 0:
        raise click.BadParameter("memory budget must be positive")
    return int(value)


@click.command("explain-module")
@click.option("--artifact-dir", required=True, type=click.Path(path_type=Path),
              help="IsoGraph fit artifact directory (modules.parquet, feature_scores.parquet).")
@click.option("--feature-table", required=True, type=click.Path(path_type=Path),
              help="Samples x features table (parquet, CSV or TSV, optionally .gz).")
@click.option("--feature-meta", required=True, type=click.Path(path_type=Path),
              help="Feature metadata: feature_id, gene_id, feature_type[, transcript_id, gene_name].")
@click.option("--module-ids", multiple=True,
              help="Modules to explain (repeat, or space-separated after one flag); default all.")
@click.option("--output-dir", default="artifacts/explain", show_default=True,
              type=click.Path(path_type=Path))
@click.option("--module-score-table", type=click.Path(path_type=Path), default=None,
              help="Precomputed samples x modules scores used instead of eigengenes.")
@click.option("--split-percentile", type=float, default=50.0, show_default=True)
@click.option("--min-complete-pairs", type=int, default=3, show_default=True)
@click.option("--fdr-method", type=click.Choice(["bh", "by"]), default="bh", show_default=True)
@click.option("--contrast-tails", type=float, default=None,
              help="Also compare the top Q%% vs the bottom Q%% of samples (0 < Q <= 50).")
@click.option("--plot", is_flag=True, help="Write figures.")
@click.option("--output-format", multiple=True, type=click.Choice(list(PLOT_FORMATS)),
              help="Figure format(s) (repeatable); default png.")
@click.option("--annotation-table", type=click.Path(path_type=Path), default=None,
              help="Structural annotation (e.g. annotate-structure output): TSV/CSV/parquet.")
@click.option("--vae-attribution", is_flag=True, help="VAE decoder attribution.")
@click.option("--vae-fdr-threshold", type=float, default=0.05, show_default=True)
@click.option("--vae-percentile-threshold", type=float, default=90.0, show_default=True)
@click.option("--vae-epsilon", type=float, default=1.0, show_default=True,
              help="Latent perturbation for the finite-difference decoder Jacobian.")
@click.option("--vae-jacobian", type=click.Choice(list(VAE_JACOBIANS)),
              default="finite-difference", show_default=True)
@click.option("--integrated-gradients", is_flag=True, help="Captum Integrated Gradients.")
@click.option("--ig-n-steps", type=int, default=50, show_default=True)
@click.option("--ig-baseline", type=click.Choice(list(IG_BASELINES)), default="zero",
              show_default=True,
              help="zero; mean = per-sample mean across features; feature-mean = the "
                   "reference's per-feature mean over samples.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--precision", type=click.Choice(["auto", "float64", "float32"]), default="auto",
              show_default=True, help="auto: float64 on CPU, float32 on CUDA.")
@click.option("--memory-budget", default="2G", show_default=True,
              help="Working memory per feature chunk (e.g. 512M, 4G).")
@click.option("--stream-features/--load-features", default=None,
              help="Read a parquet feature table chunk by chunk (host memory: one chunk) "
                   "or load it whole. Default: stream when the file is larger than the "
                   "memory budget.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines or warnings on stderr.")
@click.argument("overrides", nargs=-1, type=click.UNPROCESSED)
def explain_module(**opts: object) -> None:
    """Explain modules: gene drivers, transcript polarity, high-vs-low contrasts.

    Drop-in for `isograph explain-module`; prints the manifest path on success.
    """
    quiet = bool(opts.pop("quiet"))

    def job() -> None:
        from ..pipeline import MANIFEST
        from ..pipeline import explain_module as run

        module_ids = [m for group in opts["module_ids"] for m in str(group).split()]  # type: ignore[attr-defined]
        formats = tuple(opts["output_format"]) or ("png",)  # type: ignore[arg-type]
        config = ExplainConfig(
            split_percentile=opts["split_percentile"],  # type: ignore[arg-type]
            min_complete_pairs=opts["min_complete_pairs"],  # type: ignore[arg-type]
            fdr_method=opts["fdr_method"],  # type: ignore[arg-type]
            plot=bool(opts["plot"]),
            output_format=formats[0] if len(formats) == 1 else formats,
            vae_attribution=bool(opts["vae_attribution"]),
            vae_fdr_threshold=opts["vae_fdr_threshold"],  # type: ignore[arg-type]
            vae_percentile_threshold=opts["vae_percentile_threshold"],  # type: ignore[arg-type]
            vae_perturbation_eps=opts["vae_epsilon"],  # type: ignore[arg-type]
            vae_jacobian=opts["vae_jacobian"],  # type: ignore[arg-type]
            integrated_gradients=bool(opts["integrated_gradients"]),
            ig_n_steps=opts["ig_n_steps"],  # type: ignore[arg-type]
            ig_baseline=opts["ig_baseline"],  # type: ignore[arg-type]
            contrast_tails=opts["contrast_tails"],  # type: ignore[arg-type]
            device=opts["device"],  # type: ignore[arg-type]
            precision=opts["precision"],  # type: ignore[arg-type]
            memory_budget_bytes=parse_size(str(opts["memory_budget"])),
            stream_features=opts["stream_features"],  # type: ignore[arg-type]
            progress=not quiet,
        )
        output_dir = Path(opts["output_dir"])  # type: ignore[arg-type]
        run(
            opts["artifact_dir"],  # type: ignore[arg-type]
            opts["feature_table"],  # type: ignore[arg-type]
            opts["feature_meta"],  # type: ignore[arg-type]
            module_ids=module_ids or None,
            module_score_table=opts["module_score_table"],  # type: ignore[arg-type]
            annotation_table=opts["annotation_table"],  # type: ignore[arg-type]
            config=config,
            output_dir=output_dir,
            return_tables=False,  # tables go to files as built: memory bounded by features
        )
        click.echo(str(output_dir / MANIFEST))

    run_command(job, quiet=quiet)
