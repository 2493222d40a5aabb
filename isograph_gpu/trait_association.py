"""Module-trait association (``--sample-traits``): every module score against every sample
trait, optionally given covariates, as ``module_trait_table.parquet``.

numeric and binary traits: Pearson r of the module score with the trait over their
pairwise-complete samples (binary: the point-biserial r), its t statistic and exact p;
with covariates the partial r (:func:`~isograph_gpu.ops.partial.partial_correlation`) at
n - 2 - C degrees of freedom. categorical traits: one-way ANOVA F of the module score
across the trait's levels (with covariates the nested-model ANCOVA F), exact F survival
p. q-values: Benjamini-Hochberg (or ``fdr_method``) over all module x trait pairs.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from .io.sample_tables import Covariates, Trait
from .ops.anova import f_pvalue, group_f_test
from .ops.fdr import fdr_adjust
from .ops.partial import partial_correlation, partial_pvalue

MODULE_TRAIT_TABLE = "module_trait_table.parquet"
MODULE_TRAIT_COLUMNS = ["module_id", "trait", "kind", "statistic", "r", "pvalue", "qvalue",
                        "n_samples"]


def _t_statistic(r: torch.Tensor, df: torch.Tensor) -> torch.Tensor:
    """Student t of a correlation r at ``df`` degrees of freedom (±inf at |r| = 1)."""
    return r * torch.sqrt(df / ((1.0 - r) * (1.0 + r)))


def trait_statistics(scores: np.ndarray, traits: list[Trait],
                     covariates: Covariates | None, device: torch.device,
                     min_pairs: int = 3) -> dict[str, np.ndarray]:
    """Statistics of module scores [n, K] against each trait: "statistic", "r",
    "pvalue" [T, K] float64 and "n_samples" [T, K] int64 (T in ``traits`` order)."""
    y = torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float64)).to(device)
    n, k = y.shape
    z = torch.from_numpy(np.ascontiguousarray(
        covariates.matrix if covariates is not None else np.empty((n, 0)))).to(device)
    c = z.shape[1]
    t = len(traits)
    out = {"statistic": np.full((t, k), np.nan), "r": np.full((t, k), np.nan),
           "pvalue": np.full((t, k), np.nan), "n_samples": np.zeros((t, k), dtype=np.int64)}
    linear = [i for i, trait in enumerate(traits) if trait.kind != "categorical"]
    if linear:
        x = torch.from_numpy(np.column_stack([traits[i].values for i in linear])).to(device)
        r, pairs = partial_correlation(x, y, z, min_pairs)
        df = pairs.to(torch.float64) - 2.0 - c
        out["r"][linear] = r.cpu().numpy()
        out["statistic"][linear] = _t_statistic(r, df).cpu().numpy()
        out["pvalue"][linear] = partial_pvalue(r, pairs, c).cpu().numpy()
        out["n_samples"][linear] = pairs.cpu().numpy()
    for i, trait in enumerate(traits):
        if trait.kind != "categorical":
            continue
        codes = torch.from_numpy(trait.codes).to(device)
        f, df1, df2, count = group_f_test(y, codes, len(trait.levels), z)
        out["statistic"][i] = f.cpu().numpy()
        out["pvalue"][i] = f_pvalue(f, df1, df2).cpu().numpy()
        out["n_samples"][i] = count.cpu().numpy()
    return out


def module_trait_table(module_ids: list[str], scores: np.ndarray, traits: list[Trait],
                       covariates: Covariates | None, device: torch.device,
                       fdr_method: str = "bh", min_pairs: int = 3) -> pa.Table:
    """One row per module x trait (modules in run order, traits in table order):
    :data:`MODULE_TRAIT_COLUMNS`; q over all the table's finite p-values."""
    stats = trait_statistics(scores, traits, covariates, device, min_pairs)
    t, k = stats["pvalue"].shape
    p = stats["pvalue"].T.reshape(-1)  # module-major rows
    q = fdr_adjust(torch.from_numpy(np.ascontiguousarray(p)), method=fdr_method).numpy()
    return pa.table({
        "module_id": pa.array(np.repeat(np.asarray(module_ids, dtype=object), t),
                              type=pa.string()),
        "trait": pa.array([trait.name for trait in traits] * k, type=pa.string()),
        "kind": pa.array([trait.kind for trait in traits] * k, type=pa.string()),
        "statistic": stats["statistic"].T.reshape(-1),
        "r": stats["r"].T.reshape(-1),
        "pvalue": p,
        "qvalue": q,
        "n_samples": stats["n_samples"].T.reshape(-1),
    })
