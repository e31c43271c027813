"""An in-memory n-gram index of benchmark text, and the compiled scan that scores training rows
against it — the Tulu 3 decontamination score without an Elasticsearch server.

Text arrives normalised (``postmix.curate.normalise``: NFKC, lowercase, punctuation to spaces,
single spaces), so a *token* is a run of bytes between spaces. Every token is hashed once
(FNV-1a 64 + a MurmurHash3 finaliser) and an n-gram's key combines its tokens' hashes; keys are
64-bit integers, so a collision between two different n-grams has odds around 2^-64 per pair.

A benchmark instance is one or more *segments* (one per text field, e.g. DROP's passage and
question). The score of a (training row, instance) pair follows open-instruct's
``decontamination/search.py``: per segment, the fraction of the segment's tokens covered by
n-grams the row shares with it; the instance score is the mean over its segments. A segment
shorter than ``n`` tokens has no n-grams: it scores 1.0 when the row contains it whole (as a
contiguous token run), else 0.

The index is three parallel arrays sorted by key (``keys``, ``key_segment``, ``key_position``),
looked up by binary search behind a bitmap prefilter, so the common case — an n-gram that is in
no benchmark — costs one memory access. The scan runs row-parallel with numba (threads that share
the index instead of copying it to worker processes); every row's result depends only on that
row, so results are the same for any number of threads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pyarrow as pa

# the same word hash as dedup's shingles (FNV-1a + murmur finaliser), so both stages agree on tokens
from postmix.curate.minhash import _COMBINE, _FNV_OFFSET, _FNV_PRIME, _fmix64
from postmix.curate.normalise import NormaliseOptions, unfolded

_SPACE = 32


@numba.njit(cache=True, nogil=True, parallel=True)
def _token_counts(data, offsets):  # pragma: no cover - compiled
    n = len(offsets) - 1
    counts = np.zeros(n, dtype=np.int64)
    for i in numba.prange(n):
        start, end = offsets[i], offsets[i + 1]
        if end > start:
            c = 1
            for k in range(start, end):
                if data[k] == _SPACE:
                    c += 1
            counts[i] = c
    return counts


@numba.njit(cache=True, nogil=True, parallel=True)
def _fill_token_hashes(data, offsets, token_offsets, out):  # pragma: no cover - compiled
    n = len(offsets) - 1
    for i in numba.prange(n):
        start, end = offsets[i], offsets[i + 1]
        t = token_offsets[i]
        h = _FNV_OFFSET
        for k in range(start, end):
            c = data[k]
            if c == _SPACE:
                out[t] = _fmix64(h)
                t += 1
                h = _FNV_OFFSET
            else:
                h = (h ^ np.uint64(c)) * _FNV_PRIME
        if end > start:
            out[t] = _fmix64(h)


def token_hashes(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(hashes, token_offsets)``: row ``i``'s tokens are
    ``hashes[token_offsets[i]:token_offsets[i+1]]``.

    ``data``/``offsets`` hold normalised UTF-8 text (single spaces between tokens, none at the
    ends).
    """
    counts = _token_counts(data, offsets)
    token_offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=token_offsets[1:])
    hashes = np.empty(token_offsets[-1], dtype=np.uint64)
    _fill_token_hashes(data, offsets, token_offsets, hashes)
    return hashes, token_offsets


# byte classes of the fused fold-and-hash kernels: one table lookup per ASCII byte
_KEEP, _SEPARATOR, _UPPER, _NON_ASCII = 0, 1, 2, 3


def _byte_classes(options: NormaliseOptions, is_space: np.ndarray,
                  is_punct: np.ndarray) -> np.ndarray:
    table = np.full(256, _NON_ASCII, dtype=np.uint8)
    for c in range(128):
        if is_space[c] or (options.strip_punctuation and is_punct[c]):
            table[c] = _SEPARATOR
        elif options.lowercase and 65 <= c <= 90:
            table[c] = _UPPER
        else:
            table[c] = _KEEP
    return table


