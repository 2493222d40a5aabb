"""Id/text columns in pandas' default text dtype, the same under pandas 2 and pandas 3.

``pd.read_parquet`` gives text columns pandas' default text dtype: ``"str"`` (missing = NaN)
under pandas 3 or with ``future.infer_string``, ``object`` (missing = None) before. Tables
that must match the reference's read-back dtypes are built with :func:`text_column`. The
``"str"`` alias must not be passed to pandas directly: before pandas 3 it means numpy's
fixed-width unicode, which turns a missing id into the text ``'None'``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def text_dtype() -> str | type:
    """``"str"`` where pandas infers its string dtype (pandas 3), else ``object``."""
    return "str" if pd.get_option("future.infer_string") else object


def text_column(values: Sequence[object] | np.ndarray) -> pd.Series:
    """``values`` (str or None) as a text Series of :func:`text_dtype`; None stays missing."""
    return pd.Series(np.asarray(values, dtype=object), dtype=text_dtype())
