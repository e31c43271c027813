"""Connected components of a graph held as a Ray Dataset of edges, without any process holding
all the edges: the "alternating" large-star / small-star algorithm (Kiveris et al., "Connected
Components in MapReduce and Beyond", SoCC 2014), each step one Ray Data shuffle.

- large-star: every node links its larger neighbours to the smallest node of its neighbourhood;
- small-star: every node links its smaller neighbours, and itself, to the smallest of them.

Both keep every component connected and move edges towards the component's smallest node; the
loop stops when the graph is a forest of stars (each node is a root whose neighbours are all
larger, or a leaf with exactly one, smaller, neighbour: its root). Then ``label[v]`` is the
smallest node of ``v``'s component, exactly what ``postmix.curate.unionfind.clusters`` returns.
Each shuffle groups by a hash partition of the node, and each group is reduced with NumPy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

PART = "__part"


def partition_of(keys: np.ndarray, partitions: int) -> np.ndarray:
    """A well-mixed partition number per key (splitmix64 finaliser), so skewed ids still spread."""
    x = np.asarray(keys).astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return (x % np.uint64(partitions)).astype(np.int64)


def pair_partition(lo: np.ndarray, hi: np.ndarray, partitions: int) -> np.ndarray:
    return partition_of(partition_of(lo, 1 << 62) ^ np.asarray(hi, np.int64), partitions)


def unique_pairs(a: np.ndarray, b: np.ndarray, *extra: np.ndarray) -> tuple[np.ndarray, ...]:
    """Distinct ``(a, b)`` pairs sorted by ``a`` then ``b``; ``extra`` columns follow the first
    occurrence of each pair."""
    if not len(a):
        return (a, b, *extra)
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    first = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])]
    return (a[first], b[first], *(e[order][first] for e in extra))


def column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy()


def group_runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, counts)`` of the runs of equal values in sorted ``keys``."""
    if not len(keys):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return starts, np.diff(np.r_[starts, len(keys)])


def _directed(u: np.ndarray, v: np.ndarray, partitions: int) -> pa.Table:
    """Both directions of each edge, keyed by the first node."""
    src, dst = np.concatenate([u, v]), np.concatenate([v, u])
    return pa.table({"u": src, "v": dst, PART: partition_of(src, partitions)})


def _directed_block(table: pa.Table, partitions: int) -> pa.Table:
    return _directed(column(table, "lo"), column(table, "hi"), partitions)


def _large_star(table: pa.Table, partitions: int) -> pa.Table:
    """Per node ``u``: star check, and large-star edges as small-star input (keyed by the
    larger end).

    Output rows: ``tag 0`` edge ``(u=larger, v=smaller)``; ``tag 1`` label ``(u=node, v=label)``
    for a node already in star shape; ``tag 2`` a node that is not yet.
    """
    u, v = unique_pairs(column(table, "u"), column(table, "v"))
    starts, counts = group_runs(u)
    node = u[starts]
    smallest = np.minimum.reduceat(v, starts) if len(v) else v
    root = smallest > node
    leaf = (counts == 1) & (smallest < node)
    anchor = np.repeat(np.minimum(smallest, node), counts)
    larger = v > u
    edges_u, edges_v = v[larger], anchor[larger]
    ok = root | leaf
    labels = np.where(root, node, smallest)[ok]
    bad = node[~ok]
    tag = np.concatenate([np.zeros(len(edges_u), np.int8), np.ones(len(labels), np.int8),
                          np.full(len(bad), 2, np.int8)])
    first = np.concatenate([edges_u, node[ok], bad])
    second = np.concatenate([edges_v, labels, bad])
    return pa.table({"u": first, "v": second, "tag": tag, PART: partition_of(first, partitions)})


def _small_star(table: pa.Table, partitions: int) -> pa.Table:
    """Per node ``u`` with its smaller neighbours: link them and ``u`` to the smallest of them."""
    u, v = unique_pairs(column(table, "u"), column(table, "v"))
    starts, counts = group_runs(u)
    smallest = np.minimum.reduceat(v, starts) if len(v) else v
    anchor = np.repeat(smallest, counts)
    move = v != anchor
    lo = np.concatenate([anchor[move], smallest])
    hi = np.concatenate([v[move], u[starts]])
    lo, hi = unique_pairs(lo, hi)
    return _directed(lo, hi, partitions)


def _select(table: pa.Table, tag: int, names: tuple[str, str]) -> pa.Table:
    mask = column(table, "tag") == tag
    return pa.table({names[0]: column(table, "u")[mask], names[1]: column(table, "v")[mask],
                     **({PART: column(table, PART)[mask]} if tag == 0 else {})})


def _tagged(step: Any, tag: int, names: tuple[str, str]) -> Any:
    return step.map_batches(_select, batch_format="pyarrow", fn_kwargs={"tag": tag, "names": names})


def connected_components(pairs: Any, partitions: int, max_rounds: int = 64) -> tuple[Any, int]:
    """``(labels, rounds)``: a Ray Dataset of ``(node, label)`` for every node of ``pairs``
    (columns ``lo``, ``hi``), label = smallest node of its component."""
    kwargs = {"partitions": partitions}
    directed = pairs.map_batches(_directed_block, batch_format="pyarrow", fn_kwargs=kwargs)
    for rounds in range(1, max_rounds + 1):
        step = directed.groupby(PART).map_groups(_large_star, batch_format="pyarrow",
                                                 fn_kwargs=kwargs).materialize()
        if _tagged(step, 2, ("node", "label")).count() == 0:  # no unsettled node left
            return _tagged(step, 1, ("node", "label")), rounds
        directed = _tagged(step, 0, ("u", "v")).groupby(PART).map_groups(
            _small_star, batch_format="pyarrow", fn_kwargs=kwargs).materialize()
    raise RuntimeError(f"connected components did not settle in {max_rounds} rounds; "
                       "raise RayConfig.max_rounds")
