"""Kernels of the repetition rules (``repeated_lines``, ``repeated_ngrams``,
``repeated_sentences``): one compiled pass per rule over the UTF-8 bytes of a whole Arrow column
of turns, with no intermediate strings, lists or dictionaries.

Each measure has one definition, the Arrow/Python path named ``*_reference`` here (lines and
sentences) or ``normalise_texts`` + word n-grams (n-grams). The compiled pass reads raw bytes and
is exact for ASCII text, where case folding, whitespace and punctuation are one byte each; a
turn with any other character goes through the reference path (NFKC and Unicode case need
Python's or Arrow's tables), so results do not depend on which path a turn took. Property tests
hold the two paths to the same numbers.

``count_bytes`` is the cheap pass before them: a text with too few line breaks (or sentence
marks) cannot fire and is not read again.

Lines, sentences and n-grams are compared by 64-bit hashes (FNV-1a with a MurmurHash3
finaliser, as dedup and decontamination hash words); two different ones collide with odds
around 2^-64 per pair.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from postmix.curate.hygiene import split_sentences
from postmix.curate.minhash import _COMBINE, _FNV_OFFSET, _FNV_PRIME, _fmix64
from postmix.curate.normalise import string_buffers

# Python's str.isspace() among ASCII (also what Arrow's utf8_trim_whitespace trims there).
_SPACE = np.zeros(128, dtype=np.bool_)
_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
# ASCII bytes that end a word for the n-gram rule: whitespace and the 32 punctuation characters
# (all in Unicode categories P*/S*, which ``normalise_texts`` turns into spaces).
_WORD_BREAK = _SPACE.copy()
_WORD_BREAK[[ord(c) for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"]] = True
# Each byte as the n-gram rule reads it: 0 ends a word (whitespace, punctuation), A-Z as a-z,
# NUL (a word byte to normalise_texts) as 256, every other byte as it is (bytes >= 128 only come
# normalised, see repeated_ngram_fraction).
_WORD_FOLD = np.arange(256, dtype=np.uint16)
_WORD_FOLD[65:91] += 32
_WORD_FOLD[0] = 256
_WORD_FOLD[:128][_WORD_BREAK] = 0
_SENTENCE_MARK = np.zeros(128, dtype=np.bool_)
_SENTENCE_MARK[[ord("."), ord("!"), ord("?")]] = True


def count_bytes(texts: pa.Array, values: bytes) -> np.ndarray:
    """Per text, how many of its UTF-8 bytes are among ``values``: one pass, which lets a rule
    skip texts that cannot fire (too few line breaks, no byte a pattern needs)."""
    data, offsets = _buffers(texts)
    return _count_bytes(data, offsets, _table(values))


@numba.njit(cache=True, nogil=True)
def _count_bytes(data, offsets, counted):  # pragma: no cover - compiled
    """Per text, how many of its bytes ``counted`` marks (a 256-entry 0/1 table)."""
    n = len(offsets) - 1
    out = np.zeros(n, dtype=np.int64)
    for i in range(n):
        total = 0
        for k in range(offsets[i], offsets[i + 1]):
            total += counted[data[k]]
        out[i] = total
    return out


def _table(values: bytes) -> np.ndarray:
    table = np.zeros(256, dtype=np.int64)
    table[list(values)] = 1
    return table


_NEWLINE_BYTE = _table(b"\n")
_MARK_BYTES = _table(b".!?")


def _ascii(texts: pa.Array) -> np.ndarray:
    return pc.string_is_ascii(texts).fill_null(True).to_numpy(zero_copy_only=False)


def _buffers(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    data, offsets = string_buffers(texts)
    return data, np.ascontiguousarray(offsets)


@numba.njit(cache=True, nogil=True)
def _chunks(offsets, parts):  # pragma: no cover - compiled
    """Bounds of ``parts`` runs of texts of about equal bytes: each thread reuses its scratch
    arrays over one run instead of allocating per text (allocation dominated short turns)."""
    n = len(offsets) - 1
    bounds = np.zeros(parts + 1, dtype=np.int64)
    total = offsets[n] - offsets[0]
    i = 0
    for p in range(1, parts):
        while i < n and (offsets[i] - offsets[0]) * parts < total * p:
            i += 1
        bounds[p] = i
    bounds[parts] = n
    return bounds


@numba.njit(cache=True, nogil=True)
def _longest(offsets, first, last):  # pragma: no cover - compiled
    most = 0
    for i in range(first, last):
        most = max(most, offsets[i + 1] - offsets[i])
    return most


@numba.njit(cache=True, nogil=True)
def _max_multiplicity(keys, m):  # pragma: no cover - compiled
    """How often the most frequent of ``keys[:m]`` occurs (sorts ``keys[:m]`` in place when
    long; a few keys are compared pairwise, cheaper than a sort)."""
    if m <= 32:
        top = 0
        for p in range(m):
            same = 0
            for q in range(m):
                if keys[q] == keys[p]:
                    same += 1
            top = max(top, same)
        return top
    keys[:m].sort()
    top = run = 1
    for p in range(1, m):
        run = run + 1 if keys[p] == keys[p - 1] else 1
        top = max(top, run)
    return top


@numba.njit(cache=True, nogil=True)
def _distinct(keys, m):  # pragma: no cover - compiled
    if m <= 32:
        count = 0
        for p in range(m):
            seen = False
            for q in range(p):
                if keys[q] == keys[p]:
                    seen = True
                    break
            count += not seen
        return count
    keys[:m].sort()
    count = 1 if m else 0
    for p in range(1, m):
        count += keys[p] != keys[p - 1]
    return count


# ---------------------------------------------------------------- word n-grams


@numba.njit(cache=True, nogil=True, parallel=True)
def _ngram_fraction(data, offsets, todo, fold, ngram, min_words, parts):  # pragma: no cover
    """Per text with ``todo``: share of its words inside a word ``ngram``-gram occurring twice or
    more (0 under ``min_words`` words). A word is a run of bytes that ``fold`` does not map to
    0 (``_WORD_FOLD``), read through ``fold``: ``normalise_texts``'s words for ASCII text, and
    its output's words as they are."""
    n = len(offsets) - 1
    out = np.zeros(n, dtype=np.float64)
    power = np.uint64(1)  # _COMBINE ** ngram: drops the oldest word from a rolling gram
    for _ in range(ngram):
        power = power * _COMBINE
    bounds = _chunks(offsets, parts)
    for c in numba.prange(parts):
        room = _longest(offsets, bounds[c], bounds[c + 1]) // 2 + 2  # most words of a text, + 1
        words = np.empty(room, dtype=np.uint64)
        grams = np.empty(room, dtype=np.uint64)
        slot = np.empty(room, dtype=np.int64)
        depth = np.zeros(room + 1, dtype=np.int32)
        size = 1
        while size < 2 * room:
            size *= 2
        keys = np.empty(size, dtype=np.uint64)
        counts = np.zeros(size, dtype=np.int32)
        for i in range(bounds[c], bounds[c + 1]):
            start, end = offsets[i], offsets[i + 1]
            if not todo[i] or end - start < 2 * min_words - 1:  # too short for min_words words
                continue
            m = 0
            h = _FNV_OFFSET
            inside = False
            for k in range(start, end):  # branch-free: word ends are too frequent to predict
                f = fold[data[k]]
                word = f != 0
                words[m] = h  # kept only when this byte ends the word
                m += inside and not word
                h = ((h if inside else _FNV_OFFSET) ^ np.uint64(f)) * _FNV_PRIME
                inside = word
            if inside:
                words[m] = h
                m += 1
            for p in range(m):
                words[p] = _fmix64(words[p])
            if m < min_words or m < ngram:
                continue
            k = m - ngram + 1
            g = np.uint64(0)
            for p in range(m):
                g = g * _COMBINE + words[p]
                if p >= ngram:
                    g -= words[p - ngram] * power
                if p >= ngram - 1:
                    grams[p - ngram + 1] = g
            mask = 1
            while mask < 2 * k:
                mask *= 2
            mask -= 1
            for p in range(k):
                s = np.int64(_fmix64(grams[p]) & np.uint64(mask))
                while counts[s] and keys[s] != grams[p]:
                    s = (s + 1) & mask
                keys[s] = grams[p]
                counts[s] += 1
                slot[p] = s
            for p in range(k):
                if counts[slot[p]] > 1:
                    depth[p] += 1
                    depth[p + ngram] -= 1
            covered = 0
            level = 0
            for p in range(m + 1):
                level += depth[p]
                depth[p] = 0
                if level > 0 and p < m:
                    covered += 1
            for p in range(k):
                counts[slot[p]] = 0
            out[i] = covered / m
    return out


