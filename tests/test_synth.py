"""``curate synth``: persona order, skills, structured prompts, accounting, cache replay, voting."""

import json
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postmix.curate.personas import load_personas, persona_order, personas_from_texts
from postmix.curate.skills import BUILTIN_SKILLS, load_skill
from postmix.curate.skills.answers import extract_answer, majority_vote
from postmix.curate.synth import SynthConfig, distinct_n, synthesize
from postmix.errors import ConfigError
from postmix.llm import EndpointConfig, PoolConfig, RetryConfig
from postmix.schemas import RLVRRecord
from postmix.testing.openai_server import SERVER_ERROR


def persona_of(body) -> str:
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")  # not a re-ask
    return user.split("\n", 1)[0].removeprefix("Persona: ").strip()


def writer(body):
    """A prompt that names the persona (so every prompt differs), or a scripted fault."""
    persona = persona_of(body)
    if "FAULT" in persona:
        return SERVER_ERROR
    if "GARBLED" in persona:
        return "not json at all"
    if "SILENT" in persona:
        return json.dumps({"prompt": "   "})
    if "TWIN" in persona:
        return json.dumps({"prompt": "Which tent should I buy for a rainy week in Wales?"})
    return json.dumps({"prompt": f"I am {persona}. What should I plan for next week?"})


def pool_for(server, **retry):
    retry = {"max_attempts": 2, "backoff_base": 0.001, **retry}
    return PoolConfig(endpoints=[EndpointConfig(name="w", model="writer", base_url=server.base_url,
                                                sampling={"max_tokens": 256})],
                      retry=RetryConfig(**retry))


def write_personas(path, texts, field="persona"):
    path.write_text("".join(json.dumps({field: t}) + "\n" for t in texts))
    return str(path)


def read_jsonl(path):
    return [json.loads(line) for line in open(path)] if path.exists() else []


# ---------------------------------------------------------------- personas


@settings(max_examples=60, deadline=None)
@given(count=st.integers(1, 40), n=st.integers(0, 150), seed=st.integers(0, 2**31))
def test_persona_order_never_repeats_before_the_set_is_exhausted(count, n, seed):
    order = persona_order(count, n, seed)
    assert len(order) == n
    for start in range(0, n, count):  # each full pass is a permutation, the last a partial one
        block = order[start:start + count]
        assert len(set(block.tolist())) == len(block)
        assert set(block.tolist()) <= set(range(count))
    longer = persona_order(count, n + 7, seed)
    assert np.array_equal(longer[:n], order)  # asking for more extends, never reshuffles


def test_persona_order_depends_on_the_seed():
    assert not np.array_equal(persona_order(50, 50, 0), persona_order(50, 50, 1))
    assert np.array_equal(persona_order(50, 50, 3), persona_order(50, 50, 3))


def test_bundled_personas_load_and_repeats_or_blanks_are_skipped(tmp_path):
    bundled = load_personas()
    assert len(bundled) >= 60 and len({p.id for p in bundled.personas}) == len(bundled)
    loaded = personas_from_texts(["A cook", "a  cook ", "A cook", "", None, "A pilot"])
    assert [p.text for p in loaded.personas] == ["A cook", "a cook", "A pilot"]
    assert loaded.skipped == {"duplicate": 1, "no_text": 2}
    path = write_personas(tmp_path / "p.jsonl", ["A baker", "A diver"], field="who")
    assert [p.text for p in load_personas(path, field="who").personas] == ["A baker", "A diver"]
    with pytest.raises(ConfigError, match="--persona-field"):
        load_personas(path)  # no 'persona' column


# ---------------------------------------------------------------- skills and helpers


def test_builtin_skills_load_and_overrides_merge(tmp_path):
    for name in BUILTIN_SKILLS:
        skill = load_skill(name)
        assert "A diver" in skill.messages("A diver")[-1]["content"]
    override = tmp_path / "mine.yaml"
    override.write_text("template: 'Persona: {persona}\n\nWrite a limerick request.'\n"
                        "sampling: {top_p: 0.5}\n")
    merged = load_skill("general", override)
    assert merged.messages("A diver")[-1]["content"].endswith("limerick request.")
    assert merged.sampling == {"temperature": 1.0, "top_p": 0.5}  # nested mappings merge
    assert merged.fingerprint != load_skill("general").fingerprint
    override.write_text("template: no placeholder here\n")
    with pytest.raises(ConfigError, match="persona"):
        load_skill("general", override)
    with pytest.raises(ConfigError, match="unknown skill"):
        load_skill("poetry")


