"""Extra structural labels checked against coordinates of real GENCODE transcripts
(plain-Python oracle in structure_oracle.py), plus invariants of the pair labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _helpers import paths
from hypothesis import given, settings
from hypothesis import strategies as st
from structure_oracle import (
    nmd,
    read_plain,
    retains_intron,
    skips_exon,
    tss,
    tts,
    utr_lengths,
)

from isograph_gpu.structure import annotate_switch_pairs, read_gtf, read_switch_pairs
from isograph_gpu.structure.compare import compare_pairs
from isograph_gpu.structure.labels import SPLICING_EVENTS
from isograph_gpu.structure.models import TranscriptModels

REAL = paths.DATA / "real-gtf"
GTF = REAL / "gencode_human.gtf.gz"


@pytest.fixture(scope="module")
def models() -> TranscriptModels:
    return read_gtf(GTF)


@pytest.fixture(scope="module")
def plain() -> dict[str, dict]:
    return read_plain(GTF)


@pytest.fixture(scope="module")
def pairs() -> pd.DataFrame:
    return read_switch_pairs(REAL / "gencode_switch_pairs.tsv")


@pytest.fixture(scope="module")
def pair_labels(models, pairs) -> dict[str, np.ndarray]:
    return compare_pairs(models, models.index_of(pairs["transcript_id_1"]),
                         models.index_of(pairs["transcript_id_2"]))


def test_pair_labels_match_coordinates(pairs, plain, pair_labels) -> None:
    for p, (t1, t2) in enumerate(zip(pairs["transcript_id_1"], pairs["transcript_id_2"], strict=False)):
        a, b = plain[t1], plain[t2]
        assert pair_labels["tss_changed"][p] == (tss(a) != tss(b)), (t1, t2)
        assert pair_labels["tts_changed"][p] == (tts(a) != tts(b)), (t1, t2)
        assert pair_labels["exon_count_delta"][p] == abs(len(a["exons"]) - len(b["exons"]))
        if a["exons"] != b["exons"]:
            assert pair_labels["intron_retention"][p] == (
                retains_intron(a, b) or retains_intron(b, a)), (t1, t2)
        if a["cds"] and b["cds"]:
            (u5a, u3a), (u5b, u3b) = utr_lengths(a), utr_lengths(b)
            assert pair_labels["utr5_length_delta"][p] == abs(u5a - u5b)
            assert pair_labels["utr3_length_delta"][p] == abs(u3a - u3b)
        else:
            assert np.isnan(pair_labels["utr5_length_delta"][p])
            assert np.isnan(pair_labels["utr3_length_delta"][p])
        assert pair_labels["nmd_sensitive_left"][p] == nmd(a), t1
        assert pair_labels["nmd_sensitive_right"][p] == nmd(b), t2
        skip = skips_exon(a, b) or skips_exon(b, a)
        code = pair_labels["splicing_class"][p]
        if skip and a["exons"] != b["exons"]:
            assert code in (SPLICING_EVENTS.index("exon_skipping"), len(SPLICING_EVENTS))
        if code == SPLICING_EVENTS.index("exon_skipping"):
            assert skip


def test_labels_cover_real_events(pair_labels) -> None:
    # the excerpt contains every kind of event; each one is seen alone in some pair
    seen = set(pair_labels["splicing_class"].tolist())
    assert set(range(len(SPLICING_EVENTS))) <= seen
    assert pair_labels["nmd_sensitive_left"].any() and pair_labels["intron_retention"].any()


def test_nmd_label_agrees_with_gencode_biotype(models) -> None:
    rows = np.arange(len(models))
    labels = compare_pairs(models, rows, rows)
    nmd_flags = labels["nmd_sensitive_left"]
    coding = np.diff(models.cds_offsets) > 0
    nmd_biotype = models.biotype == "nonsense_mediated_decay"
    protein_coding = models.biotype == "protein_coding"
    # GENCODE's own NMD biotype is mostly sensitive by the 50-nt rule, coding ones rarely
    assert nmd_flags[nmd_biotype & coding].mean() > 0.5
    assert nmd_flags[protein_coding & coding].mean() < 0.1


def test_hand_checked_pair(models, plain) -> None:
    # ENST00000456328.2 vs ENST00000450305.2 (DDX11L1, + strand), read from the GTF lines:
    a, b = plain["ENST00000456328.2"], plain["ENST00000450305.2"]
    assert a["exons"] == [(11869, 12227), (12613, 12721), (13221, 14409)]
    assert b["exons"][0] == (12010, 12057)
    labels = compare_pairs(models, models.index_of(["ENST00000456328.2"]),
                           models.index_of(["ENST00000450305.2"]))
    assert labels["tss_changed"][0] and labels["tts_changed"][0]  # 11869 vs 12010 ...
    assert labels["exon_count_delta"][0] == abs(3 - len(b["exons"]))
    # exon 11869-12227 of a contains the intron 12058-12178 of b: intron retention
    assert (12058, 12178) in [(x[1] + 1, y[0] - 1) for x, y in zip(b["exons"], b["exons"][1:], strict=False)]
    assert labels["intron_retention"][0]


def test_self_pairs_show_no_change(models) -> None:
    rows = np.arange(len(models))
    labels = compare_pairs(models, rows, rows)
    for name in ("first_exon_changed", "last_exon_changed", "internal_exon_difference",
                 "cds_changed", "utr_changed", "biotype_switch", "coding_status_change",
                 "tss_changed", "tts_changed", "intron_retention"):
        assert not labels[name].any(), name
    for name in ("transcript_length_delta", "cds_length_delta", "exon_count_delta"):
        assert (labels[name] == 0).all(), name
    assert (labels["shared_exon_fraction"] == 1.0).all()
    assert (labels["splicing_class"] == -1).all()
    coding = np.diff(models.cds_offsets) > 0
    assert (labels["utr5_length_delta"][coding] == 0).all()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 469), st.integers(0, 469)), min_size=1, max_size=30))
def test_pair_labels_are_symmetric(models, index_pairs) -> None:
    left = np.array([p[0] for p in index_pairs])
    right = np.array([p[1] for p in index_pairs])
    forward = compare_pairs(models, left, right)
    backward = compare_pairs(models, right, left)
    for name, values in forward.items():
        if name.startswith("nmd_sensitive"):
            continue
        np.testing.assert_array_equal(values, backward[name], err_msg=name)
    np.testing.assert_array_equal(forward["nmd_sensitive_left"],
                                  backward["nmd_sensitive_right"])
    # chunking (small cap) does not change results
    import isograph_gpu.structure.compare as compare_module

    cap = compare_module._MAX_COMBINATIONS
    compare_module._MAX_COMBINATIONS = 50
    try:
        chunked = compare_pairs(models, left, right)
    finally:
        compare_module._MAX_COMBINATIONS = cap
    for name, values in forward.items():
        np.testing.assert_array_equal(values, chunked[name], err_msg=name)


def test_aggregation_rules(models, pairs) -> None:
    table = annotate_switch_pairs(pairs, models=models)
    row = models.index_of(table["transcript_id"])
    # nmd_sensitive is the transcript's own property wherever it has a valid comparison
    own = compare_pairs(models, row, row)["nmd_sensitive_left"]
    assert table["nmd_sensitive"].astype(bool).tolist() == own.tolist()
    # splicing_class: "none" only where every comparison is "none"
    pair_codes = compare_pairs(models, models.index_of(pairs["transcript_id_1"]),
                               models.index_of(pairs["transcript_id_2"]))["splicing_class"]
    for tid, cls in zip(table["transcript_id"], table["splicing_class"], strict=False):
        mine = pair_codes[(pairs["transcript_id_1"] == tid).to_numpy()
                          | (pairs["transcript_id_2"] == tid).to_numpy()]
        kinds = set(mine[mine >= 0].tolist())
        if not kinds:
            assert cls == "none"
        elif len(kinds) == 1:
            (k,) = kinds
            assert cls == ("complex" if k == len(SPLICING_EVENTS) else SPLICING_EVENTS[k])
        else:
            assert cls == "complex"


def test_missing_transcripts_give_na_and_one_warning(models) -> None:
    ids = [f"MISSING{i}" for i in range(7)]
    pairs = pd.DataFrame({"gene_id": ["g"] * 7, "transcript_id_1": ids,
                          "transcript_id_2": ["ENST00000456328.2"] * 7})
    with pytest.warns(UserWarning) as caught:
        table = annotate_switch_pairs(pairs, models=models)
    messages = [str(w.message) for w in caught]
    assert messages == ["7 transcript ID(s) not found in GTF (of 8 in the pairs): their rows "
                        "are written with NA labels and no comparison involving them is "
                        "made: ['MISSING0', 'MISSING1', 'MISSING2', 'MISSING3', 'MISSING4']..."]
    assert table["transcript_id"].tolist() == [*ids[:1], "ENST00000456328.2", *ids[1:]]
    assert table["first_exon_changed"].isna().all()
    assert table["shared_exon_fraction"].isna().all()
    assert table["splicing_class"].isna().all()


def test_first_appearance_order_and_last_gene(models) -> None:
    a, b, c = "ENST00000456328.2", "ENST00000450305.2", "ENST00000488147.1"
    pairs = pd.DataFrame({"gene_id": ["g1", "g2"], "transcript_id_1": [b, c],
                          "transcript_id_2": [a, b]})
    table = annotate_switch_pairs(pairs, models=models)
    assert table["transcript_id"].tolist() == [b, a, c]
    assert table["gene_id"].tolist() == ["g2", "g1", "g2"]


def test_missing_pair_columns_is_value_error(models) -> None:
    with pytest.raises(ValueError, match=r"missing required columns: \['gene_id', "
                                         r"'transcript_id_2'\]"):
        annotate_switch_pairs(pd.DataFrame({"transcript_id_1": ["x"]}), models=models)