@numba.njit(cache=True, nogil=True, inline="always")
def _wide_character(data, k, strip_punct, is_space, is_punct):  # pragma: no cover - compiled
    """``(is a separator, width in bytes)`` of the non-ASCII UTF-8 character at ``data[k]``,
    by the Unicode tables ``normalise._fold`` uses."""
    c = np.int64(data[k])
    width = 4 if c >= 0xF0 else (3 if c >= 0xE0 else (2 if c >= 0xC0 else 1))
    cp = c & (0x07 if width == 4 else (0x0F if width == 3 else 0x1F))
    for j in range(1, width):
        cp = (cp << 6) | np.int64(data[k + j] & 0x3F)
    return is_space[cp] or (strip_punct and is_punct[cp]), width


@numba.njit(cache=True, nogil=True, parallel=True)
def _folded_token_counts(data, offsets, wide_rows, classes, strip_punct, is_space,
                         is_punct):  # pragma: no cover - compiled
    """Tokens per row as ``normalise._fold`` would leave them: runs of characters that are not
    whitespace (nor punctuation/symbols, if stripped). Rows that may hold non-ASCII text
    (``wide_rows``) take the loop that decodes characters; keeping that loop apart lets the
    compiler make the ASCII loop, the common case, about four times faster."""
    n = len(offsets) - 1
    counts = np.zeros(n, dtype=np.int64)
    for i in numba.prange(n):
        k, end = offsets[i], offsets[i + 1]
        count = 0
        inside = False
        if wide_rows[i]:
            while k < end:
                if classes[data[k]] == _NON_ASCII:
                    sep, width = _wide_character(data, k, strip_punct, is_space, is_punct)
                    k += width
                else:
                    sep = classes[data[k]] == _SEPARATOR
                    k += 1
                if not sep and not inside:
                    count += 1
                inside = not sep
        else:
            while k < end:
                sep = classes[data[k]] == _SEPARATOR
                k += 1
                if not sep and not inside:
                    count += 1
                inside = not sep
        counts[i] = count
    return counts


@numba.njit(cache=True, nogil=True, parallel=True)
def _fill_folded_hashes(data, offsets, wide_rows, classes, strip_punct, is_space, is_punct,
                        token_offsets, out):  # pragma: no cover - compiled
    """``_fill_token_hashes`` of the folded text, read from the unfolded bytes."""
    n = len(offsets) - 1
    for i in numba.prange(n):
        k, end = offsets[i], offsets[i + 1]
        t = token_offsets[i]
        h = _FNV_OFFSET
        inside = False
        if wide_rows[i]:
            while k < end:
                b = data[k]
                cls = classes[b]
                if cls == _NON_ASCII:
                    sep, width = _wide_character(data, k, strip_punct, is_space, is_punct)
                    if not sep:
                        for j in range(width):
                            h = (h ^ np.uint64(data[k + j])) * _FNV_PRIME
                    k += width
                else:
                    sep = cls == _SEPARATOR
                    if not sep:
                        c = np.uint64(b) + np.uint64(32) if cls == _UPPER else np.uint64(b)
                        h = (h ^ c) * _FNV_PRIME
                    k += 1
                if sep and inside:
                    out[t] = _fmix64(h)
                    t += 1
                    h = _FNV_OFFSET
                inside = not sep
        else:
            while k < end:
                b = data[k]
                cls = classes[b]
                k += 1
                if cls == _SEPARATOR:
                    if inside:
                        out[t] = _fmix64(h)
                        t += 1
                        h = _FNV_OFFSET
                    inside = False
                else:
                    c = np.uint64(b) + np.uint64(32) if cls == _UPPER else np.uint64(b)
                    h = (h ^ c) * _FNV_PRIME
                    inside = True
        if inside:
            out[t] = _fmix64(h)


def text_token_hashes(texts: pa.Array, options: NormaliseOptions) -> tuple[np.ndarray, np.ndarray]:
    """``token_hashes(*normalise_texts(texts, options))`` without writing the normalised text:
    the fold (case, punctuation, spacing) and the hashing are one compiled pass, which is most
    of a scan's time on long texts."""
    data, offsets, space, punct, wide_rows = unfolded(texts, options)
    classes = _byte_classes(options, space, punct)
    flags = (classes, options.strip_punctuation, space, punct)
    counts = _folded_token_counts(data, offsets, wide_rows, *flags)
    token_offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=token_offsets[1:])
    hashes = np.empty(token_offsets[-1], dtype=np.uint64)
    _fill_folded_hashes(data, offsets, wide_rows, *flags, token_offsets, hashes)
    return hashes, token_offsets


