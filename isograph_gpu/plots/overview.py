"""Overview figures: the modules x samples eigengene heatmap and the high-vs-low dumbbell."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.transforms import offset_copy

from ..errors import InputError
from ._data import FEATURE_TYPE_NAMES, feature_label
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


def eigengene_sample_order(eigengenes: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Sample positions for the eigengene heatmap and how they were ordered (for the axis).

    One module: by its eigengene, low to high. Several: each module's eigengene is z-scored
    (NaN-skipping; NaN then counts as 0) and every sample joins the module on which its z is
    highest; groups follow the column order of the modules, and within a group samples go
    by that z, highest first. Each module's high samples so form one block along a
    diagonal, whatever the number of samples. Samples whose every eigengene is NaN go last,
    in table order; ties keep table order."""
    values = eigengenes.to_numpy(dtype=np.float64)
    finite = np.isfinite(values)
    has_any = finite.any(axis=1)
    rows = np.flatnonzero(has_any)
    last = np.flatnonzero(~has_any)
    if values.shape[1] == 1:
        order = rows[np.argsort(values[rows, 0], kind="stable")]
        return np.concatenate([order, last]), "ordered by eigengene (low \u2192 high)"
    counts = np.maximum(finite.sum(axis=0), 1)
    mean = np.where(finite, values, 0.0).sum(axis=0) / counts
    centred = np.where(finite, values - mean, 0.0)
    sd = np.sqrt((centred**2).sum(axis=0) / counts)
    z = (centred / np.where(sd > 0, sd, 1.0))[rows]
    top = np.argmax(z, axis=1)
    order = rows[np.lexsort((-z[np.arange(len(rows)), top], top))]  # stable: table order
    return np.concatenate([order, last]), "grouped by the module they score highest on"


@styled
def plot_eigengene_heatmap(eigengenes: pd.DataFrame, ax: Axes | None = None,
                           title: str | None = None) -> Axes:
    """Modules x samples image of the eigengenes (samples x modules frame in), samples in
    :func:`eigengene_sample_order` (clustered, so modules' structure shows), diverging
    colours with symmetric limits ±max|value|. Returns Axes."""
    if eigengenes is None or eigengenes.shape[0] == 0 or eigengenes.shape[1] == 0:
        raise InputError("eigengene table is empty; nothing to plot")
    values = eigengenes.to_numpy(dtype=np.float64)
    if not np.isfinite(values).any():
        raise InputError("every eigengene value is NaN; nothing to plot")
    order, how = eigengene_sample_order(eigengenes)
    matrix = values[order].T
    standalone = ax is None
    if ax is None:
        # at least tall enough for the colour bar's label beside few modules
        fig = new_figure(DOUBLE_COLUMN_IN, max(1.5, 0.9 + 0.18 * matrix.shape[0]))
        ax = fig.add_subplot()
    limit = float(np.nanmax(np.abs(matrix)))
    image = ax.imshow(matrix, aspect="auto", cmap=diverging_cmap(), norm=diverging_norm(limit))
    ax.set_yticks(np.arange(matrix.shape[0]), [str(c) for c in eigengenes.columns])
    ax.set_xticks([])
    ax.set_xlabel(f"{matrix.shape[1]} samples, {how}")
    for side in ("top", "right"):
        ax.spines[side].set_visible(True)
    cbar = ax.figure.colorbar(image, ax=ax, fraction=0.04, pad=0.01)
    cbar.set_label("eigengene")
    title_axes(ax, title if title is not None else "Module eigengenes", standalone)
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


def _type_name(feature_type: str | None) -> str:
    if feature_type is None:
        return "type unknown"
    return FEATURE_TYPE_NAMES.get(feature_type, feature_type)


def _label_by_feature_type(labels: list[str], types: list[str | None]
                           ) -> tuple[list[str], str]:
    """Axis label naming what the values are, and the row labels: when the rows mix feature
    types, those not of the most common type carry their type in brackets."""
    known = [t for t in types if t is not None]
    if not known:
        return labels, "group mean of the feature"
    counts = pd.Series(known).value_counts()
    main = sorted(counts[counts == counts.max()].index)[0]
    others = sorted({_type_name(t) for t in types if t != main})
    if not others:
        return labels, f"mean {_type_name(main)}"
    tagged = [label if t == main else f"{label} [{_type_name(t)}]"
              for label, t in zip(labels, types, strict=True)]
    return tagged, (f"mean {_type_name(main)}\n"
                    + ", ".join(f"[{o}]: mean {o}" for o in others))


