"""Quality filters: every built-in rule fires on a crafted bad row and not on a clean one."""

from __future__ import annotations

import json

import datasets
import pytest
from typer.testing import CliRunner

from postmix.curate.filters import (
    BUILTIN_RULES,
    DEFAULT_RULES,
    FilterConfig,
    RegexRule,
    apply_filters,
    filter_file,
    load_filter_config,
)
from postmix.errors import ConfigError
from postmix.schemas import FEATURES

CLEAN_ANSWER = "Paris is the capital of France. It has been the seat of government for centuries."


def convo(*turns: tuple[str, str], id: str = "r", source: str = "s") -> dict:
    return {"id": id, "messages": [{"role": r, "content": c} for r, c in turns], "source": source, "meta": "{}"}


def ask(answer: str, question: str = "What is the capital of France?", **kw) -> dict:
    return convo(("user", question), ("assistant", answer), **kw)


def sft(rows: list[dict]) -> datasets.Dataset:
    rows = [{**r, "id": f"{r['id']}{i}"} for i, r in enumerate(rows)]
    return datasets.Dataset.from_list(rows, features=FEATURES["sft"])


def verdict(row: dict, **config) -> tuple[str | None, str]:
    v = apply_filters(sft([row]), FilterConfig(**config))
    return v.reasons[0], v.details[0]


LOOP = "the cat sat on the mat and then looked at the dog again. " * 8
DISTINCT = " ".join(f"word{i}" for i in range(80))

# rule -> (config for it, a row it must reject, the detail it must contain, a clean row)
CASES = {
    "empty_turn": ({}, ask("   \n "), "turn 1 (assistant): empty", ask(CLEAN_ANSWER)),
    "min_chars": ({"min_chars": 5}, ask("ok"), "turn 1 (assistant): 2 chars < 5", ask("Paris.")),
    "max_chars": ({"max_chars": 50}, ask(CLEAN_ANSWER), f"turn 1 (assistant): {len(CLEAN_ANSWER)} chars > 50", ask("Paris.")),
    "max_turns": ({"max_turns": 4}, convo(*[("user", "hi"), ("assistant", "hello")] * 3), "6 turns > 4",
                  convo(*[("user", "hi"), ("assistant", "hello")] * 2)),
    "role_order": ({}, convo(("user", "a"), ("user", "b"), ("assistant", "c")), "turn 1: user after user",
                   convo(("system", "be brief"), ("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d"))),
    "refusal": ({}, ask("As an AI language model, I do not have a favourite city."), "matched 'As an AI language model'",
                ask(CLEAN_ANSWER, question="As an AI language model, what would you say?")),  # user turns are not judged
    "self_identification": ({}, ask("I am ChatGPT, a model trained by OpenAI."), "matched 'I am ChatGPT'",
                            ask("The chat service answered quickly.")),
    "repeated_lines": ({}, ask("\n".join(["This line is repeated again."] * 4 + ["A different closing line."])),
                       "60% of lines repeat", ask("\n".join(f"Line number {i} says something new." for i in range(6)))),
    "repeated_ngrams": ({}, ask(LOOP), "of words in repeated 10-grams", ask(DISTINCT)),
    "leaked_tokens": ({}, ask("The capital of France is Paris.<|im_end|>"), "leaked '<|im_end|>'",
                      ask("Each ChatML message ends with the `<|im_end|>` token.")),
    "think_format": ({}, ask("Paris."), "no <think> block", ask("<think>France's capital is Paris.</think>Paris.")),
    "knowledge_cutoff": ({}, ask("As of my last update in 2023, the Louvre opens at 9."), "matched 'As of my last update'",
                         ask("As of the last update to the app, dark mode is under Settings.")),
    "repeated_sentences": ({}, ask("Drink more water every single day. " * 4), "one sentence 4 times",
                           ask("Drink more water every single day. " * 3)),
    "script_share": ({"script_limits": [{"script": "cjk", "max_share": 0.1}]}, ask("巴黎是法国的首都，也是法国最大的城市，那里有很多著名的博物馆。"),
                     "100% cjk letters > 10%", ask("The word 巴黎 is Chinese for Paris, the capital of France.")),
    "language": ({"keep_languages": ["en"]}, ask("Paris est la capitale de la France et sa plus grande ville."),
                 "language fr", ask(CLEAN_ANSWER)),
    "mojibake": ({}, ask("Le cafÃ© est bon."), "matched 'Ã©'", ask("Le café est bon, it’s true.")),
    "control_chars": ({}, ask("bell\x07here"), "matched '\\x07'", ask("tab\there\nnewline\r\n")),
}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_each_builtin_rule_fires_on_bad_and_not_on_clean(rule):
    config, bad, detail, clean = CASES[rule]
    config = {**config, "rules": [rule]}
    reason, text = verdict(bad, **config)
    assert reason == rule
    assert detail in text
    assert verdict(clean, **config) == (None, "")


