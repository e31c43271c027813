"""``judge generate``: prompt extraction, seeded model assignment, output rows and accounting."""

import json
from collections import Counter

import pytest

from postmix.errors import ConfigError, EndpointError
from postmix.judge import GenerateConfig, assign_models, generate
from postmix.llm import EndpointConfig, PoolConfig, RetryConfig
from postmix.schemas import Completion
from postmix.testing.openai_server import SERVER_ERROR

MODELS = ["m1", "m2", "m3"]


def responder(body):
    if "FAIL" in body["messages"][-1]["content"]:
        return SERVER_ERROR
    if "BLANK" in body["messages"][-1]["content"]:
        return "   "
    return f"{body['model']}|{body['messages'][-1]['content']}|{body['seed']}"


def pool_for(server, models=MODELS):
    return PoolConfig(endpoints=[EndpointConfig(name=m, model=m, base_url=server.base_url,
                                                sampling={"max_tokens": 64}) for m in models],
                      retry=RetryConfig(max_attempts=2, backoff_base=0.001))


def test_round_robin_gives_every_model_an_equal_share():
    config = GenerateConfig(n=2, assignment="round_robin")
    drawn = [assign_models(f"p{i}", i, MODELS, config) for i in range(6)]
    assert drawn[:3] == [["m1", "m2"], ["m3", "m1"], ["m2", "m3"]]
    assert Counter(m for models in drawn for m in models) == {"m1": 4, "m2": 4, "m3": 4}


def test_random_assignment_is_seeded_per_prompt_and_without_replacement():
    config = GenerateConfig(n=3, seed=5)
    first = assign_models("p1", 0, MODELS, config)
    assert sorted(first) == MODELS  # n == pool size: each model once
    assert assign_models("p1", 99, MODELS, config) == first  # position does not matter
    orders = {tuple(assign_models(f"p{i}", i, MODELS, config)) for i in range(30)}
    assert len(orders) > 1
    assert len(assign_models("p", 0, MODELS, GenerateConfig(n=5))) == 5  # n > pool: repeats


def test_policy_answers_every_prompt_once():
    config = GenerateConfig(n=3, policy="m3")
    for i in range(10):
        models = assign_models(f"p{i}", i, MODELS, config)
        assert models[0] == "m3" and models.count("m3") == 1 and len(models) == 3
    with pytest.raises(ConfigError, match="besides the policy"):
        assign_models("p", 0, ["m3"], config)


def test_generate_from_sft_and_prompt_only_rows(tmp_path, openai_server):
    openai_server.set_responder(responder)
    rows = [
        {"id": "sft1", "messages": [{"role": "system", "content": "be brief"},
                                    {"role": "user", "content": "first q"},
                                    {"role": "assistant", "content": "first a"},
                                    {"role": "user", "content": "second q"},
                                    {"role": "assistant", "content": "second a"}]},
        {"prompt": "plain text prompt"},
        {"id": "chat", "prompt": [{"role": "user", "content": "as messages"}]},
        {"id": "x", "text": "no prompt here"},
        {"id": "sft1", "prompt": "duplicate id"},
        {"id": "f", "prompt": "please FAIL"},
        {"id": "b", "prompt": "BLANK please"},
    ]
    src = tmp_path / "prompts.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    result = generate(src, tmp_path / "c.jsonl", pool_for(openai_server),
                      GenerateConfig(n=2, assignment="round_robin"), progress=False)
    out = [Completion.model_validate(json.loads(line)) for line in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert [(c.prompt_id, c.model) for c in out] == [
        ("sft1", "m1"), ("sft1", "m2"), (out[2].prompt_id, "m3"), (out[2].prompt_id, "m1"),
        ("chat", "m2"), ("chat", "m3")]
    sft = out[0]
    assert [m.content for m in sft.prompt] == ["be brief", "first q", "first a", "second q"]
    assert out[2].prompt_id.startswith("prompt-") and out[2].prompt[0].content == "plain text prompt"
    assert sft.response.startswith("m1|second q|") and sft.sampling["max_tokens"] == 64
    assert sft.sampling["temperature"] == 0.7 and sft.meta["sample_index"] == 0
    assert out[0].sampling["seed"] != out[1].sampling["seed"]
    failures = [json.loads(line) for line in (tmp_path / "c.failures.jsonl").read_text().splitlines()]
    reasons = Counter(f["reason"] for f in failures)
    assert reasons == {"malformed_json": 1, "no_prompt": 1, "duplicate_prompt": 1,
                       "server_error": 2, "empty_response": 2}
    report = result.report
    assert report.rows_in == 5 * 2 + 3 and report.rows_out == 6
    assert report.rejected == dict(sorted(reasons.items()))
    assert report.details["completions_per_model"] == {"m1": 2, "m2": 2, "m3": 2}
    assert report.details["ledger"]["endpoints"]["m1"]["answered"] >= 2
    assert json.loads((tmp_path / "c.report.json").read_text())["rows_out"] == 6


def test_unknown_models_are_a_config_error(tmp_path, openai_server):
    (tmp_path / "p.jsonl").write_text('{"prompt": "x"}\n')
    with pytest.raises(ConfigError, match="not in the pool"):
        generate(tmp_path / "p.jsonl", tmp_path / "c.jsonl", pool_for(openai_server),
                 GenerateConfig(policy="nope"))


def test_an_unset_key_variable_stops_the_run_before_it_leaves_any_file(tmp_path, monkeypatch):
    monkeypatch.delenv("POSTMIX_TEST_UNSET_KEY", raising=False)
    pool = PoolConfig(endpoints=[EndpointConfig(name="m1", model="m1", base_url="http://127.0.0.1:9/v1",
                                                api_key_env="POSTMIX_TEST_UNSET_KEY")])
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "p1", "prompt": [{"role": "user", "content": "hi"}]}) + "\n")
    out = tmp_path / "out"
    with pytest.raises(EndpointError, match="POSTMIX_TEST_UNSET_KEY"):
        generate(prompts, out / "c.jsonl", pool, progress=False)
    assert not out.exists() or list(out.iterdir()) == []
