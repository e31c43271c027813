"""Verifiers on real-looking responses: every GSM8K answer format, MATH answers that differ only
in form, and every precise-IF constraint type with a passing and a failing response."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postmix.verifiers import VERIFIERS, gsm8k, ifeval, verify

# ---------------------------------------------------------------- GSM8K

GSM_SOLUTION = (
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n"
)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (GSM_SOLUTION + "#### 72", "72"),  # GSM8K's own format, after other numbers
        ("She earns 9 * 2 = 18 dollars a day.\nThe answer is 18.", "18"),
        ("Adding both: 12 + 6 = 18, so the total is $\\boxed{18}$.", "18"),
        ("Q: How many eggs?\nA: 18", "18"),
        ("The company paid 1,234 dollars in 3 payments.\nThe answer is 1,234", "1234"),
        ("Each ticket costs 6 dollars, 3 tickets cost 18 dollars", "18"),  # trailing unit, last number
        ("Janet pays $18 for the eggs.", "18"),
        ("The final answer is **$1,250.00**.", "1250"),
        ("Final answer: -3 degrees", "-3"),
        ("The answer is 18. Check: 18 * 2 = 36, which matches.", "18"),  # marker beats last number
        ("\\boxed{\\text{18 dollars}}", "18"),
    ],
)
def test_gsm8k_extracts_every_answer_format(response, expected):
    assert gsm8k.extract_number(response) == Decimal(expected)
    verdict = verify(response, expected, "gsm8k")
    assert verdict.correct is True


def test_gsm8k_wrong_and_missing_answers():
    assert verify("The answer is 17.", "18", "gsm8k").correct is False
    # The ground truth may itself be written GSM8K-style or with separators.
    assert verify("#### 1234", "#### 1,234", "gsm8k").correct is True
    assert verify("18.00", "18", "gsm8k").correct is True
    no_number = verify("I cannot solve this.", "18", "gsm8k")
    assert (no_number.correct, no_number.reason) == (False, "no_answer")
    bad_truth = verify("18", "eighteen", "gsm8k")
    assert (bad_truth.correct, bad_truth.reason) == (None, "bad_ground_truth")


@pytest.mark.parametrize("response", ["Step 1: add them.\n#### no idea", "18 apples, so #### 3/4",
                                      "We get 18, hence \\boxed{x} and 18", "18 parts: \\boxed{\\frac{3}{4}}",
                                      "18 so \\boxed{-\\frac{1}{2}}", "\\boxed{2^{10}} from 18",
                                      "In 18 steps the answer is 3/4."])
def test_gsm8k_an_explicit_final_answer_without_a_number_is_no_answer(response):
    """No falling back to a number elsewhere ("Step 1" would become the answer 1)."""
    assert gsm8k.extract_number(response) is None
    assert verify(response, "18", "gsm8k").reason == "no_answer"


@given(st.integers(min_value=-10**9, max_value=10**9), st.sampled_from(
    ["#### {}", "The answer is {}.", "\\boxed{{{}}}", "A: {}", "so in total {} apples"]))
def test_gsm8k_round_trips_any_integer_in_any_format(value, template):
    text = template.format(f"{value:,}")
    assert gsm8k.extract_number("First 7 then 3. " + text) == Decimal(value)


# ---------------------------------------------------------------- MATH


@pytest.mark.parametrize(
    ("response", "truth"),
    [
        ("So the probability is $\\boxed{0.5}$.", "\\frac{1}{2}"),
        ("Therefore the answer is $\\boxed{\\dfrac12}$.", "\\frac{1}{2}"),
        ("The answer is $\\frac{1}{2}$", "0.5"),
        ("We get $\\boxed{\\sqrt{18}}$.", "3\\sqrt{2}"),
        ("Expanding gives $\\boxed{(x+1)^2}$", "x^2+2x+1"),
    ],
)
def test_math_accepts_answers_that_differ_only_in_form(response, truth):
    assert verify(response, truth, "math").correct is True


def test_math_rejects_a_different_value_and_reports_bad_truth():
    assert verify("so $\\boxed{0.25}$", "\\frac{1}{2}", "MATH").correct is False  # Tulu's spelling
    assert verify("anything", "", "math").reason == "bad_ground_truth"


# ---------------------------------------------------------------- exact / regex / dispatch


def test_exact_regex_and_dispatch():
    assert verify("  Paris \n", "Paris", "exact").correct is True
    assert verify("Paris, France", "Paris", "exact").correct is False
    assert verify("yes", "(yes|no)", "regex").correct is True
    assert verify("yes and no", "(yes|no)", "regex").correct is False  # whole response, not search
    assert verify("x", "(unclosed", "regex").reason == "bad_ground_truth"
    assert verify("x", "1", "chess").reason == "unknown_verifier"
    assert verify(None, "1", "gsm8k").reason == "no_response"
    assert set(VERIFIERS) == {"gsm8k", "math", "ifeval", "exact", "regex"}


# ---------------------------------------------------------------- precise IF

TEN_WORDS = "The quick brown fox jumps over the lazy sleeping dog."
CASES: dict[str, tuple[dict, str, str]] = {
    # type: (params, passing response, failing response)
    "word_count": ({"relation": "at_most", "num_words": 10}, TEN_WORDS, TEN_WORDS + " Twice."),
    "sentence_count": ({"relation": "at_least", "num_sentences": 3},
                       "It rained. We stayed in! Did you? Yes.", "It rained. We stayed in."),
    "paragraph_count": ({"num_paragraphs": 2}, "First part.\n***\nSecond part.",
                        "First part.\n***\n***\nSecond part."),
    "keywords_include": ({"keywords": ["budget", "deadline"]},
                         "The budget is fixed and the deadline is Friday.", "The budget is fixed."),
    "keywords_forbidden": ({"forbidden_words": ["cheap"]}, "An affordable option.",
                           "A Cheap option."),
    "keyword_frequency": ({"keyword": "data", "relation": "at_least", "frequency": 2},
                          "Data in, metadata out.", "Data in, facts out."),  # substrings, as IFEval
    "letter_frequency": ({"letter": "z", "relation": "at_most", "let_frequency": 1},
                         "A lazy afternoon.", "Zebras graze lazily."),
    "capital_word_frequency": ({"relation": "at_least", "capital_frequency": 2},
                               "This is VERY IMPORTANT.", "This is VERY important."),
    "json_format": ({}, '```json\n{"name": "Ada", "age": 36}\n```', "name: Ada, age: 36"),
    "bullet_count": ({"num_bullets": 3}, "Tips:\n* Sleep well\n* Drink water\n- Walk daily",
                     "Tips:\n* Sleep well\n* Drink water\n**Walk daily**"),
    "title": ({}, "<<A Letter to Autumn>>\nDear autumn, ...", "A Letter to Autumn\nDear autumn"),
    "highlighted_sections": ({"num_highlights": 2}, "Use *fresh basil* and **good olive oil**.",
                             "Use *fresh basil* and good olive oil."),
    "sections": ({"section_splitter": "Section", "num_sections": 2},
                 "Section 1\nIntro text.\nSection 2\nMore text.", "Section 1\nOnly one."),
    "placeholders": ({"num_placeholders": 2}, "Send it to [name] at [address].",
                     "Send it to [name] soon."),
    "postscript": ({"postscript_marker": "P.S."}, "See you soon.\n\nP.S. Bring snacks.",
                   "See you soon. Bring snacks."),
    "quotation": ({}, '"I will be there on time."', 'I will be "there" on time.'),
    "lowercase": ({}, "all of this is lowercase.", "All of this is lowercase."),
    "uppercase": ({}, "THIS IS LOUD!", "THIS IS loud!"),
    "no_commas": ({}, "No commas here at all.", "Well, there is one."),
    "start_phrase": ({"start_phrase": "Dear hiring manager"},
                     "Dear hiring manager, I am writing...", "Hello, dear hiring manager."),
    "end_phrase": ({"end_phrase": "Is there anything else I can help with?"},
                   "Here is the plan. Is there anything else I can help with?",
                   "Is there anything else I can help with? Goodbye."),
    "nth_paragraph_first_word": ({"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "however"},
                                 "It rains.\n\n\"However,\" she said, it stops.\n\nThe end.",
                                 "It rains.\n\nBut it stops.\n\nThe end."),
    "constrained_response": ({}, "Having thought about it: My answer is maybe.", "Probably yes."),
    "two_responses": ({}, "Take the bus.\n******\nWalk instead.", "Take the bus.\n******\nTake the bus."),
    "repeat_prompt": ({"prompt_to_repeat": "Name a red fruit."},
                      "Name a red fruit.\n\nA cherry.", "A cherry. Name a red fruit."),
    "response_language": ({"language": "de"},
                          "Morgen fahren wir mit dem Zug nach Berlin und besuchen das Museum.",
                          "Tomorrow we take the train to Berlin and visit the museum."),
}


def test_every_constraint_type_has_a_case():
    assert set(CASES) == set(ifeval.CONSTRAINTS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_constraint_passes_and_fails(name):
    params, good, bad = CASES[name]
    spec = {"type": name, **params}
    assert ifeval.check(good, spec) is True
    assert ifeval.check(bad, spec) is False
    kind = ifeval.CONSTRAINTS[name]
    assert kind.check(good, **kind.params(**params).model_dump()) is True
    text = ifeval.describe(spec)
    assert text and text[0].isupper()


def test_the_ifeval_types_follow_ifeval_on_the_edges():
    nth = {"type": "nth_paragraph_first_word", "num_paragraphs": 2, "nth_paragraph": 1, "first_word": "Rain"}
    assert ifeval.check("Rain falls.\n\n\n\nSun shines.", nth)  # empty paragraphs are not counted
    assert not ifeval.check("Rainfall is high.\n\nSun shines.", nth)  # a whole word, not a prefix
    assert not ifeval.check("Rain falls.\n\nSun.\n\nMoon.", nth)  # exactly num_paragraphs
    assert not ifeval.check("One.\n******\nTwo.\n******\nThree.", {"type": "two_responses"})
    assert not ifeval.check("******\nOnly one.", {"type": "two_responses"})
    assert ifeval.check("******\nOne.\n******\nTwo.\n******", {"type": "two_responses"})  # ends may be empty
    assert not ifeval.check("One.\n******\n\n******\nTwo.", {"type": "two_responses"})  # not the middle
    assert "'My answer is yes.'" in ifeval.describe({"type": "constrained_response"})
    assert ifeval.describe({"type": "response_language", "language": "fr"}).startswith(
        "Your ENTIRE response should be in French language")
    # no letters: no language to tell, and IFEval lets such a response pass
    assert ifeval.check("12345 !!!", {"type": "response_language", "language": "en"})


def test_describe_renders_the_instruction():
    assert ifeval.describe({"type": "word_count", "relation": "at_most", "num_words": 50}) == \
        "Answer in at most 50 words."
    assert ifeval.describe('{"type": "keywords_include", "keywords": ["tea", "scone"]}') == \
        'Include the keywords "tea", "scone" in the response.'
    schema = ifeval.CONSTRAINTS["word_count"].params.model_json_schema()
    assert schema["properties"]["num_words"]["minimum"] == 1


def test_ifeval_row_needs_all_constraints_and_reports_bad_specs():
    specs = [json.dumps({"type": "no_commas"}), json.dumps({"type": "lowercase"})]
    assert verify("everything here is fine and calm today", "", "ifeval", specs).correct is True
    both_wrong = verify("All good, here", "", "ifeval", specs)
    assert (both_wrong.correct, both_wrong.detail) == (False, "no_commas,lowercase")  # in the row's order
    # No constraints column: the ground truth holds the specs (what `curate synth` writes).
    assert verify("fine", json.dumps([{"type": "no_commas"}]), "ifeval", None).correct is True
    for bad in ([{"type": "haiku"}], [{"type": "word_count", "relation": "about", "num_words": 5}],
                [{"type": "no_commas", "extra": 1}], ["not json"]):
        verdict = verify("x", "", "ifeval", bad)
        assert (verdict.correct, verdict.reason) == (None, "bad_constraint"), bad


@pytest.mark.parametrize(("response", "truth", "name", "correct"), [
    ("18", 18, "gsm8k", True), ("#### 17", 18, "gsm8k", False), ("0.5", 0.5, "exact", True),
    ("5", 5, "regex", True), ("no commas", [{"type": "no_commas"}], "ifeval", True)])
def test_ground_truths_given_as_json_values_are_compared_as_text(response, truth, name, correct):
    """A JSONL file may hold `"ground_truth": 18`; that is the text "18", not a crash."""
    assert verify(response, truth, name).correct is correct
