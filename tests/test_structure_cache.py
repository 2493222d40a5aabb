"""GTF parquet cache: reused only for the same GTF and parser version, else rebuilt loudly."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from isograph_gpu.structure import cache as cache_module
from isograph_gpu.structure import gtf as gtf_module
from isograph_gpu.structure.cache import METADATA_KEY, load_transcript_models

GTF = Path(__file__).parent / "data" / "real-gtf" / "gencode_human.gtf.gz"


@pytest.fixture()
def gtf_copy(tmp_path: Path) -> Path:
    target = tmp_path / "annotation.gtf.gz"
    shutil.copy2(GTF, target)
    return target


@pytest.fixture()
def parse_counter(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = gtf_module.read_gtf

    def counting(path):
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(cache_module, "read_gtf", counting)
    return calls


def _same(a, b) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in (
        "transcript_id", "gene_id", "chrom", "strand", "biotype", "exon_offsets",
        "exon_start", "exon_end", "cds_offsets", "cds_start", "cds_end"))


def test_fresh_cache_is_reused_without_parsing(gtf_copy: Path, tmp_path: Path,
                                               parse_counter: list[Path]) -> None:
    cache = tmp_path / "cache.parquet"
    first = load_transcript_models(gtf_copy, cache)
    assert len(parse_counter) == 1 and cache.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = load_transcript_models(gtf_copy, cache)
    assert len(parse_counter) == 1  # not reparsed
    assert _same(first, second)
    assert _same(second, gtf_module.read_gtf(gtf_copy))


def _rebuilds(gtf: Path, cache: Path, calls: list[Path], match: str) -> None:
    before = len(calls)
    with pytest.warns(UserWarning, match=match):
        models = load_transcript_models(gtf, cache)
    assert len(calls) == before + 1
    assert _same(models, gtf_module.read_gtf(gtf))
    with warnings.catch_warnings():  # rewritten, so the next load is fresh again
        warnings.simplefilter("error")
        load_transcript_models(gtf, cache)
    assert len(calls) == before + 1


def test_changed_gtf_with_same_mtime_and_size_is_rebuilt(
        tmp_path: Path, parse_counter: list[Path]) -> None:
    gtf = tmp_path / "a.gtf"
    line = 'chr1\tX\texon\t{s}\t{e}\t.\t+\t.\tgene_id "G"; transcript_id "T";\n'
    gtf.write_text(line.format(s=100, e=200))
    cache = tmp_path / "a.parquet"
    load_transcript_models(gtf, cache)
    stat = gtf.stat()
    gtf.write_text(line.format(s=300, e=400))  # same size, different content
    os.utime(gtf, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert gtf.stat().st_size == stat.st_size and gtf.stat().st_mtime_ns == stat.st_mtime_ns
    _rebuilds(gtf, cache, parse_counter, "different or modified GTF")
    assert load_transcript_models(gtf, cache).exons_of(0) == [(300, 400)]


def test_newer_gtf_is_rebuilt(gtf_copy: Path, tmp_path: Path,
                              parse_counter: list[Path]) -> None:
    cache = tmp_path / "c.parquet"
    load_transcript_models(gtf_copy, cache)
    stat = gtf_copy.stat()
    os.utime(gtf_copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    _rebuilds(gtf_copy, cache, parse_counter, "different or modified GTF")


def test_cache_from_another_gtf_is_not_trusted(gtf_copy: Path, tmp_path: Path,
                                               parse_counter: list[Path]) -> None:
    other = tmp_path / "other.gtf"
    other.write_text('chr1\tX\texon\t1\t9\t.\t+\t.\tgene_id "G"; transcript_id "T";\n')
    cache = tmp_path / "shared.parquet"
    load_transcript_models(other, cache)
    os.utime(cache, ns=(2 * 10**18, 2 * 10**18))  # far newer: the reference would trust it
    _rebuilds(gtf_copy, cache, parse_counter, "different or modified GTF")


def test_other_parser_version_is_rebuilt(gtf_copy: Path, tmp_path: Path,
                                         parse_counter: list[Path],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "v.parquet"
    load_transcript_models(gtf_copy, cache)
    monkeypatch.setattr(cache_module, "PARSER_VERSION", "999")
    _rebuilds(gtf_copy, cache, parse_counter, "parser version '1'")
    assert b'"parser_version": "999"' in pq.read_schema(cache).metadata[METADATA_KEY]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign_parquet"])
def test_corrupt_cache_is_rebuilt(gtf_copy: Path, tmp_path: Path, parse_counter: list[Path],
                                  damage: str) -> None:
    cache = tmp_path / "x.parquet"
    load_transcript_models(gtf_copy, cache)
    data = cache.read_bytes()
    if damage == "truncate":
        cache.write_bytes(data[: len(data) // 2])
        match = "unreadable"
    elif damage == "garbage":
        cache.write_bytes(b"not a parquet file")
        match = "unreadable"
    else:
        import pandas as pd

        pd.DataFrame({"transcript_id": ["T"]}).to_parquet(cache)
        match = "no isograph-gpu cache metadata"
    _rebuilds(gtf_copy, cache, parse_counter, match)


def test_cache_with_inconsistent_lists_is_rebuilt(gtf_copy: Path, tmp_path: Path,
                                                  parse_counter: list[Path]) -> None:
    cache = tmp_path / "y.parquet"
    load_transcript_models(gtf_copy, cache)
    table = pq.read_table(cache)
    broken = table.drop_columns(["exon_end"])  # metadata intact, content not
    pq.write_table(broken.replace_schema_metadata(table.schema.metadata), cache)
    _rebuilds(gtf_copy, cache, parse_counter, "corrupt")
