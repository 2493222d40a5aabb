"""``isograph-gpu plot``: draw the figures of an existing explain output directory from its
tables (nothing is recomputed) and record them in the manifest's ``plot_files``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..config import PLOT_FORMATS
from .common import run_command

if TYPE_CHECKING:
    import pandas as pd


def _read_optional_table(path: Path | None, what: str) -> pd.DataFrame | None:
    if path is None:
        return None
    from ..io.table_readers import read_table

    return read_table(path, what=what)


@click.command("plot")
@click.option("--explain-dir", required=True, type=click.Path(path_type=Path),
              help="Output directory of explain-module (tables, eigengenes.parquet, manifest).")
@click.option("--feature-table", type=click.Path(path_type=Path), default=None,
              help="Samples x features usage (parquet/CSV/TSV) for the gradient and heatmap "
                   "figures. Default: the explain run's feature table (recorded in the "
                   "manifest) when it still exists; without one those figures are skipped.")
@click.option("--feature-meta", type=click.Path(path_type=Path), default=None,
              help="Feature metadata; a gene_name column puts gene names in the labels. "
                   "Default: the explain run's feature meta when it still exists.")
@click.option("--output-format", multiple=True, type=click.Choice(list(PLOT_FORMATS)),
              help="Figure format(s): png pdf svg (several after one flag); default png.")
@click.option("--top-n", type=click.IntRange(1, None), default=10, show_default=True,
              help="Driver genes per figure (bars, gradient panels, heatmap genes, "
                   "polarity rows).")
@click.option("--dpi", type=click.IntRange(20, 1200), default=300, show_default=True,
              help="Resolution of png output (and of rasterised scatter in pdf/svg).")
@click.option("--jobs", type=click.IntRange(1, None), default=None,
              help="Worker processes drawing modules in parallel [default on Linux: one "
                   "per CPU core, at most one per module; elsewhere 1]; 1 draws in this "
                   "process.")
@click.option("--quiet", "-q", is_flag=True, help="No progress or warnings on stderr.")
def plot(explain_dir: Path, feature_table: Path | None, feature_meta: Path | None,
         output_format: tuple[str, ...], top_n: int, dpi: int, jobs: int | None,
         quiet: bool) -> None:
    """Draw publication-ready figures for every module of an explain run; prints the
    number of files written and the manifest path."""

    def job() -> None:
        from ..io.output import atomic_write_bytes, json_bytes
        from ..manifest import MANIFEST
        from ..plots import figure_files, load_explain_dir, render_explain_figures
        from ..plots.load import (
            check_usage_matches,
            manifest_input_path,
            read_feature_usage,
            read_manifest,
        )
        from ..progress import Progress

        manifest = read_manifest(explain_dir)
        results = load_explain_dir(explain_dir, manifest)
        # inputs not given again: the files the explain run read, when they still exist
        table_path = feature_table or manifest_input_path(manifest, "feature_table")
        meta_path = feature_meta or manifest_input_path(manifest, "feature_meta")
        usage = None if table_path is None else read_feature_usage(table_path, results)
        if usage is not None:
            check_usage_matches(usage, results, table_path)
        meta = _read_optional_table(meta_path, "feature meta")
        formats = tuple(dict.fromkeys(output_format)) or ("png",)
        written = render_explain_figures(results, explain_dir, formats, feature_usage=usage,
                                         feature_meta=meta, top_n=top_n, dpi=dpi,
                                         jobs=jobs, progress=Progress(enabled=not quiet))
        # plot_files lists figures only (as explain-module --plot and isograph 0.1.5 do);
        # module_summary.json is recorded in "files" with everything else written
        figures = figure_files(written)
        previous = [p for p in figure_files(manifest.get("plot_files", []) or [])
                    if p not in figures and (explain_dir / p).is_file()]
        manifest["plot_files"] = [*previous, *figures]
        if isinstance(manifest.get("files"), list):
            manifest["files"] = sorted(set(manifest["files"]) | set(written))
        atomic_write_bytes(explain_dir / MANIFEST, json_bytes(manifest))
        click.echo(f"{len(figures)} figures written; manifest: {explain_dir / MANIFEST}")

    run_command(job, quiet=quiet)


__all__ = ["plot"]