@styled
def plot_high_vs_low(high_vs_low_table: pd.DataFrame, feature_ids: Sequence[str] | None = None,
                     top_n: int = 10, ax: Axes | None = None,
                     gene_names: Mapping[str, str] | None = None,
                     title: str | None = None,
                     feature_types: Mapping[str, str] | None = None) -> Axes:
    """Dumbbell of the feature's mean in the low vs high eigengene group (largest |t|
    first); the connecting line is coloured by the sign of delta, gray when |delta| <= se.
    The axis names the feature type (``feature_types``: feature_id -> feature_type, e.g.
    from feature_meta) when all rows share one; with several types each label carries its
    type. Returns the Axes."""
    rows = dumbbell_rows(high_vs_low_table, feature_ids, top_n)
    standalone = ax is None
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
    labels = [feature_label(f, g, gene_names) for f, g in
              zip(rows["feature_id"], rows["gene_id"], strict=True)]
    labels, axis_label = _label_by_feature_type(
        labels, [(feature_types or {}).get(str(f)) for f in rows["feature_id"]])
    ax.set_yticks(y, labels)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    # a two-line label (mixed types) ends at the axes' right edge: beside long row labels
    # the axes are narrow, and a centred label would run off the figure's right side
    ax.set_xlabel(axis_label, loc="right" if "\n" in axis_label else "center")
    ax.legend(handles=[
        Line2D([], [], marker="o", linestyle="", color=NEGATIVE_COLOR, label="low eigengene"),
        Line2D([], [], marker="o", linestyle="", color=POSITIVE_COLOR, label="high eigengene"),
        Line2D([], [], color=NEUTRAL_COLOR, label="|\u0394| \u2264 se"),
    ], loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=2, handlelength=1.0,
              columnspacing=1.0,
              # below the tick labels (~12 pt) and the x label (4 pt pad, ~8.4 pt a line)
              bbox_transform=offset_copy(ax.transAxes, ax.figure, units="points",
                                         y=-(18.0 + 8.4 * (axis_label.count("\n") + 1))))
    title_axes(ax, title if title is not None else "High vs low module samples", standalone)
    return ax


def q_stars(q: float) -> str:
    """``***`` q < 0.001, ``**`` q < 0.01, ``*`` q < 0.05, else empty (NaN too)."""
    if not np.isfinite(q):
        return ""
    return "***" if q < 0.001 else "**" if q < 0.01 else "*" if q < 0.05 else ""


@styled
def plot_module_trait_heatmap(module_traits: pd.DataFrame, ax: Axes | None = None,
                              title: str | None = None) -> Axes:
    """Modules (rows) x traits (columns) of ``module_traits`` (module_id, trait, r, qvalue;
    one row per pair): colour = r on a diverging scale over [-1, 1], stars = q (adjusted)
    below 0.05 / 0.01 / 0.001. A pair without an r (a categorical trait) is gray with its
    stars. Modules and traits in first-seen order. Returns Axes."""
    if module_traits is None or module_traits.empty:
        raise InputError("module trait table is empty; nothing to plot")
    modules = list(dict.fromkeys(module_traits["module_id"].astype(str)))
    traits = list(dict.fromkeys(module_traits["trait"].astype(str)))
    r = np.full((len(modules), len(traits)), np.nan)
    q = np.full_like(r, np.nan)
    row_of = {m: i for i, m in enumerate(modules)}
    col_of = {t: j for j, t in enumerate(traits)}
    for m, t, rv, qv in zip(module_traits["module_id"].astype(str),
                            module_traits["trait"].astype(str),
                            pd.to_numeric(module_traits["r"], errors="coerce"),
                            pd.to_numeric(module_traits["qvalue"], errors="coerce"),
                            strict=True):
        r[row_of[m], col_of[t]], q[row_of[m], col_of[t]] = rv, qv
    standalone = ax is None
    if ax is None:
        fig = new_figure(min(DOUBLE_COLUMN_IN, 1.6 + 0.45 * len(traits)),
                         1.0 + 0.22 * len(modules))
        ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(r), aspect="auto", cmap=diverging_cmap(),
                      norm=diverging_norm(1.0))
    for i in range(len(modules)):
        for j in range(len(traits)):
            stars = q_stars(q[i, j])
            if stars:
                ax.text(j, i, stars, ha="center", va="center", fontsize=6,
                        color="white" if np.isfinite(r[i, j]) and abs(r[i, j]) > 0.6
                        else "black")
    ax.set_yticks(np.arange(len(modules)), modules)
    ax.set_xticks(np.arange(len(traits)), traits, rotation=45, ha="right",
                  rotation_mode="anchor")
    cbar = ax.figure.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
    cbar.set_label("r with trait")
    ax.set_xlabel("* q < 0.05, ** q < 0.01, *** q < 0.001 (adjusted)")
    title_axes(ax, title if title is not None else "Module-trait association", standalone)
    return ax
