"""File helpers shared by the tests: a byte-for-byte snapshot of a folder, a writable copy
of a folder, a GTF writer, and a counter of the parquet reads polars makes."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Iterable
from pathlib import Path


def snapshot(root: Path, pattern: str = "*") -> dict[str, bytes]:
    """Every file under ``root`` matching ``pattern`` (searched recursively), as its path
    relative to ``root`` (posix) -> its bytes: a byte-for-byte fingerprint of a folder."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob(pattern)) if p.is_file()}


def writable_copy(source: Path, target: Path) -> Path:
    """Copy the folder ``source`` (e.g. the read-only reference artifact) to ``target`` with
    its files made writable (0o644); returns ``target``."""
    shutil.copytree(source, target)
    for p in target.iterdir():
        p.chmod(0o644)
    return target


def write_gtf(path: Path, lines: Iterable[str], eol: str = "\n") -> Path:
    """Write ``lines`` (GTF records or comments, without line ends), each ended by ``eol``,
    to ``path``; gzip-compressed when the name ends in ``.gz``. Returns ``path``."""
    data = "".join(line + eol for line in lines).encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def count_polars_reads(monkeypatch) -> list[int]:
    """Patch ``polars.LazyFrame.collect`` (through pytest's ``monkeypatch``) to record the
    width of every frame it returns; the list fills as the code under test reads parquet
    (from any thread)."""
    import polars as pl

    widths: list[int] = []
    original = pl.LazyFrame.collect

    def counting_collect(self, *args, **kwargs):
        frame = original(self, *args, **kwargs)
        widths.append(frame.width)
        return frame

    monkeypatch.setattr(pl.LazyFrame, "collect", counting_collect)
    return widths
