"""``isograph-gpu demo``: build the embedded synthetic dataset and explain it end to end."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import DEVICES
from .common import run_command


@click.command("demo")
@click.option("--output-dir", default="isograph_gpu_demo", show_default=True,
              type=click.Path(path_type=Path),
              help="Where the demo inputs and results are written.")
@click.option("--samples", default=200, show_default=True, type=click.IntRange(10, None),
              help="Simulated samples.")
@click.option("--genes", default=300, show_default=True, type=click.IntRange(20, None),
              help="Simulated genes (each with several transcripts).")
@click.option("--modules", default=5, show_default=True, type=click.IntRange(1, None),
              help="Planted isoform-switch modules.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Random seed; the same seed gives the same dataset.")
@click.option("--plot/--no-plot", default=False, show_default=True, help="Also draw figures.")
@click.option("--device", type=click.Choice(DEVICES), default="auto",
              show_default=True, help="Where the tensors live; auto: CUDA when available.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines or warnings on stderr.")
def demo(output_dir: Path, samples: int, genes: int, modules: int, seed: int, plot: bool,
         device: str, quiet: bool) -> None:
    """Simulate an IsoGraph fit with planted isoform-switch modules (no download) and
    run the whole explain on it; prints where the results are, the top drivers, how to
    draw the figures (or where --plot drew them) and what needs inputs the demo lacks."""

    def job() -> None:
        from ..config import ExplainConfig
        from ..pipeline import MANIFEST, explain_module
        from ..synthetic import make_synthetic_dataset

        check_demo_destination(output_dir)  # before anything is written into it
        data = make_synthetic_dataset(n_samples=samples, n_genes=genes, n_modules=modules,
                                      seed=seed)
        paths = data.write(output_dir / "inputs")
        results = explain_module(
            paths["artifact_dir"], paths["feature_table"], paths["feature_meta"],
            config=ExplainConfig(device=device, plot=plot, progress=not quiet),  # type: ignore[arg-type]
            output_dir=output_dir / "explain",
        )
        truth = data.truth.set_index("gene_id")
        explain_dir = output_dir / "explain"
        click.echo(f"inputs:  {output_dir / 'inputs'}")
        click.echo(f"results: {explain_dir} (manifest: {explain_dir / MANIFEST})")
        click.echo(f"report:  {explain_dir / 'report.html'} (every module on one page; open "
                   "it in a browser)")
        for module_id, res in results.items():
            top = res.gene_driver_table.head(5)
            planted = sum(truth.loc[g, "module_id"] == module_id for g in top["gene_id"]
                          if g in truth.index) if "module_id" in truth.columns else None
            genes_text = ", ".join(f"{g} (r={r:+.2f})" for g, r in zip(top["gene_id"], top["r"],
                                                                       strict=True))
            extra = f"; {planted}/5 planted in {module_id}" if planted is not None else ""
            click.echo(f"{module_id}: top drivers {genes_text}{extra}")
        for line in next_steps(explain_dir, plot):
            click.echo(line)

    run_command(job, quiet=quiet)


def check_demo_destination(output_dir: Path) -> None:
    """Refuse (:class:`~isograph_gpu.errors.OutputError`, before anything is written) a
    demo folder that holds anything but an earlier demo's files: ``inputs/`` with the
    tables the demo writes (:func:`~isograph_gpu.synthetic.input_paths`) and ``explain/``
    as the explain step accepts it (absent, empty, or an earlier explain output), beside
    which only that step's own staging folders may lie."""
    import os

    from ..errors import OutputError
    from ..io.output import LOCK_MARK, STAGING_MARK, check_destination
    from ..synthetic import input_paths

    output_dir = Path(os.path.realpath(output_dir))
    if not os.path.lexists(output_dir):
        return
    if not output_dir.is_dir():
        raise OutputError(f"demo output dir {output_dir} exists and is not a directory")
    inputs = output_dir / "inputs"
    allowed = {p.relative_to(inputs).as_posix() for p in input_paths(inputs).values()}
    foreign = [p for p in output_dir.iterdir()
               if p.name not in ("inputs", "explain")
               and not p.name.startswith(f".explain{STAGING_MARK}")
               and p.name != f".explain{LOCK_MARK}"]
    if inputs.is_symlink() or (inputs.exists() and not inputs.is_dir()):
        foreign.append(inputs)
    elif inputs.is_dir():
        foreign += [p for p in sorted(inputs.rglob("*"))
                    if p.is_symlink() or (p.is_file() and
                                          p.relative_to(inputs).as_posix() not in allowed)]
    if foreign:
        raise OutputError(
            f"demo output dir {output_dir} holds files the demo did not write (e.g. "
            f"{foreign[0]}); it writes inputs/ and explain/ there, so it refuses: choose an "
            "empty or new folder")
    check_destination(output_dir / "explain")


def next_steps(explain_dir: Path, plotted: bool) -> list[str]:
    """What else the package can do with the demo's output, as lines to print."""
    import json

    from ..pipeline import MANIFEST

    if plotted:
        figures = json.loads((explain_dir / MANIFEST).read_text()).get("plot_files", [])
        first = f"{explain_dir / figures[0]}" if figures else "none"
        draw = f"figures: {len(figures)} written under {explain_dir} (e.g. {first})"
    else:
        draw = f"figures: isograph-gpu plot --explain-dir {explain_dir}   (or rerun with --plot)"
    return [
        draw,
        "not run here: --vae-attribution and --integrated-gradients need the fit's VAE "
        "checkpoint (vae_checkpoint.pt in the artifact dir; the demo has none); "
        "annotate-structure needs a GTF",
    ]
