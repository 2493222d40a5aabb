"""Transcript-level figures: polarity heatmap, switch pairs and isoform usage gradients."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure

from ..errors import InputError
from ._data import (
    aligned_usage,
    compact_labels,
    gene_label,
    moving_average_trend,
    top_drivers,
    transcript_label,
    transcript_ranks,
    usage_frame,
)
from .style import (
    DOUBLE_COLUMN_IN,
    NEGATIVE_COLOR,
    NEUTRAL_COLOR,
    POSITIVE_COLOR,
    SINGLE_COLUMN_IN,
    diverging_cmap,
    diverging_norm,
    new_figure,
    sign_color,
    styled,
    title_axes,
)

#: line colours of a gene's transcripts, highest r first (vermillion) ... lowest r (blue)
_MIDDLE_COLORS = ("#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#000000", "#F0E442")


def _polarity(polarity_table: pd.DataFrame | None) -> pd.DataFrame:
    if polarity_table is None or len(polarity_table) == 0:
        raise InputError("transcript polarity table is empty (module has no transcripts); "
                         "nothing to plot")
    return polarity_table.assign(
        gene_id=polarity_table["gene_id"].astype(str),
        feature_id=polarity_table["feature_id"].astype(str),
        r=pd.to_numeric(polarity_table["r"], errors="coerce").astype(np.float64),
    )


def _ranked(pol: pd.DataFrame) -> dict[str, list[int]]:
    """Row positions of each gene's transcripts in ``pol`` (a :func:`_polarity` frame), r
    descending (NaN last), ties by feature_id."""
    return transcript_ranks(pol["gene_id"].to_numpy(dtype=object),
                            pol["feature_id"].to_numpy(dtype=object),
                            pol["r"].to_numpy(dtype=np.float64))


def polarity_genes(polarity_table: pd.DataFrame, driver_table: pd.DataFrame | None,
                   top_n: int) -> list[str]:
    """Genes shown in transcript figures: top drivers (|r| order) that have transcripts; when
    no driver has any, genes by switch_strength descending. At most ``top_n``."""
    pol = _polarity(polarity_table)
    have = set(pol["gene_id"])
    drivers = top_drivers(driver_table, len(driver_table)) if driver_table is not None else None
    genes = [] if drivers is None else [g for g in drivers["gene_id"].astype(str) if g in have]
    if not genes:
        strength = pol.groupby("gene_id", sort=True)["switch_strength"].first()
        genes = list(strength.sort_values(ascending=False, kind="mergesort").index)
    return genes[: int(top_n)]


#: the polarity heatmap writes transcript ids and r in its cells up to this many columns/rows
_ANNOTATE_MAX_COLUMNS = 8
_ANNOTATE_MAX_GENES = 25


@styled
def plot_transcript_polarity(polarity_table: pd.DataFrame,
                             driver_table: pd.DataFrame | None = None, top_n: int = 10,
                             ax: Axes | None = None,
                             gene_names: Mapping[str, str] | None = None,
                             title: str | None = None) -> Axes:
    """Heatmap of transcript r: rows = top driver genes (≤ top_n), columns = each gene's
    transcripts ranked by r (highest left); each cell names its transcript and its r (up to
    8 columns and 25 genes; ids sharing a long prefix drop it, :func:`compact_labels`);
    gray where a gene has fewer transcripts or r is undefined, as the x label says (a
    legend above would take the title's room). Returns the Axes."""
    pol = _polarity(polarity_table)
    genes = polarity_genes(pol, driver_table, top_n)
    ranks = _ranked(pol)
    r = pol["r"].to_numpy(dtype=np.float64)
    width = max(len(ranks[g]) for g in genes)
    matrix = np.full((len(genes), width), np.nan)
    names = np.full((len(genes), width), "", dtype=object)
    for i, gene in enumerate(genes):
        matrix[i, : len(ranks[gene])] = r[ranks[gene]]
        names[i, : len(ranks[gene])] = [transcript_label(pol.iloc[k]) for k in ranks[gene]]
    annotate = width <= _ANNOTATE_MAX_COLUMNS and len(genes) <= _ANNOTATE_MAX_GENES
    filled = [(i, j) for (i, j), name in np.ndenumerate(names) if name]
    short, prefix = compact_labels([names[i, j] for i, j in filled])
    for (i, j), label in zip(filled, short, strict=True):
        names[i, j] = label
    standalone = ax is None
    if ax is None:
        fig = new_figure(DOUBLE_COLUMN_IN if annotate and width > 2 else SINGLE_COLUMN_IN,
                         1.1 + (0.26 if annotate else 0.2) * len(genes))
        ax = fig.add_subplot()
    cmap = diverging_cmap()
    image = ax.imshow(matrix, aspect="auto", cmap=cmap, norm=diverging_norm(1.0))
    if annotate:
        for (i, j), value in np.ndenumerate(matrix):
            if names[i, j]:
                text = f"{names[i, j]}\n{value:.2f}" if np.isfinite(value) else \
                    f"{names[i, j]}\nr NaN"
                ax.text(j, i, text, ha="center", va="center", fontsize=5.0, linespacing=1.1,
                        color="white" if np.isfinite(value) and abs(value) > 0.6 else "black")
        ax.set_xticks([])
        ax.set_xlabel("each gene's transcripts (id, r)\nby r: highest \u2192 lowest"
                      + (f"; \u2026 = {prefix}" if prefix else "")
                      + ("\ngray: no transcript or r NaN" if np.isnan(matrix).any() else ""))
    else:
        ax.set_xticks(np.arange(width), [str(j + 1) for j in range(width)])
        ax.set_xlabel("transcript rank by r within the gene (1 = highest)"
                      + ("\ngray: no transcript or r NaN" if np.isnan(matrix).any() else ""))
    ax.set_yticks(np.arange(len(genes)), [gene_label(g, gene_names) for g in genes])
    for side in ("top", "right"):
        ax.spines[side].set_visible(True)
    cbar = ax.figure.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
    cbar.set_label("transcript r")
    title_axes(ax, title if title is not None else "Transcript polarity", standalone)
    return ax


def switch_pairs(polarity_table: pd.DataFrame, top_n: int = 5) -> pd.DataFrame:
    """Per gene with ≥ 2 finite transcript r: the lowest- and highest-r transcripts, genes by
    switch_strength descending (ties gene_id). Columns: gene_id, switch_strength,
    low_feature, low_label, low_r, high_feature, high_label, high_r."""
    pol = _polarity(polarity_table)
    genes = pol["gene_id"].to_numpy(dtype=object)
    features = pol["feature_id"].to_numpy(dtype=object)
    r = pol["r"].to_numpy(dtype=np.float64)
    strength = pd.to_numeric(pol["switch_strength"], errors="coerce").to_numpy(np.float64)
    finite_rows: dict[str, list[int]] = {}
    for i in np.flatnonzero(np.isfinite(r)).tolist():
        finite_rows.setdefault(genes[i], []).append(i)
    rows = []
    for gene in sorted(finite_rows):
        positions = finite_rows[gene]
        if len(positions) < 2:
            continue
        # first lowest / first highest in table order (as idxmin / idxmax)
        low = min(positions, key=lambda i: r[i])
        high = max(positions, key=lambda i: (r[i], -i))
        rows.append({"gene_id": gene, "switch_strength": float(strength[positions[0]]),
                     "low_feature": features[low], "low_label": transcript_label(pol.iloc[low]),
                     "low_r": float(r[low]), "high_feature": features[high],
                     "high_label": transcript_label(pol.iloc[high]), "high_r": float(r[high])})
    if not rows:
        raise InputError("no gene has two transcripts with a finite r; no switch pair to plot")
    table = pd.DataFrame(rows).sort_values(["switch_strength", "gene_id"],
                                           ascending=[False, True], kind="mergesort")
    return table.head(int(top_n)).reset_index(drop=True)


@styled
def plot_switch_pair(polarity_table: pd.DataFrame, top_n: int = 5, ax: Axes | None = None,
                     gene_names: Mapping[str, str] | None = None,
                     title: str | None = None) -> Axes:
    """For the ``top_n`` genes with the largest switch_strength: one bar for the lowest-r and
    one for the highest-r transcript (coloured by sign), labelled with the transcript ids;
    x in [-1.5, 1.5]. Returns the Axes."""
    pairs = switch_pairs(polarity_table, top_n)
    standalone = ax is None
    if ax is None:
        fig = new_figure(SINGLE_COLUMN_IN, 0.9 + 0.3 * len(pairs))
        ax = fig.add_subplot()
    y = np.arange(len(pairs))
    short, prefix = compact_labels([*pairs["low_label"], *pairs["high_label"]])
    labels = {"low": short[: len(pairs)], "high": short[len(pairs):]}
    for col in ("low", "high"):
        values = pairs[f"{col}_r"].to_numpy()
        ax.barh(y, values, height=0.6, color=[sign_color(v) for v in values],
                edgecolor="none")
        for yi, value, label in zip(y, values, labels[col], strict=True):
            # a long bar holds its label (white, at its outer end), so labels of |r| near 1
            # stay inside the axes; a short bar's label sits just beyond its end
            inside = abs(value) >= 0.5
            outward = 1.0 if value >= 0 else -1.0
            ax.text(value + (-outward if inside else outward) * 0.03, yi, label, fontsize=5,
                    va="center", color="white" if inside else "black",
                    ha="left" if (value >= 0) != inside else "right")
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.set_xlim(-1.5, 1.5)
    ax.set_yticks(y, [f"{gene_label(g, gene_names)}\n\u0394r = {s:.2f}"
                      for g, s in zip(pairs["gene_id"], pairs["switch_strength"], strict=True)])
    ax.set_ylim(len(pairs) - 0.5, -0.5)
    ax.set_xlabel("transcript r with module eigengene"
                  + (f"\n\u2026 = {prefix}" if prefix else ""))
    title_axes(ax, title if title is not None else "Isoform switch pairs", standalone)
    return ax


def trend_lines(ax: Axes) -> list:
    """The trend lines of a gradient panel (the per-sample markers carry no legend label)."""
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


def gradient_genes(driver_table: pd.DataFrame, polarity_table: pd.DataFrame,
                   feature_usage: pd.DataFrame, top_n: int, eigengene: np.ndarray,
                   sample_ids: list[str]) -> list[str]:
    """Top driver genes (|r| order) with at least one transcript whose usage is finite at
    some sample with a finite eigengene; at most ``top_n``."""
    pol = _polarity(polarity_table)
    usage = usage_frame(feature_usage)
    pol = pol[pol["feature_id"].isin(set(usage.columns))]
    if pol.empty:
        return []
    eig = np.asarray(eigengene, dtype=np.float64)
    at = [str(s) for s, e in zip(sample_ids, eig, strict=True) if np.isfinite(e)]
    features = list(dict.fromkeys(pol["feature_id"]))
    seen = np.isfinite(aligned_usage(usage, at, features)).any(axis=0)
    drawable = {f for f, ok in zip(features, seen, strict=True) if ok}
    gene_of = pol["gene_id"].to_numpy(dtype=object)
    has_usage = {g for g, f in zip(gene_of, pol["feature_id"], strict=True) if f in drawable}
    genes = [g for g in polarity_genes(pol, driver_table, len(pol)) if g in has_usage]
    return genes[: int(top_n)]


def draw_isoform_gradient(container: Figure | SubFigure, driver_table: pd.DataFrame,
                          polarity_table: pd.DataFrame, eigengene: np.ndarray,
                          sample_ids: list[str], feature_usage: pd.DataFrame, top_n: int = 5,
                          gene_names: Mapping[str, str] | None = None,
                          max_columns: int = 4) -> list[Axes]:
    """One panel per gene (top ``top_n`` drivers with transcripts): usage vs eigengene scatter
    per transcript plus its moving-average trend. Returns the panel Axes."""
    pol = _polarity(polarity_table)
    eig = np.asarray(eigengene, dtype=np.float64)
    if not np.isfinite(eig).any():
        raise InputError("module eigengene is all NaN; isoform gradient is empty")
    genes = gradient_genes(driver_table, pol, feature_usage, top_n, eig, sample_ids)
    if not genes:
        raise InputError("no driver gene has finite transcript usage in the feature usage "
                         "table; isoform gradient is empty")
    usage = usage_frame(feature_usage)
    usage_cols = set(usage.columns)
    ranks = _ranked(pol)
    feature_of = pol["feature_id"].to_numpy(dtype=object)
    shown = {g: [i for i in ranks[g] if feature_of[i] in usage_cols] for g in genes}
    # one usage lookup for every panel (a column selection costs more than its data here)
    columns = list(dict.fromkeys(feature_of[i] for g in genes for i in shown[g]))
    all_values = aligned_usage(usage, list(sample_ids), columns)
    column_of = {f: j for j, f in enumerate(columns)}
    ncols = min(len(genes), max_columns)
    nrows = -(-len(genes) // ncols)
    grid = container.add_gridspec(nrows, ncols)
    axes: list[Axes] = []
    for k, gene in enumerate(genes):
        # panels get common limits below instead of sharex/sharey: shared axes make every
        # layout and draw pass measure the tick labels of all siblings for each panel
        ax = container.add_subplot(grid[k // ncols, k % ncols])
        tx = pol.iloc[shown[gene]]
        values = all_values[:, [column_of[f] for f in tx["feature_id"]]]
        for j, (_, row) in enumerate(tx.iterrows()):
            if j == 0:
                color = POSITIVE_COLOR
            elif j == len(tx) - 1:
                color = NEGATIVE_COLOR
            else:
                color = _MIDDLE_COLORS[(j - 1) % len(_MIDDLE_COLORS)]
            y = values[:, j]
            ok = np.isfinite(eig) & np.isfinite(y)
            # markers through Line2D (Agg stamps one cached marker) instead of a scatter
            # PathCollection: same picture, a fraction of the draw time at 1,000+ samples
            ax.plot(eig[ok], y[ok], linestyle="none", marker="o", markersize=1.2,
                    markeredgewidth=0, color=color, alpha=0.35, rasterized=True,
                    label="_nolegend_")
            xs, trend = moving_average_trend(eig, y)
            r = row["r"]
            label = f"{transcript_label(row)} (r={r:.2f})" if np.isfinite(r) \
                else transcript_label(row)
            ax.plot(xs, trend, color=color if np.isfinite(r) else NEUTRAL_COLOR,
                    linewidth=1.2, label=label)
        ax.set_title(gene_label(gene, gene_names), loc="left", fontsize=7)
        if k + ncols >= len(genes):  # bottom panel of its column
            ax.set_xlabel("module eigengene")
        else:
            ax.tick_params(labelbottom=False)
        if k % ncols == 0:
            ax.set_ylabel("transcript usage")
        else:
            ax.tick_params(labelleft=False)
        axes.append(ax)
    common_limits(axes)
    for ax in axes:
        _legend_above(ax)
    return axes


def _legend_above(ax: Axes, fontsize: float = 6.0) -> None:
    """The panel's transcript legend between its title and the plot area, so no data is
    hidden (the switch completes in the top corners, which any inside corner covers)."""
    lines = trend_lines(ax)
    longest = max((len(line.get_label()) for line in lines), default=0)
    # two columns only for short labels: at a readable size two long ones are wider than
    # a gradient panel
    ncols = 2 if len(lines) > 1 and longest <= 12 else 1
    rows = -(-len(lines) // ncols)
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=ncols, fontsize=fontsize,
              handlelength=1.0, borderaxespad=0.1, borderpad=0.2, labelspacing=0.4,
              columnspacing=0.8, frameon=False)
    # lift the gene name above the legend box: rows of ~1.2 font sizes plus spacing, border
    ax.set_title(ax.get_title(loc="left"), loc="left", fontsize=7,
                 pad=3.0 + fontsize * (0.6 + 1.8 * rows))


def common_limits(axes: list[Axes]) -> None:
    """Give every panel the limits that sharing both axes would: the union of the panels'
    data with the default margins (autoscaled on the first panel, then copied)."""
    first = axes[0]
    if len(axes) > 1:
        first.update_datalim(np.vstack([ax.dataLim.get_points() for ax in axes[1:]]))
    first.autoscale_view()
    xlim, ylim = first.get_xlim(), first.get_ylim()
    for ax in axes[1:]:
        ax.set_xlim(xlim)
        ax.set_ylim(ylim)


@styled
def plot_isoform_gradient(driver_table: pd.DataFrame, polarity_table: pd.DataFrame,
                          eigengene: np.ndarray, sample_ids: list[str],
                          feature_usage: pd.DataFrame, top_n: int = 5,
                          gene_names: Mapping[str, str] | None = None,
                          title: str | None = None) -> Figure:
    """Isoform usage gradients of the top ``top_n`` driver genes (one panel per gene).
    Returns the Figure."""
    n_genes = len(gradient_genes(driver_table, polarity_table, feature_usage, top_n,
                                 eigengene, sample_ids))
    ncols = max(1, min(n_genes, 4))
    nrows = max(1, -(-n_genes // ncols))
    width = DOUBLE_COLUMN_IN if ncols > 1 else SINGLE_COLUMN_IN
    fig = new_figure(width, 0.3 + 1.9 * nrows)
    draw_isoform_gradient(fig, driver_table, polarity_table, eigengene, sample_ids,
                          feature_usage, top_n=top_n, gene_names=gene_names)
    fig.suptitle(title if title is not None else "Transcript usage along the module eigengene",
                 fontsize=8, fontweight="bold", x=0.0, ha="left")
    return fig