def test_answer_extraction_and_majority_vote():
    assert extract_answer("so 3 + 4 = 7\n#### 1,200.00", "gsm8k") == "1200"
    assert extract_answer("costs $12 then 15.50", "gsm8k") == "15.5"
    assert extract_answer("no number", "gsm8k") is None
    assert extract_answer(r"thus \boxed{\dfrac{1}{2}} and \boxed{\left( 3 \right)}.", "boxed") == "(3)"
    assert extract_answer(r"\boxed{\frac{a}{b^{2}}}", "boxed") == r"\frac{a}{b^{2}}"
    assert majority_vote(["7", "7", "7", "8", None], 0.6) == ("7", 0.6)
    assert majority_vote(["7", "7", "8", "8"], 0.5) == (None, 0.5)  # a tie never wins
    assert majority_vote(["7", "7", "8", None, None], 0.6) == (None, 0.4)
    assert majority_vote([None, None], 0.5) == (None, 0.0)


def test_distinct_n_counts_unique_ngrams_over_all_ngrams():
    # "a b c" and "a b d": bigrams ab, bc, ab, bd -> 3 distinct of 4; trigrams abc, abd -> 2 of 2
    assert distinct_n(["A b c", "a, b d"], 2) == 0.75
    assert distinct_n(["a b c", "a b d"], 3) == 1.0
    assert distinct_n(["x y", "x y"], 2) == 0.5  # n-grams never span two prompts
    assert distinct_n(["one"], 2) == 0.0


# ---------------------------------------------------------------- synthesis


@pytest.mark.parametrize("skill", ["general", "code", "gsm", "math"])
def test_synth_writes_n_prompt_rows_with_persona_and_template(tmp_path, openai_server, skill):
    openai_server.set_responder(writer)
    out = tmp_path / "prompts.jsonl"
    result = synthesize(out, pool_for(openai_server), SynthConfig(skill=skill, n=12, seed=3),
                        progress=False)
    rows = read_jsonl(out)
    assert result.report.rows_in == 12 and result.report.rows_out == 12 and len(rows) == 12
    template = load_skill(skill).fingerprint
    personas = set()
    for row in rows:
        meta = json.loads(row["meta"])
        assert meta["skill"] == skill and meta["template"] == template
        assert meta["persona"] in row["prompt"][0]["content"]
        assert row["prompt"][0]["role"] == "user" and row["source"] == f"synth-{skill}"
        personas.add(meta["persona"])
    assert len(personas) == 12  # 12 of 64 bundled personas: no repeats
    assert len({row["id"] for row in rows}) == 12
    sent = openai_server.chat_requests()
    assert len(sent) == 12 and all(b["response_format"]["type"] == "json_schema" for b in sent)
    assert all(b["temperature"] == 1.0 for b in sent)  # the skill's sampling
    details = result.report.details
    assert details["diversity"]["distinct_personas"] == 12
    assert details["diversity"]["near_duplicate_rate"] == 0.0
    assert details["ledger"]["synthesis"]["endpoints"]["w"]["answered"] == 12


def test_every_item_is_in_the_output_or_accounted_for(tmp_path, openai_server):
    openai_server.set_responder(writer)
    names = ["A cook", "A FAULT maker", "A GARBLED speaker", "A SILENT monk", "A TWIN one",
             "A TWIN two", "A pilot"]
    path = write_personas(tmp_path / "p.jsonl", names)
    out = tmp_path / "prompts.jsonl"
    result = synthesize(out, pool_for(openai_server, max_attempts=1),
                        SynthConfig(n=7, personas=path), progress=False)
    report = result.report
    assert report.rows_out == 3  # cook, pilot, first TWIN
    assert report.rejected == {"duplicate_prompt": 1, "empty_prompt": 1, "parse_error": 1,
                               "server_error": 1}
    failures, rejects = read_jsonl(result.failures), read_jsonl(result.rejects)
    assert sorted(r["reason"] for r in failures) == ["parse_error", "server_error"]
    assert sorted(r["reason"] for r in rejects) == ["duplicate_prompt", "empty_prompt"]
    duplicate = next(r for r in rejects if r["reason"] == "duplicate_prompt")
    kept_ids = {row["id"] for row in read_jsonl(out)}
    assert duplicate["detail"].removeprefix("duplicate_of=") in kept_ids
    # the persona of every accounted item is recorded, so nothing is lost silently
    accounted = {json.loads(r["row"]["meta"])["persona"] if isinstance(r["row"].get("meta"), str)
                 else r["row"]["persona"] for r in failures + rejects}
    written = {json.loads(row["meta"])["persona"] for row in read_jsonl(out)}
    assert accounted | written == set(names)