@numba.njit(cache=True, nogil=True)
def _gram(tokens, first, width):  # pragma: no cover - compiled
    h = np.uint64(0)
    for j in range(width):
        h = h * _COMBINE + tokens[first + j]
    return _fmix64(h + np.uint64(width))


@numba.njit(cache=True, nogil=True)
def _segment_grams(
    tokens, token_offsets, lengths, n, out_key, out_segment, out_position
):  # pragma: no cover
    """Keys of every segment: its n-grams, or the whole segment when shorter than ``n``."""
    k = 0
    for s in range(len(lengths)):
        first = token_offsets[s]
        m = lengths[s]
        if m >= n:
            for p in range(m - n + 1):
                out_key[k] = _gram(tokens, first + p, n)
                out_segment[k] = s
                out_position[k] = p
                k += 1
        elif m > 0:
            out_key[k] = _gram(tokens, first, m)
            out_segment[k] = s
            out_position[k] = 0
            k += 1
    return k


@dataclass
class NgramIndex:
    """The n-grams of a set of benchmark instances. ``instance`` ids are 0..n_instances-1 in the
    order given; segments of one instance are numbered consecutively."""

    n: int
    keys: np.ndarray  # uint64, sorted
    key_segment: np.ndarray  # int64
    key_position: np.ndarray  # int64, token position of the n-gram (0 for a short segment)
    segment_length: np.ndarray  # int64 tokens
    segment_instance: np.ndarray  # int64
    instance_segments: np.ndarray  # int64, segments per instance (0 = nothing indexable)
    short_lengths: np.ndarray  # int64, distinct lengths (< n) of short segments, for the scan
    bitmap: np.ndarray  # uint64 words; bit (key >> shift) set for every key
    shift: int

    @property
    def n_instances(self) -> int:
        return len(self.instance_segments)


