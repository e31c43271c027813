"""Locality-sensitive hashing over MinHash signatures, in arrays.

A signature is cut into ``bands`` bands of ``rows`` values; two texts become candidates when any
band matches, which happens with probability ``1 - (1 - J**rows)**bands`` at Jaccard ``J``.
Candidates are found by sorting each band's hashes and pairing equal runs, not by per-text
dictionaries, so memory stays proportional to the signatures.
"""

from __future__ import annotations

import numba
import numpy as np

DEFAULT_MIN_RECALL = 0.92


def collision_probability(
    similarity: float | np.ndarray, bands: int, rows: int
) -> float | np.ndarray:
    """Chance that a pair of Jaccard ``similarity`` shares at least one band."""
    return 1.0 - (1.0 - np.asarray(similarity, dtype=float) ** rows) ** bands


def optimal_bands_rows(
    num_perm: int, threshold: float, min_recall: float = DEFAULT_MIN_RECALL
) -> tuple[int, int]:
    """``(bands, rows)`` with ``bands * rows <= num_perm`` that catch a pair *at* the threshold
    with probability ``>= min_recall`` while letting the fewest dissimilar pairs through (least
    area under the collision curve below the threshold).

    datasketch weighs misses and false candidates equally, which for threshold 0.8 and 128
    permutations misses about 20% of pairs at Jaccard 0.87; here recall at the threshold is the
    constraint (0.92 is datatrove's 14x8 at 0.8), and the false candidates it costs can be
    removed with ``verify``. If no split reaches ``min_recall``, the one with the best recall wins.
    """
    grid = np.linspace(0.0, threshold, 256)
    best: tuple[float, float, int, int] | None = None
    fallback: tuple[float, int, int] | None = None
    for rows in range(1, num_perm + 1):
        for bands in range(1, num_perm // rows + 1):
            recall = float(collision_probability(threshold, bands, rows))
            if fallback is None or recall > fallback[0]:
                fallback = (recall, bands, rows)
            if recall < min_recall:
                continue
            false_area = float(np.trapezoid(collision_probability(grid, bands, rows), grid))
            key = (false_area, -recall, bands, rows)
            if best is None or key < best:
                best = key
    if best is None:
        assert fallback is not None
        return fallback[1], fallback[2]
    return best[2], best[3]


@numba.njit(cache=True, nogil=True, parallel=True)
def _band_hashes(signatures, members, bands, rows):  # pragma: no cover - compiled
    n = len(members)
    out = np.empty((bands, n), np.uint64)
    for q in numba.prange(n):
        i = members[q]
        for band in range(bands):
            h = np.uint64(band + 1) * np.uint64(0x9E3779B97F4A7C15)
            for r in range(band * rows, (band + 1) * rows):
                h = (h ^ np.uint64(signatures[i, r])) * np.uint64(0xFF51AFD7ED558CCD)
                h ^= h >> np.uint64(32)
            out[band, q] = h
    return out


def band_hashes(
    signatures: np.ndarray, bands: int, rows: int, members: np.ndarray | None = None
) -> np.ndarray:
    """``[bands, len(members)]`` 64-bit hashes, one per band of each listed signature
    (all by default)."""
    if bands * rows > signatures.shape[1]:
        raise ValueError(
            f"{bands} bands x {rows} rows needs {bands * rows} permutations, "
            f"have {signatures.shape[1]}"
        )
    if members is None:
        members = np.arange(signatures.shape[0], dtype=np.int64)
    return _band_hashes(
        np.ascontiguousarray(signatures), np.asarray(members, np.int64), bands, rows
    )


def bucket_pairs(hashes: np.ndarray, members: np.ndarray, window: int) -> np.ndarray:
    """Pairs inside runs of equal hashes: each member with the run's first (smallest) member,
    and, with ``window > 1``, with up to ``window`` preceding members too."""
    order = np.argsort(hashes, kind="stable")
    sorted_hashes = hashes[order]
    rows = members[order]
    same = np.empty(len(order), dtype=bool)
    if len(order):
        same[0] = False
        np.equal(sorted_hashes[1:], sorted_hashes[:-1], out=same[1:])
    run_start = np.where(~same, np.arange(len(order)), 0)
    np.maximum.accumulate(run_start, out=run_start)
    followers = np.flatnonzero(same)
    found = [np.stack([rows[run_start[followers]], rows[followers]], axis=1)]
    for back in range(1, window + 1 if window > 1 else 1):
        k = followers[followers - back >= run_start[followers]]
        if not len(k):
            break
        found.append(np.stack([rows[k - back], rows[k]], axis=1))
    return np.concatenate(found)


def lsh_candidates(
    signatures: np.ndarray,
    bands: int,
    rows: int,
    *,
    active: np.ndarray | None = None,
    window: int = 1,
) -> np.ndarray:
    """Candidate pairs ``[m, 2]`` (int64, ``i < j``, unique, sorted) of rows sharing a band.

    ``active`` (bool mask or indices) limits the search to some rows, e.g. non-empty ones.
    ``window=1`` links each bucket member to the bucket's first member, enough to connect
    clusters; a larger window also pairs neighbours, which ``verify`` needs so that one
    dissimilar first member cannot hide the similar pairs behind it.
    """
    n = signatures.shape[0]
    members = np.arange(n, dtype=np.int64)
    if active is not None:
        active = np.asarray(active)
        members = (
            np.flatnonzero(active) if active.dtype == bool else np.sort(active.astype(np.int64))
        )
    if len(members) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    hashes = band_hashes(signatures, bands, rows, members)
    keys = []
    for band in range(bands):
        pairs = bucket_pairs(hashes[band], members, max(window, 1))
        keys.append(np.minimum(pairs[:, 0], pairs[:, 1]) * n + np.maximum(pairs[:, 0], pairs[:, 1]))
    unique = np.unique(np.concatenate(keys))
    return np.stack([unique // n, unique % n], axis=1)