def test_rerun_with_same_seed_and_cache_sends_nothing_and_writes_the_same_bytes(tmp_path, openai_server):
    openai_server.set_responder(writer)
    out = tmp_path / "prompts.jsonl"
    config = SynthConfig(skill="gsm", n=10, seed=11, vote_k=3)
    openai_server.set_responder(lambda body: writer(body) if body.get("response_format")
                                else "work...\n#### 42")
    synthesize(out, pool_for(openai_server), config, progress=False)
    first = out.read_bytes()
    sent = len(openai_server.chat_requests())
    assert sent == 10 + 10 * 3
    again = synthesize(out, pool_for(openai_server), config, progress=False)
    assert len(openai_server.chat_requests()) == sent  # all from the cache
    assert out.read_bytes() == first
    assert again.report.details["ledger"]["synthesis"]["cached"] == 10
    # a larger n extends the run: the first 10 come from the cache, 5 new prompts are asked for
    synthesize(tmp_path / "more.jsonl", pool_for(openai_server), config.model_copy(
        update={"n": 15, "cache_path": str(tmp_path / "prompts.cache.sqlite")}), progress=False)
    assert len(openai_server.chat_requests()) == sent + 5 + 5 * 3
    assert (tmp_path / "more.jsonl").read_bytes().startswith(first)


def test_a_failed_request_is_retried_by_the_next_run(tmp_path, openai_server):
    openai_server.set_responder(writer)
    out = tmp_path / "prompts.jsonl"
    pool = pool_for(openai_server, max_attempts=1)
    openai_server.inject(SERVER_ERROR, times=1)
    first = synthesize(out, pool, SynthConfig(n=5), progress=False)
    assert first.report.rows_out == 4 and first.report.rejected == {"server_error": 1}
    second = synthesize(out, pool, SynthConfig(n=5), progress=False)
    assert second.report.rows_out == 5 and second.report.rejected == {}
    assert len(openai_server.chat_requests()) == 6  # 5, then only the failed one again


def test_math_majority_vote_keeps_agreeing_prompts_and_rejects_the_rest(tmp_path, openai_server):
    names = ["AGREE all", "AGREE three of five", "SPLIT evenly", "SPLIT no answers"]
    path = write_personas(tmp_path / "p.jsonl", names)
    answers = {"AGREE all": ["#### 12"] * 5,
               "AGREE three of five": ["#### 7", "#### 7.0", "#### 8", "#### 7", "no idea"],
               "SPLIT evenly": ["#### 1", "#### 2", "#### 1", "#### 2", "#### 3"],
               "SPLIT no answers": ["hmm"] * 5}

    def responder(body):
        if body.get("response_format"):
            return json.dumps({"prompt": f"Problem for {persona_of(body)}"})
        problem = body["messages"][-1]["content"]
        persona = next(name for name in names if name in problem)
        # the sample index is in the per-request seed only; rank seeds to pick the answer
        index = solver_calls[persona]
        solver_calls[persona] += 1
        return f"Working...\n{answers[persona][index]}"

    solver_calls = Counter()
    openai_server.set_responder(responder)
    out = tmp_path / "math.jsonl"
    result = synthesize(out, pool_for(openai_server),
                        SynthConfig(skill="gsm", n=4, personas=path, vote_k=5, min_agreement=0.6),
                        progress=False)
    rows = [RLVRRecord.model_validate(row) for row in read_jsonl(out)]
    kept = {row.meta["persona"]: row for row in rows}
    assert set(kept) == {"AGREE all", "AGREE three of five"}
    assert kept["AGREE all"].ground_truth == "12" and kept["AGREE all"].verifier == "gsm8k"
    assert kept["AGREE three of five"].ground_truth == "7"
    assert kept["AGREE three of five"].meta["votes"] == {"7": 3, "8": 1, "<none>": 1}
    rejects = read_jsonl(result.rejects)
    assert [r["reason"] for r in rejects] == ["no_majority", "no_majority"]
    assert result.report.rejected == {"no_majority": 2}
    assert result.report.details["vote"] == {"k": 5, "min_agreement": 0.6, "voted": 4, "kept": 2,
                                             "answers_equal_by": "normalised text",
                                             "no_majority": 2, "mean_agreement": 0.5}
    assert sum(solver_calls.values()) == 20
    solver_bodies = [b for b in openai_server.chat_requests() if not b.get("response_format")]
    assert all("####" in b["messages"][-1]["content"] for b in solver_bodies)  # gsm solve template


