"""Transcript models as flat arrays: one row per transcript, exons and CDS as CSR lists.

The in-memory form the GTF parser produces, the cache stores and the pair comparison
reads. Everything lives on the host (numpy int64 / object arrays); there is no torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class TranscriptModels:
    """Transcripts of a GTF.

    ``transcript_id``, ``gene_id``, ``chrom``, ``strand``, ``biotype``: object arrays of
    shape (n,). Exons of transcript ``i`` are ``exon_start[exon_offsets[i]:exon_offsets[i+1]]``
    (and ``exon_end``), 1-based inclusive, sorted by (start, end), duplicates kept as in the
    file; likewise ``cds_*``. Offsets are int64 of shape (n + 1,).
    """

    transcript_id: np.ndarray
    gene_id: np.ndarray
    chrom: np.ndarray
    strand: np.ndarray
    biotype: np.ndarray
    exon_offsets: np.ndarray
    exon_start: np.ndarray
    exon_end: np.ndarray
    cds_offsets: np.ndarray
    cds_start: np.ndarray
    cds_end: np.ndarray

    def __len__(self) -> int:
        return len(self.transcript_id)

    def index_of(self, ids: np.ndarray | list[str]) -> np.ndarray:
        """Row of each id (int64, shape (len(ids),)); -1 where the id is not in the GTF."""
        index = pd.Index(self.transcript_id)
        if not index.is_unique:  # cannot happen for parsed models; guard for hand-built ones
            index = index.drop_duplicates(keep="last")
        return np.asarray(index.get_indexer(pd.Index(ids)), dtype=np.int64)

    def exons_of(self, row: int) -> list[tuple[int, int]]:
        """Exon intervals of one transcript (genomic order), for inspection and tests."""
        lo, hi = self.exon_offsets[row], self.exon_offsets[row + 1]
        return list(zip(self.exon_start[lo:hi].tolist(), self.exon_end[lo:hi].tolist(),
                        strict=True))

    def cds_of(self, row: int) -> list[tuple[int, int]]:
        """CDS intervals of one transcript (genomic order)."""
        lo, hi = self.cds_offsets[row], self.cds_offsets[row + 1]
        return list(zip(self.cds_start[lo:hi].tolist(), self.cds_end[lo:hi].tolist(),
                        strict=True))
