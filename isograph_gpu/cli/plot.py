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
        from ..io.output import output_lock
        from ..manifest import MANIFEST

        # the whole plot holds the output dir's lock: an explain-module replacing this
        # folder commits before the plot starts or after it has committed, never during
        with output_lock(explain_dir):
            figures, skipped = _plot(explain_dir, feature_table, feature_meta, output_format,
                                     top_n, dpi, jobs, quiet)
        note = f"; {skipped}" if skipped else ""
        click.echo(f"{len(figures)} figures written{note}; manifest: {explain_dir / MANIFEST}")

    run_command(job, quiet=quiet, outputs=[explain_dir])


def _plot(explain_dir: Path, feature_table: Path | None, feature_meta: Path | None,
          output_format: tuple[str, ...], top_n: int, dpi: int, jobs: int | None,
          quiet: bool) -> tuple[list[str], str]:
    """Draw the figures as a staged run of ``explain_dir``: its files (hard links), the new
    figures and the updated manifest replace the folder as a whole, so it holds the old
    files or all of the new ones, and its manifest lists exactly the files present.
    Returns the figures drawn and what was skipped ('' when nothing)."""
    from ..io.output import (
        check_no_links_out,
        copy_into_staging,
        refuse_output_over_inputs,
        staged_output,
    )
    from ..manifest import MANIFEST
    from ..plots import figure_files, load_explain_dir, render_explain_figures
    from ..plots.load import (
        check_usage_matches,
        manifest_input_path,
        read_feature_usage,
        read_manifest,
    )
    from ..plots.render import _NEEDS_USAGE
    from ..progress import Progress

    manifest = read_manifest(explain_dir)
    check_no_links_out(explain_dir)  # before reading a table through a link
    # the folder is replaced as a whole: no input given may lie inside it
    refuse_output_over_inputs([explain_dir], [feature_table, feature_meta], "explain dir")
    results = load_explain_dir(explain_dir, manifest)
    # inputs not given again: the files the explain run read, when they still exist
    table_path = feature_table or manifest_input_path(manifest, "feature_table", explain_dir)
    meta_path = feature_meta or manifest_input_path(manifest, "feature_meta", explain_dir)
    usage = None if table_path is None else read_feature_usage(table_path, results)
    if usage is not None:
        check_usage_matches(usage, results, table_path)
    meta = _read_optional_table(meta_path, "feature meta")
    formats = tuple(dict.fromkeys(output_format)) or ("png",)
    with staged_output(explain_dir, inputs=[table_path, meta_path]) as staged:
        copy_into_staging(explain_dir, staged.staging)
        written = render_explain_figures(results, staged.staging, formats,
                                         feature_usage=usage, feature_meta=meta, top_n=top_n,
                                         dpi=dpi, jobs=jobs,
                                         progress=Progress(enabled=not quiet))
        # plot_files lists figures only (as explain-module --plot and isograph 0.1.5 do);
        # module_summary.json is recorded in "files" with everything else written
        figures = figure_files(written)
        previous = [p for p in figure_files(manifest.get("plot_files", []) or [])
                    if p not in figures and (staged.staging / p).is_file()]
        manifest["plot_files"] = [*previous, *figures]
        if isinstance(manifest.get("files"), list):
            manifest["files"] = sorted(set(manifest["files"]) | set(written))
        (staged.staging / MANIFEST).unlink(missing_ok=True)  # a link to the old one
        staged.write_json(manifest, MANIFEST)
    skipped = ""
    if usage is None and results:
        skipped = (f"{len(_NEEDS_USAGE)} figures per module not drawn ("
                   f"{', '.join(_NEEDS_USAGE)}): no feature table; give --feature-table")
    return figures, skipped


__all__ = ["plot"]