def _parts(n: int) -> int:
    return max(1, min(n, 4 * numba.get_num_threads()))


def repeated_ngram_fraction(texts: pa.Array, ngram: int, min_words: int) -> np.ndarray:
    """Per text: the share of its normalised words (``normalise_texts``) that lie in a word
    ``ngram``-gram occurring twice or more in it; 0 for texts under ``min_words`` words."""
    from postmix.curate.normalise import normalise_texts

    ascii_ = _ascii(texts)
    data, offsets = _buffers(texts)
    out = _ngram_fraction(data, offsets, ascii_, _WORD_FOLD, ngram, min_words,
                          _parts(len(texts)))
    other = np.flatnonzero(~ascii_)
    if len(other):  # NFKC and Unicode case first; the kernel then reads the normalised words
        data, offsets = normalise_texts(texts.take(pa.array(other)))
        out[other] = _ngram_fraction(data, offsets, np.ones(len(other), dtype=np.bool_),
                                     _WORD_FOLD, ngram, min_words, _parts(len(other)))
    return out


# ---------------------------------------------------------------- lines


@numba.njit(cache=True, nogil=True)
def _line_key(data, start, end):  # pragma: no cover - compiled
    h = _FNV_OFFSET
    for k in range(start, end):
        h = (h ^ np.uint64(data[k])) * _FNV_PRIME
    return _fmix64(h + np.uint64(end - start))


