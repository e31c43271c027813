"""Text normalisation shared by the curation stages (dedup, decontamination): two texts that differ
only in Unicode form, case, punctuation or spacing should compare equal.

``normalise_text`` is the definition. ``normalise_texts`` gives the same result for a whole batch
fast: NFKC and lowercasing of non-ASCII rows use Python's own Unicode database (ASCII rows need
neither), markup patterns are removed with Arrow's RE2 kernel, and a compiled kernel maps
punctuation and whitespace of every row through tables built from that same database; a property
test checks the two paths agree.

``markup`` lists patterns of text that carries no content (GSM8K's ``<<48/2=24>>`` calculator
annotations, its ``#### 72`` answer line): they are removed after NFKC and before everything
else, case-insensitively, until none is left, so a copy with the markup stripped and the
original normalise to the same words.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator


class NormaliseOptions(BaseModel):
    """What counts as "the same text". Whitespace is always collapsed to single spaces and
    trimmed: every consumer splits into words, and spacing never changes meaning."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nfkc: bool = Field(
        True, description="Unicode NFKC: full-width, ligatures, NBSP -> plain forms."
    )
    lowercase: bool = Field(True, description="Case-insensitive comparison.")
    strip_punctuation: bool = Field(
        True,
        description="Replace Unicode punctuation and symbols (categories P*, S*) by spaces, so "
        "'Hello, world!' and 'hello world' match.",
    )
    markup: tuple[str, ...] = Field(
        (),
        description="Regular expressions (RE2 syntax, matched case-insensitively after NFKC) of "
        "markup that carries no content, removed until none is left, e.g. GSM8K's calculator "
        "annotations '<<[^<>]*>>'. A pattern may not match the empty string.",
    )

    @field_validator("markup")
    @classmethod
    def _patterns_remove_something(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"markup pattern {pattern!r} is not a regular expression: {exc}"
                ) from None
            if compiled.fullmatch(""):  # removal would never finish
                raise ValueError(f"markup pattern {pattern!r} matches the empty string")
            try:  # the batch path runs RE2, which lacks look-arounds and back-references
                pc.match_substring_regex(pa.array([""]), pattern)
            except pa.ArrowInvalid as exc:
                raise ValueError(f"markup pattern {pattern!r} is not RE2 syntax: {exc}") from None
        return tuple(dict.fromkeys(value))

    def markup_pattern(self) -> str | None:
        """The markup patterns as one case-insensitive alternation (None: no markup)."""
        if not self.markup:
            return None
        return "(?i)" + "|".join(f"(?:{p})" for p in self.markup)


@lru_cache(maxsize=1)
def _punctuation_table() -> dict[int, str]:
    """Every code point in a P* or S* category -> space (built once, about 0.3 s)."""
    return {
        cp: " "
        for cp in range(sys.maxunicode + 1)
        if unicodedata.category(chr(cp))[0] in "PS"
    }


def normalise_text(text: str, options: NormaliseOptions | None = None) -> str:
    """The reference normalisation: NFKC, lowercase, punctuation to spaces, collapse whitespace."""
    options = options or NormaliseOptions()
    if options.nfkc:
        text = unicodedata.normalize("NFKC", text)
    if options.markup:
        text = _remove_markup(text, options.markup_pattern())
    if options.lowercase:
        text = text.lower()
    if options.strip_punctuation:
        text = text.translate(_punctuation_table())
    return " ".join(text.split())


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _remove_markup(text: str, pattern: str) -> str:
    compiled = _compiled(pattern)
    while True:  # removing one match can join the pieces of another ("<<<<a>>>>")
        text, removed = compiled.subn("", text)
        if not removed:
            return text


def _remove_markup_batch(array: pa.Array, pattern: str) -> pa.Array:
    """``_remove_markup`` of every row: only rows that contain markup are rewritten."""
    todo = np.flatnonzero(pc.match_substring_regex(array, pattern).to_numpy(zero_copy_only=False))
    while len(todo):
        fixed = pc.replace_substring_regex(array.take(todo), pattern, "")
        mask = np.zeros(len(array), dtype=bool)
        mask[todo] = True
        array = pc.replace_with_mask(array, pa.array(mask), fixed)
        again = pc.match_substring_regex(fixed, pattern).to_numpy(zero_copy_only=False)
        todo = todo[again]
    return array


# Markup of the form OPEN [^STOP]* CLOSE (GSM8K's '<<[^<>]*>>' and '####[^\n]*'), letter-free
# ASCII, where CLOSE (possibly empty) starts with a STOP character - so the greedy run never
# backtracks - is removed by a compiled kernel; any other pattern goes to RE2.
_LITERAL = r"(?:[^\\\[\]().*+?{}|^$a-zA-Z\x80-\U0010ffff]|\\[^a-zA-Z0-9])+"
_STOP = r"(?:[^\\\]\-^a-zA-Z\x80-\U0010ffff]|\\[\\\]\-^nrt])+"
_DELIMITED = re.compile(rf"({_LITERAL})\[\^({_STOP})\]\*({_LITERAL})?")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t"}


