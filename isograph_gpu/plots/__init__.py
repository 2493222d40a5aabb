"""Publication-ready figures of explain results (matplotlib, no pyplot state).

Every figure reads the result tables only; nothing is recomputed. Entry points:
:func:`render_explain_figures` (write all figures of a run) and :func:`load_explain_dir`
(read a run back from its output directory). The single-figure functions return the
matplotlib Axes or Figure they drew, for use in notebooks.
"""

from __future__ import annotations

from ..manifest import TOP_FIGURES
from .drivers import plot_driver_bar, plot_driver_heatmap
from .load import load_explain_dir
from .overview import plot_eigengene_heatmap, plot_high_vs_low
from .panel import plot_summary_panel
from .render import (
    MODULE_FIGURES,
    default_jobs,
    figure_files,
    render_explain_figures,
)
from .summary import summarize_module
from .transcripts import plot_isoform_gradient, plot_switch_pair, plot_transcript_polarity

__all__ = [
    "MODULE_FIGURES",
    "TOP_FIGURES",
    "default_jobs",
    "figure_files",
    "load_explain_dir",
    "plot_driver_bar",
    "plot_driver_heatmap",
    "plot_eigengene_heatmap",
    "plot_high_vs_low",
    "plot_isoform_gradient",
    "plot_summary_panel",
    "plot_switch_pair",
    "plot_transcript_polarity",
    "render_explain_figures",
    "summarize_module",
]
