"""io.gene_codes: the integer codes io hands the statistics (gene code per row, genes in
id order, transcript-usage rows in feature_meta order), against plain Python oracles."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
from hypothesis import example, given, settings
from hypothesis import strategies as st

from isograph_gpu.io.gene_codes import GeneCodes, transcript_usage_rows

GENES = st.sampled_from(["G1", "G2", "010262", "10262", "g1", "G1 ", "", "\u00e9"])


@settings(max_examples=200, deadline=None)
@given(st.lists(GENES, max_size=40))
@example(["010262", "10262", "010262"])  # ids are text: a leading zero is another gene
def test_gene_codes_number_genes_by_first_appearance(gene_ids):
    got = GeneCodes.of(np.asarray(gene_ids, dtype=object))
    first: dict[str, int] = {}
    for gene in gene_ids:
        first.setdefault(gene, len(first))
    genes = list(first)
    assert got.codes.dtype == np.int64 and got.name_order.dtype.kind == "i"
    assert got.codes.tolist() == [first[g] for g in gene_ids]
    assert got.n_genes == len(genes) and got.genes.tolist() == genes
    assert [genes[c] for c in got.name_order] == sorted(genes)


@settings(max_examples=100, deadline=None)
@given(st.permutations(range(8)), st.lists(st.booleans(), min_size=8, max_size=8))
def test_transcript_usage_rows_follow_feature_meta(meta_order, usage):
    feature_ids = np.asarray([f"T{i:02d}" for i in range(8)], dtype=object)
    types = np.asarray(["transcript_usage" if u else "gene_expression" for u in usage],
                       dtype=object)
    meta = pd.DataFrame({"feature_id": feature_ids[list(meta_order)]})
    inputs = SimpleNamespace(feature_ids=feature_ids, feature_types=types, feature_meta=meta)
    got = transcript_usage_rows(inputs, "transcript_usage")
    expected = [i for i in meta_order if usage[i]]  # table columns, meta rows' order
    assert got.dtype == np.int64 and got.tolist() == expected
