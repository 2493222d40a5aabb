"""Vectorised operations on per-transcript interval lists stored as CSR arrays (numpy).

A *CSR interval set* is ``(offsets, start, end)``: the intervals of item ``i`` are
``start[offsets[i]:offsets[i+1]]`` / ``end[...]``, int64, 1-based inclusive, sorted by
(start, end) within each item. Coordinates must be below 2**32 (genomes are).
"""

from __future__ import annotations

import numpy as np

Csr = tuple[np.ndarray, np.ndarray, np.ndarray]

_SHIFT = np.int64(32)


def lengths(offsets: np.ndarray) -> np.ndarray:
    """Number of intervals per item, int64 (n,)."""
    return np.diff(offsets)


def offsets_from_counts(counts: np.ndarray) -> np.ndarray:
    """CSR offsets (n + 1,) from per-item counts (n,)."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` for each (s, c), int64 (sum(counts),)."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    item_begin = np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(np.asarray(starts, dtype=np.int64), counts) + (
        np.arange(total, dtype=np.int64) - item_begin)


def owner(offsets: np.ndarray) -> np.ndarray:
    """Item index of every interval, int64 (offsets[-1],)."""
    return np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), lengths(offsets))


def take(csr: Csr, items: np.ndarray) -> Csr:
    """The interval lists of ``items`` (in that order) as a new CSR."""
    offsets, start, end = csr
    counts = offsets[items + 1] - offsets[items]
    picked = ranges(offsets[items], counts)
    return offsets_from_counts(counts), start[picked], end[picked]


def unique(csr: Csr) -> Csr:
    """Drop repeated (start, end) within each item (input sorted, so repeats are adjacent)."""
    offsets, start, end = csr
    if len(start) == 0:
        return csr
    item = owner(offsets)
    keep = np.ones(len(start), dtype=bool)
    keep[1:] = (item[1:] != item[:-1]) | (start[1:] != start[:-1]) | (end[1:] != end[:-1])
    counts = np.bincount(item[keep], minlength=len(offsets) - 1)
    return offsets_from_counts(counts), start[keep], end[keep]


def from_items(item: np.ndarray, start: np.ndarray, end: np.ndarray, n_items: int) -> Csr:
    """CSR from unordered (item, start, end) triples, sorted by (item, start, end)."""
    order = np.lexsort((end, start, item))
    counts = np.bincount(item, minlength=n_items)
    return offsets_from_counts(counts), start[order], end[order]


def interior(csr: Csr) -> Csr:
    """All intervals but the first and last of each item (nothing when it has <= 2)."""
    offsets, start, end = csr
    n = lengths(offsets)
    counts = np.where(n > 2, n - 2, 0)
    picked = ranges(offsets[:-1] + 1, counts)
    return offsets_from_counts(counts), start[picked], end[picked]


def gaps(csr: Csr) -> Csr:
    """Gaps between consecutive intervals of each item (introns between exons).

    Input should be unique intervals; gaps of zero or negative length (touching or
    overlapping intervals) are dropped.
    """
    offsets, start, end = csr
    if len(start) == 0:
        return offsets, start, end
    item = owner(offsets)
    same = item[1:] == item[:-1]
    g_start = end[:-1] + 1
    g_end = start[1:] - 1
    keep = same & (g_start <= g_end)
    counts = np.bincount(item[1:][keep], minlength=len(offsets) - 1)
    return offsets_from_counts(counts), g_start[keep], g_end[keep]


def pair_intersections(csr: Csr, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Number of identical intervals shared by items ``left[p]`` and ``right[p]``.

    ``csr`` must hold unique intervals per item. Returns int64 (P,).
    """
    offsets, start, end = csr
    n_pairs = len(left)
    count_l = offsets[left + 1] - offsets[left]
    count_r = offsets[right + 1] - offsets[right]
    idx = np.concatenate([ranges(offsets[left], count_l), ranges(offsets[right], count_r)])
    pair = np.concatenate([np.repeat(np.arange(n_pairs), count_l),
                           np.repeat(np.arange(n_pairs), count_r)])
    s, e = start[idx], end[idx]
    order = np.lexsort((e, s, pair))
    pair, s, e = pair[order], s[order], e[order]
    same = (pair[1:] == pair[:-1]) & (s[1:] == s[:-1]) & (e[1:] == e[:-1])
    return np.bincount(pair[1:][same], minlength=n_pairs).astype(np.int64)


