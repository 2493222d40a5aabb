"""Optional dependencies a run needs, checked before any work so a missing extra fails in
a second, not after all the statistics are computed."""

from __future__ import annotations

import os
from typing import Any

from .config import ExplainConfig


def check_optional_dependencies(config: ExplainConfig, *inputs: Any) -> None:
    """Raise :class:`OptionalDependencyError` naming the package when the run asks for
    something whose optional package is missing: captum for Integrated Gradients, anndata
    for an ``.h5ad`` input. ``inputs``: the input tables (paths or in-memory tables); the
    explain API and the CLI call this first."""
    if config.integrated_gradients:
        from .attribution.integrated_gradients import require_captum

        require_captum()
    if config.scheduler is not None:
        from .distributed import require_distributed

        require_distributed(f"scheduler {config.scheduler!r}")
    from .io.anndata import is_anndata, require_anndata

    for source in inputs:
        if isinstance(source, str | os.PathLike) and is_anndata(source):
            require_anndata(f"reading {os.fspath(source)}")
