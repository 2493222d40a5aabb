"""Structural comparison of transcript pairs, all pairs at once (numpy, no per-pair loop).

``compare_pairs(models, left, right)`` returns one array per label, each of shape (P,):
the reference's 10 labels (§14.3), our extra labels (docs/structure.md), and the per-side
``nmd_sensitive_left`` / ``nmd_sensitive_right`` (a property of each transcript).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import intervals as iv
from .labels import NMD_DISTANCE_NT, SPLICING_EVENTS
from .models import TranscriptModels

#: cap on exon x exon (and intron x intron) combinations held at once
_MAX_COMBINATIONS = 1 << 22
_NO_COORD = np.int64(-1)


def compare_pairs(models: TranscriptModels, left: np.ndarray, right: np.ndarray
                  ) -> dict[str, np.ndarray]:
    """Labels of the pairs (models rows ``left[p]``, ``right[p]``), int64 row indices (P,).

    Booleans are numpy bool, deltas/fractions float64, ``splicing_class`` an int64 code
    into ``SPLICING_EVENTS`` (-1 none, len(SPLICING_EVENTS) complex).
    """
    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    n_exons = iv.lengths(models.exon_offsets)
    sizes = n_exons[left] * n_exons[right]
    parts: list[dict[str, np.ndarray]] = []
    begin = 0
    while begin < len(left) or not parts:
        end = begin + 1
        budget = sizes[begin] if begin < len(left) else 0
        while end < len(left) and budget + sizes[end] <= _MAX_COMBINATIONS:
            budget += sizes[end]
            end += 1
        end = min(end, len(left))
        parts.append(_compare_chunk(models, left[begin:end], right[begin:end]))
        begin = end
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _compare_chunk(models: TranscriptModels, left: np.ndarray, right: np.ndarray
                   ) -> dict[str, np.ndarray]:
    items, local = np.unique(np.concatenate([left, right]), return_inverse=True)
    a, b = local[: len(left)], local[len(left):]
    tx = _TranscriptFeatures(models, items)

    first_l, first_r = tx.first_exon[a], tx.first_exon[b]
    last_l, last_r = tx.last_exon[a], tx.last_exon[b]
    n_union = tx.n_exons[a] + tx.n_exons[b]
    shared = iv.pair_intersections(tx.exons, a, b)
    union = n_union - shared
    with np.errstate(divide="ignore", invalid="ignore"):
        jaccard = np.where(union == 0, 1.0, shared / np.maximum(union, 1))
    both_coding = tx.coding[a] & tx.coding[b]
    events = _splicing_events(tx, a, b)
    n_events = events.sum(axis=1)
    event_code = np.where(n_events == 0, -1,
                          np.where(n_events == 1, events.argmax(axis=1), len(SPLICING_EVENTS)))
    nan = np.full(len(a), np.nan)
    return {
        "first_exon_changed": np.any(first_l != first_r, axis=1),
        "last_exon_changed": np.any(last_l != last_r, axis=1),
        "internal_exon_difference": ~iv.set_equal(tx.internal, a, b),
        "cds_changed": ~iv.set_equal(tx.cds, a, b),
        "utr_changed": both_coding & ~iv.set_equal(tx.utr, a, b),
        "biotype_switch": tx.biotype[a] != tx.biotype[b],
        "coding_status_change": tx.coding[a] != tx.coding[b],
        "transcript_length_delta": np.abs(tx.exon_length[a] - tx.exon_length[b]).astype(float),
        "cds_length_delta": np.abs(tx.cds_length[a] - tx.cds_length[b]).astype(float),
        "shared_exon_fraction": jaccard.astype(np.float64),
        "tss_changed": tx.tss[a] != tx.tss[b],
        "tts_changed": tx.tts[a] != tx.tts[b],
        "exon_count_delta": np.abs(tx.n_exons[a] - tx.n_exons[b]).astype(float),
        "intron_retention": events[:, SPLICING_EVENTS.index("intron_retention")],
        "splicing_class": event_code.astype(np.int64),
        "utr5_length_delta": np.where(both_coding, np.abs(tx.utr5[a] - tx.utr5[b]), nan),
        "utr3_length_delta": np.where(both_coding, np.abs(tx.utr3[a] - tx.utr3[b]), nan),
        "nmd_sensitive_left": tx.nmd[a],
        "nmd_sensitive_right": tx.nmd[b],
    }


class _TranscriptFeatures:
    """Per-transcript derived intervals and scalars for the transcripts of one chunk."""

    def __init__(self, models: TranscriptModels, items: np.ndarray) -> None:
        raw_exons = iv.take((models.exon_offsets, models.exon_start, models.exon_end), items)
        raw_cds = iv.take((models.cds_offsets, models.cds_start, models.cds_end), items)
        self.minus = models.strand[items] == "-"
        self.biotype = models.biotype[items]
        self.exons = iv.unique(raw_exons)
        self.n_exons = iv.lengths(self.exons[0])
        self.internal = iv.unique(iv.interior(raw_exons))
        self.cds = iv.unique(raw_cds)
        self.coding = iv.lengths(raw_cds[0]) > 0
        self.exon_length = _summed_length(raw_exons)
        self.cds_length = _summed_length(raw_cds)
        n_items = len(items)
        pieces = iv.subtract(raw_exons, raw_cds)
        self.utr = iv.unique(iv.from_items(iv.owner(pieces[0]), pieces[1], pieces[2], n_items))
        self.introns = iv.gaps(self.exons)

        # oriented first / last exon of the raw list (as the reference: strand "-" reversed)
        off, start, end = raw_exons
        count = iv.lengths(off)
        has = count > 0
        lo = np.minimum(off[:-1], max(len(start) - 1, 0))
        hi = np.maximum(off[1:] - 1, 0)
        low_exon = np.where(has[:, None], _pairs(start, end, lo), _NO_COORD)
        high_exon = np.where(has[:, None], _pairs(start, end, hi), _NO_COORD)
        self.first_exon = np.where(self.minus[:, None], high_exon, low_exon)
        self.last_exon = np.where(self.minus[:, None], low_exon, high_exon)

        # transcript ends: lowest start and highest end of the exons
        e_off, e_start, e_end = self.exons
        min_start = np.full(n_items, _NO_COORD)
        max_end = np.full(n_items, _NO_COORD)
        owner = iv.owner(e_off)
        if len(e_start):
            min_start[has] = e_start[e_off[:-1][has]]
            np.maximum.at(max_end, owner, e_end)
        self.tss = np.where(self.minus, max_end, min_start)
        self.tts = np.where(self.minus, min_start, max_end)

        # UTR lengths and NMD from the CDS span
        c_off, c_start, c_end = self.cds
        cds_lo = np.full(n_items, np.iinfo(np.int64).max // 4)
        cds_hi = np.full(n_items, -1, dtype=np.int64)
        if len(c_start):
            c_owner = iv.owner(c_off)
            np.minimum.at(cds_lo, c_owner, c_start)
            np.maximum.at(cds_hi, c_owner, c_end)
        far = np.full(n_items, np.iinfo(np.int64).max // 4)
        below = iv.clipped_length(self.exons, np.full(n_items, -far), cds_lo - 1)
        above = iv.clipped_length(self.exons, cds_hi + 1, far)
        self.utr5 = np.where(self.minus, above, below).astype(float)
        self.utr3 = np.where(self.minus, below, above).astype(float)
        # exonic bases between the CDS end and the last exon-exon junction
        last_lo = np.clip(e_off[1:] - 1, 0, max(len(e_start) - 1, 0))
        first_lo = np.minimum(e_off[:-1], max(len(e_start) - 1, 0))
        if len(e_start):
            last_part = np.maximum(e_end[last_lo] - np.maximum(e_start[last_lo], cds_hi + 1)
                                   + 1, 0)
            first_part = np.maximum(np.minimum(e_end[first_lo], cds_lo - 1)
                                    - e_start[first_lo] + 1, 0)
        else:
            last_part = first_part = np.zeros(n_items, dtype=np.int64)
        downstream = np.where(self.minus, below - first_part, above - last_part)
        self.nmd = self.coding & (self.n_exons >= 2) & (downstream > NMD_DISTANCE_NT)


def _pairs(start: np.ndarray, end: np.ndarray, idx: np.ndarray) -> np.ndarray:
    if len(start) == 0:
        return np.full((len(idx), 2), _NO_COORD)
    return np.stack([start[idx], end[idx]], axis=1)


def _summed_length(csr: iv.Csr) -> np.ndarray:
    offsets, start, end = csr
    return np.bincount(iv.owner(offsets), weights=end - start + 1,
                       minlength=len(offsets) - 1).astype(np.int64)


def _any_per(index: np.ndarray, flags: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(index[flags], minlength=size) > 0


def _splicing_events(tx: _TranscriptFeatures, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P, len(SPLICING_EVENTS)) bool: which kinds of splicing event separate each pair."""
    n_pairs = len(a)
    n_ex = tx.n_exons
    retention, holds = _intron_retention(tx, a, b)
    ep = _exon_pairs(tx, a, b)
    donor, acceptor = _alternative_splice_sites(tx, a, b, ep, holds)
    has_exons = (n_ex[a] > 0) & (n_ex[b] > 0)

    events = np.zeros((n_pairs, len(SPLICING_EVENTS)), dtype=bool)
    events[:, 0] = _exon_skipping(tx, a, b)
    events[:, 1] = _any_per(ep.pair, _mutually_exclusive(tx, a, b, ep), n_pairs)
    events[:, 2] = _any_per(ep.pair, donor, n_pairs)
    events[:, 3] = _any_per(ep.pair, acceptor, n_pairs)
    events[:, 4] = ~_overlaps(tx.first_exon[a], tx.first_exon[b]) & has_exons
    events[:, 5] = ~_overlaps(tx.last_exon[a], tx.last_exon[b]) & has_exons
    events[:, 6] = retention
    events[iv.set_equal(tx.exons, a, b)] = False
    return events


