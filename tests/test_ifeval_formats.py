"""Reading IFEval's native rows and RLVR-IFeval's ground truth into postmix specs: properties of
the readers (hypothesis), and the verifier following IFEval's own definitions on their edges."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postmix.verifiers import ifeval, verify
from postmix.verifiers.ifeval_bench import evaluate_ifeval, loose_variants, score_rows
from postmix.verifiers.ifeval_formats import NATIVE, FormatError, native_spec, to_specs

WORDS = st.lists(st.sampled_from(["tea", "Data", "metadata", "history", "story", "CAPS", "ok"]),
                 max_size=30).map(" ".join)
COUNTED = {  # IFEval id -> (kwargs field, relation field, postmix counter)
    "length_constraints:number_words": ("num_words", "relation", lambda t: len(ifeval.words(t))),
    "keywords:letter_frequency": ("let_frequency", "let_relation", lambda t: t.lower().count("a")),
}
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(text=WORDS, bound=st.integers(2, 40), relation=st.sampled_from(["less than", "at least"]),
       instruction=st.sampled_from(sorted(COUNTED)))
def test_native_relations_read_as_ifeval_defines_them(text, bound, relation, instruction):
    field, relation_field, count = COUNTED[instruction]
    kwargs = {field: bound, relation_field: relation}
    if instruction == "keywords:letter_frequency":
        kwargs["letter"] = "A"
    spec = native_spec(instruction, kwargs)
    expected = count(text) < bound if relation == "less than" else count(text) >= bound
    assert ifeval.check(text, spec) is (bool(text.strip()) and expected)


@SETTINGS
@given(instruction=st.sampled_from(sorted(NATIVE)), data=st.data())
def test_hub_rows_full_of_none_read_like_the_sparse_published_rows(instruction, data):
    # google/IFEval on the Hub gives every kwargs dict every key, the unused ones None
    every_key = ["num_highlights", "relation", "num_words", "num_placeholders", "prompt_to_repeat",
                 "num_bullets", "section_spliter", "num_sections", "capital_relation",
                 "capital_frequency", "keywords", "num_paragraphs", "language", "let_relation",
                 "letter", "let_frequency", "end_phrase", "forbidden_words", "keyword",
                 "frequency", "num_sentences", "postscript_marker", "first_word", "nth_paragraph"]
    sparse = data.draw(st.dictionaries(st.sampled_from(every_key), st.integers(1, 9), max_size=3))
    padded = {key: sparse.get(key) for key in every_key}
    try:
        expected = native_spec(instruction, sparse)
    except FormatError:
        with pytest.raises(FormatError):
            native_spec(instruction, padded)
        return
    assert native_spec(instruction, padded) == expected


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) |
                    st.dictionaries(st.sampled_from(["type", "func_name", "instruction_id_list",
                                                     "kwargs", "N", "quantifier", "x"]),
                                    inner, max_size=4), max_leaves=12)


@SETTINGS
@given(value=JSON)
def test_any_json_ground_truth_reads_or_fails_as_a_format_error(value):
    try:
        specs = to_specs(value)
    except FormatError:
        return
    assert isinstance(specs, list)
    # and the verifier turns whatever it cannot use into an unscorable verdict, never a crash
    verdict = verify("Some answer.", json.dumps(value), "ifeval")
    assert verdict.correct in (True, False, None)


@SETTINGS
@given(text=WORDS, n=st.integers(1, 40), quantifier=st.sampled_from(["at least", "at most",
                                                                    "around"]))
def test_rlvr_word_quantifiers_bound_the_count(text, n, quantifier):
    gt = {"func_name": "validate_word_constraint", "N": n, "quantifier": quantifier,
          "keyword_list": None, "end_phrase": None}
    count = len(ifeval.words(text))
    tolerance = max(round(n * 0.1), 1)
    expected = {"at least": count >= n, "at most": count <= n,
                "around": abs(count - n) <= tolerance}[quantifier]
    assert verify(text, json.dumps(gt), "ifeval").correct is (bool(text.strip()) and expected)


@SETTINGS
@given(text=WORDS, n=st.integers(0, 6))
def test_rlvr_exact_keyword_counts_are_both_bounds(text, n):
    gt = {"func_name": "verify_keyword_frequency", "word": "data", "N": n}
    specs = to_specs(gt)
    assert [s["relation"] for s in specs] == ["at_least", "at_most"]
    count = text.lower().count("data")  # substrings, as IFEval counts keywords
    assert verify(text, json.dumps(gt), "ifeval").correct is (bool(text.strip()) and count == n)


ROW = {"prompt": "Write.", "instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase",
                                                    "detectable_format:title", "keywords:existence"],
       "kwargs": [{}, {}, {}, {"keywords": ["tea"]}]}


@SETTINGS
@given(lines=st.lists(st.sampled_from(["<<A Title>>", "*tea* time", "no, thanks", "**", "",
                                       "plain words here"]), max_size=5))
def test_loose_never_rejects_what_strict_accepts(lines):
    response = "\n".join(lines)
    result = evaluate_ifeval(ROW, response)
    assert all(loose or not strict for strict, loose in zip(result.strict, result.loose, strict=True))
    assert len(loose_variants(response)) == 8 and loose_variants(response)[0] == response


def test_ifeval_quirks_are_kept():
    assert ifeval.check("A long history.", {"type": "keywords_include", "keywords": ["story"]})
    assert ifeval.check("story history", {"type": "keyword_frequency", "keyword": "story",
                                          "relation": "at_least", "frequency": 2})
    # a postscript marker anywhere in a line counts, with IFEval's spacing
    assert ifeval.check("Thanks. p. s. see you", {"type": "postscript", "postscript_marker": "P.S."})
    assert ifeval.check("Bye.\nP.P.S: later", native_spec("detectable_content:postscript",
                                                          {"postscript_marker": "P.P.S"}))
    assert ifeval.check("#a #b #c #d", native_spec("keywords:letter_frequency", {
        "letter": "#", "let_frequency": 4, "let_relation": "at least"}))
    days = native_spec("detectable_format:multiple_sections", {"section_spliter": "Day",
                                                               "num_sections": 2})
    assert ifeval.check("Day 1 sea. Day 2 hills.", days) and not ifeval.check("Day 1 sea.", days)
    # the nth paragraph's first word is cut at punctuation but not stripped of markdown
    nth = native_spec("length_constraints:nth_paragraph_first_word",
                      {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "summary"})
    assert ifeval.check("Intro.\n\nSummary, done.", nth)
    assert not ifeval.check("Intro.\n\n**Summary** done.", nth)
    assert not ifeval.check("Intro.\n\nSummary: done.", nth)  # ":" is not in IFEval's cut set
    # sentences are Punkt's: "p.m." and "Dr." end no sentence
    three = {"type": "sentence_count", "relation": "at_most", "num_sentences": 2}
    assert ifeval.check("Dr. Smith left at 5 p.m. on Monday. He came back.", three)
    # "less than 1" is "at most 0"
    never = native_spec("keywords:frequency", {"keyword": "photography", "frequency": 1,
                                               "relation": "less than"})
    assert never["frequency"] == 0 and not ifeval.check("I love photography.", never)


def test_a_blank_response_follows_no_instruction():
    assert verify("   ", json.dumps([{"type": "no_commas"}]), "ifeval").correct is False
    result = evaluate_ifeval(ROW, "\n\n")
    assert result.strict == [False] * 4 and result.loose == [False] * 4


def test_native_and_rlvr_ground_truth_verify_like_specs():
    native = {"instruction_id_list": ["punctuation:no_comma", "length_constraints:number_words"],
              "kwargs": [{"relation": None}, {"relation": "less than", "num_words": 5}]}
    assert verify("four words right here", json.dumps(native), "ifeval").correct is True
    too_long = verify("five words, right here now", json.dumps(native), "ifeval")
    assert (too_long.correct, too_long.detail) == (False, "no_commas,word_count")
    rlvr = {"func_name": "validate_lowercase", "N": None, "quantifier": None, "word": None}
    assert verify("everything here is fine and calm today", json.dumps(rlvr), "ifeval").correct
    assert verify("Everything Here Is Fine", json.dumps(rlvr), "ifeval").correct is False
    unknown = verify("x", json.dumps({"instruction_id_list": ["made:up"], "kwargs": [{}]}), "ifeval")
    assert (unknown.correct, unknown.reason) == (None, "bad_constraint")
    mismatched = {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}, {}]}
    assert verify("x", json.dumps(mismatched), "ifeval").reason == "bad_constraint"


def test_score_rows_reports_ifeval_accuracies():
    results = [evaluate_ifeval(ROW, "<<tea>>\nwe drink tea in the garden every morning"),
               evaluate_ifeval(ROW, "No, Tea.")]  # a comma, capitals, no title; "tea" is there
    scores = score_rows(results)
    assert (scores["prompts"], scores["instructions"]) == (2, 8)
    assert scores["prompt_strict"] == scores["prompt_loose"] == 0.5
    assert scores["instruction_strict"] == scores["instruction_loose"] == 5 / 8
