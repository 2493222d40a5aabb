"""report.html: one self-contained page per explain run (the run, a module overview, each
module's summary panel and top tables, the warnings), written into the output dir.

:func:`write_report` is the entry point (the pipeline calls it into its staging folder;
``isograph-gpu report --explain-dir D`` redraws it from D's files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..io.output import atomic_write_bytes
from ..result import ExplainResult
from .content import MODULE_TRAIT_NAME, select_content
from .figures import eigengene_heatmap_uri, module_trait_heatmap_uri, summary_panel_uris
from .html import render_page

#: the report's file name at the output root
REPORT_NAME = "report.html"

__all__ = ["MODULE_TRAIT_NAME", "REPORT_NAME", "build_report", "write_report"]


def build_report(explain_dir: Path, results: dict[str, ExplainResult],
                 manifest: dict[str, Any], feature_usage: pd.DataFrame | None = None,
                 feature_meta: pd.DataFrame | None = None) -> str:
    """The page's HTML for the run in ``explain_dir`` (``results`` and ``manifest`` of
    that run; ``feature_usage`` samples x features for the usage panels, optional;
    ``feature_meta`` for gene names, optional)."""
    content = select_content(Path(explain_dir), results, manifest, feature_meta)
    return render_page(content,
                       summary_panel_uris(results, feature_usage, feature_meta),
                       eigengene_heatmap_uri(results),
                       module_trait_heatmap_uri(content.module_traits))


def write_report(explain_dir: Path, results: dict[str, ExplainResult],
                 manifest: dict[str, Any], feature_usage: pd.DataFrame | None = None,
                 feature_meta: pd.DataFrame | None = None) -> Path:
    """Write ``explain_dir/report.html`` atomically (see :func:`build_report`); returns
    its path. Nothing else is written."""
    path = Path(explain_dir) / REPORT_NAME
    page = build_report(explain_dir, results, manifest, feature_usage, feature_meta)
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