def test_math_answers_vote_together_when_math_verify_finds_them_equal(tmp_path, openai_server):
    """\\frac{1}{2}, 0.5 and 2/4 are one answer to the RLVR math verifier, so they are one vote."""
    from postmix.curate.skills.answers import math_equivalence, merge_equivalent

    assert merge_equivalent(["a", "A", None, "b", "a"], lambda x, y: x.lower() == y.lower()) == \
        ["a", "a", None, "b", "a"]
    pytest.importorskip("math_verify")
    same = math_equivalence()
    assert merge_equivalent([r"\frac{1}{2}", "0.5", r"\frac{1}{3}", r"\frac{2}{4}"], same) == \
        [r"\frac{1}{2}", r"\frac{1}{2}", r"\frac{1}{3}", r"\frac{1}{2}"]

    names = ["HALF"]
    path = write_personas(tmp_path / "p.jsonl", names)
    solutions = iter([r"so \boxed{\frac{1}{2}}", r"\boxed{0.5}", r"\boxed{\frac{1}{3}}"])

    def responder(body):
        if body.get("response_format"):
            return json.dumps({"prompt": f"Problem for {persona_of(body)}"})
        return f"Working... {next(solutions)}"

    openai_server.set_responder(responder)
    result = synthesize(tmp_path / "math.jsonl", pool_for(openai_server),
                        SynthConfig(skill="math", n=1, personas=path, vote_k=3, min_agreement=0.6),
                        progress=False)
    (row,) = [RLVRRecord.model_validate(r) for r in read_jsonl(tmp_path / "math.jsonl")]
    assert row.ground_truth == r"\frac{1}{2}" and row.verifier == "math"
    assert row.meta["votes"] == {r"\frac{1}{2}": 2, r"\frac{1}{3}": 1}
    assert result.report.details["vote"]["answers_equal_by"] == "math-verify"


def test_vote_needs_a_skill_with_a_solve_template(tmp_path, openai_server):
    with pytest.raises(ConfigError, match="solve template"):
        synthesize(tmp_path / "x.jsonl", pool_for(openai_server),
                   SynthConfig(skill="general", n=2, vote_k=3), progress=False)
    with pytest.raises(ConfigError, match="not in the pool"):
        synthesize(tmp_path / "x.jsonl", pool_for(openai_server),
                   SynthConfig(n=2, model="gpt-nope"), progress=False)


def test_template_override_reaches_the_model_and_the_rows(tmp_path, openai_server):
    openai_server.set_responder(writer)
    override = tmp_path / "skill.yaml"
    override.write_text("system: ''\ntemplate: |-\n  Persona: {persona}\n\n  Ask about birds.\n")
    out = tmp_path / "p.jsonl"
    synthesize(out, pool_for(openai_server), SynthConfig(n=3, template=str(override)),
               progress=False)
    sent = openai_server.chat_requests()
    assert all(b["messages"][-1]["content"].endswith("Ask about birds.") for b in sent)
    assert all(len(b["messages"]) == 1 for b in sent)  # empty system: no system turn
    meta = json.loads(read_jsonl(out)[0]["meta"])
    assert meta["template_source"] == str(override)
    assert meta["template"] == load_skill("general", override).fingerprint


