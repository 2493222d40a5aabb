"""statistics.module_membership against a plain set lookup per row and module."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from isograph_gpu.statistics import module_membership

GENES = st.sampled_from(["G1", "G2", "010262", "10262", "g1", "G1 ", ""])


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(GENES, max_size=30),
       modules=st.lists(st.lists(GENES, max_size=6), max_size=5))
def test_membership_is_the_set_lookup(rows, modules):
    module_ids = [f"M{k}" for k in range(len(modules))]
    inputs = SimpleNamespace(module_ids=module_ids,
                             module_genes=dict(zip(module_ids, modules, strict=True)))
    got = module_membership(np.asarray(rows, dtype=object), inputs)
    expected = np.array([[gene in set(genes) for genes in modules] for gene in rows],
                        dtype=bool).reshape(len(rows), len(modules))
    assert got.dtype == bool
    np.testing.assert_array_equal(got, expected)
