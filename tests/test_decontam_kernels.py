"""The decontam scan's compiled kernels against their plain definitions: the fused fold-and-hash
pass gives the hashes of the normalised text, the rolled n-gram keys give open-instruct's score
(checked against a per-row Python scorer), on texts from a small vocabulary so n-grams are shared
often, with punctuation, case, non-ASCII text and markup in between."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
from hypothesis import example, given, settings
from hypothesis import strategies as st

from postmix.curate.benchmarks import GSM8K_MARKUP
from postmix.curate.ngram_index import build_index, scan, text_token_hashes, token_hashes
from postmix.curate.normalise import (
    NormaliseOptions,
    _delimited_plan,
    _remove_markup,
    decode_rows,
    normalise_text,
    normalise_texts,
)

WORDS = ["alpha", "Beta", "gamma", "δέλτα", "eps", "12", "3.5", "x", "ÉTÉ", "ﬁve"]
GLUE = [" ", "  ", ", ", "! ", "\n", " - ", "’", "\u00a0", " <<2*3=6>>", "\n#### 7\n", "\t"]


def texts(max_words: int = 30):
    """Texts of vocabulary words joined by spaces, punctuation, markup or nothing at all."""
    return st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(GLUE + [""])),
                    max_size=max_words).map(lambda parts: "".join(w + g for w, g in parts))


OPTIONS = st.builds(NormaliseOptions, nfkc=st.booleans(), lowercase=st.booleans(),
                    strip_punctuation=st.booleans(),
                    markup=st.sampled_from([(), GSM8K_MARKUP]))


@settings(max_examples=200, deadline=None)
@given(batch=st.lists(texts() | st.text(max_size=40), min_size=1, max_size=8), options=OPTIONS)
def test_fused_fold_and_hash_equals_hashing_the_normalised_text(batch, options):
    fused = text_token_hashes(pa.array(batch, pa.large_string()), options)
    stepwise = token_hashes(*normalise_texts(batch, options))
    assert np.array_equal(fused[1], stepwise[1])
    assert np.array_equal(fused[0], stepwise[0])


def python_scores(instances: list[str], row: str, n: int) -> dict[int, float]:
    """open-instruct's score of one row against single-field instances, in plain Python: the
    share of an instance's tokens covered by n-grams the row shares with it (whole containment
    for instances shorter than n)."""
    tokens = normalise_text(row).split()
    grams = defaultdict(list)
    scores = {}
    for i, text in enumerate(instances):
        words = normalise_text(text).split()
        if len(words) < n:
            k = len(words)
            if any(tokens[p : p + k] == words for p in range(len(tokens) - k + 1)):
                scores[i] = 1.0
            continue
        for p in range(len(words) - n + 1):
            grams[tuple(words[p : p + n])].append((i, p))
    covered = defaultdict(set)
    for p in range(len(tokens) - n + 1):
        for i, q in grams.get(tuple(tokens[p : p + n]), ()):
            covered[i].update(range(q, q + n))
    for i, positions in covered.items():
        scores[i] = len(positions) / len(normalise_text(instances[i]).split())
    return scores


@settings(max_examples=150, deadline=None)
@given(instances=st.lists(texts(14), min_size=1, max_size=5),
       rows=st.lists(texts(40), min_size=1, max_size=6), n=st.integers(2, 5),
       threshold=st.sampled_from([0.01, 0.5, 1.0]))
def test_scan_scores_are_the_python_scores(instances, rows, n, threshold):
    instances = [t for t in instances if len(normalise_text(t).split()) >= 1] or ["alpha beta"]
    data, offsets = normalise_texts(instances)
    index = build_index(data, offsets, np.arange(len(instances)), len(instances), n, 1)
    found = scan(*text_token_hashes(pa.array(rows, pa.large_string()), NormaliseOptions()), index,
                 threshold)
    got = {(int(r), int(i)): s for r, i, s in zip(found.row, found.instance, found.score,
                                                    strict=True)}
    want = {(r, i): s for r, row in enumerate(rows)
            for i, s in python_scores(instances, row, n).items() if s >= threshold}
    assert got.keys() == want.keys()
    for key, score in want.items():
        assert abs(got[key] - score) < 1e-9


# ---------------------------------------------------------------- delimited markup


_DELIMS = "<>#[]{}!"


@st.composite
def delimited(draw):
    """``(pattern, pieces)``: a pattern OPEN [^STOP]* CLOSE of delimiter characters, escaped
    where regex needs it, CLOSE empty or starting with a STOP character (the shape the compiled
    kernel takes); pieces: its OPEN and CLOSE, to build texts full of nested matches."""
    opening = draw(st.text(alphabet=_DELIMS, min_size=1, max_size=3))
    stop = draw(st.text(alphabet=_DELIMS + "\n", min_size=1, max_size=3))
    closing = draw(st.one_of(st.just(""), st.builds(
        lambda first, rest: first + rest, st.sampled_from(stop),
        st.text(alphabet=_DELIMS, max_size=2))))

    def literal(text):
        return "".join("\\" + c if c in "[]{}" else c for c in text)

    stop_class = "".join("\\n" if c == "\n" else "\\]" if c == "]" else c for c in stop)
    return f"{literal(opening)}[^{stop_class}]*{literal(closing)}", [opening, closing]


@settings(max_examples=400, deadline=None)
@given(patterns=st.lists(delimited(), min_size=1, max_size=3), data=st.data())
@example(patterns=[(r"<<[^<>]*>>", ["<<", ">>"])], data=None)
def test_compiled_markup_removal_is_the_regex_loop(patterns, data):
    pieces = [p for _, ps in patterns for p in ps if p] + list(_DELIMS) + ["\n", "a", " ", "é"]
    batch = (data.draw(st.lists(st.lists(st.sampled_from(pieces), max_size=30).map("".join),
                                min_size=1, max_size=5)) if data is not None
             else ["<<<<a>>>>", "x <<1<<2>>3>> y", "<<a>> <<b"])
    options = NormaliseOptions(markup=tuple(p for p, _ in patterns), strip_punctuation=False)
    assert _delimited_plan(options.markup) is not None  # the compiled path is what is tested
    want = [" ".join(_remove_markup(t, options.markup_pattern()).lower().split()) for t in batch]
    assert [normalise_text(t, options) for t in batch] == want
    assert decode_rows(*normalise_texts(batch, options)) == want


def test_other_markup_patterns_go_to_the_regex_engine():
    for pattern in (r"<<.*?>>", r"ab[^c]*", r"<<[^<>]*>>x", r"\[\d+\]", r"<[^a]*>"):
        assert _delimited_plan((pattern,)) is None
        options = NormaliseOptions(markup=(pattern,), strip_punctuation=False)
        text = "keep <<x>> ab12c [12] <b> done"
        assert decode_rows(*normalise_texts([text], options)) == [normalise_text(text, options)]
