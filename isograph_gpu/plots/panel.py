"""The five-panel module summary figure (A usage heatmap or eigengene, B drivers, C polarity,
D gradients, E switch pairs or dumbbell)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure, SubFigure

from ..errors import InputError
from ..result import ExplainResult
from .drivers import draw_driver_heatmap, plot_driver_bar
from .overview import plot_eigengene_heatmap, plot_high_vs_low
from .style import DOUBLE_COLUMN_IN, empty_axes, new_figure, panel_letter, styled
from .transcripts import draw_isoform_gradient, plot_switch_pair, plot_transcript_polarity


def _panel_a(sub: SubFigure, result: ExplainResult, feature_usage: pd.DataFrame | None,
             top_n: int, gene_names: Mapping[str, str] | None) -> None:
    if feature_usage is not None:
        try:
            draw_driver_heatmap(sub, result.gene_driver_table, result.transcript_polarity_table,
                                result.eigengene, result.sample_ids, feature_usage,
                                top_n=top_n, gene_names=gene_names)
            return
        except InputError:
            pass
    ax = sub.add_subplot()
    try:
        frame = pd.DataFrame({result.module_id: np.asarray(result.eigengene, np.float64)},
                             index=list(result.sample_ids))
        plot_eigengene_heatmap(frame, ax=ax, title="Module eigengene")
    except InputError as exc:
        empty_axes(ax, str(exc))


@styled
def plot_summary_panel(result: ExplainResult, feature_usage: pd.DataFrame | None = None,
                       gene_names: Mapping[str, str] | None = None,
                       top_n: int = 6,
                       feature_types: Mapping[str, str] | None = None) -> Figure:
    """One double-column page per module: A driver-isoform usage heatmap (eigengene strip when
    no usage table), B top driver bar, C transcript polarity, D usage gradients of the top two
    drivers, E switch pairs (dumbbell when the module has no transcripts; ``feature_types``
    names its axis). Returns the Figure."""
    fig = new_figure(DOUBLE_COLUMN_IN, 8.6)
    top, middle, bottom = fig.subfigures(3, 1, height_ratios=[1.25, 1.0, 1.0])
    _panel_a(top, result, feature_usage, top_n, gene_names)
    panel_letter(top, "A")

    sub_b, sub_c = middle.subfigures(1, 2, width_ratios=[1.0, 1.0])
    ax_b = sub_b.add_subplot()
    try:
        plot_driver_bar(result.gene_driver_table, top_n=5, ax=ax_b, gene_names=gene_names)
    except InputError as exc:
        empty_axes(ax_b, str(exc))
    panel_letter(sub_b, "B")
    ax_c = sub_c.add_subplot()
    try:
        plot_transcript_polarity(result.transcript_polarity_table, result.gene_driver_table,
                                 top_n=top_n, ax=ax_c, gene_names=gene_names)
    except InputError as exc:
        empty_axes(ax_c, str(exc))
    panel_letter(sub_c, "C")

    sub_d, sub_e = bottom.subfigures(1, 2, width_ratios=[1.3, 1.0])
    if feature_usage is not None:
        try:
            draw_isoform_gradient(sub_d, result.gene_driver_table,
                                  result.transcript_polarity_table, result.eigengene,
                                  result.sample_ids, feature_usage, top_n=2,
                                  gene_names=gene_names, max_columns=2)
        except InputError as exc:
            empty_axes(sub_d.add_subplot(), str(exc))
    else:
        empty_axes(sub_d.add_subplot(), "no feature usage table given")
    panel_letter(sub_d, "D")
    ax_e = sub_e.add_subplot()
    try:
        if result.transcript_polarity_table is None or result.transcript_polarity_table.empty:
            raise InputError("no transcripts")
        plot_switch_pair(result.transcript_polarity_table, top_n=5, ax=ax_e,
                         gene_names=gene_names)
    except InputError:
        try:
            plot_high_vs_low(result.high_vs_low_table, top_n=10, ax=ax_e,
                             gene_names=gene_names, feature_types=feature_types)
        except InputError as exc:
            empty_axes(ax_e, str(exc))
    panel_letter(sub_e, "E")
    fig.suptitle(f"Module {result.module_id}", fontsize=10, fontweight="bold")
    return fig
