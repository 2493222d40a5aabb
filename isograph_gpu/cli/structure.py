"""``isograph-gpu annotate-structure``: structural labels of switch pairs from a GTF."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import run_command


@click.command("annotate-structure")
@click.option("--gtf", "gtf", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="GTF or GTF.gz annotation (GENCODE or Ensembl).")
@click.option("--switch-pairs", "switch_pairs", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="TSV with columns gene_id, transcript_id_1, transcript_id_2.")
@click.option("--output", "output", default="transcript_structure_annotations.tsv",
              show_default=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output TSV (booleans True/False, NA empty).")
@click.option("--gtf-cache", "gtf_cache", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Parquet cache of the parsed GTF; reused only if built from the same GTF "
                   "by the same parser version, otherwise rebuilt.")
def annotate_structure(gtf: Path, switch_pairs: Path, output: Path,
                       gtf_cache: Path | None) -> None:
    """Label what changes in transcript structure between switch-pair partners.

    On a terminal, the GTF stages (hash, parse or cached load, cache write) are reported on
    stderr, the hash with a progress bar; elsewhere stderr carries only warnings and errors."""

    def body() -> None:
        from ..io.output import refuse_output_over_inputs
        from ..progress import Progress
        from ..structure import annotate_switch_pairs, read_switch_pairs, write_annotations

        # --output and --gtf-cache are written: neither may be (or resolve to) an input
        refuse_output_over_inputs([output, gtf_cache], [gtf, switch_pairs])
        pairs = read_switch_pairs(switch_pairs)
        progress = Progress(enabled=sys.stderr.isatty())
        table = annotate_switch_pairs(pairs, gtf, gtf_cache=gtf_cache, progress=progress)
        write_annotations(table, output)
        click.echo(str(output))

    run_command(body)
