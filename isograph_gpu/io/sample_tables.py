"""Per-sample tables beside the feature table: sample traits (``--sample-traits``) and
covariates (``--covariates``), read through :mod:`.table_readers` and aligned to the
run's samples as host float64 arrays.

A samples table has a ``sample_id`` column (or, for a DataFrame or a parquet file written
from one, an index) whose values are ids, read as text. Errors name the file and column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError
from .table_readers import TableSource, describe_source, read_table

TRAIT_KINDS = ("numeric", "binary", "categorical")
#: fewest residual degrees of freedom (n - 2 - C) the covariates may leave
MIN_RESIDUAL_DF = 3


def read_sample_table(source: TableSource, what: str, sample_ids: Sequence[str],
                      columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The ``columns`` (None: every column but ``sample_id``) of a samples table, one row
    per run sample in ``sample_ids`` order (samples the table lacks are missing values).

    InputError naming the file: no ``sample_id`` column or index, repeated sample ids,
    an unknown column, or no sample in common with the run."""
    name = describe_source(source)
    frame = read_table(source, what)
    if "sample_id" in frame.columns:
        frame = frame.set_index("sample_id")
    elif isinstance(frame.index, pd.RangeIndex):
        raise InputError(f"{what} {name} has no sample_id column")
    frame.index = frame.index.astype(str)
    if frame.index.has_duplicates:
        dupes = frame.index[frame.index.duplicated()].unique()[:5].tolist()
        raise InputError(f"{what} {name} has duplicate sample ids: {dupes}")
    if columns is not None:
        unknown = [c for c in columns if c not in frame.columns]
        if unknown:
            raise InputError(f"{what} {name} has no column {unknown[0]!r}")
        frame = frame[list(columns)]
    if frame.shape[1] == 0:
        raise InputError(f"{what} {name} has no column besides sample_id")
    overlap = frame.index.isin(list(sample_ids)).sum()
    if overlap == 0:
        raise InputError(f"{what} {name} has no sample in common with the feature table "
                         "(check its sample_id column)")
    return frame.reindex(list(sample_ids))


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _levels(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes [n] int64 (-1 = missing) of the distinct non-missing values as text, levels
    in sorted order."""
    present = values.notna().to_numpy()
    text = values.astype(object).where(values.notna(), None)
    levels = sorted({str(v) for v in text[present]})
    index = {level: i for i, level in enumerate(levels)}
    codes = np.array([index[str(v)] if ok else -1 for v, ok in zip(text, present, strict=True)],
                     dtype=np.int64)
    return codes, levels


@dataclass
class Trait:
    """One sample trait aligned to the run's samples. ``kind``: numeric (``values`` as
    given), binary (two values: ``values`` 0/1 by sorted level, or the numbers as given)
    or categorical (``codes`` of ``levels``, -1 = missing). ``values`` [n] float64, NaN
    missing (categorical: NaN everywhere)."""

    name: str
    kind: str
    values: np.ndarray
    codes: np.ndarray
    levels: list[str]


def load_sample_traits(source: TableSource, sample_ids: Sequence[str],
                       columns: Sequence[str] | None = None) -> list[Trait]:
    """Every trait column of a samples table (:func:`read_sample_table`) with its kind.
    InputError naming the file and column for a trait with fewer than two distinct
    values among the run's samples."""
    frame = read_sample_table(source, "sample traits table", sample_ids, columns)
    n = len(frame)
    traits = []
    for column in frame.columns:
        values = frame[column]
        codes, levels = _levels(values)
        if len(levels) < 2:
            raise InputError(f"sample traits table {describe_source(source)} column "
                             f"{column!r} has {len(levels)} distinct value(s) among the "
                             "run's samples; a trait needs at least 2")
        if _is_numeric(values) and len(levels) > 2:
            traits.append(Trait(str(column), "numeric", values.to_numpy(np.float64),
                                codes, []))
        elif len(levels) == 2:
            numbers = (values.to_numpy(np.float64) if _is_numeric(values)
                       else np.where(codes >= 0, codes, np.nan).astype(np.float64))
            traits.append(Trait(str(column), "binary", numbers, codes, levels))
        else:
            traits.append(Trait(str(column), "categorical", np.full(n, np.nan), codes,
                                levels))
    return traits


@dataclass
class Covariates:
    """The covariate design aligned to the run's samples: ``matrix`` [n, C] float64
    (NaN = missing; a categorical column one-hot with its first level dropped),
    ``names`` [C] (``column=level`` for a dummy), ``columns`` the table columns used,
    ``source`` the table's name."""

    matrix: np.ndarray
    names: list[str]
    columns: list[str]
    source: str

    @property
    def n_covariates(self) -> int:
        return self.matrix.shape[1]


def load_covariates(source: TableSource, sample_ids: Sequence[str],
                    columns: Sequence[str] | None = None) -> Covariates:
    """The covariates of a samples table (:func:`read_sample_table`): numeric columns as
    they are, others one-hot (first level dropped).

    InputError naming the file and column for a column constant on the samples with every
    covariate present, one collinear with the intercept and the columns before it, or
    covariates that leave fewer than :data:`MIN_RESIDUAL_DF` degrees of freedom
    (n - 2 - C on those samples)."""
    name = describe_source(source)
    frame = read_sample_table(source, "covariates table", sample_ids, columns)
    parts, names = [], []
    for column in frame.columns:
        values = frame[column]
        if _is_numeric(values):
            parts.append(values.to_numpy(np.float64)[:, None])
            names.append(str(column))
            continue
        codes, levels = _levels(values)
        dummies = np.where(codes[:, None] >= 0,
                           (codes[:, None] == np.arange(1, len(levels))).astype(np.float64),
                           np.nan)
        parts.append(dummies)
        names.extend(f"{column}={level}" for level in levels[1:])
        if len(levels) < 2:
            raise InputError(f"covariates table {name} column {column!r} is constant on the "
                             "run's samples")
    matrix = np.concatenate(parts, axis=1) if parts else np.empty((len(frame), 0))
    complete = np.isfinite(matrix).all(axis=1)
    rows = matrix[complete]
    design = np.ones((len(rows), 1))
    for j, label in enumerate(names):
        column = rows[:, j]
        if len(column) == 0 or np.ptp(column) == 0:
            raise InputError(f"covariates table {name} column {label!r} is constant on the "
                             "samples with every covariate present")
        design = np.column_stack([design, column])
        if np.linalg.matrix_rank(design) < design.shape[1]:
            raise InputError(f"covariates table {name} column {label!r} is collinear with "
                             "the intercept and the covariates before it")
    df = int(complete.sum()) - 2 - len(names)
    if df < MIN_RESIDUAL_DF:
        raise InputError(f"covariates table {name} columns {list(frame.columns)} leave {df} "
                         f"residual degrees of freedom on the {int(complete.sum())} samples "
                         f"with every covariate present (at least {MIN_RESIDUAL_DF} needed)")
    return Covariates(matrix=matrix, names=names, columns=[str(c) for c in frame.columns],
                      source=name)