def _unescaped(text: str) -> bytes:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text).encode()


@lru_cache(maxsize=64)
def _delimited_plan(markup: tuple[str, ...]) -> tuple[np.ndarray, ...] | None:
    """``(starts, opens, open_offsets, stops [patterns x 256], closes, close_offsets)`` when
    every pattern is delimited markup (above), else None."""
    opens, closes, stops = [], [], []
    for pattern in markup:
        found = _DELIMITED.fullmatch(pattern)
        if found is None:
            return None
        start, stop, close = (_unescaped(found.group(i) or "") for i in (1, 2, 3))
        if close and close[0] not in stop:
            return None
        opens.append(start)
        closes.append(close)
        table = np.zeros(256, dtype=np.bool_)
        table[list(stop)] = True
        stops.append(table)

    def packed(parts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
        return np.frombuffer(b"".join(parts), dtype=np.uint8).copy(), offsets

    starts = np.zeros(256, dtype=np.bool_)
    starts[[o[0] for o in opens]] = True
    return (starts, *packed(opens), np.stack(stops), *packed(closes))


@numba.njit(cache=True, nogil=True, parallel=True)
def _remove_delimited(data, offsets, starts, opens, open_offsets, stops, closes,
                      close_offsets):  # pragma: no cover - compiled
    """``_remove_markup`` of every row for delimited patterns: leftmost match first, the first
    pattern that matches at a position wins, non-overlapping, passes repeated until one removes
    nothing. Each row is rewritten in place in a copy (writes never pass reads); ``starts``
    marks the bytes an OPEN begins with, so most bytes cost one lookup."""
    n = len(offsets) - 1
    patterns = len(open_offsets) - 1
    buf = data.copy()
    lengths = np.zeros(n, dtype=np.int64)
    for i in numba.prange(n):
        start = offsets[i]
        end = offsets[i + 1]
        removed = True
        while removed:
            removed = False
            r = start
            w = start
            while r < end:
                b = buf[r]
                if not starts[b]:  # the common case first, in a tight loop
                    buf[w] = b
                    w += 1
                    r += 1
                    continue
                match_end = -1
                # the literal comparisons are written out: a helper, even inlined, makes
                # this loop several times slower
                for j in range(patterns):
                    lo = open_offsets[j]
                    m = open_offsets[j + 1] - lo
                    same = r + m <= end
                    for x in range(m if same else 0):
                        if buf[r + x] != opens[lo + x]:
                            same = False
                            break
                    if not same:
                        continue
                    q = r + m
                    while q < end and not stops[j, buf[q]]:
                        q += 1
                    lo = close_offsets[j]
                    m = close_offsets[j + 1] - lo
                    same = q + m <= end
                    for x in range(m if same else 0):
                        if buf[q + x] != closes[lo + x]:
                            same = False
                            break
                    if same:
                        match_end = q + m
                        break
                if match_end >= 0:
                    r = match_end
                    removed = True
                else:
                    buf[w] = b
                    w += 1
                    r += 1
            end = w
        lengths[i] = end - start
    new_offsets = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        new_offsets[i + 1] = new_offsets[i] + lengths[i]
    result = np.empty(new_offsets[n], dtype=np.uint8)
    for i in numba.prange(n):
        src, dst = offsets[i], new_offsets[i]
        for k in range(lengths[i]):
            result[dst + k] = buf[src + k]
    return result, new_offsets


# Bytes Python's str.split() treats as whitespace among ASCII (note \x1c-\x1f).
_ASCII_SPACE = np.zeros(128, dtype=np.bool_)
_ASCII_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
# All 32 ASCII punctuation characters are in Unicode categories P* or S*.
_ASCII_PUNCT = np.zeros(128, dtype=np.bool_)
_ASCII_PUNCT[[ord(c) for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"]] = True


@lru_cache(maxsize=1)
def _unicode_tables() -> tuple[np.ndarray, np.ndarray]:
    """``(is_space, is_punct)`` for every code point, as Python's ``str.split`` and
    ``_punctuation_table`` see them; built once, only when a batch has non-ASCII text."""
    space = np.array([chr(cp).isspace() for cp in range(sys.maxunicode + 1)], dtype=np.bool_)
    punct = np.zeros(sys.maxunicode + 1, dtype=np.bool_)
    punct[list(_punctuation_table())] = True
    return space, punct


@numba.njit(cache=True, nogil=True, parallel=True)
def _fold(data, offsets, lowercase, strip_punct, is_space, is_punct):  # pragma: no cover - compiled
    """Per row: ASCII lowercase, punctuation/symbols to space, collapse and trim whitespace.

    Non-ASCII rows arrive NFKC-normalised and lowercased by Python; their code points are
    decoded here and looked up in ``is_space`` / ``is_punct`` (full Unicode tables then; ASCII
    ones when the batch is pure ASCII). Returns the new byte buffer and offsets.
    """
    n = len(offsets) - 1
    scratch = np.empty(len(data), dtype=np.uint8)
    lengths = np.zeros(n, dtype=np.int64)
    for i in numba.prange(n):
        start, end = offsets[i], offsets[i + 1]
        out = start
        pending_space = False
        k = start
        while k < end:
            c = np.int64(data[k])
            if c < 128:  # the common case, kept branch-light
                if is_space[c] or (strip_punct and is_punct[c]):
                    pending_space = out > start
                else:
                    if pending_space:
                        scratch[out] = 32
                        out += 1
                        pending_space = False
                    scratch[out] = c + 32 if lowercase and 65 <= c <= 90 else c
                    out += 1
                k += 1
                continue
            width = 4 if c >= 0xF0 else (3 if c >= 0xE0 else (2 if c >= 0xC0 else 1))
            cp = c & (0x07 if width == 4 else (0x0F if width == 3 else 0x1F))
            for j in range(1, width):
                cp = (cp << 6) | np.int64(data[k + j] & 0x3F)
            if is_space[cp] or (strip_punct and is_punct[cp]):
                pending_space = out > start
            else:
                if pending_space:
                    scratch[out] = 32
                    out += 1
                    pending_space = False
                for j in range(width):
                    scratch[out + j] = data[k + j]
                out += width
            k += width
        lengths[i] = out - start
    new_offsets = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        new_offsets[i + 1] = new_offsets[i] + lengths[i]
    result = np.empty(new_offsets[n], dtype=np.uint8)
    for i in numba.prange(n):
        src, dst = offsets[i], new_offsets[i]
        for k in range(lengths[i]):
            result[dst + k] = scratch[src + k]
    return result, new_offsets


def _unicode_prefix(text: str, options: NormaliseOptions) -> str:
    """The steps of ``normalise_text`` that need Python's Unicode database (markup is removed
    from the whole batch afterwards: case-insensitive patterns see the same matches)."""
    if options.nfkc:
        text = unicodedata.normalize("NFKC", text)
    return text.lower() if options.lowercase else text


def string_buffers(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """``(utf-8 bytes, int64 offsets)`` of a string array, zero-copy where Arrow allows."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    array = array.cast(pa.large_string()).fill_null("")
    _, offsets_buf, data_buf = array.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[
        array.offset : array.offset + len(array) + 1
    ]
    data = (
        np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    )
    return data, offsets


def normalise_texts(
    texts: pa.Array | list[str], options: NormaliseOptions | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Normalise a batch; returns ``(utf-8 bytes, int64 offsets)`` with row ``i`` at
    ``data[offsets[i]:offsets[i+1]]``, equal to ``normalise_text(texts[i]).encode()``."""
    options = options or NormaliseOptions()
    data, offsets, space, punct, _ = unfolded(texts, options)
    return _fold(data, offsets, options.lowercase, options.strip_punctuation, space, punct)


def unfolded(
    texts: pa.Array | list[str], options: NormaliseOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The batch after the steps that need Python's Unicode database or a regex engine (NFKC and
    lowercase of non-ASCII rows, markup), before the compiled fold: ``(utf-8 bytes, offsets,
    is_space, is_punct, wide rows)``; a row not marked wide is pure ASCII.
    ``postmix.curate.ngram_index.text_token_hashes`` folds and hashes these bytes in one pass
    instead of writing the normalised text."""
    array = (
        texts
        if isinstance(texts, (pa.Array, pa.ChunkedArray))
        else pa.array(texts, pa.large_string())
    )
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array = array.cast(pa.large_string()).fill_null("")
    non_ascii = np.flatnonzero(~pc.string_is_ascii(array).to_numpy(zero_copy_only=False))
    space, punct = _ASCII_SPACE, _ASCII_PUNCT
    if len(non_ascii):
        space, punct = _unicode_tables()
        fixed = [_unicode_prefix(t, options) for t in array.take(non_ascii).to_pylist()]
        mask = np.zeros(len(array), dtype=bool)
        mask[non_ascii] = True
        array = pc.replace_with_mask(array, pa.array(mask), pa.array(fixed, pa.large_string()))
    plan = _delimited_plan(options.markup) if options.markup else None
    if options.markup and plan is None:
        array = _remove_markup_batch(array, options.markup_pattern())
    data, offsets = string_buffers(array)
    offsets = offsets - offsets[0]
    data = data[: offsets[-1]] if len(offsets) else data
    if plan is not None:
        data, offsets = _remove_delimited(data, offsets, *plan)
    wide_rows = np.zeros(len(offsets) - 1, dtype=np.bool_)
    wide_rows[non_ascii] = True
    return data, offsets, space, punct, wide_rows


def decode_rows(data: np.ndarray, offsets: np.ndarray) -> list[str]:
    """Python strings of a ``(bytes, offsets)`` batch; for glue and tests, not hot loops."""
    raw = data.tobytes()
    return [raw[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(len(offsets) - 1)]
