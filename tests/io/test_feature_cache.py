"""The feature-matrix cache (isograph_gpu.io.feature_cache): the same matrix, ids and
metadata as the table it was built from, in every layout and format, loaded and streamed;
rebuilt (with a warning) when the table changed, even with the same size and mtime, or
when the cache is damaged; never written over a file that is not a cache."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _helpers.explain import explain_api, invoke_explain
from conftest import EXPECTED, assert_table_matches

from isograph_gpu import ExplainConfig
from isograph_gpu.errors import InputError, OutputError
from isograph_gpu.io import feature_cache
from isograph_gpu.io.feature_cache import CachedFeatureBlocks, CachedFeatureTable
from isograph_gpu.io.feature_tables import open_feature_table

CORE = ["gene_driver_table", "transcript_polarity_table", "high_vs_low_table"]


def _samples_by_features() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    values = rng.normal(size=(12, 9)) * 10.0 ** rng.integers(-30, 30, size=(12, 9))
    values[2, 3] = np.nan
    values[5, 0] = np.inf
    frame = pd.DataFrame(values, columns=[f"ENST{i:011d}.1" for i in range(9)])
    frame.insert(0, "sample_id", [f"{i:06d}" for i in (5, 3, 11, 0, 1, 2, 4, 6, 7, 8, 9, 10)])
    return frame


def _write(tmp_path: Path, form: str) -> Path:
    frame = _samples_by_features()
    if form == "parquet":
        path = tmp_path / "table.parquet"
        frame.to_parquet(path, index=False)
    elif form == "csv":
        path = tmp_path / "table.csv"
        frame.to_csv(path, index=False, float_format="%.17g")
    elif form == "fbs-parquet":  # features x samples with its own metadata
        path = tmp_path / "table.parquet"
        by_feature = frame.set_index("sample_id").T.rename_axis("feature_id").reset_index()
        by_feature.insert(1, "gene_id", [f"G{i // 3}" for i in range(9)])
        by_feature.insert(2, "feature_type", "transcript_usage")
        by_feature.to_parquet(path, index=False)
    elif form == "fbs-tsv":
        path = tmp_path / "table.tsv"
        by_feature = frame.set_index("sample_id").T.rename_axis("feature_id").reset_index()
        by_feature.to_csv(path, sep="\t", index=False, float_format="%.17g")
    else:  # h5ad
        anndata = pytest.importorskip("anndata")
        path = tmp_path / "table.h5ad"
        ids = frame.pop("sample_id")
        var = pd.DataFrame({"gene_id": [f"G{i // 3}" for i in range(9)],
                            "feature_type": "transcript_usage"}, index=frame.columns)
        anndata.AnnData(frame.to_numpy(), obs=pd.DataFrame(index=ids.to_numpy()),
                        var=var).write_h5ad(path)
    return path


FORMS = ["parquet", "csv", "fbs-parquet", "fbs-tsv", "h5ad"]


def _open(path: Path, cache: Path | None, stream: bool | None):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a fresh or valid cache warns nothing
        return open_feature_table(path, stream=stream, cache=cache)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("form", FORMS)
def test_cached_table_equals_the_table(tmp_path, form, stream):
    path = _write(tmp_path, form)
    plain = open_feature_table(path, stream=False)
    cache = tmp_path / "features.igcache"
    columns = plain.columns[::2] + plain.columns[1::2][::-1][:2]
    rows = np.array([3, 0, 7, 1, 11, 2])
    want = np.asarray(plain.matrix(columns, rows))
    for run in ("first", "rerun"):
        table = _open(path, cache, stream)
        assert isinstance(table, CachedFeatureTable), run
        assert table.sample_ids.tolist() == plain.sample_ids.tolist()
        assert table.columns == plain.columns
        got = table.matrix(columns, rows)
        assert isinstance(got, CachedFeatureBlocks) is stream
        np.testing.assert_array_equal(np.asarray(got), want)
        meta, own = table.feature_meta(), plain.feature_meta()
        assert (meta is None) is (own is None)
        if own is not None:
            pd.testing.assert_frame_equal(meta, own, check_dtype=False)
        if stream:  # the reader methods the engine uses: blocks, parts, take
            assert got.shape == want.shape
            np.testing.assert_array_equal(got[:, 1:4], want[:, 1:4])
            decode, finish = got.read_parts(2, 5)
            block = finish(decode())
            assert block.flags.f_contiguous and block.dtype == np.float64
            np.testing.assert_array_equal(block, want[:, 2:5])
            decode, finish = got.read_parts(5, got.shape[1])  # drops the pages before
            np.testing.assert_array_equal(finish(decode()), want[:, 5:])
            np.testing.assert_array_equal(got[:, 0:5], want[:, 0:5])  # read back again
            np.testing.assert_array_equal(got.take([4, 0, 4]), want[:, [4, 0, 4]])
            assert got.read_columns >= 1 and got.read_ahead_columns >= 1


def test_mapped_matrix_is_the_file_when_no_gather_is_needed(tmp_path):
    path = _write(tmp_path, "parquet")
    cache = tmp_path / "c.igcache"
    _open(path, cache, False)
    table = _open(path, cache, False)
    x = table.matrix(table.columns, np.arange(len(table.sample_ids)))
    assert x.flags.f_contiguous and isinstance(x.base, np.memmap | np.ndarray)
    assert np.shares_memory(x, table._data)  # a view of the mapping, no copy


def _rewrite_same_size_and_mtime(path: Path) -> None:
    """Change one digit of the CSV, keeping its size and mtime (a naive cache key of size
    and mtime would keep the old cache)."""
    stat = path.stat()
    text = path.read_text()
    head, body = text.split("\n", 1)
    i = next(k for k, ch in enumerate(body) if ch in "123456789" and k > body.index(","))
    body = body[:i] + ("2" if body[i] != "2" else "3") + body[i + 1:]
    path.write_text(head + "\n" + body)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns


@pytest.mark.parametrize("stream", [False, True])
def test_changed_table_with_same_size_and_mtime_rebuilds(tmp_path, stream):
    path = _write(tmp_path, "csv")
    cache = tmp_path / "c.igcache"
    _open(path, cache, stream)
    _rewrite_same_size_and_mtime(path)
    with pytest.warns(UserWarning, match="different or changed feature table"):
        table = open_feature_table(path, stream=stream, cache=cache)
    plain = open_feature_table(path, stream=False)
    rows = np.arange(len(plain.sample_ids))
    np.testing.assert_array_equal(np.asarray(table.matrix(plain.columns, rows)),
                                  plain.matrix(plain.columns, rows))
    _open(path, cache, stream)  # the rebuilt cache is valid


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x01]))


@pytest.mark.parametrize("damage, reason", [
    ("data", "data digest"), ("header", "damaged header"), ("truncate", "truncated|size"),
    ("ids", "damaged header")])
def test_damaged_cache_is_a_warning_and_a_rebuild(tmp_path, damage, reason):
    path = _write(tmp_path, "parquet")
    cache = tmp_path / "c.igcache"
    _open(path, cache, False)
    size = cache.stat().st_size
    if damage == "data":
        _flip(cache, size - 8 * 5 + 3)  # inside one stored value
    elif damage == "header":
        _flip(cache, feature_cache._PREFIX.size + 3)
    elif damage == "ids":  # a valid-looking id changed: caught by the header digest
        raw = cache.read_bytes()
        at = raw.index(b"000005")
        cache.write_bytes(raw[:at] + b"000009" + raw[at + 6:])
    else:
        with open(cache, "r+b") as fh:
            fh.truncate(size - 8)
    with pytest.warns(UserWarning, match=reason):
        table = open_feature_table(path, stream=False, cache=cache)
    plain = open_feature_table(path, stream=False)
    rows = np.arange(len(plain.sample_ids))
    assert table.sample_ids.tolist() == plain.sample_ids.tolist()
    np.testing.assert_array_equal(table.matrix(plain.columns, rows),
                                  plain.matrix(plain.columns, rows))
    assert cache.stat().st_size == size  # rebuilt whole


def test_another_table_rebuilds(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    path_a, path_b = _write(first, "parquet"), _write(second, "csv")
    cache = tmp_path / "c.igcache"
    _open(path_a, cache, False)
    with pytest.warns(UserWarning, match="different or changed"):
        open_feature_table(path_b, stream=False, cache=cache)


def test_a_file_that_is_not_a_cache_is_never_written_over(tmp_path):
    path = _write(tmp_path, "parquet")
    other = tmp_path / "notes.csv"
    other.write_text("sample_id,x\nA,1\n")
    with pytest.raises(InputError, match="not an isograph-gpu feature cache"):
        open_feature_table(path, cache=other)
    assert other.read_text() == "sample_id,x\nA,1\n"
    with pytest.raises(OutputError, match="is the input"):
        open_feature_table(path, cache=path)
    link = tmp_path / "link.parquet"
    link.symlink_to(path)
    with pytest.raises(OutputError, match="is the input"):
        open_feature_table(path, cache=link)
    hard = tmp_path / "hard.parquet"
    os.link(path, hard)  # another name of the same file: the same input
    with pytest.raises(OutputError, match="is the input"):
        open_feature_table(path, cache=hard)
    with pytest.raises(InputError, match="in-memory DataFrame"):
        open_feature_table(_samples_by_features(), cache=tmp_path / "c.igcache")


def test_digest_depends_on_every_byte_not_on_threads(monkeypatch):
    data = np.random.default_rng(1).bytes(3 * 1024 + 17)
    algorithm = feature_cache.hash_algorithm()
    whole = feature_cache.content_digest(data, algorithm)
    monkeypatch.setattr(feature_cache, "HASH_SEGMENT", 1024)  # four segments
    segmented = feature_cache.content_digest(data, algorithm)
    assert segmented != whole  # the segment size is part of the digest, threads are not
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert feature_cache.content_digest(data, algorithm) == segmented
    changed = data[:100] + bytes([data[100] ^ 1]) + data[101:]
    assert feature_cache.content_digest(changed, algorithm) != segmented
    assert feature_cache.content_digest(data, "blake2b") != feature_cache.content_digest(
        changed, "blake2b")


@pytest.mark.parametrize("reading", [[], ["--stream-features", "--memory-budget", "64K"]],
                         ids=["loaded", "streamed-in-chunks"])
def test_cli_tables_equal_the_fixtures_with_the_cache(ref_inputs, tmp_path, reading):
    cache = tmp_path / "features.igcache"
    for run in ("first", "rerun"):
        out = tmp_path / run
        result = invoke_explain(ref_inputs, out, "--module-ids", "M000", "M002",
                                "--feature-cache", str(cache), *reading)
        assert result.exit_code == 0, result.output
        for module_id in ("M000", "M002"):
            for name in CORE:
                expected = pd.read_parquet(EXPECTED / "api_run" / module_id / f"{name}.parquet")
                assert_table_matches(expected, pd.read_parquet(out / module_id /
                                                               f"{name}.parquet"))
    assert feature_cache.is_feature_cache(cache)


def test_api_tables_equal_the_fixtures_from_a_csv_streamed_through_the_cache(ref_inputs,
                                                                          tmp_path):
    csv = tmp_path / "feature_table.csv"
    pd.read_parquet(ref_inputs["feature_table"]).to_csv(csv, index=False,
                                                        float_format="%.17g")
    config = ExplainConfig(device="cpu", stream_features=True, chunk_features=7,
                           feature_cache=tmp_path / "c.igcache")
    res = explain_api({**ref_inputs, "feature_table": csv}, module_ids=["M001"],
                      config=config)
    for name in CORE:
        expected = pd.read_parquet(EXPECTED / "api_run" / "M001" / f"{name}.parquet")
        assert_table_matches(expected, getattr(res["M001"], name))


def test_stream_features_on_a_csv_without_a_cache_is_refused(ref_inputs, tmp_path):
    csv = tmp_path / "feature_table.csv"
    pd.read_parquet(ref_inputs["feature_table"]).to_csv(csv, index=False)
    result = invoke_explain({**ref_inputs, "feature_table": csv}, tmp_path / "out",
                            "--stream-features")
    assert result.exit_code != 0
    assert "CSV file, which is parsed whole" in result.output
    assert "--feature-cache" in result.output
    assert not (tmp_path / "out").exists()


def test_cache_inside_the_output_dir_is_refused(ref_inputs, tmp_path):
    out = tmp_path / "out"
    result = invoke_explain(ref_inputs, out, "--feature-cache", str(out / "c.igcache"))
    assert result.exit_code != 0 and "inside the output dir" in result.output
    assert not out.exists()


def test_a_cache_beside_the_artifacts_is_written_and_reused(ref_inputs, tmp_path):
    """The cache may live in --artifact-dir: the first run writes it there and the rerun
    maps it (the artifact's own files stay refused: tests/integrity)."""
    import shutil

    artifact = tmp_path / "artifact"
    shutil.copytree(ref_inputs["artifact"], artifact)
    inputs = {**ref_inputs, "artifact": artifact}
    cache = artifact / "features.igcache"
    for i in range(2):
        result = invoke_explain(inputs, tmp_path / f"out{i}", "--module-ids", "M001",
                                "--feature-cache", str(cache))
        assert result.exit_code == 0, result.output
        assert feature_cache.is_feature_cache(cache)
    for name in CORE:
        first, rerun = (pd.read_parquet(tmp_path / f"out{i}" / "M001" / f"{name}.parquet")
                        for i in range(2))
        pd.testing.assert_frame_equal(first, rerun)


def test_blocks_pickle_as_the_cache_path(tmp_path):
    """A Dask worker maps the cache itself (isograph_gpu.distributed)."""
    import pickle

    path = _write(tmp_path, "parquet")
    table = _open(path, tmp_path / "c.igcache", True)
    blocks = table.matrix(table.columns[1:5], np.array([4, 1, 0]))
    raw = pickle.dumps(blocks)
    assert len(raw) < 4096  # the path, columns and rows, not the values
    np.testing.assert_array_equal(np.asarray(pickle.loads(raw)), np.asarray(blocks))


def _mapped_rss_kb(path: Path) -> int:
    """Resident kB of this process's mappings of ``path`` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if line[:1].isdigit() or line[:1] in "abcdef":
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc")
def test_streamed_reads_drop_the_pages_behind_them(tmp_path):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(512, 64)), columns=[f"f{j}" for j in range(64)])
    frame.insert(0, "sample_id", [f"S{i:04d}" for i in range(512)])
    path = tmp_path / "t.parquet"
    frame.to_parquet(path, index=False)
    cache = tmp_path / "c.igcache"
    _open(path, cache, True)
    table = _open(path, cache, True)
    blocks = table.matrix(table.columns, np.arange(512))
    want = frame.drop(columns="sample_id").to_numpy()
    for a in range(0, 64, 8):  # in order, as the engine reads them
        decode, finish = blocks.read_parts(a, a + 8)
        np.testing.assert_array_equal(finish(decode()), want[:, a:a + 8])
    block_kb = 512 * 8 * 8 // 1024
    assert _mapped_rss_kb(cache) <= 2 * block_kb  # the last block, not the 256 kB table
    np.testing.assert_array_equal(np.asarray(blocks), want)  # dropped pages read again


def test_a_cache_keyed_with_another_hash_is_rebuilt(tmp_path, monkeypatch):
    path = _write(tmp_path, "parquet")
    cache = tmp_path / "c.igcache"
    monkeypatch.setattr(feature_cache, "hash_algorithm", lambda: "blake2b")
    _open(path, cache, False)
    monkeypatch.setattr(feature_cache, "hash_algorithm", lambda: "xxh3_128")
    pytest.importorskip("xxhash")
    with pytest.warns(UserWarning, match="keyed with the hash 'blake2b'"):
        table = open_feature_table(path, stream=False, cache=cache)
    plain = open_feature_table(path, stream=False)
    np.testing.assert_array_equal(table.matrix(plain.columns, np.arange(12)),
                                  plain.matrix(plain.columns, np.arange(12)))


def test_hashing_releases_every_segment_once_and_keeps_the_digest(monkeypatch):
    data = np.random.default_rng(2).bytes(5 * 1024 + 100)
    algorithm = feature_cache.hash_algorithm()
    monkeypatch.setattr(feature_cache, "HASH_SEGMENT", 1024)
    released: list[tuple[int, int]] = []
    digest = feature_cache.content_digest(data, algorithm,
                                          lambda a, n: released.append((a, n)))
    assert digest == feature_cache.content_digest(data, algorithm)
    assert sorted(released) == [(a, min(1024, len(data) - a)) for a in range(0, len(data), 1024)]


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc")
def test_verifying_a_mapped_cache_leaves_its_pages_out_of_memory(tmp_path, monkeypatch):
    """The digest check of a cache reads every page of the mapping; the pages are dropped
    once hashed, so a run's resident memory does not grow by the whole cache (on a
    scheduler that counts RSS, a 6.8 GB cache would count)."""
    monkeypatch.setattr(feature_cache, "HASH_SEGMENT", 1024 * 1024)  # 8 segments
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(rng.normal(size=(512, 2048)), columns=[f"f{j}" for j in range(2048)])
    frame.insert(0, "sample_id", [f"S{i:04d}" for i in range(512)])
    path = tmp_path / "t.parquet"
    frame.to_parquet(path, index=False)
    cache = tmp_path / "c.igcache"
    _open(path, cache, True)
    table = _open(path, cache, True)  # mapped and verified
    # of the 8,192 kB of values: at most the kernel's fault-around (64 kB) per segment
    assert _mapped_rss_kb(cache) <= 8 * 64
    blocks = table.matrix(table.columns, np.arange(512))
    np.testing.assert_array_equal(np.asarray(blocks), frame.drop(columns="sample_id").to_numpy())


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc")
def test_engine_block_reads_drop_the_pages_behind_them(tmp_path):
    """Through the engine's reader (BlockReads, one group read ahead) each group's own
    finish runs, so the mapped pages behind the current groups are dropped (every
    group ran the first group's finish, which drops nothing: a 17,000 x 50,000 streamed
    run over its cache held the whole 6.8 GB mapped)."""
    from isograph_gpu.compute.block_reads import BlockReads

    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.normal(size=(512, 256)), columns=[f"f{j}" for j in range(256)])
    frame.insert(0, "sample_id", [f"S{i:04d}" for i in range(512)])
    path = tmp_path / "t.parquet"
    frame.to_parquet(path, index=False)
    cache = tmp_path / "c.igcache"
    _open(path, cache, True)
    table = _open(path, cache, True)
    blocks = table.matrix(table.columns, np.arange(512))
    want = frame.drop(columns="sample_id").to_numpy()
    reads = BlockReads(blocks, [(a, a + 16) for a in range(0, 256, 16)])
    try:
        for a in range(0, 256, 16):
            np.testing.assert_array_equal(reads[:, a:a + 16], want[:, a:a + 16])
    finally:
        reads.close()
    group_kb = 512 * 8 * 16 // 1024
    assert _mapped_rss_kb(cache) <= 3 * group_kb + 64  # of the 1,024 kB of values
