"""Deterministic sampling: rows are ranked by a keyed hash of their id, and a take rule keeps a
prefix of that ranking.

Why a hash of ids rather than ``rng.permutation(n)``: the choice of a row depends only on its id,
the seed and the source name, not on its position or on the other rows. Re-ordering a source,
appending rows to it, or removing some by curation leaves every other row's rank unchanged, and
``count: 200`` picks a superset of ``count: 100``. A permutation would reshuffle everything.

The hash is computed on the raw bytes of the Arrow id column with NumPy (no Python per row):
each byte ``b`` at offset ``j`` of its id contributes ``mix64(key ^ (j << 8 | b))``; the
contributions are summed per id (mod 2**64, through a cumulative sum) and the sum is mixed once
more with the id length. ``mix64`` is the SplitMix64 finaliser. Ties (duplicate ids) keep source
order, so the ranking is a total order.

A mix ``target`` is split between sources by ``apportion`` (largest remainder, exact), and each
source's share is taken by ``take`` as ``{"rows": q}`` or ``{"tokens": t}``: whole passes over
the source while the share allows, then a prefix of the ranking, so up- and down-sampling are the
same rule and a larger share is always a superset of a smaller one.

``weight_by`` (``weighted_order``) ranks rows by Efraimidis-Spirakis keys instead: row i with
weight w_i > 0 and a uniform u_i drawn from its keyed hash is ranked by ``u_i ** (1 / w_i)``,
largest first, so a prefix of the ranking is a weighted sample without replacement (the first
row is row i with probability w_i / sum(w), the next one likewise among the rest, ...). Computed
as the equivalent ``log(-log u_i) - log w_i``, smallest first, from log-weights, so weights of
any magnitude (``exp(score / temperature)``) neither overflow nor depend on the other rows. The
key of a row still depends only on its id, seed, source name and its own weight: every property
above holds. Rows of weight 0 come after every positive-weight row, in plain hash order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pyarrow as pa
import xxhash

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
BATCH_ROWS = 262_144  # bounds the per-byte temporaries to ~a few hundred MB for long ids


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser, element-wise on uint64 (wrap-around multiplication is intended)."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def sampling_key(seed: int, source: str) -> int:
    """64-bit key per (seed, source), so two sources sharing ids are not sampled in lockstep."""
    return xxhash.xxh3_64_intdigest(f"{seed}\x00{source}".encode())


def _string_parts(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(bytes of all values, offsets into them) of a string/binary array; nulls hash as empty."""
    if pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type):
        offset_type = np.int64
    else:
        array = array.cast(pa.string()) if not pa.types.is_binary(array.type) else array
        offset_type = np.int32
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=offset_type)[
        array.offset : array.offset + len(array) + 1
    ]
    start, end = int(offsets[0]), int(offsets[-1])
    data = (
        np.frombuffer(buffers[2], dtype=np.uint8)[start:end]
        if buffers[2] is not None and end > start
        else np.zeros(0, np.uint8)
    )
    return data, (offsets - start).astype(np.int64)


