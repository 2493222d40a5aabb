"""Plain-Python oracle for structure tests: reads a GTF line by line and computes labels
from coordinates with loops and sets (independent of isograph_gpu.structure)."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path


def read_plain(path: Path) -> dict[str, dict]:
    """transcript_id -> {strand, biotype, exons: sorted list, cds: sorted list}."""
    opener = gzip.open if path.suffix == ".gz" else open
    out: dict[str, dict] = {}
    with opener(path, "rt") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            f = line.rstrip("\n").split("\t")
            if f[2] not in ("transcript", "exon", "CDS"):
                continue
            attrs = {}
            for part in f[8].split(";"):
                part = part.strip()
                if " " in part:
                    key, value = part.split(" ", 1)
                    attrs.setdefault(key, value.strip('"'))
            tid = attrs.get("transcript_id")
            if not tid:
                continue
            rec = out.setdefault(tid, {"strand": f[6], "exons": [], "cds": [],
                                       "biotype": attrs.get("transcript_type")
                                       or attrs.get("transcript_biotype", "")})
            if f[2] == "exon":
                rec["exons"].append((int(f[3]), int(f[4])))
            elif f[2] == "CDS":
                rec["cds"].append((int(f[3]), int(f[4])))
    for rec in out.values():
        rec["exons"] = sorted(set(rec["exons"]))
        rec["cds"] = sorted(set(rec["cds"]))
    return out


def introns(exons: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(a[1] + 1, b[0] - 1) for a, b in itertools.pairwise(exons) if a[1] + 1 <= b[0] - 1]


def tss(rec: dict) -> int:
    return max(e for _, e in rec["exons"]) if rec["strand"] == "-" else rec["exons"][0][0]


def tts(rec: dict) -> int:
    return rec["exons"][0][0] if rec["strand"] == "-" else max(e for _, e in rec["exons"])


def utr_lengths(rec: dict) -> tuple[int, int]:
    """(5' UTR, 3' UTR) exonic bases outside the CDS span, by base counting."""
    lo = min(s for s, _ in rec["cds"])
    hi = max(e for _, e in rec["cds"])
    bases = {p for s, e in rec["exons"] for p in range(s, e + 1)}
    below = sum(1 for p in bases if p < lo)
    above = sum(1 for p in bases if p > hi)
    return (above, below) if rec["strand"] == "-" else (below, above)


def nmd(rec: dict) -> bool:
    """CDS end more than 50 exonic nt upstream of the last exon-exon junction."""
    if not rec["cds"] or len(rec["exons"]) < 2:
        return False
    exons = rec["exons"][::-1] if rec["strand"] == "-" else rec["exons"]
    # walk in transcript orientation; count exonic bases after the CDS, before last exon
    lo = min(s for s, _ in rec["cds"])
    hi = max(e for _, e in rec["cds"])
    downstream = 0
    for s, e in exons[:-1]:
        for p in range(s, e + 1):
            if (rec["strand"] == "-" and p < lo) or (rec["strand"] != "-" and p > hi):
                downstream += 1
    return downstream > 50


def retains_intron(x: dict, y: dict) -> bool:
    return any(s <= a and b <= e for s, e in x["exons"] for a, b in introns(y["exons"]))


def skips_exon(x: dict, y: dict) -> bool:
    """x has an intron (a, b) where y has introns (a, .) and (., b) with exon(s) between."""
    iy = introns(y["exons"])
    starts = {a: b for a, b in iy}
    ends = {b: a for a, b in iy}
    return any(a in starts and b in ends and starts[a] != b for a, b in introns(x["exons"]))
