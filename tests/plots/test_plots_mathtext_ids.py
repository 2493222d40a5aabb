"""Ids are text: gene names, gene/feature/transcript ids and module ids holding matplotlib
mathtext (``$\\undefinedcommand{x}$``, ``M$^{bad``) are drawn literally by every figure,
not parsed (issue 21.9; the parse used to fail the whole --plot run)."""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd
import pytest
from _helpers.reference_run import API_RUN, FIXTURE, TABLES

from isograph_gpu.plots import (
    plot_driver_bar,
    plot_driver_heatmap,
    plot_eigengene_heatmap,
    plot_high_vs_low,
    plot_isoform_gradient,
    plot_summary_panel,
    plot_switch_pair,
    plot_transcript_polarity,
    render_explain_figures,
)
from isograph_gpu.plots.style import figure_bytes
from isograph_gpu.result import ExplainResult

#: an unclosed superscript between two dollars (one dollar alone is not mathtext)
MODULE = "M$^{bad$"
UNDEFINED = r"$\undefinedcommand{x}$"


def hostile(value: str) -> str:
    """An id holding an undefined mathtext command."""
    return f"{UNDEFINED}{value}"


@pytest.fixture(scope="module")
def hostile_run() -> tuple[ExplainResult, pd.DataFrame, dict[str, str], pd.DataFrame]:
    """Module M000 of the fixture with every gene, feature and transcript id, every gene
    name and the module id made mathtext."""
    tables = {n: pd.read_parquet(API_RUN / "M000" / f"{n}.parquet") for n in TABLES}
    for table in tables.values():
        for column in ("gene_id", "feature_id"):
            if column in table:
                table[column] = table[column].map(hostile)
    eig = pd.read_parquet(API_RUN / "eigengenes.parquet")
    result = ExplainResult(MODULE, tables["gene_driver_table"],
                           tables["transcript_polarity_table"], tables["high_vs_low_table"],
                           eig["M000"].to_numpy(np.float64),
                           eig["sample_id"].astype(str).tolist(), 20)
    usage = pd.read_parquet(FIXTURE / "inputs" / "feature_table.parquet").set_index("sample_id")
    usage.columns = [hostile(c) for c in usage.columns]
    meta = pd.read_parquet(FIXTURE / "inputs" / "feature_meta.parquet")
    names = {hostile(g): hostile(n) for g, n in zip(meta["gene_id"], meta["gene_name"],
                                                      strict=True)}
    meta = meta.assign(gene_id=meta["gene_id"].map(hostile),
                       feature_id=meta["feature_id"].map(hostile),
                       gene_name=meta["gene_name"].map(hostile))
    return result, usage, names, meta


def svg_texts(fig) -> str:
    """Every text of ``fig`` as the svg draws it (svg.fonttype none keeps text as text)."""
    svg = figure_bytes(fig, "svg", dpi=40).decode()
    return " ".join(re.findall(r"<text[^>]*>(.*?)</text>", svg, flags=re.S))


def figures(run):
    result, usage, names, _ = run
    drivers, polarity = result.gene_driver_table, result.transcript_polarity_table
    eig = pd.DataFrame({MODULE: result.eigengene, hostile("M1"): -result.eigengene},
                       index=result.sample_ids)
    return {
        "driver_bar": lambda: plot_driver_bar(drivers, gene_names=names, title=MODULE),
        "driver_heatmap": lambda: plot_driver_heatmap(
            drivers, polarity, result.eigengene, result.sample_ids, usage, gene_names=names,
            title=MODULE),
        "eigengene_heatmap": lambda: plot_eigengene_heatmap(eig, title=MODULE),
        "high_vs_low": lambda: plot_high_vs_low(result.high_vs_low_table, gene_names=names,
                                                title=MODULE),
        "isoform_gradient": lambda: plot_isoform_gradient(
            drivers, polarity, result.eigengene, result.sample_ids, usage, gene_names=names,
            title=MODULE),
        "summary_panel": lambda: plot_summary_panel(result, usage, gene_names=names),
        "switch_pair": lambda: plot_switch_pair(polarity, gene_names=names, title=MODULE),
        "transcript_polarity": lambda: plot_transcript_polarity(
            polarity, drivers, gene_names=names, title=MODULE),
    }


@pytest.mark.parametrize("name", ["driver_bar", "driver_heatmap", "eigengene_heatmap",
                                  "high_vs_low", "isoform_gradient", "summary_panel",
                                  "switch_pair", "transcript_polarity"])
def test_each_figure_draws_mathtext_ids_literally(hostile_run, name):
    drawn = figures(hostile_run)[name]()
    fig = getattr(drawn, "figure", drawn)
    texts = svg_texts(fig)
    assert escape(MODULE) in texts or name == "summary_panel"
    assert escape(UNDEFINED) in texts  # some gene name, gene id or feature id, unparsed
    assert "undefinedcommand" not in texts.replace(escape(UNDEFINED), "")
    fig.canvas.draw()  # drawn outside the package's style as well (a notebook's savefig)


def test_render_writes_every_figure_of_a_mathtext_module(hostile_run, tmp_path):
    result, usage, _, meta = hostile_run
    files = render_explain_figures({MODULE: result}, tmp_path, ("png", "svg"), usage, meta,
                                   dpi=40, jobs=1)
    drawn = {f.split("/")[-1] for f in files}
    for name in ("driver_bar", "driver_heatmap", "high_vs_low", "isoform_gradient",
                 "summary_panel", "switch_pair", "transcript_polarity", "eigengene_heatmap"):
        assert f"{name}.png" in drawn and f"{name}.svg" in drawn, name
    panel = (tmp_path / MODULE / "summary_panel.svg").read_text()
    assert escape(UNDEFINED) in panel