def keyed_hash(ids: pa.Array | pa.ChunkedArray, key: int) -> np.ndarray:
    """uint64 hash per id; equal ids give equal hashes, any key gives an independent ranking."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks() if ids.num_chunks != 1 else ids.chunk(0)
    out = np.empty(len(ids), dtype=np.uint64)
    key64 = np.uint64(key)
    for start in range(0, len(ids), BATCH_ROWS):
        chunk = ids.slice(start, BATCH_ROWS)
        data, offsets = _string_parts(chunk)
        lengths = np.diff(offsets)
        position = np.arange(len(data), dtype=np.int64) - np.repeat(offsets[:-1], lengths)
        contrib = mix64(
            key64 ^ ((position.astype(np.uint64) << np.uint64(8)) | data.astype(np.uint64))
        )
        with np.errstate(over="ignore"):
            cumulative = np.concatenate(([np.uint64(0)], np.cumsum(contrib, dtype=np.uint64)))
            sums = cumulative[offsets[1:]] - cumulative[offsets[:-1]]
            out[start : start + len(chunk)] = mix64(sums ^ mix64(lengths.astype(np.uint64) ^ key64))
    return out


def hash_order(ids: pa.Array | pa.ChunkedArray, key: int) -> np.ndarray:
    """Row indices ranked by keyed hash; ties keep their source order (stable sort)."""
    return np.argsort(keyed_hash(ids, key), kind="stable")


def uniform_from_hash(hashes: np.ndarray) -> np.ndarray:
    """A float in (0, 1) per uint64 hash: its top 53 bits, centred in their interval."""
    return ((hashes >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def weighted_order(ids: pa.Array | pa.ChunkedArray, key: int,
                   log_weights: np.ndarray) -> np.ndarray:
    """Row indices ranked by Efraimidis-Spirakis keys (see the module text); ``log_weights``
    may hold ``-inf`` (weight 0); rows of weight 0, tied at +inf, keep hash order."""
    hashes = keyed_hash(ids, key)
    with np.errstate(divide="ignore"):
        rank = np.log(-np.log(uniform_from_hash(hashes))) - log_weights
    if np.isinf(rank).any():  # weight-0 rows tie at +inf: hash order among them
        return np.lexsort((hashes, rank))
    return np.argsort(rank, kind="stable")  # positive weights: a tie has probability ~0


@dataclass(frozen=True)
class Take:
    """What a take rule selects: ``indices`` (sorted, each row once) and how often each repeats."""

    indices: np.ndarray  # int64 row indices, emitted in this order
    copies: np.ndarray  # copy number of each emitted row (0 = first appearance)
    unique_rows: int  # distinct rows taken


def round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


def apportion(total: int, weights: list[float]) -> list[int]:
    """Split the integer ``total`` by ``weights`` with the largest-remainder (Hamilton) method.

    Each part gets ``floor(total * w / sum(w))``; the units still missing go one each to the
    parts with the largest fractional remainders, ties to the earlier part. The parts always sum
    to ``total`` exactly, and the result depends only on the arguments. The quotients are exact
    rationals (``fractions.Fraction`` of the float weights), so no rounding error can move a unit.
    """
    if total < 0 or not weights or any(w <= 0 for w in weights):
        raise ValueError("apportion needs a total >= 0 and positive weights")
    exact = [Fraction(total) * Fraction(w) / sum(Fraction(x) for x in weights) for w in weights]
    parts = [math.floor(q) for q in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


def take(
    ids: pa.Array | pa.ChunkedArray,
    rule: dict[str, float],
    key: int,
    tokens: np.ndarray | None = None,
    log_weights: np.ndarray | None = None,
) -> Take:
    """Apply a take rule to rows with these ids.

    count N: the N best-ranked rows. fraction f: round_half_up(f * n) best-ranked rows. epochs e:
    every row floor(e) times, then round_half_up((e - floor(e)) * n) best-ranked rows once more.
    rows q (a target's share): every row q // n times, then the q % n best-ranked rows. tokens t
    (``tokens`` = each row's token count): every row floor(t / T) times (T = all rows' tokens),
    then the longest prefix of the ranking whose tokens fit in what is left, so the rows taken
    never hold more than t tokens and fall short by less than the next row's count.
    Emitted rows keep source order within each copy, so an unshuffled mix reads like its sources.
    With ``log_weights`` (``weight_by``) the ranking is ``weighted_order``'s, else ``hash_order``'s.
    The caller checks that N <= n (see ``postmix.mix.build``).
    """
    n = len(ids)

    def ranking() -> np.ndarray:
        if log_weights is None:
            return hash_order(ids, key)
        return weighted_order(ids, key, log_weights)

    (rule_name, value), = rule.items()
    order = None
    if rule_name == "epochs":
        full = int(math.floor(value))
        extra = round_half_up((value - full) * n)
    elif rule_name == "fraction":
        full, extra = 0, round_half_up(value * n)
    elif rule_name == "rows":
        full, extra = divmod(int(value), n) if n else (0, 0)
    elif rule_name == "tokens":
        if tokens is None:
            raise ValueError("a tokens take rule needs each row's token count")
        available = int(tokens.sum())
        full, rest = divmod(int(value), available) if available else (0, 0)
        order = ranking()
        extra = int(np.searchsorted(np.cumsum(tokens[order]), rest, side="right"))
    else:
        full, extra = 0, int(value)
    extra = min(extra, n)
    if order is None and extra:
        order = ranking()
    partial = np.sort(order[:extra]) if extra else np.zeros(0, np.int64)
    everything = np.arange(n, dtype=np.int64)
    parts = [everything] * full + [partial]
    copies = [np.full(len(p), c, dtype=np.int32) for c, p in enumerate(parts)]
    return Take(
        indices=np.concatenate(parts).astype(np.int64),
        copies=np.concatenate(copies),
        unique_rows=n if full else len(partial),
    )
