"""annotate-structure against isograph 0.1.5's own outputs (API and CLI), and GTF parsing."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest
from _helpers import paths
from _helpers.files import write_gtf
from click.testing import CliRunner
from structure_oracle import read_plain

from isograph_gpu.cli import main
from isograph_gpu.io.table_readers import EXACT_CSV_FLOATS
from isograph_gpu.structure import (
    CANONICAL_LABELS,
    EXTRA_LABELS,
    annotate_switch_pairs,
    read_gtf,
    read_switch_pairs,
)

DATA = paths.DATA
SYNTH = DATA / "isograph-0.1.5" / "structure"
REAL = DATA / "real-gtf"
CASES = {
    "synthetic": (SYNTH / "synthetic.gtf", SYNTH / "switch_pairs.tsv",
                  SYNTH / "transcript_structure_annotations.tsv"),
    "gencode": (REAL / "gencode_human.gtf.gz", REAL / "gencode_switch_pairs.tsv",
                REAL / "gencode_expected_isograph-0.1.5.tsv"),
}
REFERENCE_COLUMNS = ["transcript_id", "gene_id", *CANONICAL_LABELS]


@pytest.mark.parametrize("case", sorted(CASES))
def test_api_matches_reference(case: str) -> None:
    gtf, pairs, expected_path = CASES[case]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = annotate_switch_pairs(read_switch_pairs(pairs), gtf)
    # exact floats: pandas 2's default C float parser can land 1 ulp off a 17-digit value
    # (0.16666666666666666 -> 0.1666666666666666); the file holds the exact doubles
    expected = pd.read_csv(expected_path, sep="\t", dtype={"transcript_id": str,
                                                           "gene_id": str},
                           **EXACT_CSV_FLOATS)
    assert list(got.columns) == [*REFERENCE_COLUMNS, *EXTRA_LABELS]
    assert got["transcript_id"].tolist() == expected["transcript_id"].tolist()
    assert got["gene_id"].tolist() == expected["gene_id"].tolist()
    for name in CANONICAL_LABELS[:7]:
        assert str(got[name].dtype) == "boolean"
        exp = expected[name].map({True: True, False: False, "True": True, "False": False})
        assert got[name].astype(object).where(got[name].notna(), None).tolist() == \
            exp.astype(object).where(exp.notna(), None).tolist(), name
    for name in CANONICAL_LABELS[7:]:
        assert got[name].dtype == "float64"
        pd.testing.assert_series_equal(got[name], expected[name], check_exact=True)
    # the reference writes this TSV; ours has the same bytes in its first 12 columns
    assert got[REFERENCE_COLUMNS].to_csv(sep="\t", index=False) == expected_path.read_text()
    missing_warnings = [str(w.message) for w in caught if "not found in GTF" in str(w.message)]
    if case == "synthetic":
        assert missing_warnings == [
            "1 transcript ID(s) not found in GTF (of 201 in the pairs): their rows are "
            "written with NA labels and no comparison involving them is made: "
            "['NOT_IN_GTF.T9']"]
    else:
        assert missing_warnings == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_matches_reference(case: str, tmp_path: Path) -> None:
    gtf, pairs, expected_path = CASES[case]
    out = tmp_path / "labels.tsv"
    result = CliRunner().invoke(main, ["annotate-structure", "--gtf", str(gtf),
                                       "--switch-pairs", str(pairs), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    written = pd.read_csv(out, sep="\t", dtype=str, keep_default_na=False)
    reference = pd.read_csv(expected_path, sep="\t", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(written[REFERENCE_COLUMNS], reference)
    assert list(written.columns[12:]) == list(EXTRA_LABELS)
    assert not list(tmp_path.glob(".*tmp"))  # no staging file left behind


def test_ensembl_biotypes_from_transcript_biotype() -> None:
    path = REAL / "ensembl_human.gtf.gz"
    models = read_gtf(path)
    plain = read_plain(path)
    assert sorted(models.transcript_id) == sorted(plain)
    rows = models.index_of(list(plain))
    assert [models.biotype[r] for r in rows] == [plain[t]["biotype"] for t in plain]
    assert "lncRNA" in set(models.biotype)  # an Ensembl-only biotype name
    assert all(models.exons_of(r) == plain[t]["exons"] for r, t in zip(rows, plain, strict=False))


def test_gencode_parse_matches_plain_reader() -> None:
    path = REAL / "gencode_human.gtf.gz"
    models = read_gtf(path)
    plain = read_plain(path)
    assert len(models) == len(plain) == 470
    rows = models.index_of(list(plain))
    for row, tid in zip(rows, plain, strict=False):
        assert models.cds_of(row) == plain[tid]["cds"]
        assert models.strand[row] == plain[tid]["strand"]
    assert int(models.exon_offsets[-1]) == 2470


def test_hash_inside_attributes_is_kept(tmp_path: Path) -> None:
    # the reference cuts lines at '#'; here only whole comment lines are skipped
    attrs = 'gene_id "G1"; tag "a#b"; transcript_id "T1"; transcript_type "protein_coding";'
    gtf = write_gtf(tmp_path / "hash.gtf.gz", [
        "#!genome-build test",
        f"chr1\tX\ttranscript\t100\t500\t.\t+\t.\t{attrs}",
        f"chr1\tX\texon\t100\t200\t.\t+\t.\t{attrs}",
        f"chr1\tX\texon\t300\t500\t.\t+\t.\t{attrs}",
        f"chr1\tX\tCDS\t150\t200\t.\t+\t0\t{attrs}",
    ])
    models = read_gtf(gtf)
    assert models.transcript_id.tolist() == ["T1"]
    assert models.biotype.tolist() == ["protein_coding"]
    assert models.exons_of(0) == [(100, 200), (300, 500)]
    assert models.cds_of(0) == [(150, 200)]


def test_transcript_without_transcript_line_takes_first_exon_attributes(tmp_path: Path
                                                                        ) -> None:
    gtf = write_gtf(tmp_path / "orphan.gtf", [
        'chr2\tX\tCDS\t10\t20\t.\t-\t0\tgene_id "G9"; transcript_id "T9"; '
        'transcript_type "cds_line";',
        'chr2\tX\texon\t5\t20\t.\t-\t.\tgene_id "G9"; transcript_id "T9"; '
        'transcript_biotype "lncRNA";',
        'chr2\tX\tgene\t5\t20\t.\t-\t.\tgene_id "G9";',
        'chr2\tX\texon\t1\t3\t.\t-\t.\tgene_id "G9"; havana_transcript_id "X"; '
        'exon_number 1;',
    ])
    models = read_gtf(gtf)
    assert models.transcript_id.tolist() == ["T9"]  # the line without transcript_id dropped
    assert (models.gene_id[0], models.strand[0], models.biotype[0]) == ("G9", "-", "lncRNA")
    assert models.exons_of(0) == [(5, 20)]


def test_non_integer_coordinate_is_one_clear_error(tmp_path: Path) -> None:
    from isograph_gpu.errors import InputError

    gtf = write_gtf(tmp_path / "bad.gtf", [
        'chr1\tX\texon\t1x\t20\t.\t+\t.\tgene_id "G"; transcript_id "T";'])
    with pytest.raises(InputError, match=r"bad\.gtf.*exon line of T.*'1x'"):
        read_gtf(gtf)
