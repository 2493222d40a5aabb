"""The report's figures as PNG data URIs (drawn with the plots package on the Agg canvas:
no display, nothing written to disk)."""

from __future__ import annotations

import base64
import warnings

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..errors import InputError
from ..plots._data import feature_type_map, gene_name_map
from ..plots.overview import plot_eigengene_heatmap, plot_module_trait_heatmap
from ..plots.panel import plot_summary_panel
from ..plots.render import FigureWorkers, default_jobs, eigengene_frame
from ..plots.style import figure_bytes
from ..result import ExplainResult

#: resolution of the embedded figures: sharp on a laptop screen, ~100-250 kB a panel
REPORT_DPI = 110


def png_data_uri(figure: Figure | Axes, dpi: int = REPORT_DPI) -> str:
    """``data:image/png;base64,...`` of a figure (or the figure of an Axes)."""
    fig = figure.figure if isinstance(figure, Axes) else figure
    return "data:image/png;base64," + base64.b64encode(figure_bytes(fig, "png", dpi)).decode()


def eigengene_heatmap_uri(results: dict[str, ExplainResult]) -> str | None:
    """The modules x samples eigengene heatmap, or None (with a warning) when there is none."""
    try:
        return png_data_uri(plot_eigengene_heatmap(eigengene_frame(results)))
    except InputError as exc:
        warnings.warn(f"report: eigengene heatmap skipped: {exc}", stacklevel=2)
        return None


def module_trait_heatmap_uri(module_traits: pd.DataFrame | None) -> str | None:
    """The module x trait heatmap of the trait table, or None without one."""
    if module_traits is None or module_traits.empty:
        return None
    return png_data_uri(plot_module_trait_heatmap(module_traits))


def _panel_uri(task: tuple) -> str:
    """One module's summary panel as a PNG data URI (a figure worker's task)."""
    result, usage, gene_names, feature_types = task
    has_eigengene = len(result.sample_ids) > 0
    return png_data_uri(plot_summary_panel(result, usage if has_eigengene else None,
                                           gene_names=gene_names,
                                           feature_types=feature_types))


def summary_panel_uris(results: dict[str, ExplainResult],
                       feature_usage: pd.DataFrame | None,
                       feature_meta: pd.DataFrame | None,
                       jobs: int | None = None) -> dict[str, str]:
    """Each module's five-panel summary figure (as ``isograph-gpu plot`` draws it),
    by module id. ``feature_usage`` (samples x features, may be None) fills panels A/D.
    Drawn in ``jobs`` figure worker processes (default
    :func:`~isograph_gpu.plots.render.default_jobs`: one per core on Linux; the bytes do
    not depend on it)."""
    gene_names = gene_name_map(feature_meta)
    feature_types = feature_type_map(feature_meta)
    tasks = [(result, feature_usage, gene_names, feature_types) for result in results.values()]
    jobs = default_jobs(len(tasks)) if jobs is None else max(1, min(int(jobs), len(tasks)))
    if jobs <= 1:
        uris = [_panel_uri(task) for task in tasks]
    else:
        workers = FigureWorkers(jobs, tasks, draw=_panel_uri)
        try:
            uris = list(workers.outcomes())
        finally:
            workers.stop()
    return {str(module_id): uri for module_id, uri in zip(results, uris, strict=True)}
