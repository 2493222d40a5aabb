"""``isograph-gpu explain-module``: every isograph 0.1.5 flag and default, plus device,
contrast tails, memory budget, attribution and quiet/progress options."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import (
    DEVICES,
    EIGENGENE_SIGNS,
    FDR_METHODS,
    FEATURE_LAYOUTS,
    IG_BASELINES,
    PLOT_FORMATS,
    PRECISIONS,
    VAE_JACOBIANS,
    ExplainConfig,
)
from .common import import_long_lived, run_command
from .options import MEMORY_SIZE, FiniteFloatRange


class _ExplainCommand(click.Command):
    """Positional arguments are an error (a value after a one-value flag, e.g.
    ``--contrast-tails 10 20``, or module ids without ``--module-ids``). As in isograph
    0.1.5, the arguments after a literal ``--`` are Hydra overrides and are ignored."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            cut = args.index("--")
            args, ctx.meta["isograph_gpu.ignored_overrides"] = args[:cut], args[cut + 1:]
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            if "unexpected extra argument" not in exc.message:
                raise
            raise click.UsageError(
                f"{exc.message}: explain-module takes options only (two values after a "
                "one-value flag? module ids go after --module-ids; Hydra overrides, which "
                "are ignored, after '--')", ctx) from None


def _names(groups: object) -> tuple[str, ...] | None:
    """Column names of a repeatable option (each value may hold several, space-separated);
    None when not given."""
    names = tuple(name for group in groups for name in str(group).split())  # type: ignore[attr-defined]
    return names or None


@click.command("explain-module", cls=_ExplainCommand)
@click.option("--artifact-dir", required=True, type=click.Path(path_type=Path),
              help="IsoGraph fit artifact directory (modules.parquet, feature_scores.parquet).")
@click.option("--feature-table", required=True, type=click.Path(path_type=Path),
              help="Samples x features table (parquet, CSV or TSV, optionally .gz), a "
                   "features x samples one (see --feature-layout) or an AnnData .h5ad.")
@click.option("--feature-meta", default=None, type=click.Path(path_type=Path),
              help="Feature metadata: feature_id, gene_id, feature_type[, transcript_id, "
                   "gene_name]. Optional when the feature table carries them (.h5ad var, "
                   "or features x samples columns).")
@click.option("--feature-layout", type=click.Choice(list(FEATURE_LAYOUTS)), default="auto",
              show_default=True,
              help="One row per sample or one row per feature; auto: from the table's "
                   "sample_id or feature_id column (both is an error).")
@click.option("--module-ids", multiple=True,
              help="Modules to explain (repeat, or space-separated after one flag); default all.")
@click.option("--output-dir", default="artifacts/explain", show_default=True,
              type=click.Path(path_type=Path),
              help="Where the tables, manifest and figures are written.")
@click.option("--module-score-table", type=click.Path(path_type=Path), default=None,
              help="Precomputed samples x modules scores used instead of eigengenes.")
@click.option("--split-percentile", type=FiniteFloatRange(0.0, 100.0), default=50.0,
              show_default=True,
              help="Eigengene percentile (0-100) that splits samples into the high and low "
                   "groups of high_vs_low_table.")
@click.option("--min-complete-pairs", type=click.IntRange(2, None), default=3,
              show_default=True,
              help="Fewest samples with both values present for a correlation to be "
                   "reported (at least 2); fewer gives NaN.")
@click.option("--fdr-method", type=click.Choice(FDR_METHODS), default="bh", show_default=True,
              help="Multiple-testing correction of q-values: bh = Benjamini-Hochberg, "
                   "by = Benjamini-Yekutieli.")
@click.option("--contrast-tails", type=FiniteFloatRange(0.0, 50.0, min_open=True),
              default=None, metavar="Q",
              help="Also compare the top Q percent of samples with the bottom Q percent "
                   "(0 < Q <= 50): high_vs_low_tails_table.parquet.")
@click.option("--sample-traits", type=click.Path(path_type=Path), default=None,
              help="Samples table of traits (sample_id column): module_trait_table.parquet, "
                   "every module score against every trait (docs/module_traits.md).")
@click.option("--trait-columns", multiple=True,
              help="Trait columns of --sample-traits (repeat, or space-separated); default all.")
@click.option("--trait-switch", default=None, metavar="TRAIT",
              help="A numeric or binary trait of --sample-traits: the polarity table's r "
                   "and switch strength against it instead of each module's score.")
@click.option("--covariates", type=click.Path(path_type=Path), default=None,
              help="Samples table of covariates (numeric or categorical): the module-trait "
                   "statistics become partial / ANCOVA given them (docs/covariates.md).")
@click.option("--covariate-columns", multiple=True,
              help="Covariate columns of --covariates (repeat, or space-separated); default all.")
@click.option("--switch-permutations", type=click.IntRange(0, None), default=0,
              show_default=True, metavar="B",
              help="Sample permutations of the switch-strength null (0 = off): "
                   "switch_pvalue / switch_qvalue columns (docs/switch_significance.md).")
@click.option("--seed", type=click.IntRange(0, None), default=0, show_default=True,
              help="Seed of the switch permutations (recorded in the manifest).")
@click.option("--eigengene-sign", type=click.Choice(list(EIGENGENE_SIGNS)), default="reference",
              show_default=True,
              help="reference: isograph 0.1.5's eigengene (sign anchored to each module's "
                   "first feature_scores row, so reordering the rows can flip it); "
                   "canonical: rows in feature_id order, sign agreeing with the module's "
                   "mean row (the same for any row order).")
