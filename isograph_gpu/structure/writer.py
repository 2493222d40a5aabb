"""Write the structure annotation table as the reference does (TSV, no index), atomically."""

from __future__ import annotations

import os

import pandas as pd

from ..io.output import atomic_write_bytes


def write_annotations(table: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """TSV with booleans as True/False, NA as empty, floats as Python repr; atomic."""
    atomic_write_bytes(path, table.to_csv(sep="\t", index=False).encode())
