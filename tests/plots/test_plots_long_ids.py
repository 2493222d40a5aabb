"""Every figure stays readable with real-length Ensembl ids (18 characters, versioned:
ENSG00000123456.12, ENST00000456328.11): no two texts overlap and every text lies inside
its figure, for each figure of a run and the summary panel (issue 23, friction 3)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _helpers.explain import explain_api
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from isograph_gpu import ExplainConfig
from isograph_gpu.plots import load_explain_dir
from isograph_gpu.plots._data import compact_labels, feature_type_map
from isograph_gpu.plots.overview import plot_eigengene_heatmap
from isograph_gpu.plots.render import _module_builders, eigengene_frame
from isograph_gpu.plots.style import freeze_layout
from isograph_gpu.synthetic import make_synthetic_dataset


def _ensembl_ids(data, rng) -> tuple[dict[str, str], dict[str, str]]:
    """Synthetic gene ids -> ENSG00000xxxxxx.NN, transcript ids -> ENST00000xxxxxx.NN
    (distinct random numbers, two-digit versions: 18 characters each)."""
    genes = sorted(data.feature_meta["gene_id"].unique())
    transcripts = sorted(t for t in data.feature_meta["feature_id"] if ".T" in t)
    numbers = rng.choice(900_000, size=len(genes) + len(transcripts), replace=False) + 100_000
    gene_ids = {g: f"ENSG00000{n}.{rng.integers(10, 20)}" for g, n in zip(genes, numbers[: len(genes)], strict=True)}
    tx_ids = {t: f"ENST00000{n}.{rng.integers(10, 20)}"
              for t, n in zip(transcripts, numbers[len(genes):], strict=True)}
    return gene_ids, tx_ids


def write_ensembl_dataset(root: Path, seed: int = 3) -> dict[str, Path]:
    """A synthetic dataset whose every id is a real-length versioned Ensembl id."""
    data = make_synthetic_dataset(n_samples=80, n_genes=60, n_modules=2, genes_per_module=8,
                                  seed=seed)
    gene_ids, tx_ids = _ensembl_ids(data, np.random.default_rng(seed))

    def feature(f: str) -> str:
        if "::" in f:
            gene, channel = f.split("::")
            return f"{gene_ids[gene]}::{channel}"
        return tx_ids.get(f, f"{gene_ids.get(f.split('.')[0], f)}.{f.split('.')[-1]}")

    paths = data.write(root)
    table = pd.read_parquet(paths["feature_table"])
    table.rename(columns={c: feature(c) for c in table.columns if c != "sample_id"}).to_parquet(
        paths["feature_table"], index=False)
    meta = pd.read_parquet(paths["feature_meta"])
    meta.assign(feature_id=meta["feature_id"].map(feature), gene_id=meta["gene_id"].map(gene_ids),
                transcript_id=meta["transcript_id"].map(lambda t: tx_ids.get(t, t)),
                ).drop(columns="gene_name").to_parquet(paths["feature_meta"], index=False)
    scores = pd.read_parquet(paths["feature_scores"])
    scores.assign(feature_id=scores["feature_id"].map(feature),
                  gene_id=scores["gene_id"].map(gene_ids)).to_parquet(
        paths["feature_scores"], index=False)
    modules = pd.read_parquet(paths["modules"])
    modules.assign(gene_id=modules["gene_id"].map(gene_ids)).to_parquet(paths["modules"],
                                                                         index=False)
    return paths


def drawn_texts(fig: Figure) -> list:
    """The texts a drawing of ``fig`` shows: tick labels of the ticks inside the view,
    axis labels, titles, texts, legend entries of every Axes, and the figure's texts."""
    texts = []
    for ax in fig.findobj(Axes):
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis._update_ticks():  # the ticks drawn: inside the view limits
                texts += [tick.label1, tick.label2]
            texts.append(axis.label)
        texts += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        if ax.get_legend() is not None:
            texts += ax.get_legend().get_texts()
    for container in [fig, *fig.subfigs, *(s for f in fig.subfigs for s in f.subfigs)]:
        texts += list(container.texts)
        texts += [t for legend in container.legends for t in legend.get_texts()]
    unique = {id(t): t for t in texts if t.get_visible() and str(t.get_text()).strip()}
    return list(unique.values())


def text_overlaps(fig: Figure) -> list[str]:
    """Pairs of drawn texts whose boxes overlap (by more than half a point each way), and
    texts reaching outside the figure, as drawn at 100 dpi."""
    freeze_layout(fig, 100)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in drawn_texts(fig)]
    frame = fig.bbox
    slack = 0.5 * 100 / 72  # half a point, in pixels at 100 dpi
    problems = [f"outside the figure: {text!r}" for text, box in boxes
                if box.x0 < frame.x0 - slack or box.x1 > frame.x1 + slack
                or box.y0 < frame.y0 - slack or box.y1 > frame.y1 + slack]
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        overlap_x = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
        overlap_y = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
        if overlap_x > slack and overlap_y > slack:
            problems.append(f"{a!r} overlaps {b!r}")
    return problems


@pytest.fixture(scope="module")
def ensembl_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensembl")
    paths = write_ensembl_dataset(root / "inputs")
    out = root / "explain"
    explain_api({"artifact": paths["artifact_dir"], "feature_table": paths["feature_table"],
                 "feature_meta": paths["feature_meta"]},
                config=ExplainConfig(device="cpu", report=False), output_dir=out)
    results = load_explain_dir(out)
    usage = pd.read_parquet(paths["feature_table"]).set_index("sample_id")
    meta = pd.read_parquet(paths["feature_meta"])
    return results, usage, meta


def test_the_dataset_has_real_length_ids(ensembl_run):
    results, _, _ = ensembl_run
    polarity = next(iter(results.values())).transcript_polarity_table
    assert {len(f) for f in polarity["feature_id"]} == {18}
    assert {len(g) for g in polarity["gene_id"]} == {18}


FIGURES = ("driver_bar", "isoform_gradient", "driver_heatmap", "high_vs_low",
           "transcript_polarity", "switch_pair", "summary_panel")


@pytest.mark.parametrize("name", FIGURES)
def test_no_text_overlaps_with_ensembl_ids(ensembl_run, name):
    results, usage, meta = ensembl_run
    for result in results.values():
        figure = _module_builders(result, usage, {}, 10, feature_type_map(meta))[name]()
        fig = figure.figure if isinstance(figure, Axes) else figure
        assert text_overlaps(fig) == [], f"{result.module_id} {name}"


def test_eigengene_heatmap_has_no_overlaps(ensembl_run):
    results, _, _ = ensembl_run
    assert text_overlaps(plot_eigengene_heatmap(eigengene_frame(results)).figure) == []


def test_compact_labels_drop_only_the_shared_prefix():
    labels, prefix = compact_labels(["ENST00000456328.12", "ENST00000450305.2"])
    assert prefix == "ENST0000045"
    assert labels == ["\u2026" + "6328.12", "\u2026" + "0305.2"]
    assert [prefix + t[1:] for t in labels] == ["ENST00000456328.12", "ENST00000450305.2"]
    assert compact_labels(["G00026.T1", "G00026.T2"]) == (["G00026.T1", "G00026.T2"], "")
    # nothing shared worth removing: unchanged
    assert compact_labels(["ENST00000456328.12", "XYZ"]) == (["ENST00000456328.12", "XYZ"], "")