def test_default_rules_keep_clean_rows():
    # a reasoning answer is clean only where think_format is on (elsewhere <think> is a leak)
    rows = [clean for rule, (_, _, _, clean) in CASES.items() if rule != "think_format"] + [ask(DISTINCT)]
    v = apply_filters(sft(rows), FilterConfig(rules=list(DEFAULT_RULES), max_chars=100_000))
    assert list(v.reasons) == [None] * len(rows)


@pytest.mark.parametrize("bad, detail", [
    (convo(("assistant", "hi"), ("user", "a"), ("assistant", "b")), "starts with assistant"),
    (convo(("user", "a"), ("assistant", "b"), ("system", "s"), ("user", "c"), ("assistant", "d")), "turn 2: system after assistant"),
    (convo(("user", "a"), ("assistant", "b"), ("user", "c")), "ends with user, expected assistant"),
    (convo(("user", "a"), ("assistant", "b"), ("assistant", "c")), "turn 2: assistant after assistant"),
    (convo(("user", "a"), ("tool", "t"), ("assistant", "b")), "turn 1: tool after user"),
])
def test_role_order_problems(bad, detail):
    reason, text = verdict(bad, rules=["role_order"])
    assert reason == "role_order" and detail in text


def test_role_order_allows_tools_and_optional_final_assistant():
    tools = convo(("user", "a"), ("assistant", "call"), ("tool", "result"), ("tool", "more"), ("assistant", "b"))
    assert verdict(tools, rules=["role_order"]) == (None, "")
    open_ended = convo(("user", "a"), ("assistant", "b"), ("user", "c"))
    assert verdict(open_ended, rules=["role_order"], require_final_assistant=False) == (None, "")


def test_role_order_of_preference_and_rlvr_records():
    def pref(prompt, chosen):
        return {"id": "p", "prompt": prompt, "chosen": chosen, "rejected": [{"role": "assistant", "content": "x"}],
                "chosen_score": None, "rejected_score": None, "chosen_model": None, "rejected_model": None,
                "judge": "{}", "source": "s", "meta": "{}"}

    user = [{"role": "user", "content": "q"}]
    ds = datasets.Dataset.from_list([pref(user, [{"role": "assistant", "content": "a"}]),
                                     pref(user, [{"role": "user", "content": "a"}])], features=FEATURES["preference"])
    v = apply_filters(ds, FilterConfig(rules=["role_order"]))
    assert v.reasons[0] is None
    assert v.reasons[1] == "role_order" and v.details[1].startswith("prompt+chosen turn 1: user after user")
    rlvr = datasets.Dataset.from_list(
        [{"id": "r", "prompt": p, "ground_truth": "1", "verifier": "math", "constraints": None, "source": "s", "meta": "{}"}
         for p in (user, user + [{"role": "assistant", "content": "a"}])], features=FEATURES["rlvr"])
    v = apply_filters(rlvr, FilterConfig(rules=["role_order"]))
    assert v.reasons[0] is None and "ends with assistant, expected user" in v.details[1]


