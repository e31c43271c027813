"""The fast paths of the filter rules give the verdicts of their simple definitions: the
compiled repetition kernels (``postmix.curate.repetition``) against the Arrow code they replaced
and against plain Python, and the default rule set run together (one regex screen for the
regex rules, shared turn subsets) against each rule run alone, on generated text full of the
edge cases (case, whitespace runs, ``.!?`` inside words, non-ASCII letters and spaces, planted
phrases and loops)."""

from __future__ import annotations

from collections import Counter

import datasets
import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from postmix.curate import hygiene, repetition
from postmix.curate.filters import DEFAULT_RULES, FilterConfig, rule_hits
from postmix.curate.normalise import normalise_text
from postmix.schemas import FEATURES

FRAGMENTS = [
    "Make sure the power is off", "MAKE sure  the power\tis off", "make sure the power is off",
    "the cat sat on the mat and then it slept", "Thank you", "e.g.x", "3.14", "Café au lait",
    "naïve façade", "İstanbul", "ÅNGSTRÖM", "请确认电源已经关闭", "x\u00a0y", "a\u202fb",
    ". ", "! ", "?\n", "...", ".", "\n", "\n\n", "\t", "  ", " ", "\r\n", "\x0b", "\x1c", "。",
    "- item", "}", "\x00", "    return total", "```", "`code`", ",", "'", "’", "—",
]
PHRASES = ["As an AI language model, ", "<|im_end|>", "`<|im_end|>`", "As of my last update, ",
           "I'm Claude", "I cannot help with that", "Ã©", "\x07", "\ufffd", "<think>", "[INST]"]
ascii_chars = st.characters(min_codepoint=0, max_codepoint=127)
any_chars = st.characters(codec="utf-8", exclude_categories=("Cs",))


@st.composite
def texts(draw, phrases: bool = False) -> str:
    pool = FRAGMENTS + (PHRASES if phrases else [])
    if draw(st.booleans()):  # prose: a few sentences, each ending its own way, some repeated
        said = draw(st.lists(st.sampled_from(FRAGMENTS[:14]), min_size=1, max_size=4))
        ends = [". ", "! ", "? ", ".\n", "... ", "。", "\n", " . ", ".", ".x "]
        picks = draw(st.lists(st.tuples(st.integers(0, len(said) - 1), st.sampled_from(ends)),
                              max_size=24))
        return "".join(said[i] + end for i, end in picks)
    parts = draw(st.lists(st.one_of(st.sampled_from(pool), st.text(any_chars, max_size=12),
                                    st.text(ascii_chars, max_size=12)), max_size=40))
    repeat = draw(st.integers(1, 6))  # loops: the whole draw again, or one part many times
    if parts and draw(st.booleans()):
        return "".join(parts) * repeat
    return "".join(part * (repeat if i == 0 else 1) for i, part in enumerate(parts))


def column(values: list[str]) -> pa.Array:
    return pa.array(values, pa.large_string())


# ---------------------------------------------------------------- Python definitions


def sentence_reference(text: str, min_chars: int) -> int:
    counts = Counter(s for s in hygiene.split_sentences_py(text) if len(s) >= min_chars)
    return max(counts.values(), default=0)


def line_reference(text: str, min_chars: int, min_lines: int) -> float:
    lines = [line.strip() for line in text.split("\n")]
    lines = [line for line in lines if len(line) >= min_chars]
    return (len(lines) - len(set(lines))) / len(lines) if len(lines) >= min_lines else 0.0


def ngram_reference(text: str, n: int, min_words: int) -> float:
    words = normalise_text(text).split()
    if len(words) < max(n, min_words):
        return 0.0
    grams = Counter(tuple(words[p : p + n]) for p in range(len(words) - n + 1))
    covered = set()
    for p in range(len(words) - n + 1):
        if grams[tuple(words[p : p + n])] > 1:
            covered.update(range(p, p + n))
    return len(covered) / len(words)


# ---------------------------------------------------------------- kernels


