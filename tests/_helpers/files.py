"""File helpers shared by the tests: a byte-for-byte snapshot of a folder, and a GTF
writer."""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from pathlib import Path


def snapshot(root: Path, pattern: str = "*") -> dict[str, bytes]:
    """Every file under ``root`` matching ``pattern`` (searched recursively), as its path
    relative to ``root`` (posix) -> its bytes: a byte-for-byte fingerprint of a folder."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob(pattern)) if p.is_file()}


def write_gtf(path: Path, lines: Iterable[str], eol: str = "\n") -> Path:
    """Write ``lines`` (GTF records or comments, without line ends), each ended by ``eol``,
    to ``path``; gzip-compressed when the name ends in ``.gz``. Returns ``path``."""
    data = "".join(line + eol for line in lines).encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path
