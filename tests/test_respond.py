"""``curate respond``: complete SFT records, filters with reasons, accounting, cache replay."""

import json

import pytest
from typer.testing import CliRunner

from postmix.curate.respond import RespondConfig, respond
from postmix.llm import EndpointConfig, PoolConfig, RetryConfig
from postmix.schemas import SFTRecord, StepReport
from postmix.testing.openai_server import SERVER_ERROR

ANSWERS = {
    "REFUSE": "I'm sorry, but I can't help with that request.",
    "WHOAMI": "As an AI language model developed by OpenAI, I would suggest a rest day first.",
    "BLANK": "   ",
    "LONG": {"content": "one two three", "finish_reason": "length"},
    "BROKEN": SERVER_ERROR,
}


def responder(body):
    prompt = body["messages"][-1]["content"]
    if prompt == "What is 6 x 7?":
        return "Six sevens make 42. The answer is 42."
    for marker, answer in ANSWERS.items():
        if marker in prompt:
            return answer
    return f"Here is a plan for: {prompt} (seed {body['seed']})"


def pool_for(server):
    return PoolConfig(endpoints=[EndpointConfig(name="r", model="responder",
                                                base_url=server.base_url)],
                      retry=RetryConfig(max_attempts=1, backoff_base=0.001))


def write_rows(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def read_jsonl(path):
    return [json.loads(line) for line in open(path)] if path.exists() else []


def prompt_row(id_, text, **meta):
    return {"id": id_, "prompt": [{"role": "user", "content": text}], "source": "synth-general",
            "meta": json.dumps(meta)}


@pytest.fixture
def prompts(tmp_path):
    return write_rows(tmp_path / "prompts.jsonl", [
        prompt_row("p1", "Plan a week of meals for a night-shift nurse.", persona="A nurse"),
        prompt_row("p2", "REFUSE this one"),
        prompt_row("p3", "WHOAMI tell me about rest days"),
        prompt_row("p4", "BLANK please"),
        prompt_row("p5", "LONG essay"),
        prompt_row("p6", "BROKEN request"),
        {"id": "s1", "messages": [{"role": "system", "content": "Be brief."},
                                  {"role": "user", "content": "Name a river."},
                                  {"role": "assistant", "content": "The Nile."}]},
        {"id": "r1", "prompt": [{"role": "user", "content": "What is 6 x 7?"}],
         "ground_truth": "42", "verifier": "gsm8k", "constraints": None, "source": "gsm",
         "meta": "{}"},
        "{not json",
        {"id": "x1", "prompt": [{"role": "assistant", "content": "no user turn"}]},
    ])


def test_respond_writes_sft_records_and_filters_with_reasons(tmp_path, openai_server, prompts):
    openai_server.set_responder(responder)
    out = tmp_path / "sft.jsonl"
    result = respond(prompts, out, pool_for(openai_server), progress=False)
    rows = {row["id"]: SFTRecord.model_validate(row) for row in read_jsonl(out)}
    by_prompt = {r.meta["prompt_id"]: r for r in rows.values()}
    assert set(by_prompt) == {"p1", "s1", "r1"}
    nurse = by_prompt["p1"]
    assert [m.role for m in nurse.messages] == ["user", "assistant"]
    assert nurse.messages[-1].content.startswith("Here is a plan for: Plan a week")
    assert nurse.meta["persona"] == "A nurse" and nurse.meta["response_model"] == "responder"
    assert nurse.source == "synth-general"
    # an SFT row is answered after its last user turn: the old answer is replaced
    assert [m.role for m in by_prompt["s1"].messages] == ["system", "user", "assistant"]
    assert "Nile" not in by_prompt["s1"].messages[-1].content
    assert by_prompt["r1"].meta["ground_truth"] == "42"  # RLVR prompts keep their answer key
    rejects = read_jsonl(result.rejects)
    reasons = {json.loads(r["row"]["meta"])["prompt_id"]: r["reason"] for r in rejects
               if isinstance(r.get("row"), dict) and "messages" in r["row"]}
    assert reasons == {"p2": "refusal", "p3": "self_identification", "p4": "empty",
                       "p5": "truncated"}
    assert sorted(r["reason"] for r in rejects if r["reason"] in ("malformed_json", "no_prompt")) \
        == ["malformed_json", "no_prompt"]
    assert [f["reason"] for f in read_jsonl(result.failures)] == ["server_error"]
    report = StepReport.read(tmp_path / "sft.report.json")
    assert report.rows_in == 10 and report.rows_out == 3
    assert report.rejected == {"empty": 1, "malformed_json": 1, "no_prompt": 1, "refusal": 1,
                               "self_identification": 1, "server_error": 1, "truncated": 1}


def test_filters_can_be_switched_off(tmp_path, openai_server, prompts):
    openai_server.set_responder(responder)
    out = tmp_path / "sft.jsonl"
    result = respond(prompts, out, pool_for(openai_server),
                     RespondConfig(filters=["empty"]), progress=False)
    assert result.report.rows_out == 6  # refusal, self-identity and truncated answers kept
    assert result.report.rejected["empty"] == 1
    with pytest.raises(ValueError, match="unknown filter"):
        RespondConfig(filters=["toxicity"])


def test_n_samples_per_prompt_and_cache_replay(tmp_path, openai_server):
    openai_server.set_responder(responder)
    source = write_rows(tmp_path / "p.jsonl", [prompt_row("a", "Plan A"), prompt_row("b", "Plan B")])
    out = tmp_path / "sft.jsonl"
    config = RespondConfig(n=3, seed=5)
    first = respond(source, out, pool_for(openai_server), config, progress=False)
    assert first.report.rows_out == 6
    rows = read_jsonl(out)
    assert sorted((json.loads(r["meta"])["prompt_id"], json.loads(r["meta"])["sample_index"])
                  for r in rows) == [(p, k) for p in "ab" for k in range(3)]
    assert len({r["messages"][-1]["content"] for r in rows}) == 6  # each sample its own seed
    data = out.read_bytes()
    sent = len(openai_server.chat_requests())
    assert sent == 6
    respond(source, out, pool_for(openai_server), config, progress=False)
    assert len(openai_server.chat_requests()) == sent and out.read_bytes() == data


def test_identical_samples_are_rejected_as_duplicates(tmp_path, openai_server):
    openai_server.set_responder(lambda body: "Always the same answer.")
    source = write_rows(tmp_path / "p.jsonl", [prompt_row("a", "Plan A")])
    result = respond(source, tmp_path / "sft.jsonl", pool_for(openai_server), RespondConfig(n=2),
                     progress=False)
    assert result.report.rows_out == 1 and result.report.rejected == {"duplicate_response": 1}


def test_cli_synth_then_respond(tmp_path, openai_server):
    from postmix.cli import app

    def both(body):
        if body.get("response_format"):
            user = next(m["content"] for m in body["messages"] if m["role"] == "user")
            return json.dumps({"prompt": "Help me with: " + user.split("\n", 1)[0]})
        return "Sure, here is how."

    openai_server.set_responder(both)
    endpoints = tmp_path / "endpoints.yaml"
    endpoints.write_text(f"name: local\nmodel: m\nbase_url: {openai_server.base_url}\n")
    runner = CliRunner()
    prompts, sft = tmp_path / "prompts.jsonl", tmp_path / "sft.jsonl"
    result = runner.invoke(app, ["curate", "synth", "-o", str(prompts), "--endpoints", str(endpoints),
                                 "--n", "4", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert "curate.synth: in=4 out=4" in result.output and "distinct-2" in result.output
    result = runner.invoke(app, ["curate", "respond", str(prompts), "-o", str(sft), "--endpoints",
                                 str(endpoints), "--max-tokens", "64"])
    assert result.exit_code == 0, result.output
    assert len(read_jsonl(sft)) == 4
    assert all(b.get("max_tokens") == 64 for b in openai_server.chat_requests()[4:])
    result = runner.invoke(app, ["curate", "synth", "-o", str(prompts), "--endpoints", str(endpoints),
                                 "--skill", "poetry"])
    assert result.exit_code != 0 and "unknown skill" in str(result.exception)


FILTER_CASES = {
    "I'm sorry, but I can't help with that request.": "refusal",
    "Sorry, I cannot assist with this.": "refusal",
    "I’m afraid I can’t do that.": "refusal",
    "I am unable to fulfill this request.": "refusal",
    "I can't recommend this enough: go outside.": None,
    "Sorry to hear that your knee hurts; you can't run yet, so rest.": None,
    "Here is a plan. I can't help noticing the deadline.": None,
    "As an AI language model, I think rest matters.": "self_identification",
    "I'm ChatGPT, a model developed by OpenAI.": "self_identification",
    "I was trained by Anthropic to be helpful.": "self_identification",
    "ChatGPT and Claude are both chat assistants.": None,
    "The library was built by Google engineers.": None,
    "  \n": "empty",
}


def test_response_verdicts_on_crafted_answers():
    from postmix.curate.respond import response_verdicts

    texts = list(FILTER_CASES)
    verdicts = response_verdicts(texts, [None] * len(texts), [f"id{i}" for i in range(len(texts))],
                                 ["refusal", "self_identification", "truncated"])
    assert {t: v and v[0] for t, v in zip(texts, verdicts, strict=True)} == FILTER_CASES
    # with refusal off, the refusal is kept; empty always applies
    off = response_verdicts(texts[:1] + ["  "], [None, None], ["a", "b"], [])
    assert off[0] is None and off[1][0] == "empty"


def test_answers_their_verifier_scores_wrong_are_rejected_and_counted(tmp_path, openai_server):
    """RLVR prompts carry an answer key: a wrong GSM8K number or a broken IF constraint is
    rejected as ``unverified`` with the verifier's reason; right answers are kept; an unscorable
    row is kept and counted; with the filter off nothing is checked."""
    no_commas = json.dumps([{"type": "no_commas"}])
    rows = [
        {"id": "g-right", "prompt": [{"role": "user", "content": "GSM right"}], "ground_truth": "42",
         "verifier": "gsm8k", "source": "gsm", "meta": "{}"},
        {"id": "g-wrong", "prompt": [{"role": "user", "content": "GSM wrong"}], "ground_truth": "42",
         "verifier": "gsm8k", "source": "gsm", "meta": "{}"},
        {"id": "if-kept", "prompt": [{"role": "user", "content": "IF plain"}], "ground_truth": no_commas,
         "verifier": "ifeval", "constraints": [{"type": "no_commas"}], "source": "if", "meta": "{}"},
        {"id": "if-broken", "prompt": [{"role": "user", "content": "IF commas"}], "ground_truth": no_commas,
         "verifier": "ifeval", "constraints": [{"type": "no_commas"}], "source": "if", "meta": "{}"},
        {"id": "odd", "prompt": [{"role": "user", "content": "ODD verifier"}], "ground_truth": "x",
         "verifier": "astrology", "source": "x", "meta": "{}"},
        prompt_row("plain", "A plain prompt with no answer key"),
    ]
    answers = {"GSM right": "So the answer is 42.", "GSM wrong": "#### 41",
               "IF plain": "No commas here at all.", "IF commas": "Red, green, blue.",
               "ODD verifier": "Whatever.", "A plain prompt with no answer key": "Fine."}
    openai_server.set_responder(lambda body: answers[body["messages"][-1]["content"]])
    source = write_rows(tmp_path / "p.jsonl", rows)
    result = respond(source, tmp_path / "out.jsonl", pool_for(openai_server), progress=False)
    kept = {json.loads(r["meta"])["prompt_id"] for r in read_jsonl(tmp_path / "out.jsonl")}
    assert kept == {"g-right", "if-kept", "odd", "plain"}
    rejected = {json.loads(r["row"]["meta"])["prompt_id"]: (r["reason"], r["detail"])
                for r in read_jsonl(result.rejects)}
    assert rejected["g-wrong"][0] == "unverified" and "41" in rejected["g-wrong"][1]
    assert rejected["if-broken"] == ("unverified", "ifeval: constraint_failed (no_commas)")
    assert result.report.rejected == {"unverified": 2}
    assert result.report.details["verified"] == {
        "astrology": {"checked": 1, "passed": 0, "failed": 0, "unscorable": 1},
        "gsm8k": {"checked": 2, "passed": 1, "failed": 1, "unscorable": 0},
        "ifeval": {"checked": 2, "passed": 1, "failed": 1, "unscorable": 0}}
    off = respond(source, tmp_path / "off.jsonl", pool_for(openai_server),
                  RespondConfig(filters=["empty"]), progress=False)
    assert off.report.rows_out == len(rows) and off.report.details["verified"] == {}