@settings(max_examples=60, deadline=None)
@given(st.lists(texts(), min_size=1, max_size=12), st.sampled_from([1, 5, 20]))
def test_sentence_kernel_matches_the_arrow_code_and_python(values, min_chars):
    array = column(values)
    fast = repetition.most_repeated_sentence(array, min_chars)
    assert fast.tolist() == repetition.most_repeated_sentence_reference(array, min_chars).tolist()
    for value, got in zip(values, fast.tolist(), strict=True):
        if value.isascii():  # Python's and Arrow's Unicode lower case differ ("İ")
            assert got == sentence_reference(value, min_chars)
    for at_least in (2, 4):  # texts that cannot reach at_least may be skipped (0), no others
        skipping = repetition.most_repeated_sentence(array, min_chars, at_least)
        assert (skipping >= at_least).tolist() == (fast >= at_least).tolist()
        assert skipping[fast >= at_least].tolist() == fast[fast >= at_least].tolist()


@settings(max_examples=60, deadline=None)
@given(st.lists(texts(), min_size=1, max_size=12), st.sampled_from([1, 3, 10]),
       st.sampled_from([2, 4]))
def test_line_kernel_matches_the_arrow_code_and_python(values, min_chars, min_lines):
    array = column(values)
    fast = repetition.duplicate_line_fraction(array, min_chars, min_lines)
    counted, distinct = repetition.line_counts_reference(array, min_chars)
    arrow = np.where(counted >= min_lines, (counted - distinct) / np.maximum(counted, 1), 0.0)
    assert fast.tolist() == arrow.tolist()
    for value, got in zip(values, fast.tolist(), strict=True):
        if value.isascii():  # str.strip and Arrow's trim agree on ASCII whitespace
            assert got == line_reference(value, min_chars, min_lines)


@settings(max_examples=60, deadline=None)
@given(st.lists(texts(), min_size=1, max_size=12), st.sampled_from([2, 3, 10]),
       st.sampled_from([2, 5, 50]))
def test_ngram_kernel_matches_the_python_definition(values, n, min_words):
    fast = repetition.repeated_ngram_fraction(column(values), n, min_words)
    assert fast.tolist() == [ngram_reference(v, n, min_words) for v in values]


def test_kernels_on_empty_and_sliced_columns():
    array = column(["", "Same line here\nSame line here\nSame line here\nother one here",
                    "A loop again. " * 5])
    for part in (array, array.slice(1)):
        assert repetition.duplicate_line_fraction(part, 10, 2).tolist() == [
            line_reference(v, 10, 2) for v in part.to_pylist()]
        assert repetition.most_repeated_sentence(part, 5).tolist() == [
            sentence_reference(v, 5) for v in part.to_pylist()]
    assert repetition.most_repeated_sentence(array, 5).tolist() == [0, 1, 5]


# ---------------------------------------------------------------- the rule set together


@st.composite
def conversations(draw) -> list[dict]:
    rows = []
    for i in range(draw(st.integers(1, 6))):
        messages = [{"role": "system", "content": "Be brief."}] if draw(st.booleans()) else []
        for _ in range(draw(st.integers(1, 3))):
            messages += [{"role": "user", "content": draw(texts(phrases=True)) or "q"},
                         {"role": "assistant", "content": draw(texts(phrases=True)) or "a"}]
        rows.append({"id": f"r{i}", "messages": messages, "source": "s", "meta": "{}"})
    return rows


@settings(max_examples=25, deadline=None)
@given(conversations())
def test_the_default_rule_set_gives_each_rules_own_verdicts(rows):
    ds = datasets.Dataset.from_list(rows, features=FEATURES["sft"])
    together = rule_hits(ds, FilterConfig(), kind="sft")
    for rule in DEFAULT_RULES:
        alone = rule_hits(ds, FilterConfig(rules=[rule]), kind="sft")[rule]
        assert together[rule].tolist() == alone.tolist(), rule
    config = FilterConfig()
    ascii_only = all(m["content"].isascii() for row in rows for m in row["messages"])
    for name, measure, bound in (
        ("repeated_ngrams", lambda t: ngram_reference(t, config.repetition_ngram,
                                                      config.repetition_min_words),
         config.max_repeated_ngram_fraction),
        ("repeated_sentences", lambda t: sentence_reference(t, config.min_sentence_chars),
         config.max_sentence_repeats),
        ("repeated_lines", lambda t: line_reference(t, config.min_line_chars, config.min_lines),
         config.max_duplicate_line_fraction),
    ):
        if name != "repeated_ngrams" and not ascii_only:
            continue  # Python's Unicode case and whitespace are not Arrow's (kernel tests above)
        expected = [any(measure(m["content"]) > bound for m in row["messages"]
                        if m["role"] == "assistant") for row in rows]
        assert together[name].tolist() == expected, name
