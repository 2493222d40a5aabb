"""annotate-structure CLI: cache option, and errors as one line with exit code 1."""

from __future__ import annotations

from pathlib import Path

import pytest
from _helpers import paths
from _helpers.files import write_gtf
from click.testing import CliRunner

from isograph_gpu.cli import main

REAL = paths.DATA / "real-gtf"
GTF = REAL / "gencode_human.gtf.gz"
PAIRS = REAL / "gencode_switch_pairs.tsv"


def _run(*args: str):
    return CliRunner().invoke(main, ["annotate-structure", *args])


def _assert_one_line_error(result, pattern: str, out: Path) -> None:
    import re

    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_missing_gtf(tmp_path: Path) -> None:
    out = tmp_path / "o.tsv"
    result = _run("--gtf", str(tmp_path / "nope.gtf"), "--switch-pairs", str(PAIRS),
                  "--output", str(out))
    _assert_one_line_error(result, r"GTF file not found: .*nope\.gtf", out)


def test_missing_pairs_file(tmp_path: Path) -> None:
    out = tmp_path / "o.tsv"
    result = _run("--gtf", str(GTF), "--switch-pairs", str(tmp_path / "p.tsv"),
                  "--output", str(out))
    _assert_one_line_error(result, r"switch pairs file not found: .*p\.tsv", out)