@dataclass
class _ExonPairs:
    """Every (exon i of a, exon j of b) of every pair: pair index, i, j, the two exons' rows
    in the exon table, and whether they overlap."""

    pair: np.ndarray
    i: np.ndarray
    j: np.ndarray
    ea: np.ndarray
    eb: np.ndarray
    overlap: np.ndarray


def _exon_pairs(tx: _TranscriptFeatures, a: np.ndarray, b: np.ndarray) -> _ExonPairs:
    e_off, e_start, e_end = tx.exons
    n_ex = tx.n_exons
    pair, i, j = iv.cross(n_ex[a], n_ex[b])
    ea = e_off[a][pair] + i
    eb = e_off[b][pair] + j
    overlap = (e_start[ea] <= e_end[eb]) & (e_start[eb] <= e_end[ea])
    return _ExonPairs(pair, i, j, ea, eb, overlap)


def _intron_retention(tx: _TranscriptFeatures, a: np.ndarray, b: np.ndarray
                      ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Intron retention per pair: an exon of one transcript contains a whole intron of the
    other. Also which exons hold one, per (pair, exon) row of each side ("a", "b", rows as
    :func:`iv.offsets_from_counts` of the side's exon counts): the same exon may meet other
    partners elsewhere."""
    e_off, e_start, e_end = tx.exons
    i_off, i_start, i_end = tx.introns
    n_ex = tx.n_exons
    n_in = iv.lengths(i_off)
    holds = {}
    retention = np.zeros(len(a), dtype=bool)
    for side, x, y in (("a", a, b), ("b", b, a)):
        rows = iv.offsets_from_counts(n_ex[x])
        pair, i, j = iv.cross(n_ex[x], n_in[y])
        ex = e_off[x][pair] + i
        it = i_off[y][pair] + j
        hold = (e_start[ex] <= i_start[it]) & (i_end[it] <= e_end[ex])
        holds[side] = _any_per(rows[pair] + i, hold, int(rows[-1]))
        retention |= _any_per(pair, hold, len(a))
    return retention, holds


def _alternative_splice_sites(tx: _TranscriptFeatures, a: np.ndarray, b: np.ndarray,
                              ep: _ExonPairs, holds: dict[str, np.ndarray]
                              ) -> tuple[np.ndarray, np.ndarray]:
    """Alternative 5' (donor) / 3' (acceptor) splice sites per exon pair: overlapping exons
    (neither retaining an intron) that share one boundary and differ at the other, where
    both differing boundaries are splice sites (not a transcript end); strand-aware."""
    _, e_start, e_end = tx.exons
    n_ex = tx.n_exons
    pair, i, j, ea, eb = ep.pair, ep.i, ep.j, ep.ea, ep.eb
    rows_a = iv.offsets_from_counts(n_ex[a])
    rows_b = iv.offsets_from_counts(n_ex[b])
    same_start = e_start[ea] == e_start[eb]
    same_end = e_end[ea] == e_end[eb]
    plain = ep.overlap & ~holds["a"][rows_a[pair] + i] & ~holds["b"][rows_b[pair] + j]
    start_moves = plain & same_end & ~same_start & (i > 0) & (j > 0)
    end_moves = plain & same_start & ~same_end & (i < n_ex[a][pair] - 1) & (
        j < n_ex[b][pair] - 1)
    minus = tx.minus[a][pair]
    donor = (end_moves & ~minus) | (start_moves & minus)
    acceptor = (start_moves & ~minus) | (end_moves & minus)
    return donor, acceptor


def _exon_skipping(tx: _TranscriptFeatures, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exon skipping per pair: an intron of one transcript whose ends both start/end an
    intron of the other, which has exon(s) in between."""
    i_off, i_start, i_end = tx.introns
    n_in = iv.lengths(i_off)
    n_pairs = len(a)
    skipping = np.zeros(n_pairs, dtype=bool)
    for x, y in ((a, b), (b, a)):
        pair_i, p, q = iv.cross(n_in[x], n_in[y])
        ix = i_off[x][pair_i] + p
        iy = i_off[y][pair_i] + q
        s_eq = i_start[ix] == i_start[iy]
        e_eq = i_end[ix] == i_end[iy]
        rows = iv.offsets_from_counts(n_in[x])
        row = rows[pair_i] + p
        size = int(rows[-1])
        skipped = _any_per(row, s_eq & ~e_eq, size) & _any_per(row, e_eq & ~s_eq, size)
        skip_owner = np.repeat(np.arange(n_pairs), n_in[x])
        skipping |= _any_per(skip_owner, skipped, n_pairs)
    return skipping


def _mutually_exclusive(tx: _TranscriptFeatures, a: np.ndarray, b: np.ndarray,
                        ep: _ExonPairs) -> np.ndarray:
    """Mutually exclusive exons per exon pair: one internal exon each, between the same two
    flanking exon ends, not overlapping each other."""
    _, e_start, e_end = tx.exons
    n_ex = tx.n_exons
    i, j, ea, eb = ep.i, ep.j, ep.ea, ep.eb
    inner = (i > 0) & (j > 0) & (i < n_ex[a][ep.pair] - 1) & (j < n_ex[b][ep.pair] - 1)
    safe = np.clip(ea - 1, 0, None), np.clip(ea + 1, 0, len(e_start) - 1)
    safe_b = np.clip(eb - 1, 0, None), np.clip(eb + 1, 0, len(e_start) - 1)
    same_flanks = (e_end[safe[0]] == e_end[safe_b[0]]) & (
        e_start[safe[1]] == e_start[safe_b[1]])
    return inner & same_flanks & ~ep.overlap


def _overlaps(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x[:, 0] <= y[:, 1]) & (y[:, 0] <= x[:, 1])
