"""GTF reader edge cases: comment lines anywhere, quoted values with ';' and '#', ties in
interval order, CRLF, gzip. Expected values are written out by hand from the lines below."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from _helpers.files import write_gtf

from isograph_gpu.errors import InputError
from isograph_gpu.structure import gtf as gtf_module
from isograph_gpu.structure import read_gtf

T1 = 'gene_id "G1"; transcript_id "T1"; gene_type "protein_coding"; ' \
     'transcript_type "protein_coding";'
T2 = 'gene_id "G2"; gene_version "3"; transcript_id "T2"; transcript_version "1"; ' \
     'transcript_biotype "lncRNA";'


def _summary(models) -> list[tuple]:
    return [(models.transcript_id[r], models.gene_id[r], models.chrom[r], models.strand[r],
             models.biotype[r], models.exons_of(r), models.cds_of(r))
            for r in range(len(models))]


EXPECTED = [
    ("T1", "G1", "chr1", "+", "protein_coding", [(100, 200), (300, 400)], [(150, 200)]),
    ("T2", "G2", "chr2", "-", "lncRNA", [(10, 20), (50, 60)], []),
]


def _lines_with_comments() -> list[str]:
    return [
        "##description: test",
        # a tab-separated header comment: not 9 valid columns (start is not an integer)
        "#chrom\tsource\tfeature\tstart\tend\tscore\tstrand\tframe\tattributes",
        f"chr1\tX\ttranscript\t100\t400\t.\t+\t.\t{T1}",
        f"chr1\tX\texon\t100\t200\t.\t+\t.\t{T1}",
        # a commented-out line that would otherwise be a valid exon of T1
        f"#chr1\tX\texon\t1000\t2000\t.\t+\t.\t{T1}",
        "#!mid-file comment",
        "",
        f"chr1\tX\texon\t300\t400\t.\t+\t.\t{T1}",
        f"chr1\tX\tCDS\t150\t200\t.\t+\t0\t{T1}",
        f"chr2\tX\ttranscript\t10\t60\t.\t-\t.\t{T2}",
        f"chr2\tX\texon\t50\t60\t.\t-\t.\t{T2}",
        f"chr2\tX\texon\t10\t20\t.\t-\t.\t{T2}",
    ]


@pytest.mark.parametrize("name", ["a.gtf", "a.gtf.gz", "a_gzip_without_suffix.gtf"])
def test_comment_lines_anywhere(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_gtf(path, _lines_with_comments())
    if name.endswith("suffix.gtf"):  # gzip is detected from content, not the name
        path.write_bytes(gzip.compress(path.read_bytes()))
    assert _summary(read_gtf(path)) == EXPECTED
    # the fast read (no comment handling in the tokenizer) alone gets the same rows as the
    # comment-aware one: the leading header is skipped, the mid-file comments are dropped
    fast = gtf_module._kept_query(path, fast=True).collect(engine="streaming")
    slow = gtf_module._kept_query(path, fast=False).collect()
    assert fast.equals(slow)
    assert fast.height == 7  # 2 transcript, 4 exon, 1 CDS lines


def test_comment_line_that_breaks_the_columns_falls_back(tmp_path: Path) -> None:
    lines = _lines_with_comments()
    lines.insert(7, "#x\ty\texon\tnot-a-number\t1\t.\t+\t.\tnote")  # mid-file, 9 columns
    lines.insert(8, "#" + "\t".join("abcdefghijkl"))  # mid-file, 12 columns
    path = write_gtf(tmp_path / "b.gtf", lines)
    with pytest.raises(pl.exceptions.PolarsError):
        gtf_module._kept_query(path, fast=True).collect(engine="streaming")
    assert _summary(read_gtf(path)) == EXPECTED


def test_quoted_values_with_semicolons_and_hashes(tmp_path: Path) -> None:
    attrs = ('gene_id "G#1"; note "x; y; transcript_id"; tag "a#b"; '
             'transcript_id "T;1"; transcript_type "protein_coding"; exon_number 1;')
    other = 'gene_id "G2"; xyz_transcript_id "NOT"; transcript_id  "T2";'
    path = write_gtf(tmp_path / "q.gtf", [
        f"chr1\tX\ttranscript\t100\t400\t.\t+\t.\t{attrs}",
        f"chr1\tX\texon\t100\t400\t.\t+\t.\t{attrs}",
        f"chr1\tX\texon\t500\t600\t.\t+\t.\t{other}",
    ])
    models = read_gtf(path)
    assert models.transcript_id.tolist() == ["T;1", "T2"]
    assert models.gene_id.tolist() == ["G#1", "G2"]
    assert models.biotype.tolist() == ["protein_coding", ""]
    assert models.exons_of(0) == [(100, 400)]
    assert models.exons_of(1) == [(500, 600)]


def test_crlf_line_endings(tmp_path: Path) -> None:
    path = write_gtf(tmp_path / "crlf.gtf", _lines_with_comments(), eol="\r\n")
    assert _summary(read_gtf(path)) == EXPECTED


def test_equal_starts_are_ordered_by_end(tmp_path: Path) -> None:
    path = write_gtf(tmp_path / "ties.gtf", [
        f"chr1\tX\texon\t300\t400\t.\t+\t.\t{T1}",
        f"chr1\tX\texon\t100\t250\t.\t+\t.\t{T1}",
        f"chr1\tX\texon\t100\t200\t.\t+\t.\t{T1}",
        f"chr1\tX\tCDS\t150\t200\t.\t+\t0\t{T1}",
        f"chr1\tX\tCDS\t150\t160\t.\t+\t0\t{T1}",
    ])
    models = read_gtf(path)
    assert models.exons_of(0) == [(100, 200), (100, 250), (300, 400)]
    assert models.cds_of(0) == [(150, 160), (150, 200)]


def test_sorted_order_is_a_lexsort() -> None:
    rng = np.random.default_rng(5)
    # small: many (row, start) ties; 2**40: a 46-bit key; 2**60: too wide, lexsort
    for high in (50, 1 << 40, 1 << 60):
        rows = rng.integers(0, 30, 5000).astype(np.uint32)
        start = rng.integers(1, high, 5000)
        end = start + rng.integers(0, 20, 5000)
        order = gtf_module._sorted_order(rows, start, end)
        expected = np.lexsort((end, start, rows))
        for column in (rows, start, end):
            np.testing.assert_array_equal(column[order], column[expected])
    assert len(gtf_module._sorted_order(np.zeros(0, np.uint32), np.zeros(0, np.int64),
                                        np.zeros(0, np.int64))) == 0


def test_only_comments_is_empty(tmp_path: Path) -> None:
    path = write_gtf(tmp_path / "c.gtf.gz", ["##a", "#b\tc"])
    assert len(read_gtf(path)) == 0
    assert int(read_gtf(path).exon_offsets[-1]) == 0


def test_extra_column_is_one_clear_error(tmp_path: Path) -> None:
    path = write_gtf(tmp_path / "wide.gtf", [f"chr1\tX\texon\t1\t2\t.\t+\t.\t{T1}\textra"])
    with pytest.raises(InputError, match=r"wide\.gtf cannot be parsed as 9 tab-separated"):
        read_gtf(path)


@pytest.mark.parametrize("keep_all", [False, True])
def test_transcripts_without_transcript_line_in_a_mixed_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep_all: bool) -> None:
    # T1 has a transcript line; T3 and T4 have none and take the attributes of their first
    # exon line (T3: listed after its CDS line) or, without exons, first CDS line (T4).
    # Their order is that of those lines. Either way of finding them (a second read, or
    # attributes kept for every line as for exon-only files) gives the same models.
    monkeypatch.setattr(gtf_module, "_has_transcript_lines", lambda head: not keep_all)
    t3_cds = 'gene_id "G3"; transcript_id "T3"; transcript_type "from_cds";'
    t3_exon = 'gene_id "G3"; transcript_id "T3"; transcript_type "from_exon";'
    t4_cds = 'gene_id "G4"; transcript_id "T4"; transcript_biotype "cds_only";'
    path = write_gtf(tmp_path / "mixed.gtf", [
        f"chr1\tX\ttranscript\t100\t400\t.\t+\t.\t{T1}",
        f"chr3\tX\tCDS\t520\t540\t.\t-\t0\t{t3_cds}",
        f"chr4\tX\tCDS\t700\t720\t.\t+\t0\t{t4_cds}",
        f"chr1\tX\texon\t100\t200\t.\t+\t.\t{T1}",
        f"chr3\tX\texon\t500\t600\t.\t-\t.\t{t3_exon}",
        f"chr3\tX\texon\t650\t660\t.\t-\t.\t{t3_cds}",
        f"chr1\tX\texon\t300\t400\t.\t+\t.\t{T1}",
        f"chr1\tX\tCDS\t150\t200\t.\t+\t0\t{T1}",
    ])
    assert _summary(read_gtf(path)) == [
        ("T1", "G1", "chr1", "+", "protein_coding", [(100, 200), (300, 400)], [(150, 200)]),
        ("T4", "G4", "chr4", "+", "cds_only", [], [(700, 720)]),
        ("T3", "G3", "chr3", "-", "from_exon", [(500, 600), (650, 660)], [(520, 540)]),
    ]


def test_exon_only_file_is_recognised_from_its_head(tmp_path: Path) -> None:
    exon_only = [line for line in _lines_with_comments() if "\ttranscript\t" not in line]
    assert not gtf_module._has_transcript_lines(
        gtf_module._head(write_gtf(tmp_path / "e.gtf.gz", exon_only)))
    assert gtf_module._has_transcript_lines(
        gtf_module._head(write_gtf(tmp_path / "t.gtf.gz", _lines_with_comments())))
    assert gtf_module._has_transcript_lines([b"##only comments", b""])
    # a head cut inside the file keeps complete lines only
    path = write_gtf(tmp_path / "long.gtf", ["#" + "x" * 100] * 50)
    head = gtf_module._head(path, size=1000)
    assert len(head) == 9 and all(line == b"#" + b"x" * 100 for line in head)
    assert gtf_module._leading_comment_lines(head) == 9


@pytest.mark.parametrize(("start", "end", "problem"), [
    ("-5", "200", "a start below 1"),
    ("0", "200", "a start below 1"),
    ("300", "100", "end < start"),
    ("", "200", "a missing coordinate"),
], ids=["negative", "zero", "end-before-start", "empty"])
@pytest.mark.parametrize("name", ["bad.gtf", "bad.gtf.gz"])
def test_invalid_coordinates_are_an_error_naming_the_line(
        tmp_path: Path, start: str, end: str, problem: str, name: str) -> None:
    """Issue 12 item 10: such lines were used silently (lengths 418 -> 67694)."""
    lines = _lines_with_comments()
    lines.insert(8, f"chr1\tX\texon\t{start}\t{end}\t.\t+\t.\t{T1}")  # file line 9
    lines.append(f"chr2\tX\tCDS\t60\t50\t.\t-\t0\t{T2}")  # a second bad line
    path = write_gtf(tmp_path / name, lines)
    with pytest.raises(InputError) as caught:
        read_gtf(path)
    message = str(caught.value)
    assert f"{name} line 9: exon of T1 has {problem}" in message, message
    assert f"(start {start!r}, end {end!r})" in message
    assert "(2 such line(s) in the file)" in message


def test_invalid_coordinates_on_a_line_without_transcript_id_are_ignored(
        tmp_path: Path) -> None:
    """Lines without a transcript_id are dropped (as the reference); their coordinates
    are never used, so they are not checked."""
    lines = [*_lines_with_comments(), 'chr1\tX\texon\t500\t100\t.\t+\t.\tgene_id "G9";']
    assert _summary(read_gtf(write_gtf(tmp_path / "ok.gtf", lines))) == EXPECTED


def test_cli_reports_invalid_coordinates_in_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from isograph_gpu.cli import main

    gtf = write_gtf(tmp_path / "bad.gtf", [f"chr1\tX\texon\t300\t100\t.\t+\t.\t{T1}"])
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("gene_id\ttranscript_id_1\ttranscript_id_2\nG1\tT1\tT2\n")
    out = tmp_path / "out.tsv"
    result = CliRunner().invoke(main, ["annotate-structure", "--gtf", str(gtf),
                                       "--switch-pairs", str(pairs), "--output", str(out)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: GTF {gtf} line 1: exon of T1 has end < start (start '300', end '100'); GTF "
        "coordinates are 1-based with start <= end (1 such line(s) in the file)"]
    assert not out.exists()