# ---------------------------------------------------------------- precise instruction following


def test_every_catalogue_constraint_can_be_sampled_and_draws_are_compatible():
    from postmix.curate.skills.constraints import DOMAINS, conflicts, sample_constraints
    from postmix.verifiers import ifeval

    # a new catalogue type needs a domain here, unless its parameters are the prompt's own text
    assert set(DOMAINS) == set(ifeval.CONSTRAINTS) - ifeval.PROMPT_BOUND
    seen = Counter()
    for index in range(400):
        specs = sample_constraints(7, index, 1, 3)
        assert 1 <= len(specs) <= 3
        assert specs == sample_constraints(7, index, 1, 3)  # seeded by (seed, index)
        types = [s["type"] for s in specs]
        assert not any(conflicts(a, b) for i, a in enumerate(types) for b in types[i + 1:])
        for spec in specs:
            ifeval.parse_spec(spec)
        seen.update(types)
    assert set(seen) == set(DOMAINS)
    assert sample_constraints(8, 0, 2, 2) != sample_constraints(7, 0, 2, 2) or \
        sample_constraints(8, 1, 2, 2) != sample_constraints(7, 1, 2, 2)


def crafted(spec):
    """(a response that satisfies spec, one that does not), for the simpler constraint types."""
    kind = spec["type"]
    if kind == "word_count":
        n = spec["num_words"]
        ok, bad = (n, n + 1) if spec["relation"] == "at_most" else (n, n - 1)
        return " ".join(["word"] * ok), " ".join(["word"] * bad)
    simple = {
        "no_commas": ("a plain answer", "yes, no"),
        "lowercase": ("all lowercase here", "Not Lowercase"),
        "uppercase": ("ALL CAPS HERE", "not caps"),
        "quotation": ('"a quoted answer"', "an unquoted answer"),
        "title": ("<<a title>>\nthe body", "the body"),
        "json_format": ('{"answer": 1}', "not json"),
        "keywords_include": (" ".join(spec.get("keywords", [])), "nothing relevant"),
        "keywords_forbidden": ("a clean answer", " ".join(spec.get("forbidden_words", []))),
        "end_phrase": ("Done. " + spec.get("end_phrase", ""), spec.get("end_phrase", "") + " More."),
        "start_phrase": (spec.get("start_phrase", "") + " and so on", "Well. " + spec.get("start_phrase", "")),
        "bullet_count": ("\n".join(["* point"] * spec.get("num_bullets", 0)),
                         "\n".join(["* point"] * (spec.get("num_bullets", 0) + 1))),
        "placeholders": (" ".join(["[name]"] * spec.get("num_placeholders", 0)), "no placeholders"),
        "postscript": ("The body.\n" + spec.get("postscript_marker", "") + " a note", "The body."),
    }
    return simple.get(kind)


def test_precise_if_rows_carry_specs_the_ifeval_verifier_checks(tmp_path, openai_server):
    from postmix.verifiers import ifeval, verify

    openai_server.set_responder(writer)
    out = tmp_path / "if.jsonl"
    result = synthesize(out, pool_for(openai_server),
                        SynthConfig(skill="precise-if", n=40, seed=4, max_constraints=1),
                        progress=False)
    assert result.report.rows_out == 40
    rows = [RLVRRecord.model_validate(row) for row in read_jsonl(out)]
    sent = {persona_of(b): b["messages"][-1]["content"] for b in openai_server.chat_requests()}
    checked = 0
    for row in rows:
        assert row.verifier == "ifeval" and len(row.constraints) == 1
        assert json.loads(row.ground_truth) == row.constraints
        text = row.prompt[-1].content
        instructions = "\n".join(ifeval.describe(spec) for spec in row.constraints)
        assert text == row.meta["written_prompt"] + "\n\n" + instructions
        assert instructions in sent[row.meta["persona"]]  # the writer saw them too
        pair = crafted(row.constraints[0])
        if pair is None:
            continue
        good, bad = pair
        assert verify(good, row.ground_truth, "ifeval", row.constraints).correct is True, row.constraints
        assert verify(bad, row.ground_truth, "ifeval", None).correct is False, row.constraints
        checked += 1
    assert checked >= 10
    assert sum(result.report.details["constraints"].values()) == 40
