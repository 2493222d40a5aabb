"""Module statistics inside a training loop: tensors in, tensors out, no files, no pandas,
no host synchronisation.

Build :class:`ModuleStatistics` once from the feature metadata (the gene of each feature
column); call it every epoch/step on the feature matrix and the module scores (latent
means, eigengenes, ...)::

    stats = ModuleStatistics(gene_ids, with_pvalues=True)
    out = stats(features, scores)          # features [n, F], scores [n, K]
    loss = loss - 0.1 * out.switch_strength.mean()   # gradients flow through r and switch strength

Everything is computed with the tensor core (:mod:`isograph_gpu.ops`) on the inputs'
device and dtype; p-values are float64 and carry no gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .compute.companions import (
    NullScores,
    SwitchNull,
    partial_statistics,
    switch_pairs,
    switch_pvalues,
)
from .compute.step import chunk_statistics, prepare_scores
from .errors import InputError
from .ops.contrast import WelchResult, percentile_split
from .ops.fdr import FDR_METHODS, fdr_adjust
from .ops.permutation import sample_permutations
from .ops.pvalues import welch_pvalue
from .ops.segments import switch_strength

#: working memory of one block of the switch permutation null in a training step
NULL_BLOCK_BYTES = 256 * 1024**2

__all__ = ["ContrastOutput", "ModuleStatistics", "ModuleStatisticsOutput"]

#: on CUDA a call recomputes at most this many cancelling pairs and groups, selected
#: without a host synchronisation (ops.moments.moments_from_block; beyond it NaN); the CPU
#: selects them all (no synchronisation to avoid there)
_RECOMPUTE_LIMIT = 1024


#: the high-vs-low statistics of the training API: the package's one Welch container
ContrastOutput = WelchResult


@dataclass
class ModuleStatisticsOutput:
    """Statistics of every feature against every module score, on the input's device.

    r: [F, K] Pearson r (NaN when undefined), differentiable. n: [F, K] int64 complete
    pairs. switch_strength: [G, K] (genes in ``ModuleStatistics.gene_names`` order),
    differentiable. pvalue/qvalue: [F, K] float64 (BH/BY per module over all features),
    when requested. contrast: when requested, the Welch statistics of the split
    (:class:`~isograph_gpu.ops.contrast.WelchResult`: float64 means, delta, se, t, df;
    int64 counts; p-values when requested).
    """

    r: Tensor
    n: Tensor
    switch_strength: Tensor
    pvalue: Tensor | None = None
    qvalue: Tensor | None = None
    contrast: ContrastOutput | None = None
    #: with ``switch_permutations``: [G, K] float64 permutation p / BH q of the switch
    #: strength (NaN for single-feature genes; q over the other genes per module)
    switch_pvalue: Tensor | None = None
    switch_qvalue: Tensor | None = None
    #: with ``traits`` [n, T]: [T, K] r (partial given the covariates when given), float64
    #: p, int64 complete samples (docs/module_traits.md)
    trait_r: Tensor | None = None
    trait_pvalue: Tensor | None = None
    trait_n: Tensor | None = None


class ModuleStatistics:
    """Per-epoch module statistics for a fixed feature layout.

    ``gene_ids[f]`` is the gene of feature column f. Genes are numbered in order of first
    appearance (``gene_names``). Options: ``min_pairs`` (complete pairs below which r is
    NaN), ``with_pvalues`` (exact two-sided p and q-values, ``fdr_method`` "bh"/"by"),
    ``with_contrast`` (high vs low split at ``split_percentile`` of each score, Welch
    statistics; p-values too when ``with_pvalues``), ``switch_permutations`` B > 0 with
    ``seed`` (permutation p / q of the switch strength, docs/switch_significance.md).
    A call may pass ``covariates`` [n, C] (r, p and switch strength become partial given
    them, docs/covariates.md; the contrast stays unadjusted) and ``traits`` [n, T]
    (numeric or 0/1 traits against every score).
    """

    def __init__(
        self,
        gene_ids: Sequence[str],
        *,
        min_pairs: int = 3,
        with_pvalues: bool = False,
        with_contrast: bool = False,
        split_percentile: float = 50.0,
        fdr_method: str = "bh",
        switch_permutations: int = 0,
        seed: int = 0,
    ) -> None:
        genes = [str(g) for g in gene_ids]
        if not genes:
            raise InputError("ModuleStatistics: gene_ids is empty (one gene id per feature)")
        if int(min_pairs) < 2:
            raise InputError(f"ModuleStatistics: min_pairs must be at least 2, got {min_pairs}")
        if not 0.0 <= float(split_percentile) <= 100.0:
            raise InputError(
                f"ModuleStatistics: split_percentile must be within [0, 100], got {split_percentile}"
            )
        if fdr_method not in FDR_METHODS:
            raise InputError(
                f"ModuleStatistics: fdr_method must be one of {list(FDR_METHODS)}, got {fdr_method!r}"
            )
        if int(switch_permutations) < 0 or int(seed) < 0:
            raise InputError("ModuleStatistics: switch_permutations and seed must be >= 0, "
                             f"got {switch_permutations} and {seed}")
        self.switch_permutations = int(switch_permutations)
        self.seed = int(seed)
        index: dict[str, int] = {}
        for g in genes:
            index.setdefault(g, len(index))
        self.gene_names: list[str] = list(index)
        self.n_features = len(genes)
        self.min_pairs = int(min_pairs)
        self.with_pvalues = bool(with_pvalues)
        self.with_contrast = bool(with_contrast)
        self.split_percentile = float(split_percentile)
        self.fdr_method = fdr_method
        self._segment_cpu = torch.tensor([index[g] for g in genes], dtype=torch.int64)
        self._segment_by_device: dict[torch.device, Tensor] = {}

    @property
    def n_genes(self) -> int:
        return len(self.gene_names)

    def segment(self, device: torch.device | str = "cpu") -> Tensor:
        """Feature -> gene index [F] int64 on ``device`` (copied once per device)."""
        device = torch.device(device)
        if device.type == "cpu":
            return self._segment_cpu
        if device not in self._segment_by_device:
            self._segment_by_device[device] = self._segment_cpu.to(device)
        return self._segment_by_device[device]

    def to(self, device: torch.device | str) -> ModuleStatistics:
        """Place the gene index on ``device`` ahead of the first call (returns self)."""
        self.segment(device)
        return self

    def __call__(self, features: Tensor, scores: Tensor, *, covariates: Tensor | None = None,
                 traits: Tensor | None = None) -> ModuleStatisticsOutput:
        """Statistics of ``features`` [n, F] against ``scores`` [n, K] (same device;
        NaN = missing), optionally given ``covariates`` [n, C] and with ``traits`` [n, T].
        Returns tensors on that device; nothing leaves it."""
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise InputError(
                f"ModuleStatistics: features must be [n, {self.n_features}], got "
                f"{tuple(features.shape)}"
            )
        if scores.ndim != 2 or scores.shape[0] != features.shape[0]:
            raise InputError(
                f"ModuleStatistics: scores must be [{features.shape[0]}, K], got "
                f"{tuple(scores.shape)}"
            )
        if not features.is_floating_point():
            raise InputError(
                f"ModuleStatistics: features must be floating point, got {features.dtype}"
            )
        if scores.device != features.device:
            raise InputError(
                f"ModuleStatistics: scores on {scores.device} but features on {features.device}"
            )
        scores = scores.to(features.dtype)
        splits = None
        if self.with_contrast:  # group sums from the same GEMMs as r
            splits = {"split": percentile_split(scores.detach(), self.split_percentile)}
        for name, extra in (("covariates", covariates), ("traits", traits)):
            if extra is not None and (extra.ndim != 2 or extra.shape[0] != features.shape[0]
                                      or extra.device != features.device):
                raise InputError(f"ModuleStatistics: {name} must be [{features.shape[0]}, "
                                 f"C] on {features.device}, got {tuple(extra.shape)} on "
                                 f"{extra.device}")
        prepared = prepare_scores(scores, splits, min_pairs=self.min_pairs,
                                  dtype=features.dtype, device=features.device,
                                  differentiable=True)
        c = 0 if covariates is None else covariates.shape[1]
        step = chunk_statistics(
            features, prepared, with_pvalues=self.with_pvalues and not c,
            recompute_limit=None if features.device.type == "cpu" else _RECOMPUTE_LIMIT)
        r, n, pvalue = step.r, step.n, step.pvalue
        if c:  # partial r given the covariates, over each feature's own complete samples
            r, n, pvalue = partial_statistics(features, scores, covariates, self.min_pairs,
                                              self.with_pvalues)
            if step.contrasts and self.with_pvalues:  # the contrast stays unadjusted
                w = step.contrasts["split"]
                w.pvalue = welch_pvalue(w.tstat, w.df)
        out = ModuleStatisticsOutput(
            r=r, n=n,
            switch_strength=switch_strength(r, self.segment(features.device), self.n_genes),
            pvalue=pvalue, contrast=step.contrasts.get("split"))
        if out.pvalue is not None:
            out.qvalue = fdr_adjust(out.pvalue, method=self.fdr_method)
        if self.switch_permutations:
            self._switch_null(out, features, scores, covariates)
        if traits is not None:
            z = covariates if covariates is not None else features.new_zeros(
                (features.shape[0], 0))
            out.trait_r, out.trait_n, out.trait_pvalue = partial_statistics(
                traits.to(features.dtype), scores, z, self.min_pairs)
        return out

    def _switch_null(self, out: ModuleStatisticsOutput, features: Tensor, scores: Tensor,
                     covariates: Tensor | None) -> None:
        """Permutation p / q of ``out.switch_strength`` (no gradient): the explain run's
        switch null (:class:`~isograph_gpu.compute.companions.SwitchNull`) with the whole
        matrix as its one chunk, every feature of a gene with >= 2 tested against every
        module."""
        k = scores.shape[1]
        segments = self._segment_cpu.numpy()
        pairs, genes, modules = switch_pairs(
            segments, np.ones((len(segments), k), dtype=bool), self.n_genes)
        shared = NullScores.build(
            scores, sample_permutations(features.shape[0], self.switch_permutations, self.seed),
            covariates, min_pairs=self.min_pairs, block_bytes=NULL_BLOCK_BYTES,
            dtype=features.dtype, device=features.device)
        null = SwitchNull(shared, pairs, len(genes))
        null.update(features.detach(), 0)
        out.switch_pvalue, out.switch_qvalue = switch_pvalues(
            null, out.switch_strength, genes, modules, self.fdr_method)