@numba.njit(cache=True, nogil=True, parallel=True)
def _line_counts(data, offsets, todo, space, min_chars, parts):  # pragma: no cover - compiled
    """Per ASCII text with ``todo``: (lines of >= ``min_chars`` after trimming whitespace,
    distinct ones among them)."""
    n = len(offsets) - 1
    counted = np.zeros(n, dtype=np.int64)
    distinct = np.zeros(n, dtype=np.int64)
    bounds = _chunks(offsets, parts)
    for c in numba.prange(parts):
        keys = np.empty(_longest(offsets, bounds[c], bounds[c + 1]) // min_chars + 1,
                        dtype=np.uint64)
        for i in range(bounds[c], bounds[c + 1]):
            if not todo[i]:
                continue
            end = offsets[i + 1]
            m = 0
            line = offsets[i]
            while True:
                stop = line
                while stop < end and data[stop] != 10:
                    stop += 1
                a, b = line, stop
                while a < b and space[data[a]]:
                    a += 1
                while b > a and space[data[b - 1]]:
                    b -= 1
                if b - a >= min_chars:
                    keys[m] = _line_key(data, a, b)
                    m += 1
                if stop >= end:
                    break
                line = stop + 1
            counted[i] = m
            distinct[i] = _distinct(keys, m)
    return counted, distinct


def line_counts_reference(texts: pa.Array, min_chars: int) -> tuple[np.ndarray, np.ndarray]:
    """``_line_counts`` with Arrow compute, for any text: lines split at ``\\n``, Unicode
    whitespace trimmed, length in characters."""
    lines = pc.split_pattern(texts, "\n")
    flat = pc.utf8_trim_whitespace(pc.list_flatten(lines))
    owner = pc.list_parent_indices(lines).to_numpy(zero_copy_only=False).astype(np.int64)
    keep = pc.greater_equal(pc.utf8_length(flat), min_chars).to_numpy(zero_copy_only=False)
    owner = owner[keep]
    codes = pc.dictionary_encode(flat.filter(pa.array(keep))).indices.to_numpy(
        zero_copy_only=False).astype(np.int64)
    counted = np.bincount(owner, minlength=len(texts))
    width = int(codes.max()) + 1 if len(codes) else 1
    distinct = np.bincount(np.unique(owner * width + codes) // width, minlength=len(texts))
    return counted, distinct


def duplicate_line_fraction(texts: pa.Array, min_chars: int, min_lines: int) -> np.ndarray:
    """Per text: the share of its lines (trimmed, >= ``min_chars``) that repeat an earlier
    line; 0 for texts with fewer than ``min_lines`` such lines."""
    data, offsets = _buffers(texts)
    # fewer than min_lines - 1 line breaks: fewer than min_lines lines, nothing to read
    enough = _count_bytes(data, offsets, _NEWLINE_BYTE) >= min_lines - 1
    ascii_ = _ascii(texts)
    counted, distinct = _line_counts(data, offsets, ascii_ & enough, _SPACE, min_chars,
                                     _parts(len(texts)))
    other = np.flatnonzero(~ascii_ & enough)
    if len(other):
        counted[other], distinct[other] = line_counts_reference(texts.take(pa.array(other)),
                                                                min_chars)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counted >= min_lines, (counted - distinct) / np.maximum(counted, 1), 0.0)


