"""MinHash signatures of many texts at once, in compiled code on all cores.

A text is normalised (``postmix.curate.normalise``), cut into *units* (words, split on the single
spaces normalisation leaves, or Unicode code points) and a *shingle* is ``ngram`` consecutive
units; a text with fewer units is one shingle of all of them, and an empty text has no shingles
(its signature stays at the maximum value and it is never near-duplicate of anything).

Two ways to hash a shingle, both run by numba kernels over the whole batch's UTF-8 bytes:

``fast`` (default)
    every unit is hashed once (FNV-1a, 64-bit), a shingle's hash combines its units' hashes, and
    each of ``num_perm`` permutations is ``a*h + b mod 2^32`` after a MurmurHash3 finaliser —
    datasketch 2.0's "affine32" scheme, on a cheaper base hash. Estimates are as accurate as
    datasketch's (a test checks it); the values are not datasketch's.
``datasketch``
    SHA-1 of the shingle's UTF-8 bytes (``"w1 w2 w3 w4 w5"``), then datasketch's own permutation
    scheme with datasketch's own parameters, so row ``i`` equals
    ``datasketch.MinHash(num_perm, seed, scheme=...).update_batch(shingles(text_i)).hashvalues``
    bit for bit and can go straight into ``datasketch.MinHashLSH`` or an existing index.
    For the ``legacy`` scheme the arithmetic is datasketch's NumPy arithmetic, including its
    uint64 wrap-around before ``% (2^61 - 1)``: exact mulmod would *not* give datasketch's values.
"""

from __future__ import annotations

from typing import Literal

import numba
import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from postmix.curate.normalise import NormaliseOptions, normalise_text, normalise_texts

MAX32 = np.uint64(0xFFFFFFFF)
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_COMBINE = np.uint64(0x9E3779B97F4A7C15)
_MERSENNE = np.uint64((1 << 61) - 1)


class MinHashConfig(BaseModel):
    """How a text becomes a MinHash signature."""

    model_config = ConfigDict(extra="forbid")

    normalise: NormaliseOptions = Field(default_factory=NormaliseOptions)
    shingle: Literal["word", "char"] = Field(
        "word",
        description="Units a shingle is made of: words (robust to re-wrapping) or code points.",
    )
    ngram: int = Field(
        5, ge=1, le=64,
        description="Units per shingle. 5 words is the usual choice for documents (datatrove, "
        "Gopher); for short prompts or character shingles consider 3 or 7-9.",
    )
    num_perm: int = Field(
        128,
        ge=8,
        le=1024,
        description="Permutations: estimate standard error is sqrt(J(1-J)/num_perm), "
        "0.035 at J=0.8.",
    )
    seed: int = Field(
        1, ge=0, lt=2**32, description="Seed of the permutations (datasketch's default is 1)."
    )
    hash: Literal["fast", "datasketch"] = Field(
        "fast",
        description="fast: compiled cheap hashing; datasketch: values identical to "
        "datasketch.MinHash.",
    )
    datasketch_scheme: Literal["affine32", "legacy", "affine64"] = Field(
        "affine32",
        description="datasketch permutation scheme for --hash datasketch: affine32 is "
        "datasketch 2.x's default; legacy matches indexes built with datasketch < 2.0.",
    )

    def signature_dtype(self) -> type[np.unsignedinteger]:
        if self.hash == "datasketch" and self.datasketch_scheme != "affine32":
            return np.uint64
        return np.uint32

    def signature_key(self) -> dict:
        """The fields that change signature values (for caches)."""
        return self.model_dump(
            mode="json",
            include={
                "normalise",
                "shingle",
                "ngram",
                "num_perm",
                "seed",
                "hash",
                "datasketch_scheme",
            },
        )


# ---------------------------------------------------------------- units and shingles (compiled)


@numba.njit(cache=True, nogil=True)
def _unit_bounds(data, start, end, char_mode, starts, ends):  # pragma: no cover - compiled
    """Byte ranges of the words (split on single spaces) or code points of one normalised text."""
    count = 0
    if char_mode:
        for k in range(start, end):
            if (data[k] & 0xC0) != 0x80:  # not a UTF-8 continuation byte: a code point starts
                if count > 0:
                    ends[count - 1] = k
                starts[count] = k
                count += 1
        if count > 0:
            ends[count - 1] = end
        return count
    k = start
    while k < end:
        starts[count] = k
        while k < end and data[k] != 32:
            k += 1
        ends[count] = k
        count += 1
        k += 1
    return count


@numba.njit(cache=True, nogil=True)
def _fmix64(h):  # pragma: no cover - compiled
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