def test_missing_pair_columns(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("gene_id\ttranscript_a\ttranscript_id_2\ng\tx\ty\n")
    out = tmp_path / "o.tsv"
    result = _run("--gtf", str(GTF), "--switch-pairs", str(pairs), "--output", str(out))
    _assert_one_line_error(
        result, r"switch_pairs is missing required columns: \['transcript_id_1'\]", out)


def test_malformed_gtf(tmp_path: Path) -> None:
    gtf = tmp_path / "bad.gtf"
    write_gtf(gtf, ['chr1\tX\texon\tten\t20\t.\t+\t.\tgene_id "G"; transcript_id "T";'])
    out = tmp_path / "o.tsv"
    result = _run("--gtf", str(gtf), "--switch-pairs", str(PAIRS), "--output", str(out))
    _assert_one_line_error(result, r"bad\.gtf: exon line of T has a non-integer", out)


def test_failed_run_keeps_previous_output(tmp_path: Path) -> None:
    out = tmp_path / "o.tsv"
    out.write_text("previous\n")
    result = _run("--gtf", str(tmp_path / "nope.gtf"), "--switch-pairs", str(PAIRS),
                  "--output", str(out))
    assert result.exit_code == 1
    assert out.read_text() == "previous\n"


def test_cache_option_writes_and_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    cache = tmp_path / "gtf.parquet"
    out1, out2 = tmp_path / "a.tsv", tmp_path / "b.tsv"
    first = _run("--gtf", str(GTF), "--switch-pairs", str(PAIRS), "--output", str(out1),
                 "--gtf-cache", str(cache))
    assert first.exit_code == 0 and cache.exists()

    import isograph_gpu.structure.cache as cache_module

    def no_parse(path):
        raise AssertionError("the GTF was parsed again")

    monkeypatch.setattr(cache_module, "read_gtf", no_parse)
    second = _run("--gtf", str(GTF), "--switch-pairs", str(PAIRS), "--output", str(out2),
                  "--gtf-cache", str(cache))
    assert second.exit_code == 0, second.output
    assert out1.read_bytes() == out2.read_bytes()


def _run_recording_warnings(*args: str):
    """The CLI in process; its UserWarnings (printed as 'Warning: ...' on stderr outside
    pytest) as recorded messages."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _run(*args)
    return result, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def _unversioned_gtf(tmp_path: Path) -> Path:
    """The GENCODE excerpt with '.N' removed from every gene and transcript id."""
    import gzip
    import re

    text = gzip.decompress(GTF.read_bytes()).decode()
    text = re.sub(r'((?:gene|transcript)_id "[A-Z0-9]+)\.\d+"', r'\1"', text)
    path = tmp_path / "unversioned.gtf"
    path.write_text(text)
    return path


@pytest.mark.parametrize("side", ["versioned_pairs", "versioned_gtf"])
def test_version_suffix_mismatch_says_what_happens_and_why(tmp_path: Path, side: str) -> None:
    """Issue 12: versioned GENCODE ids against an unversioned GTF said '... will be skipped'
    and then wrote all-NA rows, with no hint at the '.N' suffixes."""
    import pandas as pd

    pairs = pd.read_csv(PAIRS, sep="\t", dtype=str)
    if side == "versioned_pairs":
        gtf, pairs_path = _unversioned_gtf(tmp_path), PAIRS
        example = "(pairs 'ENST00000456328.2', GTF 'ENST00000456328')"
    else:
        gtf, pairs_path = GTF, tmp_path / "unversioned_pairs.tsv"
        pairs.replace(r"\.\d+$", "", regex=True).to_csv(pairs_path, sep="\t", index=False)
        example = "(pairs 'ENST00000456328', GTF 'ENST00000456328.2')"
    n = len(pd.unique(pairs[["transcript_id_1", "transcript_id_2"]].to_numpy().ravel("K")))
    out = tmp_path / "labels.tsv"
    result, warning = _run_recording_warnings(
        "--gtf", str(gtf), "--switch-pairs", str(pairs_path), "--output", str(out))
    assert result.exit_code == 0, result.output
    assert len(warning) == 1
    assert warning[0].startswith(
        f"{n} transcript ID(s) not found in GTF (of {n} in the pairs): their rows "
        "are written with NA labels and no comparison involving them is made: ['ENST")
    assert warning[0].endswith(
        f"{n} of them match a GTF transcript once '.N' version suffixes are ignored "
        f"{example}: use the same versioning in the pairs and the GTF")
    written = pd.read_csv(out, sep="\t")
    assert len(written) == n and written["first_exon_changed"].isna().all()


def test_missing_ids_without_a_version_explanation_get_no_hint(tmp_path: Path) -> None:
    pairs = tmp_path / "p.tsv"
    pairs.write_text("gene_id\ttranscript_id_1\ttranscript_id_2\n"
                     "G\tENST00000456328.2\tNOPE.1\n")
    out = tmp_path / "o.tsv"
    result, warning = _run_recording_warnings(
        "--gtf", str(GTF), "--switch-pairs", str(pairs), "--output", str(out))
    assert result.exit_code == 0
    assert warning == [
        "1 transcript ID(s) not found in GTF (of 2 in the pairs): their rows are "
        "written with NA labels and no comparison involving them is made: ['NOPE.1']"]


@pytest.mark.parametrize(("separator", "name"), [(",", "comma"), (";", "semicolon")])
def test_pairs_file_that_is_not_tab_separated(tmp_path: Path, separator: str,
                                              name: str) -> None:
    pairs = tmp_path / "pairs.csv"
    header = separator.join(["gene_id", "transcript_id_1", "transcript_id_2"])
    pairs.write_text(f"{header}\nG1{separator}T1{separator}T2\n")
    out = tmp_path / "o.tsv"
    result = _run("--gtf", str(GTF), "--switch-pairs", str(pairs), "--output", str(out))
    _assert_one_line_error(
        result, rf"switch pairs .*pairs\.csv must be tab-separated, but its header "
                rf"'{header}' has no tab and looks {name}-separated; expected columns "
                r"gene_id, transcript_id_1, transcript_id_2 separated by tabs$", out)


@pytest.mark.parametrize(("content", "detail"), [
    (b"hello world\nthis is not a gtf\n", r"line 1 has 1 column\(s\) \('hello world'\)"),
    (b"##gff-version 3\na\tb\tc\n1\t2\t3\n", r"line 2 has 3 column\(s\) \('a\\tb\\tc'\)"),
    (b"gene_id,transcript_id_1,transcript_id_2\nG,T1,T2\n",
     r"line 1 has 1 column\(s\) \('gene_id,transcript_id_1,transcript_id_2'\)"),
], ids=["text", "three-columns", "csv"])
def test_non_gtf_file_is_one_clear_error(tmp_path: Path, content: bytes, detail: str) -> None:
    """Issue 12: polars' internal advice about missing_columns='insert' leaked out."""
    gtf = tmp_path / "notes.gtf"
    gtf.write_bytes(content)
    out = tmp_path / "o.tsv"
    result = _run("--gtf", str(gtf), "--switch-pairs", str(PAIRS), "--output", str(out))
    _assert_one_line_error(
        result, rf"GTF .*notes\.gtf cannot be parsed as 9 tab-separated columns: {detail}; "
                r"is it a GTF\?$", out)
    assert "missing_columns" not in result.stderr and "schema" not in result.stderr
