"""Driver-gene figures: the |r| barplot with Fisher-z CIs and the positive/negative driver
usage heatmap."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from matplotlib.patches import Patch

from ..errors import InputError
from ._data import (
    abs_r_interval,
    aligned_usage,
    fisher_z_ci,
    gene_label,
    top_drivers,
    transcript_label,
    transcript_ranks,
    zscore_rows,
)
from .style import (
    DOUBLE_COLUMN_IN,
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    SINGLE_COLUMN_IN,
    diverging_cmap,
    diverging_norm,
    new_figure,
    sign_color,
    styled,
    title_axes,
)


@styled
def plot_driver_bar(driver_table: pd.DataFrame, top_n: int = 10, ax: Axes | None = None,
                    gene_names: Mapping[str, str] | None = None,
                    title: str | None = None) -> Axes:
    """Top ``top_n`` driver genes by |r|: bar = |r|, whisker = Fisher-z 95 % CI of |r|,
    vermillion for r > 0, blue for r < 0; x in [0, 1]; inside each bar the channel that
    made the gene a driver (its ``feature_type``: switch, abundance, ...). Returns the
    Axes drawn on."""
    rows = top_drivers(driver_table, top_n)
    if rows.empty:
        raise InputError("gene driver table is empty (no gene with a finite r); nothing to plot")
    standalone = ax is None
    if ax is None:
        fig = new_figure(SINGLE_COLUMN_IN, 0.9 + 0.2 * len(rows))
        ax = fig.add_subplot()
    r = rows["r"].to_numpy(dtype=np.float64)
    n = rows["n_samples"].to_numpy(dtype=np.float64) if "n_samples" in rows else np.full(
        len(rows), np.nan)
    lo, hi = fisher_z_ci(r, n)
    abs_lo, abs_hi = abs_r_interval(r, lo, hi)
    abs_r = np.abs(r)
    y = np.arange(len(rows))
    ax.barh(y, abs_r, height=0.7, color=[sign_color(v) for v in r], edgecolor="none",
            xerr=np.vstack([abs_r - abs_lo, abs_hi - abs_r]),
            error_kw={"elinewidth": 0.7, "capsize": 1.5, "capthick": 0.7, "ecolor": "black"})
    if "feature_type" in rows.columns:  # the channel that made each gene a driver
        for yi, channel in zip(y, rows["feature_type"], strict=True):
            if isinstance(channel, str) and channel:
                ax.text(0.012, yi, channel, ha="left", va="center", fontsize=6,
                        color="white", fontweight="bold")
    ax.set_yticks(y, [gene_label(g, gene_names) for g in rows["gene_id"]])
    ax.set_ylim(len(rows) - 0.5, -0.5)  # strongest driver on top
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("|r| with module eigengene (95% CI)")
    ax.legend(handles=[Patch(color=POSITIVE_COLOR, label="r > 0"),
                       Patch(color=NEGATIVE_COLOR, label="r < 0")],
              loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, handlelength=1.0,
              borderaxespad=0.1)
    title_axes(ax, title if title is not None else "Top driver genes", standalone)
    return ax


def driver_heatmap_rows(driver_table: pd.DataFrame, polarity_table: pd.DataFrame,
                        usage_columns: set[str], top_n: int) -> pd.DataFrame:
    """Rows of the driver heatmap: the transcripts (polarity order, r descending within a gene)
    of the top ceil(top_n/2) positive and top ceil(top_n/2) negative driver genes that have
    usage columns. Columns: gene_id, feature_id, r, gene_r, block ("positive"/"negative")."""
    per_side = max(1, -(-int(top_n) // 2))
    drivers = top_drivers(driver_table, len(driver_table) if driver_table is not None else 0)
    if polarity_table is None or polarity_table.empty or drivers.empty:
        return pd.DataFrame(columns=["gene_id", "feature_id", "r", "gene_r", "block"])
    pol = polarity_table.assign(gene_id=polarity_table["gene_id"].astype(str),
                                feature_id=polarity_table["feature_id"].astype(str))
    pol = pol[pol["feature_id"].isin(usage_columns)].reset_index(drop=True)
    ranks = transcript_ranks(pol["gene_id"].to_numpy(dtype=object),
                             pol["feature_id"].to_numpy(dtype=object),
                             pd.to_numeric(pol["r"], errors="coerce").to_numpy(np.float64))
    driver_genes = drivers["gene_id"].astype(str).tolist()
    driver_r = drivers["r"].to_numpy(dtype=np.float64)
    out = []
    for block, sign in (("positive", 1.0), ("negative", -1.0)):
        chosen = [(g, r) for g, r in zip(driver_genes, driver_r, strict=True)
                  if r * sign > 0 and g in ranks][:per_side]
        out.extend(pol.iloc[ranks[g]].assign(gene_r=float(r), block=block) for g, r in chosen)
    if not out:
        return pd.DataFrame(columns=["gene_id", "feature_id", "r", "gene_r", "block"])
    return pd.concat(out, ignore_index=True)


def draw_driver_heatmap(container: Figure | SubFigure, driver_table: pd.DataFrame,
                        polarity_table: pd.DataFrame, eigengene: np.ndarray,
                        sample_ids: list[str], feature_usage: pd.DataFrame, top_n: int = 10,
                        gene_names: Mapping[str, str] | None = None) -> list[Axes]:
    """Draw the driver heatmap into ``container``; returns [eigengene strip, heatmap, colorbar]."""
    eig = np.asarray(eigengene, dtype=np.float64)
    usage_cols = set(map(str, feature_usage.columns))
    rows = driver_heatmap_rows(driver_table, polarity_table, usage_cols, top_n)
    if rows.empty:
        raise InputError("no driver gene has transcripts in the feature usage table; "
                         "driver heatmap is empty")
    finite = np.flatnonzero(np.isfinite(eig))
    if finite.size == 0:
        raise InputError("module eigengene is all NaN; driver heatmap is empty")
    order = finite[np.argsort(eig[finite], kind="stable")]
    ordered_ids = [str(sample_ids[i]) for i in order]
    values = aligned_usage(feature_usage, ordered_ids, rows["feature_id"].tolist()).T
    keep = np.isfinite(values).any(axis=1)
    if not keep.any():
        raise InputError("every driver transcript's usage is NaN; driver heatmap is empty")
    rows, z = rows[keep].reset_index(drop=True), zscore_rows(values[keep])

    grid = container.add_gridspec(2, 2, height_ratios=[1, 12], width_ratios=[40, 1],
                                  hspace=0.02, wspace=0.02)
    ax_strip = container.add_subplot(grid[0, 0])
    ax_map = container.add_subplot(grid[1, 0])  # same columns, so the same x limits
    ax_cbar = container.add_subplot(grid[1, 1])
    strip = eig[order][None, :]
    ax_strip.imshow(strip, aspect="auto", cmap=diverging_cmap(),
                    norm=diverging_norm(np.nanmax(np.abs(strip))))
    ax_strip.set_yticks([0], ["eigengene"])
    ax_strip.tick_params(axis="x", bottom=False, labelbottom=False)
    for side in ("top", "right", "bottom", "left"):
        ax_strip.spines[side].set_visible(False)

    image = ax_map.imshow(z, aspect="auto", cmap=diverging_cmap(), norm=diverging_norm(2.5))
    labels = [f"{gene_label(g, gene_names)} · {transcript_label(row)}"
              for g, (_, row) in zip(rows["gene_id"], rows.iterrows(), strict=True)]
    size = 6.0 if len(rows) <= 30 else max(3.0, 6.0 * 30 / len(rows))
    ax_map.set_yticks(np.arange(len(rows)), labels, fontsize=size)
    ax_map.set_xticks([])
    ax_map.set_xlabel(f"{len(order)} samples ordered by module eigengene (low \u2192 high)")
    genes = rows["gene_id"].to_numpy()
    for boundary in np.flatnonzero(genes[1:] != genes[:-1]) + 0.5:
        ax_map.axhline(boundary, color="white", linewidth=0.6)
    blocks = rows["block"].to_numpy()
    split = np.flatnonzero(blocks[1:] != blocks[:-1])
    for boundary in split + 0.5:
        ax_map.axhline(boundary, color="black", linewidth=1.0)
    for block, color in (("positive", POSITIVE_COLOR), ("negative", NEGATIVE_COLOR)):
        idx = np.flatnonzero(blocks == block)
        if idx.size:
            ax_map.annotate(f"{block} drivers", xy=(1.005, 1 - (idx.mean() + 0.5) / len(rows)),
                            xycoords="axes fraction", rotation=-90, va="center", ha="left",
                            color=color, fontsize=6)
    for side in ("top", "right"):
        ax_map.spines[side].set_visible(True)
    cbar = container.colorbar(image, cax=ax_cbar)
    cbar.set_label("usage z-score (clipped \u00b12.5)")
    cbar.ax.yaxis.set_label_position("right")
    return [ax_strip, ax_map, ax_cbar]


@styled
def plot_driver_heatmap(driver_table: pd.DataFrame, polarity_table: pd.DataFrame,
                        eigengene: np.ndarray, sample_ids: list[str],
                        feature_usage: pd.DataFrame, top_n: int = 10,
                        gene_names: Mapping[str, str] | None = None,
                        title: str | None = None) -> Figure:
    """Per-transcript z-scored usage (rows: transcripts of the top positive then top negative
    driver genes; columns: samples with a finite eigengene, ordered by it). Returns the Figure."""
    n_rows = len(driver_heatmap_rows(driver_table, polarity_table,
                                     set(map(str, feature_usage.columns)), top_n))
    fig = new_figure(DOUBLE_COLUMN_IN, min(9.0, 1.3 + 0.12 * max(n_rows, 4)))
    draw_driver_heatmap(fig, driver_table, polarity_table, eigengene, sample_ids,
                        feature_usage, top_n=top_n, gene_names=gene_names)
    fig.suptitle(title if title is not None else "Positive and negative driver isoforms",
                 fontsize=8, fontweight="bold", x=0.0, ha="left")
    return fig
