"""The code benchmark (skipped without --allow-code-execution, run in the sandbox with it) and
the judged benchmark (win rate from verdicts in both orders), against the test server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postmix.eval import EvalConfig, evaluate
from postmix.eval.sandbox import run_program
from postmix.eval.tasks import Item, code_program, extract_code
from postmix.llm import EndpointConfig, PoolConfig
from postmix.testing.openai_server import FakeOpenAIServer

PROMPT = 'def add(a, b):\n    """The sum of a and b."""\n'
TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"
SOLUTIONS = {
    "HumanEval/0": "```python\ndef add(a, b):\n    return a + b\n```",  # passes
    "HumanEval/1": "```python\ndef add(a, b):\n    return a - b\n```",  # fails
    "HumanEval/2": "```python\ndef add(a, b):\n    while True:\n        pass\n```",  # loops
}


def _pool(server: FakeOpenAIServer, name: str = "fake-model") -> PoolConfig:
    return PoolConfig(endpoints=[EndpointConfig(name=name, model=name, base_url=server.base_url,
                                                max_concurrency=8)],
                      retry={"backoff_base": 0.0})


def _code_file(tmp_path: Path) -> Path:
    path = tmp_path / "humaneval.jsonl"
    rows = [{"task_id": task, "prompt": PROMPT.replace("add", f"add{n}"), "entry_point":
             f"add{n}", "test": TEST} for n, task in enumerate(SOLUTIONS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _code_responder(body: dict) -> str:
    text = body["messages"][-1]["content"]
    n = next(n for n in range(3) if f"def add{n}(" in text)
    return list(SOLUTIONS.values())[n].replace("def add(", f"def add{n}(")


def test_code_benchmark_is_skipped_without_the_flag(tmp_path):
    with FakeOpenAIServer(_code_responder) as server:
        result = evaluate(_pool(server), tmp_path / "out",
                          EvalConfig(benchmarks=[f"humaneval={_code_file(tmp_path)}"]))
        assert server.chat_requests() == []  # not even asked
    score = result.score("humaneval")
    assert score.score is None and "--allow-code-execution" in score.skipped
    assert "\n" not in score.skipped and score.items == 3
    assert not (tmp_path / "out" / "humaneval.items.jsonl").exists()


def test_code_benchmark_runs_in_the_sandbox_with_the_flag(tmp_path):
    config = EvalConfig(benchmarks=[f"humaneval={_code_file(tmp_path)}"],
                        allow_code_execution=True, code_timeout=2.0)
    with FakeOpenAIServer(_code_responder) as server:
        result = evaluate(_pool(server), tmp_path / "out", config)
    score = result.score("humaneval")
    assert (score.items, score.scored, score.rejected) == (3, 3, {})
    assert score.score == pytest.approx(1 / 3) and score.metric == "pass@1"
    items = {i["id"]: i for i in map(json.loads, (tmp_path / "out" / "humaneval.items.jsonl")
                                     .read_text().splitlines())}
    assert [items[t]["verdict"] for t in SOLUTIONS] == [True, False, False]
    assert items["HumanEval/1"]["reason"] == "failed"
    assert "AssertionError" in items["HumanEval/1"]["details"]["detail"]
    assert items["HumanEval/2"]["reason"] == "timeout"


def test_sandbox_limits_and_isolation(tmp_path, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("POSTMIX_API_KEY", "secret-value")
    env = run_program("import os, sys\nassert 'HTTPS_PROXY' not in os.environ\n"
                      "assert 'POSTMIX_API_KEY' not in os.environ\nassert sys.flags.isolated\n"
                      f"assert not os.getcwd().startswith({str(tmp_path)!r})\n")
    assert env.passed, env.detail
    network = run_program("import socket\nsocket.create_connection(('127.0.0.1', 9))\n")
    assert not network.passed and "network disabled" in network.detail
    memory = run_program("x = bytearray(2 * 1024**3)\n", memory_mb=256)
    assert (memory.passed, memory.reason) == (False, "memory")
    slow = run_program("import time\ntime.sleep(30)\n", timeout=1.0)
    assert (slow.passed, slow.reason) == (False, "timeout")


def test_code_of_an_answer():
    assert extract_code("Here:\n```python\nx = 1\n```\nDone") == "x = 1\n"
    assert extract_code("x = 2") == "x = 2"
    item = Item("t", PROMPT, None, {"entry_point": "add", "test": TEST})
    body_only = code_program(item, "    return a + b\n")
    assert run_program(body_only).passed
    assert run_program(code_program(item, SOLUTIONS["HumanEval/0"])).passed


# ---------------------------------------------------------------- judged


def _judged_file(tmp_path: Path) -> Path:
    rows = [{"instruction": f"Task {i}: say something.", "output": f"reference answer {i}"}
            for i in range(5)]
    rows[3]["output"] = "same text"
    path = tmp_path / "alpaca.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _model_responder(body: dict) -> str:
    task = int(body["messages"][-1]["content"].split()[1].rstrip(":"))
    return {0: "GOOD long answer", 1: "GOOD answer", 2: "meh", 3: "same text",
            4: "BIASED"}[task]


def _judge_responder(body: dict) -> str:
    """Prefers the response that says GOOD; for a BIASED one, always the first position."""
    text = body["messages"][-1]["content"]
    first, _, second = text.partition("## Response 2")
    first = first.partition("## Response 1")[2]
    if "BIASED" in text or "GOOD" in first:
        winner = "1"
    elif "GOOD" in second:
        winner = "2"
    else:
        winner = "2" if "reference" in second else "1"
    return json.dumps({"rationale": "because", "winner": winner})


def test_judged_win_rate_from_both_orders(tmp_path):
    from postmix.judge.prompts import compare_messages

    marker = compare_messages([{"role": "user", "content": "q"}], "AAA", "BBB")[-1]["content"]
    assert marker.index("AAA") < marker.index("BBB")  # the judge sees A first in this order
    with FakeOpenAIServer(_model_responder) as model, \
            FakeOpenAIServer(_judge_responder, model="judge") as judge:
        config = EvalConfig(benchmarks=[f"alpacaeval={_judged_file(tmp_path)}"])
        result = evaluate(_pool(model), tmp_path / "out", config,
                          judge_pool=_pool(judge, "judge"))
        judge_calls = len(judge.chat_requests())
        again = evaluate(_pool(model), tmp_path / "out", config, judge_pool=_pool(judge, "judge"))
        assert len(judge.chat_requests()) == judge_calls  # the judge's verdicts are cached too
    assert again.score("alpacaeval").score == result.score("alpacaeval").score
    score = result.score("alpacaeval")
    m = score.metrics
    # 0, 1: GOOD wins both orders; 2: the reference wins both; 3: identical (a tie, not
    # judged); 4: the judge picks position 1 both times, a flip, so a tie
    assert (m["wins"], m["losses"], m["ties"], m["position_flips"]) == (2, 1, 2, 1)
    assert score.score == pytest.approx((2 + 0.5 + 0.5) / 5)
    assert score.items == score.scored == 5 and score.metric == "win_rate"
    assert judge_calls == 2 * 4  # both orders of the four pairs that differ
    assert m["avg_length_model"] == pytest.approx(
        sum(len(_model_responder({"messages": [{"content": f"Task {i}: x"}]}))
            for i in range(5)) / 5)
    assert m["avg_length_reference"] > 0 and m["position_flip_rate"] == pytest.approx(1 / 4)


def test_judged_benchmark_without_a_judge_is_skipped(tmp_path):
    with FakeOpenAIServer(_model_responder) as model:
        result = evaluate(_pool(model), tmp_path / "out",
                          EvalConfig(benchmarks=[f"alpacaeval={_judged_file(tmp_path)}"]))
    assert "--judge-endpoints" in result.score("alpacaeval").skipped


@given(st.text(alphabet=st.characters(blacklist_characters="`"), max_size=60))
def test_extract_code_takes_the_fenced_block(code):
    assert extract_code(f"Here you go:\n```python\n{code}\n```\nbye") == code + "\n"
    assert extract_code(code) == code  # no fence: the whole answer


def test_judge_failures_are_rejected_items(tmp_path):
    with FakeOpenAIServer(_model_responder) as model, \
            FakeOpenAIServer(lambda body: "not json", model="judge") as judge:
        pool = _pool(judge, "judge")
        pool.retry.parse_retries = 0
        result = evaluate(_pool(model), tmp_path / "out",
                          EvalConfig(benchmarks=[f"alpacaeval={_judged_file(tmp_path)}"]),
                          judge_pool=pool)
    score = result.score("alpacaeval")
    # the identical answer is a tie without the judge; the other four have no verdict
    assert score.rejected == {"judge_failed": 4} and score.scored == 1 and score.score == 0.5
