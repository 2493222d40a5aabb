"""isograph-gpu: explain IsoGraph gene/isoform modules with batched tensor algebra.

Public API::

    from isograph_gpu import explain_module, ExplainConfig
    results = explain_module("artifact_dir", "feature_table.parquet", "feature_meta.parquet")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import ExplainConfig
from .reproducible_blas import set_reproducible_blas
from .version import REFERENCE_VERSION, __version__

set_reproducible_blas()  # before MKL's first call: same bits whatever the thread count

__all__ = ["REFERENCE_VERSION", "ExplainConfig", "ExplainResult", "__version__", "explain_module"]

if TYPE_CHECKING:
    from .pipeline import explain_module
    from .result import ExplainResult


def __getattr__(name: str) -> Any:  # lazy: keep `import isograph_gpu` light
    if name == "explain_module":
        from .pipeline import explain_module

        return explain_module
    if name == "ExplainResult":
        from .result import ExplainResult

        return ExplainResult
    raise AttributeError(f"module 'isograph_gpu' has no attribute {name!r}")
