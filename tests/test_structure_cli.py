"""annotate-structure CLI: cache option, and errors as one line with exit code 1."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from isograph_gpu.cli import main

REAL = Path(__file__).parent / "data" / "real-gtf"
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
    gtf.write_text('chr1\tX\texon\tten\t20\t.\t+\t.\tgene_id "G"; transcript_id "T";\n')
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