# ---------------------------------------------------------------- sentences


@numba.njit(cache=True, nogil=True, parallel=True)
def _most_repeated_sentence(data, offsets, todo, space, mark, min_chars, parts):  # pragma: no cover
    """Per ASCII text with ``todo``: ``most_repeated_sentence_reference`` in one pass. A
    sentence ends at a run of ``.!?`` followed by whitespace or the end of the text; it is
    lower-cased, its whitespace runs read as one space, and it is trimmed."""
    n = len(offsets) - 1
    best = np.zeros(n, dtype=np.int64)
    bounds = _chunks(offsets, parts)
    for c in numba.prange(parts):
        keys = np.empty(_longest(offsets, bounds[c], bounds[c + 1]) // min_chars + 1,
                        dtype=np.uint64)
        for i in range(bounds[c], bounds[c + 1]):
            if not todo[i]:
                continue
            end = offsets[i + 1]
            m = 0
            h = _FNV_OFFSET
            length = 0  # characters of the normalised sentence so far
            gap = False  # whitespace after the last character (written only if more follows)
            k = offsets[i]
            while True:
                if k < end and not mark[data[k]]:
                    b = data[k]
                    k += 1
                    if space[b]:
                        gap = length > 0
                        continue
                    if gap:
                        h = (h ^ np.uint64(32)) * _FNV_PRIME
                        length += 1
                        gap = False
                    if 65 <= b <= 90:
                        b += 32
                    h = (h ^ np.uint64(b)) * _FNV_PRIME
                    length += 1
                    continue
                run = k
                while run < end and mark[data[run]]:
                    run += 1
                if run < end and not space[data[run]]:  # marks inside a word: "3.14", "e.g.x"
                    for q in range(k, run):
                        if gap:
                            h = (h ^ np.uint64(32)) * _FNV_PRIME
                            length += 1
                            gap = False
                        h = (h ^ np.uint64(data[q])) * _FNV_PRIME
                        length += 1
                    k = run
                    continue
                if length >= min_chars:  # the sentence ends here
                    keys[m] = _fmix64(h + np.uint64(length))
                    m += 1
                h = _FNV_OFFSET
                length = 0
                gap = False
                if run >= end:
                    break
                k = run
                while k < end and space[data[k]]:
                    k += 1
            best[i] = _max_multiplicity(keys, m)
    return best


def most_repeated_sentence_reference(texts: pa.Array, min_chars: int) -> np.ndarray:
    """Per text, how often its most frequent sentence of ``min_chars`` or more occurs
    (``hygiene.split_sentences``: Arrow compute, any text)."""
    flat, owner = split_sentences(texts)
    counted = pc.greater_equal(pc.utf8_length(flat), min_chars).to_numpy(zero_copy_only=False)
    best = np.zeros(len(texts), dtype=np.int64)
    if not counted.any():
        return best
    owner = owner[counted]
    codes = pc.dictionary_encode(flat.filter(pa.array(counted))).indices.to_numpy(
        zero_copy_only=False).astype(np.int64)
    width = int(codes.max()) + 1
    keys, counts = np.unique(owner * width + codes, return_counts=True)
    np.maximum.at(best, keys // width, counts)
    return best


def most_repeated_sentence(texts: pa.Array, min_chars: int, at_least: int = 0) -> np.ndarray:
    """Per text, how often its most frequent sentence of ``min_chars`` or more characters
    occurs (sentences as ``hygiene.split_sentences`` cuts and normalises them). With
    ``at_least``, an ASCII text that cannot reach that count (it has fewer than
    ``at_least - 1`` of ``.!?``, so fewer sentence ends) is not read and counts 0."""
    ascii_ = _ascii(texts)
    data, offsets = _buffers(texts)
    todo = ascii_
    if at_least > 1:
        todo = ascii_ & (_count_bytes(data, offsets, _MARK_BYTES) >= at_least - 1)
    best = _most_repeated_sentence(data, offsets, todo, _SPACE, _SENTENCE_MARK, min_chars,
                                   _parts(len(texts)))
    other = np.flatnonzero(~ascii_)
    if len(other):
        best[other] = most_repeated_sentence_reference(texts.take(pa.array(other)), min_chars)
    return best