def set_equal(csr: Csr, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Whether items ``left[p]`` and ``right[p]`` hold the same set of intervals (bool (P,))."""
    offsets = csr[0]
    count_l = offsets[left + 1] - offsets[left]
    count_r = offsets[right + 1] - offsets[right]
    shared = pair_intersections(csr, left, right)
    return (count_l == count_r) & (shared == count_l)


def merge_overlapping(csr: Csr) -> Csr:
    """Union of each item's intervals as disjoint, non-touching, sorted intervals."""
    offsets, start, end = csr
    if len(start) == 0:
        return csr
    item = owner(offsets)
    key_start = (item << _SHIFT) | start
    key_end = (item << _SHIFT) | end
    reach = np.maximum.accumulate(key_end)
    new = np.ones(len(start), dtype=bool)
    new[1:] = key_start[1:] > reach[:-1] + 1
    group = np.cumsum(new) - 1
    m_start = start[new]
    m_end = np.zeros(int(group[-1]) + 1, dtype=np.int64)
    np.maximum.at(m_end, group, end)
    counts = np.bincount(item[new], minlength=len(offsets) - 1)
    return offsets_from_counts(counts), m_start, m_end


def subtract(blocks: Csr, cover: Csr) -> Csr:
    """Per block, the maximal runs of its bases not covered by the item's ``cover``.

    ``blocks`` (e.g. exons, duplicates allowed) and ``cover`` (e.g. CDS) index the same
    items. Returns the pieces per item, in block order (the reference's UTR blocks).
    """
    b_off, b_start, b_end = blocks
    m_off, m_start, m_end = merge_overlapping(cover)
    n_items = len(b_off) - 1
    item = owner(b_off)
    m_item = owner(m_off)
    mk_start = (m_item << _SHIFT) | m_start
    mk_end = (m_item << _SHIFT) | m_end
    first = np.searchsorted(mk_end, (item << _SHIFT) | b_start, side="left")
    last = np.searchsorted(mk_start, (item << _SHIFT) | b_end, side="right") - 1
    n_cover = np.maximum(last - first + 1, 0)
    n_pieces = n_cover + 1
    block = np.repeat(np.arange(len(b_start)), n_pieces)
    q = ranges(np.zeros(len(b_start), dtype=np.int64), n_pieces)
    k = n_cover[block]
    base = first[block]
    with np.errstate(invalid="ignore"):
        prev_end = m_end[np.clip(base + q - 1, 0, max(len(m_end) - 1, 0))] if len(m_end) \
            else np.zeros(len(q), dtype=np.int64)
        next_start = m_start[np.clip(base + q, 0, max(len(m_start) - 1, 0))] if len(m_start) \
            else np.zeros(len(q), dtype=np.int64)
    p_start = np.where(q == 0, b_start[block], prev_end + 1)
    p_end = np.where(q == k, b_end[block], next_start - 1)
    keep = p_start <= p_end
    counts = np.bincount(item[block[keep]], minlength=n_items)
    return offsets_from_counts(counts), p_start[keep], p_end[keep]


def clipped_length(csr: Csr, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Per item, the number of bases of its intervals inside [low[i], high[i]] (int64 (n,))."""
    offsets, start, end = csr
    item = owner(offsets)
    piece = np.minimum(end, high[item]) - np.maximum(start, low[item]) + 1
    return np.bincount(item, weights=np.maximum(piece, 0),
                       minlength=len(offsets) - 1).astype(np.int64)


def cross(count_left: np.ndarray, count_right: np.ndarray) -> tuple[np.ndarray, ...]:
    """All (i, j) combinations per pair: returns (pair, i, j), each int64 of length
    sum(count_left * count_right); i indexes the left item's list, j the right's."""
    sizes = count_left * count_right
    pair = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    k = ranges(np.zeros(len(sizes), dtype=np.int64), sizes)
    width = count_right[pair]
    return pair, k // np.maximum(width, 1), k % np.maximum(width, 1)