@numba.njit(cache=True, nogil=True)
def _fmix32(h):  # pragma: no cover - compiled
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & MAX32
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & MAX32
    h ^= h >> np.uint64(16)
    return h


@numba.njit(cache=True, nogil=True)
def _unit_hashes(data, starts, ends, count, out):  # pragma: no cover - compiled
    for u in range(count):
        h = _FNV_OFFSET
        for k in range(starts[u], ends[u]):
            h = (h ^ np.uint64(data[k])) * _FNV_PRIME
        out[u] = _fmix64(h)


@numba.njit(cache=True, nogil=True)
def _combine(units, first, width):  # pragma: no cover - compiled
    """Order-sensitive 64-bit hash of ``width`` (already mixed) unit hashes."""
    h = np.uint64(width)
    for j in range(first, first + width):
        h = (h ^ units[j]) * _COMBINE
        h = (h << np.uint64(31)) | (h >> np.uint64(33))
    return _fmix64(h)


@numba.njit(cache=True, nogil=True, parallel=True)
def _fast_signatures(data, offsets, char_mode, ngram, a, b, out):  # pragma: no cover - compiled
    """``a``, ``b``, ``out`` are uint32: 32-bit lanes let the permutation loop vectorise twice
    as wide as uint64, and the wrap-around is the ``mod 2^32`` of the affine32 scheme."""
    n, num_perm = out.shape
    for i in numba.prange(n):
        start, end = offsets[i], offsets[i + 1]
        size = end - start + 1
        starts = np.empty(size, np.int64)
        ends = np.empty(size, np.int64)
        units = np.empty(size, np.uint64)
        count = _unit_bounds(data, start, end, char_mode, starts, ends)
        sig = np.full(num_perm, np.uint32(0xFFFFFFFF), np.uint32)
        if count > 0:
            _unit_hashes(data, starts, ends, count, units)
            width = min(ngram, count)
            for s in range(count - width + 1):
                h = np.uint32(_fmix32(_combine(units, s, width) >> np.uint64(32)))
                for p in range(num_perm):
                    sig[p] = min(sig[p], np.uint32(a[p] * h + b[p]))
        out[i, :] = sig


# --------------------------------------------------------------- SHA-1, bit-compatible with hashlib


@numba.njit(cache=True, nogil=True)
def _rotl(x, k):  # pragma: no cover - compiled
    return ((x << np.uint64(k)) | (x >> np.uint64(32 - k))) & MAX32


@numba.njit(cache=True, nogil=True)
def _bswap32(x):  # pragma: no cover - compiled
    return (
        ((x & np.uint64(0xFF)) << np.uint64(24))
        | ((x & np.uint64(0xFF00)) << np.uint64(8))
        | ((x >> np.uint64(8)) & np.uint64(0xFF00))
        | (x >> np.uint64(24))
    )


@numba.njit(cache=True, nogil=True)
def _sha1_prefix(data, start, end, w):  # pragma: no cover - compiled
    """The first 8 digest bytes of SHA-1(data[start:end]), read little-endian (as
    ``struct.unpack('<Q', sha1(x).digest()[:8])``); ``w`` is an 80-word scratch array."""
    length = end - start
    total = ((length + 8) // 64 + 1) * 64
    bits = np.uint64(length) * np.uint64(8)
    h0, h1, h2 = np.uint64(0x67452301), np.uint64(0xEFCDAB89), np.uint64(0x98BADCFE)
    h3, h4 = np.uint64(0x10325476), np.uint64(0xC3D2E1F0)
    for block in range(0, total, 64):
        for t in range(16):
            word = np.uint64(0)
            for j in range(4):
                k = block + 4 * t + j
                if k < length:
                    byte = np.uint64(data[start + k])
                elif k == length:
                    byte = np.uint64(0x80)
                elif k >= total - 8:
                    byte = (bits >> np.uint64(8 * (total - 1 - k))) & np.uint64(0xFF)
                else:
                    byte = np.uint64(0)
                word = (word << np.uint64(8)) | byte
            w[t] = word
        for t in range(16, 80):
            w[t] = _rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1)
        a, b, c, d, e = h0, h1, h2, h3, h4
        for t in range(80):
            if t < 20:
                f = (b & c) | ((~b & MAX32) & d)
                k_t = np.uint64(0x5A827999)
            elif t < 40:
                f = b ^ c ^ d
                k_t = np.uint64(0x6ED9EBA1)
            elif t < 60:
                f = (b & c) | (b & d) | (c & d)
                k_t = np.uint64(0x8F1BBCDC)
            else:
                f = b ^ c ^ d
                k_t = np.uint64(0xCA62C1D6)
            temp = (_rotl(a, 5) + f + e + k_t + w[t]) & MAX32
            e, d, c, b, a = d, c, _rotl(b, 30), a, temp
        h0 = (h0 + a) & MAX32
        h1 = (h1 + b) & MAX32
        h2 = (h2 + c) & MAX32
        h3 = (h3 + d) & MAX32
        h4 = (h4 + e) & MAX32
    return _bswap32(h0) | (_bswap32(h1) << np.uint64(32))