def build_index(
    data: np.ndarray,
    offsets: np.ndarray,
    segment_instance: np.ndarray,
    n_instances: int,
    n: int,
    min_short_tokens: int,
) -> NgramIndex:
    """Index normalised segments (``data``/``offsets``, one entry per segment) of ``n_instances``.

    Segments shorter than ``min_short_tokens`` are left out (a one-word answer such as "yes"
    would match almost any text) and do not count in their instance's mean.
    """
    tokens, token_offsets = token_hashes(data, offsets)
    lengths = np.diff(token_offsets)
    usable = lengths >= max(min_short_tokens, 1)
    lengths = np.where(usable, lengths, 0)
    segment_instance = np.asarray(segment_instance, dtype=np.int64)
    instance_segments = np.bincount(segment_instance[usable], minlength=n_instances).astype(
        np.int64
    )
    total = int(np.where(lengths >= n, lengths - n + 1, np.minimum(lengths, 1)).sum())
    keys = np.empty(total, dtype=np.uint64)
    key_segment = np.empty(total, dtype=np.int64)
    key_position = np.empty(total, dtype=np.int64)
    _segment_grams(tokens, token_offsets, lengths, n, keys, key_segment, key_position)
    order = np.argsort(keys, kind="stable")
    keys, key_segment, key_position = keys[order], key_segment[order], key_position[order]
    # about 16 bits per key keeps the prefilter's false-positive rate near 1/16
    bits = int(min(max(np.ceil(np.log2(max(total, 1) * 16)), 16), 30))
    shift = 64 - bits
    bitmap = np.zeros((1 << bits) // 64, dtype=np.uint64)
    slots = (keys >> np.uint64(shift)).astype(np.int64)
    np.bitwise_or.at(
        bitmap, slots >> 6, np.left_shift(np.uint64(1), (slots & 63).astype(np.uint64))
    )
    short = np.unique(lengths[(lengths > 0) & (lengths < n)])
    return NgramIndex(
        n,
        keys,
        key_segment,
        key_position,
        lengths.astype(np.int64),
        segment_instance,
        instance_segments,
        short.astype(np.int64),
        bitmap,
        shift,
    )


@numba.njit(cache=True, nogil=True)
def _maybe(bitmap, shift, h):  # pragma: no cover - compiled
    slot = h >> np.uint64(shift)
    return (bitmap[slot >> np.uint64(6)] >> (slot & np.uint64(63))) & np.uint64(1)


@numba.njit(cache=True, nogil=True)
def _hits(tokens, first, m, n, short_lengths, bitmap, shift, keys, key_segment, key_position,
          segment_length, collect, out_segment, out_position, out_row_position):  # pragma: no cover
    """Index entries the row's grams hit. Counts only, unless ``collect``
    (then fills the outputs)."""
    count = 0
    for g in range(short_lengths.shape[0] + 1):
        width = n if g == short_lengths.shape[0] else short_lengths[g]
        if m < width:
            continue
        # _gram's polynomial, rolled one token at a time instead of recomputed per position
        top = np.uint64(1)
        for _ in range(width - 1):
            top = top * _COMBINE
        poly = np.uint64(0)
        for j in range(width):
            poly = poly * _COMBINE + tokens[first + j]
        for p in range(m - width + 1):
            if p:
                poly = ((poly - tokens[first + p - 1] * top) * _COMBINE
                        + tokens[first + p + width - 1])
            h = _fmix64(poly + np.uint64(width))
            if not _maybe(bitmap, shift, h):
                continue
            lo = np.searchsorted(keys, h)
            while lo < keys.shape[0] and keys[lo] == h:
                s = key_segment[lo]
                # a short key only matches a gram of its own width (and an n-gram only n-grams)
                if (segment_length[s] >= n) == (width == n):
                    if collect:
                        out_segment[count] = s
                        out_position[count] = key_position[lo]
                        out_row_position[count] = p
                    count += 1
                lo += 1
    return count


@numba.njit(cache=True, nogil=True)
def _instance_scores(n, segment_ids, positions, row_positions, segment_length, segment_instance,
                     instance_segments):  # pragma: no cover - compiled
    """Per instance hit by the row: (instance, score, first row token, end row token, the
    segment with the largest covered share)."""
    order = np.argsort(segment_ids * np.int64(1 << 32) + positions)
    k = order.shape[0]
    instances = np.empty(k, dtype=np.int64)
    scores = np.zeros(k, dtype=np.float64)
    span_start = np.empty(k, dtype=np.int64)
    span_end = np.empty(k, dtype=np.int64)
    best_segment = np.empty(k, dtype=np.int64)
    best_share = np.zeros(k, dtype=np.float64)
    found = -1
    i = 0
    while i < k:
        s = segment_ids[order[i]]
        length = segment_length[s]
        width = n if length >= n else length
        covered = 0
        lo_row = row_positions[order[i]]
        hi_row = lo_row + width
        j = i
        while j < k and segment_ids[order[j]] == s:
            p = positions[order[j]]
            if j + 1 < k and segment_ids[order[j + 1]] == s:
                covered += min(width, positions[order[j + 1]] - p)
            else:
                covered += width
            r = row_positions[order[j]]
            lo_row = min(lo_row, r)
            hi_row = max(hi_row, r + width)
            j += 1
        inst = segment_instance[s]
        share = min(covered, length) / length
        if found < 0 or instances[found] != inst:
            found += 1
            instances[found] = inst
            span_start[found] = lo_row
            span_end[found] = hi_row
            best_segment[found] = s
            best_share[found] = share
        else:
            span_start[found] = min(span_start[found], lo_row)
            span_end[found] = max(span_end[found], hi_row)
            if share > best_share[found]:
                best_segment[found] = s
                best_share[found] = share
        scores[found] += share / instance_segments[inst]
        i = j
    found += 1
    return (instances[:found], scores[:found], span_start[:found], span_end[:found],
            best_segment[:found])


@numba.njit(cache=True, nogil=True)
def _row_scores(tokens, first, m, n, short_lengths, bitmap, shift, keys, key_segment, key_position,
                segment_length, segment_instance, instance_segments,
                count):  # pragma: no cover - compiled
    """The row's instance scores; ``count``: its hits (``_hits`` without ``collect``)."""
    segs = np.empty(count, dtype=np.int64)
    pos = np.empty(count, dtype=np.int64)
    rows = np.empty(count, dtype=np.int64)
    if count:
        _hits(tokens, first, m, n, short_lengths, bitmap, shift, keys, key_segment, key_position,
              segment_length, True, segs, pos, rows)
    return _instance_scores(n, segs, pos, rows, segment_length, segment_instance, instance_segments)


@numba.njit(cache=True, nogil=True, parallel=True)
def _count_flagged(tokens, token_offsets, n, short_lengths, bitmap, shift, keys, key_segment,
                   key_position, segment_length, segment_instance, instance_segments,
                   threshold):  # pragma: no cover - compiled
    rows = token_offsets.shape[0] - 1
    flagged = np.zeros(rows, dtype=np.int64)
    empty = np.zeros(0, dtype=np.int64)
    for i in numba.prange(rows):
        first = token_offsets[i]
        m = token_offsets[i + 1] - first
        count = _hits(tokens, first, m, n, short_lengths, bitmap, shift, keys, key_segment,
                      key_position, segment_length, False, empty, empty, empty)
        if count == 0:
            continue  # the common case: no gram of this row is in any benchmark
        inst, scores, _, _, _ = _row_scores(tokens, first, m, n, short_lengths, bitmap, shift, keys,
                                         key_segment, key_position, segment_length,
                                         segment_instance, instance_segments, count)
        c = 0
        for j in range(inst.shape[0]):
            if scores[j] >= threshold:
                c += 1
        flagged[i] = c
    return flagged


@numba.njit(cache=True, nogil=True, parallel=True)
def _flagged_pairs(tokens, token_offsets, rows, pair_offsets, n, short_lengths, bitmap, shift, keys,
                   key_segment, key_position, segment_length, segment_instance, instance_segments,
                   threshold, out_instance, out_score, out_start, out_end,
                   out_segment):  # pragma: no cover
    for q in numba.prange(rows.shape[0]):
        i = rows[q]
        first = token_offsets[i]
        m = token_offsets[i + 1] - first
        empty = np.zeros(0, dtype=np.int64)
        count = _hits(tokens, first, m, n, short_lengths, bitmap, shift, keys, key_segment,
                      key_position, segment_length, False, empty, empty, empty)
        inst, scores, starts, ends, segments = _row_scores(
            tokens, first, m, n, short_lengths, bitmap, shift, keys, key_segment, key_position,
            segment_length, segment_instance, instance_segments, count)
        k = pair_offsets[q]
        for j in range(inst.shape[0]):
            if scores[j] >= threshold:
                out_instance[k] = inst[j]
                out_score[k] = scores[j]
                out_start[k] = starts[j]
                out_end[k] = ends[j]
                out_segment[k] = segments[j]
                k += 1


@dataclass
class Matches:
    """Every (row, instance) pair of a batch whose score reached the threshold, row-major; within
    a row, instances in increasing order. ``start``/``end`` are the row's token positions spanning
    the shared grams; ``segment`` the instance's segment with the largest covered share."""

    row: np.ndarray
    instance: np.ndarray
    score: np.ndarray
    start: np.ndarray
    end: np.ndarray
    segment: np.ndarray


def scan(
    tokens: np.ndarray, token_offsets: np.ndarray, index: NgramIndex, threshold: float
) -> Matches:
    """Score every row (``token_hashes`` output) against every indexed instance."""
    args = (
        index.n,
        index.short_lengths,
        index.bitmap,
        index.shift,
        index.keys,
        index.key_segment,
        index.key_position,
        index.segment_length,
        index.segment_instance,
        index.instance_segments,
    )
    per_row = _count_flagged(tokens, token_offsets, *args, float(threshold))
    rows = np.flatnonzero(per_row)
    pair_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(per_row[rows], out=pair_offsets[1:])
    total = int(pair_offsets[-1])
    instance = np.empty(total, dtype=np.int64)
    score = np.empty(total, dtype=np.float64)
    start = np.empty(total, dtype=np.int64)
    end = np.empty(total, dtype=np.int64)
    segment = np.empty(total, dtype=np.int64)
    if len(rows):
        _flagged_pairs(tokens, token_offsets, rows, pair_offsets, *args, float(threshold),
                       instance, score, start, end, segment)
    return Matches(np.repeat(rows, per_row[rows]), instance, score, start, end, segment)