@click.option("--plot", is_flag=True, help="Write figures.")
@click.option("--output-format", multiple=True, type=click.Choice(list(PLOT_FORMATS)),
              help="Figure format(s) (repeatable); default png.")
@click.option("--annotation-table", type=click.Path(path_type=Path), default=None,
              help="Structural annotation (e.g. annotate-structure output): TSV/CSV/parquet.")
@click.option("--vae-attribution", is_flag=True, help="VAE decoder attribution.")
@click.option("--vae-fdr-threshold", type=FiniteFloatRange(0.0, 1.0), default=0.05,
              show_default=True,
              help="q-value (0-1) a VAE driver must not exceed to pass the filter.")
@click.option("--vae-percentile-threshold", type=FiniteFloatRange(0.0, 100.0), default=90.0,
              show_default=True,
              help="Percentile (0-100) of |decoded delta| a VAE driver must reach to pass "
                   "the filter.")
@click.option("--vae-epsilon", type=FiniteFloatRange(nonzero=True), default=1.0,
              show_default=True,
              help="Latent perturbation for the finite-difference decoder Jacobian.")
@click.option("--vae-jacobian", type=click.Choice(list(VAE_JACOBIANS)),
              default="finite-difference", show_default=True,
              help="Decoder Jacobian: central finite differences (as isograph 0.1.5) or "
                   "exact forward-mode differentiation.")
@click.option("--integrated-gradients", is_flag=True, help="Captum Integrated Gradients.")
@click.option("--ig-n-steps", type=click.IntRange(1, None), default=50, show_default=True,
              help="Integration steps of Integrated Gradients (at least 1; its quadrature "
                   "nodes, 16 x steps^2 bytes, must fit --memory-budget: up to 11585 at 2G).")
@click.option("--ig-baseline", type=click.Choice(list(IG_BASELINES)), default="zero",
              show_default=True,
              help="zero; mean = per-sample mean across features; feature-mean = the "
                   "reference's per-feature mean over samples.")
@click.option("--device", type=click.Choice(DEVICES), default="auto",
              show_default=True, help="Where the tensors live; auto: CUDA when available.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto",
              show_default=True,
              help="auto = float64 on every device; float32 is faster on a GPU but off the "
                   "1e-6 parity contract (p up to ~1e-3 in log10).")
@click.option("--memory-budget", type=MEMORY_SIZE, default="2G", show_default=True,
              help="Working memory per feature chunk (e.g. 512M, 4G).")
@click.option("--stream-features/--load-features", default=None,
              help="Read a parquet feature table chunk by chunk (host memory: one chunk) "
                   "or load it whole. Default: stream only when loading would take more "
                   "than half the memory available.")
@click.option("--feature-cache", "feature_cache", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Feature-matrix cache file: the first run writes the decoded feature "
                   "table there, later runs on the same table map it instead of decoding "
                   "(rebuilt with a warning when the table changed). Any format can then be "
                   "streamed.")
@click.option("--scheduler", default=None, metavar="ADDRESS|local[:N]",
              help="Run the feature statistics as Dask tasks, one per read block of the "
                   "feature table: a scheduler address (tcp://host:8786) or local[:N] (N "
                   "local worker processes). Needs the distributed extra; see "
                   "docs/distributed.md.")
@click.option("--scheduler-timeout", type=FiniteFloatRange(0.0, None, min_open=True),
              default=30.0, show_default=True, metavar="SECONDS",
              help="How long a --scheduler address may take to connect and answer before "
                   "the run fails.")
@click.option("--replace-output-dir", is_flag=True,
              help="Allow --output-dir to be a non-empty folder that is not an earlier "
                   "explain output: it is replaced as a whole (refused by default).")
@click.option("--report/--no-report", default=True, show_default=True,
              help="Write report.html: every module on one self-contained page.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines or warnings on stderr.")
def explain_module(**opts: object) -> None:
    """Explain modules: gene drivers, transcript polarity, high-vs-low contrasts.

    Drop-in for `isograph explain-module`; prints the manifest path on success.
    """
    quiet = bool(opts.pop("quiet"))

    def job() -> None:
        pipeline = import_long_lived("isograph_gpu.pipeline")
        run, manifest = pipeline.explain_module, pipeline.MANIFEST

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
            eigengene_sign=opts["eigengene_sign"],  # type: ignore[arg-type]
            device=opts["device"],  # type: ignore[arg-type]
            precision=opts["precision"],  # type: ignore[arg-type]
            memory_budget_bytes=int(opts["memory_budget"]),  # MEMORY_SIZE parsed it
            stream_features=opts["stream_features"],  # type: ignore[arg-type]
            feature_cache=opts["feature_cache"],  # type: ignore[arg-type]
            feature_layout=opts["feature_layout"],  # type: ignore[arg-type]
            report=bool(opts["report"]),
            progress=not quiet,
            replace_output_dir=bool(opts["replace_output_dir"]),
            scheduler=opts["scheduler"],  # type: ignore[arg-type]
            sample_traits=opts["sample_traits"],
            trait_columns=_names(opts["trait_columns"]),
            trait_switch=opts["trait_switch"],  # type: ignore[arg-type]
            covariates=opts["covariates"],
            covariate_columns=_names(opts["covariate_columns"]),
            switch_permutations=opts["switch_permutations"],  # type: ignore[arg-type]
            seed=opts["seed"],  # type: ignore[arg-type]
            scheduler_timeout=opts["scheduler_timeout"],  # type: ignore[arg-type]
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
        click.echo(str(output_dir / manifest))

    run_command(job, quiet=quiet, outputs=[opts["output_dir"]])