@numba.njit(cache=True, nogil=True, parallel=True)
def _datasketch_signatures(data, offsets, char_mode, ngram, scheme, a, b, out):  # pragma: no cover
    """scheme 0 = affine32, 1 = legacy, 2 = affine64, each exactly as datasketch computes it."""
    n, num_perm = out.shape
    for i in numba.prange(n):
        start, end = offsets[i], offsets[i + 1]
        size = end - start + 1
        starts = np.empty(size, np.int64)
        ends = np.empty(size, np.int64)
        w = np.empty(80, np.uint64)
        count = _unit_bounds(data, start, end, char_mode, starts, ends)
        if scheme == 2:
            sig = np.full(num_perm, np.uint64(0xFFFFFFFFFFFFFFFF), np.uint64)
        else:
            sig = np.full(num_perm, MAX32, np.uint64)
        if count > 0:
            width = min(ngram, count)
            for s in range(count - width + 1):
                digest = _sha1_prefix(data, starts[s], ends[s + width - 1], w)
                if scheme == 0:
                    h = _fmix32(digest & MAX32)
                    for p in range(num_perm):
                        v = (a[p] * h + b[p]) & MAX32
                        if v < sig[p]:
                            sig[p] = v
                elif scheme == 1:
                    h = digest & MAX32
                    for p in range(num_perm):
                        # uint64 wrap-around on a*h + b, as NumPy computes it in datasketch
                        v = ((a[p] * h + b[p]) % _MERSENNE) & MAX32
                        if v < sig[p]:
                            sig[p] = v
                else:
                    h = _fmix64(digest)
                    for p in range(num_perm):
                        v = a[p] * h + b[p]
                        if v < sig[p]:
                            sig[p] = v
        for p in range(num_perm):
            out[i, p] = sig[p]


@numba.njit(cache=True, nogil=True, parallel=True)
def _shingle_counts(data, offsets, char_mode, ngram):  # pragma: no cover - compiled
    n = len(offsets) - 1
    counts = np.zeros(n, np.int64)
    for i in numba.prange(n):
        start, end = offsets[i], offsets[i + 1]
        starts = np.empty(end - start + 1, np.int64)
        ends = np.empty(end - start + 1, np.int64)
        count = _unit_bounds(data, start, end, char_mode, starts, ends)
        counts[i] = 0 if count == 0 else count - min(ngram, count) + 1
    return counts


@numba.njit(cache=True, nogil=True, parallel=True)
def _shingle_sets(
    data, offsets, char_mode, ngram, set_offsets, flat
):  # pragma: no cover - compiled
    """Sorted 64-bit shingle hashes per text (duplicates kept; the Jaccard kernel skips them)."""
    n = len(offsets) - 1
    for i in numba.prange(n):
        start, end = offsets[i], offsets[i + 1]
        size = end - start + 1
        starts = np.empty(size, np.int64)
        ends = np.empty(size, np.int64)
        units = np.empty(size, np.uint64)
        count = _unit_bounds(data, start, end, char_mode, starts, ends)
        if count == 0:
            continue
        _unit_hashes(data, starts, ends, count, units)
        width = min(ngram, count)
        out = set_offsets[i]
        for s in range(count - width + 1):
            flat[out + s] = _combine(units, s, width)
        flat[set_offsets[i] : set_offsets[i + 1]] = np.sort(
            flat[set_offsets[i] : set_offsets[i + 1]]
        )


@numba.njit(cache=True, nogil=True, parallel=True)
def _pair_jaccard(flat, set_offsets, left, right):  # pragma: no cover - compiled
    result = np.zeros(len(left), np.float64)
    for q in numba.prange(len(left)):
        i0, i1 = set_offsets[left[q]], set_offsets[left[q] + 1]
        j0, j1 = set_offsets[right[q]], set_offsets[right[q] + 1]
        inter = 0
        union = 0
        while i0 < i1 or j0 < j1:
            take_left = j0 >= j1 or (i0 < i1 and flat[i0] < flat[j0])
            x = flat[i0] if take_left else flat[j0]
            in_i = i0 < i1 and flat[i0] == x
            in_j = j0 < j1 and flat[j0] == x
            union += 1
            if in_i and in_j:
                inter += 1
            while i0 < i1 and flat[i0] == x:
                i0 += 1
            while j0 < j1 and flat[j0] == x:
                j0 += 1
        result[q] = inter / union if union else 0.0
    return result


