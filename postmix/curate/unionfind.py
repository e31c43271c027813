"""Groups of duplicate pairs: connected components (union-find), labelled by their smallest member
so the result does not depend on the order pairs arrive in, and greedy survivors for verified
pairs."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _find(parent, i):  # pragma: no cover - compiled
    while parent[i] != i:
        parent[i] = parent[parent[i]]  # path halving
        i = parent[i]
    return i


@numba.njit(cache=True, nogil=True)
def _components(n, left, right):  # pragma: no cover - compiled
    parent = np.arange(n)
    for q in range(len(left)):
        a = _find(parent, left[q])
        b = _find(parent, right[q])
        if a != b:
            # the smaller index becomes the root: the label is the component's smallest member
            if a < b:
                parent[b] = a
            else:
                parent[a] = b
    for i in range(n):
        parent[i] = _find(parent, i)
    return parent


def clusters(n: int, pairs: np.ndarray) -> np.ndarray:
    """``labels[i]`` = smallest row index in ``i``'s component; singletons label themselves."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return _components(n, np.ascontiguousarray(pairs[:, 0]), np.ascontiguousarray(pairs[:, 1]))


@numba.njit(cache=True, nogil=True)
def _greedy(total, left, right, order):  # pragma: no cover - compiled
    degree = np.zeros(total + 1, np.int64)
    for q in range(len(left)):
        degree[left[q] + 1] += 1
        degree[right[q] + 1] += 1
    starts = np.cumsum(degree)
    fill = starts[:-1].copy()
    neighbours = np.empty(starts[-1], np.int64)
    for q in range(len(left)):
        neighbours[fill[left[q]]] = right[q]
        fill[left[q]] += 1
        neighbours[fill[right[q]]] = left[q]
        fill[right[q]] += 1
    position = np.full(total, -1, np.int64)
    for p in range(len(order)):
        position[order[p]] = p
    # -2 unseen, -1 kept, >= 0 removed as duplicate of that row
    kept_by = np.full(total, -2, np.int64)
    for p in range(len(order)):
        v = order[p]
        best = -1
        for k in range(starts[v], starts[v + 1]):
            u = neighbours[k]
            if kept_by[u] == -1 and (best < 0 or position[u] < position[best]):
                best = u
        kept_by[v] = best
    return kept_by


def greedy_survivors(total: int, pairs: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Visit rows in ``order`` (best first); a row with a pair to an already kept row is removed as
    a duplicate of the best such row, otherwise kept. Unlike cluster survivors, every removed row
    is then directly paired with its survivor (no A~B~C chains where C is far from A).

    Returns ``kept_by[i]``: -1 kept, -2 not in ``order``, else the row ``i`` duplicates."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return _greedy(total, np.ascontiguousarray(pairs[:, 0]), np.ascontiguousarray(pairs[:, 1]),
                   np.asarray(order, np.int64))
