"""GTF parquet cache: reused only for the same GTF and parser version, else rebuilt loudly."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from _helpers import paths
from _helpers.files import write_gtf

from isograph_gpu.structure import cache as cache_module
from isograph_gpu.structure import gtf as gtf_module
from isograph_gpu.structure.cache import METADATA_KEY, load_transcript_models

GTF = paths.DATA / "real-gtf" / "gencode_human.gtf.gz"


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
    line = 'chr1\tX\texon\t{s}\t{e}\t.\t+\t.\tgene_id "G"; transcript_id "T";'
    write_gtf(gtf, [line.format(s=100, e=200)])
    cache = tmp_path / "a.parquet"
    load_transcript_models(gtf, cache)
    stat = gtf.stat()
    write_gtf(gtf, [line.format(s=300, e=400)])  # same size, different content
    os.utime(gtf, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert gtf.stat().st_size == stat.st_size and gtf.stat().st_mtime_ns == stat.st_mtime_ns
    _rebuilds(gtf, cache, parse_counter, "different or modified GTF")
    assert load_transcript_models(gtf, cache).exons_of(0) == [(300, 400)]


def test_touched_gtf_with_the_same_content_keeps_its_cache(
        gtf_copy: Path, tmp_path: Path, parse_counter: list[Path]) -> None:
    """The key is the content, not the mtime: touching (or copying) the GTF costs no
    reparse."""
    cache = tmp_path / "c.parquet"
    load_transcript_models(gtf_copy, cache)
    stat = gtf_copy.stat()
    os.utime(gtf_copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        models = load_transcript_models(gtf_copy, cache)
    assert len(parse_counter) == 1
    assert _same(models, gtf_module.read_gtf(gtf_copy))


def _big_gtf(path: Path, n_transcripts: int = 16_000) -> Path:
    """A plain GTF of about 3 MiB (one transcript line and two exons per transcript)."""
    lines = []
    for i in range(n_transcripts):
        start = 1_000 + 10 * i
        attrs = f'gene_id "G{i // 4:05d}"; transcript_id "T{i:06d}";'
        lines.append(f"chr1\tX\ttranscript\t{start}\t{start + 900}\t.\t+\t.\t{attrs}")
        lines.append(f"chr1\tX\texon\t{start}\t{start + 100}\t.\t+\t.\t{attrs}")
        lines.append(f"chr1\tX\texon\t{start + 800}\t{start + 900}\t.\t+\t.\t{attrs}")
    return write_gtf(path, lines)


def test_same_size_edit_outside_the_old_sampled_blocks_is_rebuilt(
        tmp_path: Path, parse_counter: list[Path]) -> None:
    """Issue 12 item 9: a same-size edit between the blocks the fingerprint used to sample
    (first/last MiB and 16 x 64 KiB), mtime restored, reused the stale cache."""
    gtf = _big_gtf(tmp_path / "big.gtf")
    cache = tmp_path / "big.parquet"
    load_transcript_models(gtf, cache)
    data = bytearray(gtf.read_bytes())
    size = len(data)
    old_blocks = [(0, 1 << 20), (size - (1 << 20), size)] + [
        (size * (k + 1) // 17, size * (k + 1) // 17 + (1 << 16)) for k in range(16)]
    # an exon end in the middle of the file, in a gap of the old sampling
    at = data.index(b"\texon\t", size // 2 - 150_000)
    assert not any(lo <= at < hi for lo, hi in old_blocks)
    line_end = data.index(b"\n", at)
    fields = data[data.rindex(b"\n", 0, at) + 1 : line_end].split(b"\t")
    old_end = fields[4]
    new_end = str(int(old_end) - 1).encode().rjust(len(old_end), b"0")[-len(old_end):]
    assert len(new_end) == len(old_end) and new_end != old_end
    pos = data.index(b"\t" + old_end + b"\t", at) + 1
    data[pos : pos + len(old_end)] = new_end
    stat = gtf.stat()
    gtf.write_bytes(bytes(data))
    os.utime(gtf, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert gtf.stat().st_size == stat.st_size and gtf.stat().st_mtime_ns == stat.st_mtime_ns
    _rebuilds(gtf, cache, parse_counter, "different or modified GTF")
    assert int(new_end) in load_transcript_models(gtf, cache).exon_end.tolist()


def test_fingerprint_depends_on_every_byte(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Small segments (several threads, segment edges): one changed byte anywhere, the
    first and last included, changes the fingerprint; the same bytes give the same one."""
    monkeypatch.setattr(cache_module, "_SEGMENT", 4096)
    path = tmp_path / "f.gtf"
    data = bytes(np.random.default_rng(3).integers(0, 256, size=40_000, dtype=np.uint8))
    path.write_bytes(data)
    base = cache_module.gtf_fingerprint(path)
    assert base == cache_module.gtf_fingerprint(path) and base["size"] == len(data)
    for pos in (0, 4095, 4096, 20_000, len(data) - 1):
        changed = bytearray(data)
        changed[pos] ^= 0x01
        path.write_bytes(bytes(changed))
        assert cache_module.gtf_fingerprint(path) != base, pos
    path.write_bytes(b"")
    assert cache_module.gtf_fingerprint(path)["size"] == 0


