"""``isograph-gpu report``: redraw report.html of an existing explain output directory from
its tables and manifest (nothing is recomputed; only report.html and the manifest's file
list change)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import run_command


@click.command("report")
@click.option("--explain-dir", required=True, type=click.Path(path_type=Path),
              help="Output directory of explain-module (tables, eigengenes.parquet, manifest).")
@click.option("--feature-table", type=click.Path(path_type=Path), default=None,
              help="Samples x features usage for the summary panels' usage heatmap and "
                   "gradients. Default: the explain run's feature table (recorded in the "
                   "manifest) when it still exists.")
@click.option("--feature-meta", type=click.Path(path_type=Path), default=None,
              help="Feature metadata (gene names). Default: the explain run's feature meta "
                   "when it still exists.")
@click.option("--quiet", "-q", is_flag=True, help="No warnings on stderr.")
def report(explain_dir: Path, feature_table: Path | None, feature_meta: Path | None,
           quiet: bool) -> None:
    """Write EXPLAIN_DIR/report.html (atomically: the old page stays until the new one is
    complete); prints its path."""

    def job() -> None:
        from ..io.output import atomic_write_bytes, json_bytes
        from ..io.table_readers import read_table
        from ..manifest import MANIFEST
        from ..plots import load_explain_dir
        from ..plots.load import (
            check_usage_matches,
            manifest_input_path,
            read_feature_usage,
            read_manifest,
        )
        from ..report import REPORT_NAME, write_report

        manifest = read_manifest(explain_dir)
        results = load_explain_dir(explain_dir, manifest)
        table_path = feature_table or manifest_input_path(manifest, "feature_table")
        meta_path = feature_meta or manifest_input_path(manifest, "feature_meta")
        usage = None if table_path is None else read_feature_usage(table_path, results)
        if usage is not None:
            check_usage_matches(usage, results, table_path)
        meta = None if meta_path is None else read_table(meta_path, what="feature meta")
        if isinstance(manifest.get("files"), list):
            manifest["files"] = sorted(set(manifest["files"]) | {REPORT_NAME})
        path = write_report(explain_dir, results, manifest, usage, meta)
        atomic_write_bytes(explain_dir / MANIFEST, json_bytes(manifest))
        click.echo(str(path))

    run_command(job, quiet=quiet)


__all__ = ["report"]
