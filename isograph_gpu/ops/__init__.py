"""The tensor core: statistics of torch tensors on any device (torch only; no pandas).

A thin public namespace over the modules that implement each statistic, as scanpy's
``preprocessing`` re-exports its functions. Shapes follow one convention: samples x
features ``x`` [n, F], samples x scores ``y`` [n, K], statistics [F, K]; NaN marks a
missing value; p- and q-values are float64.

- Pearson: :func:`masked_pearson`, :func:`paired_pearson`, :func:`pearson_from_moments`
  (:mod:`.pearson`), on the moments of :func:`masked_moments` /
  :func:`moments_and_group_sums` (:mod:`.moments`; many chunks against one y:
  :class:`RightBlock` and :func:`moments_from_block`; NaN-skipping means:
  :func:`finite_column_means`).
- p-values: :func:`pearson_pvalue`, :func:`welch_pvalue`, :func:`betainc_route`
  (:mod:`.pvalues`; the torch incomplete beta is :mod:`.betainc`); q-values:
  :func:`fdr_adjust` (:mod:`.fdr`).
- High vs low: :func:`percentile_split`, :func:`tail_split`, :func:`welch_from_sums`
  (:mod:`.contrast`), :class:`GroupLayout` (:mod:`.groups`).
- Genes and modules: :func:`switch_strength`, :func:`segment_argmax`,
  :func:`segment_count` (:mod:`.segments`), :func:`module_eigengenes` (:mod:`.eigengene`).
- Beyond the reference: :func:`partial_correlation` / :func:`partial_pvalue` given
  covariates (:mod:`.partial`), :func:`group_f_test` / :func:`f_pvalue` (:mod:`.anova`),
  the switch-strength permutation null :func:`switch_null_exceedances` (:mod:`.permutation`).
"""

from __future__ import annotations

from .anova import f_pvalue, group_f_test
from .contrast import WelchResult, percentile_split, tail_split, welch_from_sums
from .eigengene import gather_module_rows, module_eigengenes
from .fdr import FDR_METHODS, fdr_adjust
from .groups import GroupLayout
from .moments import (
    GroupSums,
    Moments,
    RightBlock,
    centre_and_mask,
    finite_column_means,
    masked_moments,
    moments_and_group_sums,
    moments_from_block,
    power_of_two_scale,
)
from .partial import covariate_design, partial_correlation, partial_moments, partial_pvalue
from .pearson import masked_pearson, paired_pearson, pearson_from_moments
from .permutation import (
    permutation_block,
    permutation_pvalue,
    sample_permutations,
    switch_null_exceedances,
)
from .pvalues import betainc_route, pearson_pvalue, welch_pvalue
from .segments import segment_argmax, segment_count, switch_strength

__all__ = [
    "FDR_METHODS",
    "GroupLayout",
    "GroupSums",
    "Moments",
    "RightBlock",
    "WelchResult",
    "betainc_route",
    "centre_and_mask",
    "covariate_design",
    "f_pvalue",
    "fdr_adjust",
    "finite_column_means",
    "gather_module_rows",
    "group_f_test",
    "masked_moments",
    "masked_pearson",
    "module_eigengenes",
    "moments_and_group_sums",
    "moments_from_block",
    "paired_pearson",
    "partial_correlation",
    "partial_moments",
    "partial_pvalue",
    "pearson_from_moments",
    "pearson_pvalue",
    "percentile_split",
    "permutation_block",
    "permutation_pvalue",
    "power_of_two_scale",
    "sample_permutations",
    "segment_argmax",
    "segment_count",
    "switch_null_exceedances",
    "switch_strength",
    "tail_split",
    "welch_from_sums",
    "welch_pvalue",
]
