"""The tensor core: statistics of torch tensors on any device (torch only; no pandas).

A thin public namespace of the verbs, as scanpy's ``preprocessing`` re-exports its
functions; the GEMM building blocks the engine assembles them from (``RightBlock``,
``centre_and_mask``, ``moments_from_block``, the p-value route ``betainc_route``, ...) stay
in their own modules (:mod:`.moments`, :mod:`.pvalues`, :mod:`.groups`), not here. Shapes
follow one convention: samples x features ``x`` [n, F], samples x scores ``y`` [n, K],
statistics [F, K]; NaN marks a missing value; p- and q-values are float64.

- Pearson: :func:`masked_pearson`, :func:`paired_pearson`; from moments:
  :func:`masked_moments` / :func:`moments_and_group_sums` (-> :class:`Moments`,
  :class:`GroupSums`), then :func:`pearson_from_moments` (:mod:`.pearson`, :mod:`.moments`).
- p-values: :func:`pearson_pvalue`, :func:`welch_pvalue` (:mod:`.pvalues`); q-values:
  :func:`fdr_adjust` (:mod:`.fdr`, methods :data:`FDR_METHODS`).
- High vs low: :func:`percentile_split`, :func:`tail_split`, :func:`welch_from_sums`
  (-> :class:`WelchResult`) (:mod:`.contrast`).
- Genes and modules: :func:`switch_strength`, :func:`segment_argmax`,
  :func:`segment_count` (:mod:`.segments`), :func:`module_eigengenes` (:mod:`.eigengene`).
"""

from __future__ import annotations

from .contrast import WelchResult, percentile_split, tail_split, welch_from_sums
from .eigengene import module_eigengenes
from .fdr import FDR_METHODS, fdr_adjust
from .moments import GroupSums, Moments, masked_moments, moments_and_group_sums
from .pearson import masked_pearson, paired_pearson, pearson_from_moments
from .pvalues import pearson_pvalue, welch_pvalue
from .segments import segment_argmax, segment_count, switch_strength

__all__ = [
    "FDR_METHODS",
    "GroupSums",
    "Moments",
    "WelchResult",
    "fdr_adjust",
    "masked_moments",
    "masked_pearson",
    "module_eigengenes",
    "moments_and_group_sums",
    "paired_pearson",
    "pearson_from_moments",
    "pearson_pvalue",
    "percentile_split",
    "segment_argmax",
    "segment_count",
    "switch_strength",
    "tail_split",
    "welch_from_sums",
    "welch_pvalue",
]