def test_phrases_match_curly_apostrophes_and_line_breaks():
    assert verdict(ask("I’m sorry, but I cannot\nhelp with that."), rules=["refusal"])[0] == "refusal"
    custom = verdict(ask("Sure! I was built by ACME Labs."), rules=["self_identification"],
                     self_identification_phrases=["built by ACME"])  # added to the built-in phrases
    assert custom == ("self_identification", "turn 1 (assistant): matched 'built by ACME'")
    assert verdict(ask("I am ChatGPT."), rules=["self_identification"],
                   self_identification_phrases=["built by ACME"])[0] == "self_identification"


def test_mojibake_variants():
    for text in ("itâ€™s", "price\u00c2\u00a010", "bad \ufffd char", "c1 \x85 control"):
        assert verdict(ask(text), rules=["mojibake"])[0] == "mojibake", text


def test_first_failing_rule_is_the_reason_and_all_firings_are_counted():
    row = ask("As an AI language model, I am ChatGPT.")
    v = apply_filters(sft([row, ask(CLEAN_ANSWER)]), FilterConfig(rules=["self_identification", "refusal"]))
    assert list(v.reasons) == ["self_identification", None]
    assert v.stats["fired_per_rule"] == {"self_identification": 1, "refusal": 1}
    assert v.stats["rejected_per_rule"] == {"self_identification": 1, "refusal": 0}
    v = apply_filters(sft([row]), FilterConfig(rules=["refusal", "self_identification"]))
    assert list(v.reasons) == ["refusal"]


def test_turn_positions_survive_batching():
    rows = [convo(("system", "s"), ("user", "u"), ("assistant", "As an AI language model" if i % 3 == 0 else "fine"))
            for i in range(10)] + [ask("")]
    whole = apply_filters(sft(rows), FilterConfig(rules=["empty_turn", "refusal", "role_order"]))
    batched = apply_filters(sft(rows), FilterConfig(rules=["empty_turn", "refusal", "role_order"], batch_size=3))
    assert list(batched.reasons) == list(whole.reasons)
    assert list(batched.details) == list(whole.details)
    assert whole.details[3] == "turn 2 (assistant): matched 'As an AI language model'"
    assert whole.reasons[10] == "empty_turn"


