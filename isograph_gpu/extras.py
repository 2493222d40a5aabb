"""Optional dependencies a run needs, checked before any work so a missing extra fails in
a second, not after all the statistics are computed."""

from __future__ import annotations

import os
from typing import Any

from .config import ExplainConfig
from .errors import OptionalDependencyError

INSTALL_HINT = "pip install anndata"


def _require(module: str, purpose: str) -> None:
    try:
        __import__(module)
    except ImportError as exc:
        raise OptionalDependencyError(
            f"{purpose} needs the optional package {module.split('.')[0]}, which is not "
            f"installed ({exc}): {INSTALL_HINT}"
        ) from exc


def check_optional_dependencies(config: ExplainConfig, *inputs: Any) -> None:
    """Raise :class:`OptionalDependencyError` naming the package when the run asks for
    something whose optional package is missing: captum for Integrated Gradients, anndata
    for an ``.h5ad`` input. ``inputs``: the input tables (paths or in-memory tables); the
    explain API and the CLI call this first."""
    if config.integrated_gradients:
        from .attribution.integrated_gradients import require_captum

        require_captum()
    for source in inputs:
        if isinstance(source, str | os.PathLike) and os.fspath(source).lower().endswith(
                (".h5ad", ".h5ad.gz")):
            _require("anndata", f"reading {os.fspath(source)}")