def test_eight_byte_flips_in_the_cache_never_give_wrong_models(
        gtf_copy: Path, tmp_path: Path, parse_counter: list[Path]) -> None:
    """Issue 12 item 9: an 8-byte flip in the cache parquet went unnoticed (a
    cds_length_delta of 1708159 instead of 1179). Flips all over the file: each load either
    rebuilds with a warning or (a flip in bytes nothing reads) returns the same models."""
    cache = tmp_path / "z.parquet"
    truth = load_transcript_models(gtf_copy, cache)
    original = cache.read_bytes()
    rebuilt = 0
    for pos in range(4, len(original) - 16, max(1, len(original) // 60)):
        damaged = bytearray(original)
        damaged[pos : pos + 8] = bytes(b ^ 0xFF for b in damaged[pos : pos + 8])
        cache.write_bytes(bytes(damaged))
        before = len(parse_counter)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            models = load_transcript_models(gtf_copy, cache)
        assert _same(models, truth), pos
        if len(parse_counter) > before:
            rebuilt += 1
            assert any("rebuilding it" in str(w.message) for w in caught), pos
    assert rebuilt > 40  # nearly every flip is caught (and none is used)


def test_cache_whose_values_were_rewritten_fails_its_checksum(
        gtf_copy: Path, tmp_path: Path, parse_counter: list[Path]) -> None:
    """A cache that decodes cleanly but holds other coordinates (metadata intact) is
    rebuilt: the content checksum does not match."""
    import pyarrow as pa

    cache = tmp_path / "w.parquet"
    load_transcript_models(gtf_copy, cache)
    table = pq.read_table(cache)
    ends = table.column("cds_end").combine_chunks()
    values = ends.flatten().to_numpy().copy()
    values[0] += 1_707_000
    changed = pa.LargeListArray.from_arrays(ends.offsets, pa.array(values))
    table = table.set_column(table.schema.get_field_index("cds_end"), "cds_end", changed)
    pq.write_table(table, cache)
    _rebuilds(gtf_copy, cache, parse_counter, "content checksum")


def test_cache_from_another_gtf_is_not_trusted(gtf_copy: Path, tmp_path: Path,
                                               parse_counter: list[Path]) -> None:
    other = tmp_path / "other.gtf"
    write_gtf(other, ['chr1\tX\texon\t1\t9\t.\t+\t.\tgene_id "G"; transcript_id "T";'])
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
    _rebuilds(gtf_copy, cache, parse_counter, "parser version '2'")
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


def test_gtf_stages_are_reported_in_order(gtf_copy: Path, tmp_path: Path, monkeypatch) -> None:
    """annotate-structure's progress: hash, parse and cache write on the first run; hash and
    cached load (no parse) on the second; the hash counts its segments."""
    import io

    from isograph_gpu.progress import Progress

    monkeypatch.setattr(cache_module, "_SEGMENT", 4096)  # a few segments for this small GTF
    n_segments = -(-gtf_copy.stat().st_size // 4096)
    assert n_segments > 2
    cache = tmp_path / "models.parquet"
    texts, stages = [], []
    for _ in range(2):
        stream = io.StringIO()
        load_transcript_models(gtf_copy, cache, Progress(enabled=True, stream=stream))
        texts.append(stream.getvalue())
        stages.append([line.split("]", 1)[1].split(":")[0].strip()
                       for line in texts[-1].splitlines() if " s" in line.split(":", 1)[1]
                       and "segment" not in line])
    assert stages[0] == ["hash GTF", "parse GTF", "write GTF cache"]
    assert stages[1] == ["hash GTF", "load GTF cache"]
    assert f"hash GTF: segment {n_segments}/{n_segments}" in texts[0]


def _keyless_digest(models) -> str:
    """The forger's checksum: a plain SHA-256 of the models (the old self-checksum, which
    anyone holding the cache can recompute)."""
    import hashlib

    digest = hashlib.sha256()
    for name in ("transcript_id", "gene_id", "chrom", "strand", "biotype"):
        values = [str(v) for v in getattr(models, name).tolist()]
        digest.update(f"{name}:{len(values)}:".encode())
        digest.update(np.fromiter(map(len, values), dtype="<i8", count=len(values)).tobytes())
        digest.update("".join(values).encode("utf-8", "surrogatepass"))
    for name in ("exon_offsets", "exon_start", "exon_end", "cds_offsets", "cds_start",
                 "cds_end"):
        values = np.ascontiguousarray(getattr(models, name), dtype="<i8")
        digest.update(f"{name}:{len(values)}:".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()


def _forge(cache: Path, metadata: dict, models_from: Path | None = None,
           shift: int = 1_707_000) -> tuple[dict, object]:
    """Rewrite ``cache`` with ``metadata`` (a dict) and its first CDS end moved by ``shift``
    (models taken from the cache at ``models_from`` when given); returns the metadata
    written and the forged models."""
    import json

    import pyarrow as pa

    table = pq.read_table(models_from or cache)
    ends = table.column("cds_end").combine_chunks()
    values = ends.flatten().to_numpy().copy()
    values[0] += shift
    table = table.set_column(table.schema.get_field_index("cds_end"), "cds_end",
                             pa.LargeListArray.from_arrays(ends.offsets, pa.array(values)))
    models = cache_module._models_from_table(table)
    pq.write_table(table.replace_schema_metadata(
        {METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()}), cache)
    return metadata, models


def _metadata(cache: Path) -> dict:
    import json

    return json.loads(pq.read_schema(cache).metadata[METADATA_KEY])


def test_forged_cache_with_a_recomputed_self_checksum_is_rebuilt(
        gtf_copy: Path, tmp_path: Path, parse_counter: list[Path]) -> None:
    """Issue 21.11: values changed and every digest field recomputed from the cache alone
    (a plain SHA-256 of the models, as the old self-checksum was): not trusted."""
    cache = tmp_path / "forged.parquet"
    load_transcript_models(gtf_copy, cache)
    metadata = _metadata(cache)
    _, forged = _forge(cache, metadata)
    digest_fields = [k for k, v in metadata.items()
                     if isinstance(v, str) and len(v) == 64 and k != "gtf"] or ["content_sha256"]
    for field in digest_fields:
        metadata[field] = _keyless_digest(forged)
    _forge(cache, metadata, shift=0)
    _rebuilds(gtf_copy, cache, parse_counter, "checksum")


def test_cache_file_does_not_hold_the_gtf_checksum(gtf_copy: Path, tmp_path: Path) -> None:
    """The GTF's SHA-256 keys the cache's checksum, so it must not be readable from the
    cache (in hex or raw bytes)."""
    cache = tmp_path / "c.parquet"
    load_transcript_models(gtf_copy, cache)
    sha = cache_module.gtf_fingerprint(gtf_copy)["sha256"]
    data = cache.read_bytes()
    assert sha.encode() not in data and bytes.fromhex(sha) not in data


def test_cache_from_another_gtf_with_this_gtfs_metadata_cannot_pass(
        gtf_copy: Path, tmp_path: Path, parse_counter: list[Path]) -> None:
    """Models of another GTF's cache under the metadata of this GTF's genuine cache, the
    checksum recomputed with every key the two cache files offer: all rebuilt."""
    other = tmp_path / "other.gtf"
    write_gtf(other, ['chr1\tX\texon\t1\t9\t.\t+\t.\tgene_id "G"; transcript_id "T";',
                      'chr1\tX\tCDS\t2\t8\t.\t+\t0\tgene_id "G"; transcript_id "T";'])
    foreign, cache = tmp_path / "foreign.parquet", tmp_path / "this.parquet"
    load_transcript_models(other, foreign)
    load_transcript_models(gtf_copy, cache)
    genuine = _metadata(cache)
    keys = {v for meta in (genuine, _metadata(foreign)) for v in meta.values()
            if isinstance(v, str)}
    candidates = [k for k in keys if len(k) % 2 == 0 and all(c in "0123456789abcdef" for c in k)]
    assert candidates  # the caches' own hex fields (ids, checksums) are tried as keys
    for key in candidates:
        _, models = _forge(cache, dict(genuine), models_from=foreign, shift=0)
        _forge(cache, {**genuine, "content_hmac": cache_module.models_digest(models, key)},
               models_from=foreign, shift=0)
        _rebuilds(gtf_copy, cache, parse_counter, "checksum")


def test_whoever_has_the_gtf_can_write_a_passing_cache(gtf_copy: Path, tmp_path: Path,
                                                       parse_counter: list[Path]) -> None:
    """Integrity, not authenticity (docs/structure.md): the checksum key is the GTF's own
    SHA-256, so anyone who can read the GTF and write the cache can make one pass."""
    cache = tmp_path / "c.parquet"
    load_transcript_models(gtf_copy, cache)
    metadata, forged = _forge(cache, _metadata(cache))
    sha = cache_module.gtf_fingerprint(gtf_copy)["sha256"]
    _forge(cache, {**metadata, "content_hmac": cache_module.models_digest(forged, sha)},
           shift=0)
    before = len(parse_counter)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        models = load_transcript_models(gtf_copy, cache)
    assert len(parse_counter) == before and _same(models, forged)
