"""``isograph-gpu demo``: its files get the user's umask like every other file, and it says
how to draw the figures and what needs inputs it does not have."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from isograph_gpu.cli import main

SMALL = ["--samples", "30", "--genes", "40", "--modules", "2", "--device", "cpu", "--quiet"]


def _run_demo(out: Path, *extra: str, umask: int = 0o022):
    old = os.umask(umask)
    try:
        return CliRunner().invoke(main, ["demo", "--output-dir", str(out), *SMALL, *extra])
    finally:
        os.umask(old)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_demo_inputs_follow_the_umask(tmp_path, umask):
    """Issue 13.2: the demo wrote its inputs with mkstemp's private 0600."""
    result = _run_demo(tmp_path / "d", umask=umask)
    assert result.exit_code == 0, result.output
    inputs = sorted((tmp_path / "d" / "inputs").rglob("*.parquet"))
    assert len(inputs) == 4
    for path in inputs:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


def test_demo_prints_the_plot_command_that_then_draws_the_figures(tmp_path):
    out = tmp_path / "d"
    result = _run_demo(out)
    assert result.exit_code == 0, result.output
    explain_dir = out / "explain"
    command = f"isograph-gpu plot --explain-dir {explain_dir}"
    assert command in result.output
    assert "vae_checkpoint.pt" in result.output  # says what the demo cannot show
    # the printed command works as printed (inputs come from the manifest)
    args = command.split()[1:]
    replot = CliRunner().invoke(main, [*args, "--dpi", "30", "--jobs", "1", "--quiet"])
    assert replot.exit_code == 0, replot.output
    assert (explain_dir / "M000" / "isoform_gradient.png").is_file()


def test_demo_with_plot_says_where_the_figures_are(tmp_path):
    out = tmp_path / "d"
    result = _run_demo(out, "--plot")
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.output.splitlines() if ln.startswith("figures: "))
    count = int(line.split()[1])
    assert count == len(list((out / "explain").rglob("*.png"))) > 0


def test_demo_progress_says_module_genes_and_loads_inputs_once(tmp_path):
    """Issue 23.6: the demo printed 'load inputs' twice (the second was the whole-table
    load) and counted 'feature_scores rows' where the fit has more (only the modules'
    genes are read): the line names the module genes."""
    out = tmp_path / "d"
    args = ["demo", "--output-dir", str(out), *[a for a in SMALL if a != "--quiet"]]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert len([ln for ln in lines if "load inputs:" in ln]) == 1
    import pandas as pd

    modules = pd.read_parquet(out / "inputs" / "artifact" / "modules.parquet")
    scores = pd.read_parquet(out / "inputs" / "artifact" / "feature_scores.parquet")
    genes = set(modules["gene_id"]) & set(scores["gene_id"])
    rows = int(scores["gene_id"].isin(genes).sum())
    assert f"{len(genes)} module genes ({rows} feature_scores rows)" in result.stderr
    assert f"report:  {out / 'explain' / 'report.html'}" in result.stdout