@pytest.fixture(scope="module")
def word_tokenizer(tmp_path_factory):
    """A whitespace word-level tokenizer: token count = word count."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, **{f"w{i}": i + 1 for i in range(20)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    path = tmp_path_factory.mktemp("tok")
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(str(path))
    return str(path)


def test_token_rules(word_tokenizer):
    five = " ".join(f"w{i}" for i in range(5))
    config = {"tokenizer": word_tokenizer, "min_tokens": 2, "max_tokens": 4}
    assert verdict(ask(five, question="w1 w2"), rules=["max_tokens"], **config) == (
        "max_tokens", "turn 1 (assistant): 5 tokens > 4")
    assert verdict(ask("w1", question="w1 w2"), rules=["min_tokens"], **config) == (
        "min_tokens", "turn 1 (assistant): 1 tokens < 2")
    assert verdict(ask("w1 w2 w3", question="w1 w2"), rules=["min_tokens", "max_tokens"], **config) == (None, "")
    with pytest.raises(ValueError, match="need a tokenizer"):
        FilterConfig(rules=["max_tokens"])


def test_custom_regex_rules_from_yaml(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules: [empty_turn]\n"
        "custom:\n"
        "  - {name: no_urls, pattern: 'https?://', roles: [assistant], reason: has_url}\n"
        "  - {name: todo_marker, pattern: 'TODO(?=:)', ignore_case: true}\n"  # look-ahead: Python fallback
    )
    config = load_filter_config(rules)
    rows = [ask("See https://example.com"), ask("todo: later"), ask("todo later"),
            ask(CLEAN_ANSWER, question="read http://x.org")]
    v = apply_filters(sft(rows), config)
    assert list(v.reasons) == ["has_url", "todo_marker", None, None]
    assert v.details[0] == "turn 1 (assistant): matched 'https://'"
    assert v.stats["rejected_per_rule"] == {"empty_turn": 0, "has_url": 1, "todo_marker": 1}
    listed = tmp_path / "list.yaml"
    listed.write_text("- {name: x, pattern: 'xyz'}\n")
    assert load_filter_config(listed).custom == [RegexRule(name="x", pattern="xyz")]


@pytest.mark.parametrize("text, message", [
    ("custom:\n  - {name: bad, pattern: '(unclosed'}\n", "bad regular expression"),
    ("rules: [nope]\n", "unknown rule 'nope'"),
    ("rules: [\n", "not valid YAML"),
    ("42\n", "must hold a mapping"),
    ("custom:\n  - {name: x, pattern: a, roles: [robot]}\n", "unknown roles"),
])
def test_bad_rules_files(tmp_path, text, message):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_filter_config(path)


def test_filter_file_report_reconciles(tmp_path):
    rows = [ask(CLEAN_ANSWER), ask("As an AI language model, no.", source="web"), ask("  "),
            convo(("assistant", "x"), ("user", "y"), ("assistant", "z")), ask("cafÃ©", source="web")]
    source = tmp_path / "in.jsonl"
    sft(rows).to_json(str(source))
    result = filter_file(source, tmp_path / "out.jsonl")
    report = result.report
    assert report.rows_in == report.rows_out + sum(report.rejected.values()) == 5
    # the blank answer is not a valid record: loading rejects it (with its line) before the rules run
    assert report.rejected == {"schema": 1, "mojibake": 1, "refusal": 1, "role_order": 1}
    assert report.details["rejected_per_source"] == {"s": {"role_order": 1},
                                                     "web": {"mojibake": 1, "refusal": 1}}
    rejects = [json.loads(line) for line in result.rejects.read_text().splitlines()]
    assert sorted(r["reason"] for r in rejects) == sorted(report.rejected)
    assert next(r for r in rejects if r["reason"] == "schema")["line"] == 3


def test_cli_end_to_end(tmp_path):
    from postmix.cli import app

    source = tmp_path / "in.jsonl"
    sft([ask(CLEAN_ANSWER), ask("As an AI language model, no."), ask("See https://x.org")]).to_json(str(source))
    rules = tmp_path / "rules.yaml"
    rules.write_text("custom:\n  - {name: no_urls, pattern: 'https?://'}\n")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["curate", "filter", str(source), "-o", str(out), "--rule", "refusal", "--rules", str(rules)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out.report.json").read_text())
    assert report["rejected"] == {"no_urls": 1, "refusal": 1} and report["rows_out"] == 1
    assert report["config"]["rules"] == ["refusal"]
    bad = CliRunner().invoke(app, ["curate", "filter", str(source), "-o", str(out), "--rule", "nope"])
    assert bad.exit_code != 0 and isinstance(bad.exception, ConfigError)


def test_every_builtin_rule_has_a_case():
    assert set(CASES) | {"min_tokens", "max_tokens"} == set(BUILTIN_RULES)


def test_rejects_of_a_jsonl_or_parquet_input_carry_their_line(tmp_path):
    rows = [ask(CLEAN_ANSWER), ask("As an AI language model, no."), ask(CLEAN_ANSWER + " again"),
            ask("cafÃ©")]
    lines = [json.dumps(r) for r in sft(rows).to_list()]
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")  # line 2 unreadable
    result = filter_file(jsonl, tmp_path / "out.jsonl")
    by_reason = {r["reason"]: r["line"] for r in map(json.loads, result.rejects.read_text().splitlines())}
    assert by_reason == {"malformed_json": 2, "refusal": 3, "mojibake": 5}
    sft(rows).to_parquet(str(tmp_path / "in.parquet"))
    result = filter_file(tmp_path / "in.parquet", tmp_path / "out2.jsonl")
    assert {r["reason"]: r["line"] for r in map(json.loads, result.rejects.read_text().splitlines())} == \
        {"refusal": 2, "mojibake": 4}
    # a blank line between rows: readers skip it, so lines cannot be told from row numbers: none is given
    jsonl.write_text("\n".join([lines[0], "", *lines[1:]]) + "\n")
    result = filter_file(jsonl, tmp_path / "out3.jsonl")
    assert {r["line"] for r in map(json.loads, result.rejects.read_text().splitlines())} == {None}
