"""Which rows of the LSH buckets survive: a greedy pass in keep order, decided by exact Jaccard.

Rows are visited best first (the ``keep`` order). A row is removed when an already kept row that
shares one of its LSH buckets has exact Jaccard (of the shingle sets) at or above the threshold,
and it then names the best-ranked such row; otherwise it is kept. Every removed row is so directly
similar to a row that stays, which union-find clusters cannot promise (A~B~C removes a C far from
A), and a kept row has been compared with every earlier kept row of every bucket it is in (no
bounded neighbour window that could leave a similar pair of kept rows unseen).

The decision for a row depends only on rows that share a bucket with it, all in its candidate
cluster, so running this over any set of whole clusters (all of them at once locally, one shuffle
group of clusters at a time on Ray) gives the same verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, parallel=True)
def _unique_sets(flat, offsets):  # pragma: no cover - compiled
    """Sorted shingle hashes per row with repeats dropped, in place; returns the new sizes."""
    n = len(offsets) - 1
    sizes = np.zeros(n, np.int64)
    for i in numba.prange(n):
        start, end = offsets[i], offsets[i + 1]
        out = start
        for k in range(start, end):
            if k == start or flat[k] != flat[k - 1]:
                flat[out] = flat[k]
                out += 1
        sizes[i] = out - start
    return sizes


@numba.njit(cache=True, nogil=True)
def _jaccard(flat, offsets, sizes, a, b, threshold):  # pragma: no cover - compiled
    """Exact Jaccard of two deduplicated sorted sets; -1 when their sizes alone rule out the
    threshold (J <= min/max), so that pair costs nothing."""
    sa, sb = sizes[a], sizes[b]
    if sa == 0 or sb == 0 or min(sa, sb) < threshold * max(sa, sb):
        return -1.0
    i, i1 = offsets[a], offsets[a] + sa
    j, j1 = offsets[b], offsets[b] + sb
    inter = 0
    while i < i1 and j < j1:
        if flat[i] == flat[j]:
            inter += 1
            i += 1
            j += 1
        elif flat[i] < flat[j]:
            i += 1
        else:
            j += 1
    return inter / (sa + sb - inter)


@numba.njit(cache=True, nogil=True)
def _greedy(bucket, n_buckets, order, forced, flat, offsets, sizes, threshold):  # pragma: no cover
    m, bands = bucket.shape
    head = np.full(n_buckets, -1, np.int64)
    tail = np.full(n_buckets, -1, np.int64)
    following = np.full(m * bands, -1, np.int64)  # entry row*bands+band -> next kept entry
    position = np.empty(m, np.int64)
    for p in range(m):
        position[order[p]] = p
    kept_by = np.full(m, -1, np.int64)
    similarity = np.zeros(m, np.float64)
    compared = np.zeros(m, np.int64)
    seen = np.full(m, -1, np.int64)  # the row that last compared with each row
    for p in range(m):
        v = order[p]
        best = -1
        if not forced[v]:
            for band in range(bands):
                b = bucket[v, band]
                if b < 0:
                    continue
                e = head[b]
                # kept lists are in keep order: nothing past the best match so far can win
                while e >= 0 and (best < 0 or position[e // bands] < position[best]):
                    u = e // bands
                    if seen[u] != v:
                        seen[u] = v
                        compared[v] += 1
                        j = _jaccard(flat, offsets, sizes, u, v, threshold)
                        if j >= threshold:
                            best = u
                            similarity[v] = j
                            break
                    e = following[e]
        if best >= 0:
            kept_by[v] = best
            continue
        for band in range(bands):
            b = bucket[v, band]
            if b < 0:
                continue
            e = v * bands + band
            if tail[b] < 0:
                head[b] = e
            else:
                following[tail[b]] = e
            tail[b] = e
    return kept_by, similarity, compared


def bucket_ids(band_hashes: np.ndarray, counted: np.ndarray | None = None) -> np.ndarray:
    """``[m, bands]`` bucket number of each row in each band, unique across bands; ``-1`` where the
    row is alone in its bucket, or (with ``counted``) no counted row is in it."""
    bands, m = band_hashes.shape
    ids = np.full((m, bands), -1, np.int64)
    base = 0
    for band in range(bands):
        _, inverse, counts = np.unique(band_hashes[band], return_inverse=True, return_counts=True)
        shared = counts[inverse] >= 2
        if counted is not None:
            shared &= np.bincount(inverse, weights=counted, minlength=len(counts))[inverse] > 0
        ids[shared, band] = base + inverse[shared]
        base += len(counts)
    return ids


@dataclass
class Survivors:
    """``kept_by[i]``: -1 kept, else the (local) row ``i`` is a near duplicate of, at exact
    Jaccard ``similarity[i]`` (>= threshold); ``compared[i]``: pairs scored when ``i`` was
    visited, ``below[i]`` those of them under the threshold."""

    kept_by: np.ndarray
    similarity: np.ndarray
    compared: np.ndarray
    below: np.ndarray


def greedy_survivors(
    buckets: np.ndarray,
    order: np.ndarray,
    flat: np.ndarray,
    set_offsets: np.ndarray,
    threshold: float,
    forced: np.ndarray | None = None,
) -> Survivors:
    """Visit rows in ``order`` (best first): a row goes when a kept row of one of its ``buckets``
    (``bucket_ids``) is at Jaccard >= ``threshold``, naming the best-ranked one; ``forced`` rows
    (reference rows, first in ``order``) stay unexamined. ``flat``/``set_offsets`` are the rows'
    sorted shingle hashes (``minhash.shingle_sets``); ``flat`` is deduplicated in place."""
    m = buckets.shape[0]
    flat = np.ascontiguousarray(flat, np.uint64)
    set_offsets = np.asarray(set_offsets, np.int64)
    sizes = _unique_sets(flat, set_offsets)
    forced = np.zeros(m, bool) if forced is None else np.asarray(forced, bool)
    n_buckets = int(buckets.max()) + 1 if buckets.size else 0
    kept_by, similarity, compared = _greedy(
        np.ascontiguousarray(buckets, np.int64), n_buckets, np.asarray(order, np.int64), forced,
        flat, set_offsets, sizes, float(threshold))
    matched = (kept_by >= 0).astype(np.int64)
    return Survivors(kept_by, similarity, compared, compared - matched)
