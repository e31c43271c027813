"""``postmix eval``: the tiny model scored offline through the transformers backend, and the
engine's cache making an eval resumable (requests counted at the OpenAI-protocol test server)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from postmix.eval import EvalConfig, ModelInfo, evaluate
from postmix.eval.bootstrap import bootstrap_interval
from postmix.llm import EndpointConfig, PoolConfig
from postmix.schemas.eval import read_result
from postmix.testing.openai_server import FakeOpenAIServer
from postmix.verifiers.gsm8k import extract_number

SAMPLE = Path(__file__).parents[1] / "postmix" / "data" / "benchmarks" / "gsm8k_test_sample.jsonl"


def _sample_rows() -> list[dict]:
    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]


def _items(folder: Path, name: str) -> list[dict]:
    lines = (folder / f"{name}.items.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _pool(server: FakeOpenAIServer, **retry) -> PoolConfig:
    return PoolConfig(endpoints=[EndpointConfig(name="fake", model="fake-model",
                                                base_url=server.base_url, max_concurrency=8)],
                      retry={"backoff_base": 0.0, **retry})


def _gsm8k_responder(rows: list[dict], right: set[int]):
    """Answers item i with its reference number when i is in ``right``, else one more."""
    truth = {row["question"]: (i, extract_number(row["answer"])) for i, row in enumerate(rows)}

    def respond(body: dict) -> str:
        text = body["messages"][-1]["content"]
        index, number = next(v for q, v in truth.items() if text.startswith(q))
        answer = number if index in right else number + 1
        return f"Let me think step by step.\n#### {answer}"

    return respond


# ---------------------------------------------------------------- the tiny model, offline


def test_tiny_model_scored_offline_through_transformers(tiny_model_dir, tmp_path):
    """Every item is accounted for, the interval contains the score, one line per item."""
    from postmix.eval import local_pool

    config = EvalConfig(benchmarks=["gsm8k-sample"], limit=4,
                        prompt_formats={"gsm8k": {"stop": ["\n"], "max_tokens": 8}})
    result = evaluate(local_pool(str(tiny_model_dir), batch_size=4), tmp_path / "out", config,
                      info=ModelInfo(str(tiny_model_dir), "local"))
    score = result.score("gsm8k-sample")
    assert score.items == 4 == score.scored + sum(score.rejected.values())
    items = _items(tmp_path / "out", "gsm8k-sample")
    assert len(items) == score.items
    assert {i["status"] for i in items} <= {"scored", "rejected"}
    if score.scored:
        assert score.ci_low <= score.score <= score.ci_high
    assert score.prompt_format["stop"] == ["\n"] and score.prompt_format["sampling"]["stop"] == [
        "\n"]
    assert result.generation["backends"] == ["transformers"]
    assert read_result(tmp_path / "out") == result


def test_cli_on_a_run_folder_records_run_and_mix(tiny_model_dir, tmp_path):
    from postmix.cli import app

    run = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run)
    (run / "run_card.json").write_text(json.dumps({
        "run_id": "sft-test-1", "mix": "demo@2", "status": "completed",
        "output_dir": str(run)}), encoding="utf-8")
    outcome = CliRunner().invoke(app, ["eval", str(run), "--benchmark", "gsm8k-sample",
                                       "--limit", "2", "--max-tokens", "4", "-o",
                                       str(tmp_path / "out")])
    assert outcome.exit_code == 0, outcome.output
    result = read_result(tmp_path / "out" / "results.json")
    assert (result.model_kind, result.run_id, result.mix) == ("run", "sft-test-1", "demo@2")
    assert result.run_dir == str(run)
    score = result.score("gsm8k-sample")
    assert score.items == 2 == score.scored + sum(score.rejected.values())
    assert score.prompt_format["sampling"]["max_tokens"] == 4


# ---------------------------------------------------------------- scores, against a server


def test_score_is_the_share_of_right_answers_with_its_interval(tmp_path):
    rows = _sample_rows()
    right = {i for i in range(len(rows)) if i % 3 == 0}
    with FakeOpenAIServer(_gsm8k_responder(rows, right)) as server:
        result = evaluate(_pool(server), tmp_path, EvalConfig(benchmarks=["gsm8k-sample"]))
    score = result.score("gsm8k-sample")
    assert score.items == len(rows) and score.scored == len(rows) and not score.rejected
    assert score.score == pytest.approx(len(right) / len(rows))
    assert score.ci_low < score.score < score.ci_high
    items = _items(tmp_path, "gsm8k-sample")
    assert [i["verdict"] for i in items] == [i in right for i in range(len(rows))]
    assert all(i["extracted"] is not None for i in items)


def test_resume_resends_nothing_when_complete_and_only_the_missing_after_a_partial_run(
        tmp_path):
    rows = _sample_rows()
    with FakeOpenAIServer(_gsm8k_responder(rows, set(range(len(rows))))) as server:
        pool = _pool(server)
        evaluate(pool, tmp_path, EvalConfig(benchmarks=["gsm8k-sample"], limit=10))
        assert len(server.chat_requests()) == 10
        full = evaluate(pool, tmp_path, EvalConfig(benchmarks=["gsm8k-sample"]))
        assert len(server.chat_requests()) == len(rows)  # only the 20 not answered before
        again = evaluate(pool, tmp_path, EvalConfig(benchmarks=["gsm8k-sample"]))
        assert len(server.chat_requests()) == len(rows)  # complete: nothing re-sent
    assert again.score("gsm8k-sample").score == full.score("gsm8k-sample").score == 1.0


def test_failed_and_truncated_answers_are_rejects_and_a_rerun_asks_only_the_failed(tmp_path):
    rows = _sample_rows()[:6]
    source = tmp_path / "six.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    answer = _gsm8k_responder(rows, set(range(6)))
    failing = {rows[1]["question"], rows[4]["question"]}
    state = {"fail": True}

    def respond(body: dict):
        text = body["messages"][-1]["content"]
        if state["fail"] and any(text.startswith(q) for q in failing):
            return "server_error"  # a FaultKind value: a 500 reply
        if text.startswith(rows[2]["question"]):
            return "word " * 50  # cut off by max_tokens=20 words
        return answer(body)

    from postmix.testing.openai_server import SERVER_ERROR

    def responder(body: dict):
        out = respond(body)
        return SERVER_ERROR if out == "server_error" else out

    config = EvalConfig(benchmarks=[f"gsm8k-six={source}"], sampling={"max_tokens": 20})
    out = tmp_path / "out"
    with FakeOpenAIServer(responder) as server:
        pool = _pool(server, max_attempts=1)
        first = evaluate(pool, out, config).score("gsm8k-six")
        assert first.rejected == {"generation_failed": 2, "truncated": 1}
        assert first.items == 6 and first.scored == 3 and first.score == 1.0
        assert first.metrics["score_all_items"] == pytest.approx(3 / 6)
        sent = len(server.chat_requests())
        state["fail"] = False
        second = evaluate(pool, out, config).score("gsm8k-six")
        asked = [m["messages"][-1]["content"] for m in server.chat_requests()[sent:]]
    # the two failures and the truncated one (a cut-off answer is cached, so it is not re-asked)
    assert sorted(a.split("\n")[0] for a in asked) == sorted(failing)
    assert second.rejected == {"truncated": 1} and second.scored == 5
    failed = [i for i in _items(out, "gsm8k-six") if i["reason"] == "truncated"]
    assert failed[0]["details"]["max_tokens"] == 20


def test_unknown_benchmark_and_missing_choice_are_one_line_errors(tmp_path):
    from postmix.errors import ConfigError

    with FakeOpenAIServer() as server:
        with pytest.raises(ConfigError, match="cannot score benchmark 'mmlu'"):
            evaluate(_pool(server), tmp_path, EvalConfig(benchmarks=["mmlu"]))
        with pytest.raises(ConfigError, match="--benchmark NAME"):
            evaluate(_pool(server), tmp_path, EvalConfig())


def test_bootstrap_interval_is_seeded_and_contains_the_mean():
    scores = [1.0] * 7 + [0.0] * 13
    low, high = bootstrap_interval(scores, seed=3)
    assert (low, high) == bootstrap_interval(scores, seed=3)
    assert low < 7 / 20 < high
    assert bootstrap_interval([], seed=0) == (None, None)
    assert bootstrap_interval([1.0, 1.0], seed=0) == (1.0, 1.0)


def test_few_shot_and_plain_formats_are_data():
    from postmix.eval.formats import PromptFormat

    fmt = PromptFormat(template="Q: {question}\nA:", system="Be brief.",
                       examples=[{"question": "1+1?", "answer": "2"}], stop=["\nQ:"])
    messages = fmt.messages("2+2?")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[-1]["content"] == "Q: 2+2?\nA:" and messages[2]["content"] == "2"
    plain = fmt.model_copy(update={"chat_template": False})
    (only,) = plain.messages("2+2?")
    assert re.fullmatch(r"Be brief\.\n\nQ: 1\+1\?\nA:\n\n2\n\nQ: 2\+2\?\nA:", only["content"])
    assert plain.sampling({"temperature": 0})["raw_prompt"] is True
    assert fmt.record()["shots"] == 1


# ---------------------------------------------------------------- IFEval


def test_ifeval_strict_and_loose_prompt_and_instruction_level(tmp_path):
    rows = [{"key": k, "prompt": f"Prompt {k}: write without commas.",
             "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]} for k in range(3)]
    rows.append({"key": 3, "prompt": "Prompt 3: broken.", "instruction_id_list": ["no:such"],
                 "kwargs": [{}]})
    path = tmp_path / "ifeval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    answers = {0: "No commas here at all.",  # strict and loose
               1: "Sure, here it is:\nNo commas in the rest.",  # loose only: first line dropped
               2: "One, two, three.\nAnd four, five.", 3: "anything"}  # neither

    def respond(body: dict) -> str:
        return answers[int(body["messages"][-1]["content"].split()[1].rstrip(":"))]

    with FakeOpenAIServer(respond) as server:
        result = evaluate(_pool(server), tmp_path / "out",
                          EvalConfig(benchmarks=[f"ifeval={path}"]))
    score = result.score("ifeval")
    assert score.metric == "prompt_level_strict"
    assert (score.items, score.scored, score.rejected) == (4, 3, {"bad_item": 1})
    assert score.score == pytest.approx(1 / 3)
    assert score.metrics["prompt_level_loose"] == pytest.approx(2 / 3)
    assert score.metrics["instruction_level_strict"] == pytest.approx(1 / 3)
    assert score.metrics["instruction_level_loose"] == pytest.approx(2 / 3)
    items = {i["id"]: i for i in _items(tmp_path / "out", "ifeval")}
    assert items["1"]["details"]["strict"] == [False] and items["1"]["details"]["loose"] == [True]
    assert items["2"]["details"]["failed"] == ["punctuation:no_comma"]


def test_bundled_ifeval_is_read_offline():
    from postmix.curate.benchmarks import BenchmarkSpec, benchmark_rows

    spec, source, rows = benchmark_rows(BenchmarkSpec(name="ifeval"))
    rows = list(rows)
    assert not source.startswith("hf:") and len(rows) == 541
    assert all("instruction_id_list" in r and "kwargs" in r for r in rows)


def test_math_answers_are_compared_by_equivalence(tmp_path):
    rows = [{"problem": "Half of one?", "answer": "\\frac{1}{2}"},
            {"problem": "Two squared?", "answer": "4"},
            {"problem": "Root of nine?", "answer": "3"}]
    path = tmp_path / "math.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    answers = {"Half": "So it is \\boxed{0.5}.", "Two": "The answer is \\boxed{2^2}.",
               "Root": "\\boxed{-3}"}

    def respond(body: dict) -> str:
        return answers[body["messages"][-1]["content"].split()[0]]

    with FakeOpenAIServer(respond) as server:
        result = evaluate(_pool(server), tmp_path / "out", EvalConfig(benchmarks=[f"math={path}"]))
    verdicts = [i["verdict"] for i in _items(tmp_path / "out", "math")]
    assert verdicts == [True, True, False]
    assert result.score("math").score == pytest.approx(2 / 3)


def test_cli_on_an_endpoints_file(tmp_path):
    from postmix.cli import app

    rows = _sample_rows()
    with FakeOpenAIServer(_gsm8k_responder(rows, {0, 1})) as server:
        endpoints = tmp_path / "endpoints.yaml"
        endpoints.write_text(f"endpoints:\n  - name: fake\n    model: fake-model\n"
                             f"    base_url: {server.base_url}\n", encoding="utf-8")
        outcome = CliRunner().invoke(app, ["eval", str(endpoints), "--benchmark", "gsm8k-sample",
                                           "--limit", "4", "--json", "-o", str(tmp_path / "o")])
    assert outcome.exit_code == 0, outcome.output
    printed = json.loads(outcome.output)
    assert printed["model_kind"] == "endpoint" and printed["model"] == "fake-model"
    assert printed["scores"][0]["score"] == 0.5
    assert read_result(tmp_path / "o").scores[0].items == 4
