"""Kernels of the hygiene filters: leaked chat-template tokens, the shape of a reasoning answer,
sentence splitting (counted in ``postmix.curate.repetition``) and the share of a script, each
over a whole Arrow column of turns at once (RE2 through Arrow compute, NumPy for counting).
``postmix.curate.filters`` turns them into rules; nothing here knows about rows or configs.

Code is not prose: a turn that *talks about* ``<|im_end|>`` in backticks or a fenced block is an
answer about tokenizers, not a leak, so the token check looks at a turn's text with its code
spans taken out (only for the few turns whose raw text matched at all).
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Fenced blocks (closed ones: an unclosed fence hides nothing) and inline code spans.
CODE_SPANS = r"```[\s\S]*?```|`[^`\n]+`"

# Chat-template and reasoning tokens that must never appear in a trained turn:
#   <|im_end|> <|eot_id|> <|endoftext|> <|start_header_id|> <|reserved_special_token_3|> ...
#   DeepSeek's full-width <｜end▁of▁sentence｜>, Llama 2's [INST] [/INST] <<SYS>>, Gemma's
#   <start_of_turn>/<end_of_turn>, <bos>/<eos>/<pad>/<unk>, </s> ending (or <s> opening) a turn,
#   and the reasoning tags <think> </think> (unless ``think_format`` judges those).
SPECIAL_TOKENS = (r"<\|[A-Za-z0-9_.\-]{1,48}\|>|<｜[^｜\n]{1,48}｜>|\[/?INST\]|<</?SYS>>|"
                  r"<(?:start|end)_of_turn>|<(?:bos|eos|pad|unk)>|^\s*<s>|</s>\s*$")
THINK_TAGS = r"</?think>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

# Whitespace as Python's str.isspace() has it (RE2's \s is ASCII only): NBSP and the narrow
# NBSP of French "Merci !" are spaces too. Literal characters, so RE2 and Python read it alike.
_OTHER_SPACES = ("\t\n\v\f\r\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f"
                 "\u205f\u3000")
WHITESPACE = f"[ {_OTHER_SPACES}]"
# What must change for whitespace runs to read as one space: matches are rare in prose, so the
# replacement is cheap (a pattern matching every single space would rewrite every word).
_UNEVEN_SPACE = f"[{_OTHER_SPACES}]{WHITESPACE}*| {WHITESPACE}+"
# Sentence ends: ., ! or ? before whitespace or the end, or a CJK full stop / exclamation /
# question mark. ("3.14" and "e.g.x" stay whole: no space after the dot.)
SENTENCE_END = rf"[.!?]+(?:{WHITESPACE}+|$)|[。！？]+"

SCRIPTS: dict[str, str] = {
    "cjk": r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}",
    "han": r"\p{Han}",
    "kana": r"\p{Hiragana}\p{Katakana}",
    "hangul": r"\p{Hangul}",
    "latin": r"\p{Latin}",
    "cyrillic": r"\p{Cyrillic}",
    "greek": r"\p{Greek}",
    "arabic": r"\p{Arabic}",
    "hebrew": r"\p{Hebrew}",
    "devanagari": r"\p{Devanagari}",
    "thai": r"\p{Thai}",
}


def strip_code(texts: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(texts, CODE_SPANS, "")


def leaked_tokens(texts: pa.Array, pattern: str) -> np.ndarray:
    """Which texts hold ``pattern`` outside code spans."""
    hits = pc.match_substring_regex(texts, pattern).fill_null(False).to_numpy(zero_copy_only=False)
    candidates = np.flatnonzero(hits)
    if len(candidates):
        prose = strip_code(texts.take(pa.array(candidates)))
        hits[candidates] = pc.match_substring_regex(prose, pattern).to_numpy(zero_copy_only=False)
    return hits


def first_leak(text: str, pattern: str) -> str | None:
    """The token that made ``leaked_tokens`` fire, for the detail."""
    match = re.search(pattern, re.sub(CODE_SPANS, "", text))
    return match.group(0).strip() if match else None


def think_problems(texts: pa.Array, allow_empty: bool) -> np.ndarray:
    """Per text, 0 when it is one ``<think>...</think>`` block at the start followed by an
    answer, else a problem code (see ``THINK_PROBLEMS``)."""
    opened = pc.count_substring(texts, THINK_OPEN).to_numpy(zero_copy_only=False)
    closed = pc.count_substring(texts, THINK_CLOSE).to_numpy(zero_copy_only=False)
    starts = pc.match_substring_regex(texts, r"^\s*<think>").to_numpy(zero_copy_only=False)
    empty = pc.match_substring_regex(texts, r"^\s*<think>\s*</think>").to_numpy(
        zero_copy_only=False)
    answered = pc.match_substring_regex(texts, r"^\s*<think>[\s\S]*?</think>\s*\S").to_numpy(
        zero_copy_only=False)
    problem = np.zeros(len(texts), dtype=np.int64)
    for code, mask in ((5, ~answered), (4, empty & (not allow_empty)), (3, ~starts),
                       (2, closed == 0), (1, (opened > 1) | (closed > 1)), (6, opened == 0)):
        problem[mask] = code  # later assignments win: the most basic problem is reported
    return problem


THINK_PROBLEMS = {1: "more than one <think> or </think> tag", 2: "<think> is never closed",
                  3: "text before <think>", 4: "empty <think> block",
                  5: "no answer after </think>", 6: "no <think> block"}


def split_sentences(texts: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Every sentence of every text, normalised (lower case, whitespace runs as one space,
    trimmed), and the index of the text it came from. Normalised before the split: one pass
    over each text, not one per sentence."""
    even = pc.replace_substring_regex(pc.utf8_lower(texts), _UNEVEN_SPACE, " ")
    pieces = pc.split_pattern_regex(even, SENTENCE_END)
    owner = pc.list_parent_indices(pieces).to_numpy(zero_copy_only=False).astype(np.int64)
    return pc.utf8_trim(pc.list_flatten(pieces), " "), owner


def split_sentences_py(text: str) -> list[str]:
    """``split_sentences`` for one text in Python (the reference for tests, and details)."""
    return [re.sub(WHITESPACE + "+", " ", p.lower()).strip(" ")
            for p in re.split(SENTENCE_END, text)]


def script_share(texts: pa.Array, script: str) -> tuple[np.ndarray, np.ndarray]:
    """Per text: the share of its letters written in ``script`` (a ``SCRIPTS`` key), and its
    number of letters."""
    length = pc.utf8_length(texts).to_numpy(zero_copy_only=False)
    letters = length - pc.utf8_length(
        pc.replace_substring_regex(texts, r"\pL+", "")).to_numpy(zero_copy_only=False)
    inside = length - pc.utf8_length(pc.replace_substring_regex(
        texts, f"[{SCRIPTS[script]}]+", "")).to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(letters > 0, inside / np.maximum(letters, 1), 0.0)
    return share, letters
