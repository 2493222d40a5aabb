"""The module x trait heatmap of module_trait_table: colour = signed -log10 q (sign of r;
categorical traits, which have no sign, positive), cell text = r (F for categorical)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from ..errors import InputError
from .style import SINGLE_COLUMN_IN, diverging_cmap, diverging_norm, new_figure, styled, title_axes

TRAIT_HEATMAP = "module_trait_heatmap"


def signed_log_q(table: pd.DataFrame) -> pd.DataFrame:
    """Modules x traits matrix of sign(r) x -log10 q (categorical: +), rows and columns in
    the table's order; a q of 0 is drawn at the largest finite value."""
    q = table["qvalue"].to_numpy(np.float64)
    with np.errstate(divide="ignore"):
        strength = -np.log10(q)
    finite = strength[np.isfinite(strength)]
    cap = finite.max() if finite.size else 1.0
    strength = np.where(np.isposinf(strength), cap, strength)
    sign = np.where(table["kind"].to_numpy() == "categorical", 1.0,
                    np.sign(table["r"].to_numpy(np.float64)))
    frame = table.assign(value=strength * sign)
    return frame.pivot(index="module_id", columns="trait", values="value").reindex(
        index=pd.unique(table["module_id"]), columns=pd.unique(table["trait"]))


@styled
def plot_module_trait_heatmap(table: pd.DataFrame, ax: Axes | None = None,
                              title: str = "Module-trait association") -> Axes:
    """Heatmap of :func:`signed_log_q` with r (categorical: F) printed in each cell."""
    if table.empty:
        raise InputError("module_trait_table has no rows")
    values = signed_log_q(table)
    text = table.assign(label=np.where(table["kind"] == "categorical",
                                       "F=" + table["statistic"].map("{:.1f}".format),
                                       table["r"].map("{:.2f}".format)))
    labels = text.pivot(index="module_id", columns="trait", values="label").reindex(
        index=values.index, columns=values.columns)
    standalone = ax is None
    if ax is None:
        width = min(7.2, SINGLE_COLUMN_IN + 0.45 * values.shape[1])
        ax = new_figure(width, 1.2 + 0.28 * values.shape[0]).add_subplot()
    limit = float(np.nanmax(np.abs(values.to_numpy()))) if np.isfinite(values.to_numpy()).any() \
        else 1.0
    image = ax.imshow(values.to_numpy(), cmap=diverging_cmap(), norm=diverging_norm(limit),
                      aspect="auto")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, labels.iat[i, j], ha="center", va="center", fontsize=5)
    ax.set_xticks(range(values.shape[1]), [str(c) for c in values.columns], rotation=45,
                  ha="right")
    ax.set_yticks(range(values.shape[0]), [str(i) for i in values.index])
    ax.figure.colorbar(image, ax=ax, label="sign(r) \u00d7 \u2212log10 q", shrink=0.8)
    title_axes(ax, title, standalone)
    return ax