# ---------------------------------------------------------------- Python API


def _permutations(config: MinHashConfig) -> tuple[np.ndarray, np.ndarray]:
    if config.hash == "datasketch":
        import datasketch

        a, b = datasketch.MinHash(
            config.num_perm, seed=config.seed, scheme=config.datasketch_scheme
        ).permutations
        return np.asarray(a, np.uint64), np.asarray(b, np.uint64)
    rng = np.random.default_rng([config.seed, 0x706F73746D6978])  # "postmix"
    a = rng.integers(0, 1 << 31, config.num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 1 << 32, config.num_perm, dtype=np.uint64)
    return a, b


_SCHEME_CODES = {"affine32": 0, "legacy": 1, "affine64": 2}


def normalised_batch(
    texts: pa.Array | list[str], config: MinHashConfig
) -> tuple[np.ndarray, np.ndarray]:
    return normalise_texts(texts, config.normalise)


def signatures_of_normalised(
    data: np.ndarray, offsets: np.ndarray, config: MinHashConfig
) -> np.ndarray:
    """Signatures ``[n, num_perm]`` of already-normalised texts (``normalise_texts`` output)."""
    n = len(offsets) - 1
    a, b = _permutations(config)
    char_mode = config.shingle == "char"
    if config.hash == "fast":
        out = np.empty((n, config.num_perm), np.uint32)
        _fast_signatures(
            data, offsets, char_mode, config.ngram, a.astype(np.uint32), b.astype(np.uint32), out
        )
        return out
    work = np.empty((n, config.num_perm), np.uint64)
    scheme = _SCHEME_CODES[config.datasketch_scheme]
    _datasketch_signatures(data, offsets, char_mode, config.ngram, scheme, a, b, work)
    return work.astype(config.signature_dtype(), copy=False)


def minhash_signatures(
    texts: pa.Array | list[str], config: MinHashConfig | None = None
) -> np.ndarray:
    """MinHash signatures ``[len(texts), num_perm]`` (uint32; uint64 for datasketch's legacy and
    affine64 schemes). Empty texts get all-maximum rows."""
    config = config or MinHashConfig()
    data, offsets = normalised_batch(texts, config)
    return signatures_of_normalised(data, offsets, config)


def shingle_sets(
    data: np.ndarray, offsets: np.ndarray, config: MinHashConfig
) -> tuple[np.ndarray, np.ndarray]:
    """``(flat sorted 64-bit shingle hashes, offsets)`` of normalised texts, for exact Jaccard."""
    counts = _shingle_counts(data, offsets, config.shingle == "char", config.ngram)
    set_offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=set_offsets[1:])
    flat = np.empty(set_offsets[-1], np.uint64)
    _shingle_sets(data, offsets, config.shingle == "char", config.ngram, set_offsets, flat)
    return flat, set_offsets


def exact_jaccard(
    flat: np.ndarray, set_offsets: np.ndarray, left: np.ndarray, right: np.ndarray
) -> np.ndarray:
    """Jaccard of the shingle sets of texts ``left[q]`` and ``right[q]`` (exact up to 64-bit
    hash collisions); two empty sets give 0."""
    return _pair_jaccard(flat, set_offsets, np.asarray(left, np.int64), np.asarray(right, np.int64))


def shingles(text: str, config: MinHashConfig | None = None) -> list[bytes]:
    """The shingles of one text as UTF-8 bytes: exactly what ``--hash datasketch`` hashes, so
    ``datasketch.MinHash(...).update_batch(shingles(t))`` reproduces its signature."""
    config = config or MinHashConfig()
    norm = normalise_text(text, config.normalise)
    if not norm:
        return []
    units = list(norm) if config.shingle == "char" else norm.split(" ")
    joiner = "" if config.shingle == "char" else " "
    width = min(config.ngram, len(units))
    return [
        joiner.join(units[i : i + width]).encode("utf-8") for i in range(len(units) - width + 1)
    ]


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Row-wise fraction of equal signature values (the MinHash Jaccard estimate)."""
    return (np.asarray(sig_a) == np.asarray(sig_b)).mean(axis=-1)
