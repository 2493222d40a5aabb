"""Overview figures: the modules x samples eigengene heatmap and the high-vs-low dumbbell."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from ..errors import InputError
from ._data import feature_label
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
)


def eigengene_sample_order(eigengenes: pd.DataFrame) -> np.ndarray:
    """Sample positions ordered by the NaN-skipping mean eigengene across modules (stable;
    samples whose every module is NaN go last)."""
    values = eigengenes.to_numpy(dtype=np.float64)
    finite = np.isfinite(values)
    counts = finite.sum(axis=1)
    sums = np.where(finite, values, 0.0).sum(axis=1)
    mean = np.divide(sums, counts, out=np.full(len(values), np.inf), where=counts > 0)
    return np.argsort(mean, kind="stable")


@styled
def plot_eigengene_heatmap(eigengenes: pd.DataFrame, ax: Axes | None = None,
                           title: str | None = None) -> Axes:
    """Modules x samples image of the eigengenes (samples x modules frame in), samples ordered
    by the mean eigengene, diverging colours with symmetric limits ±max|value|. Returns Axes."""
    if eigengenes is None or eigengenes.shape[0] == 0 or eigengenes.shape[1] == 0:
        raise InputError("eigengene table is empty; nothing to plot")
    values = eigengenes.to_numpy(dtype=np.float64)
    if not np.isfinite(values).any():
        raise InputError("every eigengene value is NaN; nothing to plot")
    order = eigengene_sample_order(eigengenes)
    matrix = values[order].T
    if ax is None:
        fig = new_figure(DOUBLE_COLUMN_IN, 0.9 + 0.18 * matrix.shape[0])
        ax = fig.add_subplot()
    limit = float(np.nanmax(np.abs(matrix)))
    image = ax.imshow(matrix, aspect="auto", cmap=diverging_cmap(), norm=diverging_norm(limit))
    ax.set_yticks(np.arange(matrix.shape[0]), [str(c) for c in eigengenes.columns])
    ax.set_xticks([])
    ax.set_xlabel(f"{matrix.shape[1]} samples ordered by mean eigengene (low \u2192 high)")
    for side in ("top", "right"):
        ax.spines[side].set_visible(True)
    cbar = ax.figure.colorbar(image, ax=ax, fraction=0.04, pad=0.01)
    cbar.set_label("eigengene")
    ax.set_title(title if title is not None else "Module eigengenes", loc="left")
    return ax


def dumbbell_rows(high_vs_low_table: pd.DataFrame, feature_ids: Sequence[str] | None = None,
                  top_n: int = 10) -> pd.DataFrame:
    """Rows of the dumbbell: the given ``feature_ids`` (in that order, those present), else
    the ``top_n`` features with the largest finite |tstat| (ties by feature_id)."""
    table = high_vs_low_table
    if table is None or len(table) == 0:
        raise InputError("high_vs_low table is empty; nothing to plot")
    table = table.assign(feature_id=table["feature_id"].astype(str))
    if feature_ids is not None:
        wanted = [str(f) for f in feature_ids]
        position = {f: i for i, f in enumerate(wanted)}
        rows = table[table["feature_id"].isin(position)].drop_duplicates("feature_id")
        rows = rows.iloc[np.argsort([position[f] for f in rows["feature_id"]], kind="stable")]
    else:
        t = pd.to_numeric(table["tstat"], errors="coerce").abs()
        rows = table.assign(_t=t)[np.isfinite(t.to_numpy(dtype=np.float64))]
        rows = rows.sort_values(["_t", "feature_id"], ascending=[False, True],
                                kind="mergesort").drop(columns="_t").head(int(top_n))
    rows = rows[np.isfinite(rows["mean_high"].to_numpy(dtype=np.float64))
                & np.isfinite(rows["mean_low"].to_numpy(dtype=np.float64))]
    if rows.empty:
        raise InputError("high_vs_low table has no feature with finite group means; "
                         "nothing to plot")
    return rows.reset_index(drop=True)


@styled
def plot_high_vs_low(high_vs_low_table: pd.DataFrame, feature_ids: Sequence[str] | None = None,
                     top_n: int = 10, ax: Axes | None = None,
                     gene_names: Mapping[str, str] | None = None,
                     title: str | None = None) -> Axes:
    """Dumbbell of mean usage in the low vs high eigengene group per feature (largest |t|
    first); the connecting line is coloured by the sign of delta, gray when |delta| <= se.
    Returns the Axes."""
    rows = dumbbell_rows(high_vs_low_table, feature_ids, top_n)
    if ax is None:
        fig = new_figure(SINGLE_COLUMN_IN, 0.9 + 0.2 * len(rows))
        ax = fig.add_subplot()
    y = np.arange(len(rows))
    low = rows["mean_low"].to_numpy(dtype=np.float64)
    high = rows["mean_high"].to_numpy(dtype=np.float64)
    delta = high - low
    se = pd.to_numeric(rows["se"], errors="coerce").to_numpy(dtype=np.float64)
    for yi, lo, hi, d, s in zip(y, low, high, delta, se, strict=True):
        separated = np.isfinite(s) and abs(d) > s
        ax.plot([lo, hi], [yi, yi], color=sign_color(d) if separated else NEUTRAL_COLOR,
                linewidth=1.5, solid_capstyle="round", zorder=1)
    ax.scatter(low, y, s=14, color=NEGATIVE_COLOR, zorder=2, linewidths=0)
    ax.scatter(high, y, s=14, color=POSITIVE_COLOR, zorder=3, linewidths=0)
    ax.set_yticks(y, [feature_label(f, g, gene_names)
                      for f, g in zip(rows["feature_id"], rows["gene_id"], strict=True)])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel("mean usage")
    ax.legend(handles=[
        Line2D([], [], marker="o", linestyle="", color=NEGATIVE_COLOR, label="low eigengene"),
        Line2D([], [], marker="o", linestyle="", color=POSITIVE_COLOR, label="high eigengene"),
        Line2D([], [], color=NEUTRAL_COLOR, label="|\u0394| \u2264 se"),
    ], loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=2, handlelength=1.0,
              columnspacing=1.0)
    ax.set_title(title if title is not None else "High vs low module samples", loc="left")
    return ax
