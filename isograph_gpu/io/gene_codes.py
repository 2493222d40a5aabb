"""String ids -> the integer codes the statistics compute with: the gene of each row as a
code, module membership of the rows, the transcript-usage rows in polarity-table order.

All the string work (hashing gene ids, looking up each module's genes, aligning with
feature_meta) is done here, on the host, once per run; the statistics get int64 / bool
arrays and never import pandas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from .explain_inputs import ExplainInputs


@dataclass(frozen=True)
class GeneCodes:
    """The gene of each of R rows as a code: ``codes`` [R] int64 in 0..G-1 (genes numbered
    in order of first appearance), ``genes`` [G] str the gene_id of each code, and
    ``name_order`` [G] int64 the codes of the genes in ascending gene_id order (a stable
    sort of the ids as text)."""

    codes: np.ndarray
    genes: np.ndarray
    name_order: np.ndarray

    @property
    def n_genes(self) -> int:
        return len(self.genes)

    @classmethod
    def of(cls, gene_ids: np.ndarray) -> GeneCodes:
        """Codes of the string ``gene_ids`` [R]."""
        codes, genes = pd.factorize(np.asarray(gene_ids, dtype=str))
        genes = np.asarray(genes, dtype=str)
        return cls(codes=codes.astype(np.int64), genes=genes,
                   name_order=np.argsort(genes, kind="stable"))


class ModuleGenes(Protocol):
    """What :func:`module_membership` reads of the inputs."""

    module_ids: list[str]
    module_genes: dict[str, list[str]]


def module_membership(gene_ids: np.ndarray, inputs: ModuleGenes) -> np.ndarray:
    """[len(gene_ids), K] bool: the row's gene (a string id) belongs to module k. Built
    on the distinct genes ([G, K], one hash lookup of each module's genes) and then
    gathered per row, so the rows are hashed once, not once per module."""
    codes, genes = pd.factorize(np.asarray(gene_ids, dtype=object), use_na_sentinel=False)
    distinct = pd.Index(genes)
    by_gene = np.zeros((len(genes), len(inputs.module_ids)), dtype=bool)
    for k, module_id in enumerate(inputs.module_ids):
        found = distinct.get_indexer(pd.Index(inputs.module_genes[module_id]).unique())
        by_gene[found[found >= 0], k] = True
    return by_gene[codes]


def transcript_usage_rows(inputs: ExplainInputs, feature_type: str) -> np.ndarray:
    """[T] int64: the table feature columns of ``feature_type`` (transcript usage), in
    feature_meta row order (the transcript polarity table's order)."""
    rows = np.flatnonzero(inputs.feature_types == feature_type)
    assert inputs.feature_meta is not None
    meta_position = pd.Index(inputs.feature_meta["feature_id"]).get_indexer(
        inputs.feature_ids[rows])
    return rows[np.argsort(meta_position, kind="stable")].astype(np.int64)
