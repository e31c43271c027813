"""``judge rate`` (per completion and per prompt, built-in and YAML rubrics) and ``judge compare``
(both orders, flips counted as ties) against the local server with scripted judges."""

import json
import re
from collections import Counter

import pytest

from postmix.errors import ConfigError
from postmix.judge import CompareConfig, RateConfig, compare, load_rubric, rate
from postmix.llm import EndpointConfig, PoolConfig, RetryConfig

UF = ("helpfulness", "instruction_following", "honesty", "truthfulness")


def quality(text):
    return int(re.search(r"quality (\d)", text).group(1))


def judge(body):
    """Per-completion and per-prompt rating answers; scores are read off the response text."""
    content = next(m["content"] for m in body["messages"] if m["role"] == "user")  # not a re-ask
    schema = body["response_format"]["json_schema"]
    aspects = schema["schema"]["required"] if schema["name"] == "Rating" else \
        schema["schema"]["$defs"]["Rating"]["required"]

    def rating(text):
        return {a: {"rationale": "seen", "score": quality(text)} for a in aspects}

    if schema["name"] == "Rating":
        return json.dumps(rating(re.search(r"## Response\n\n(.*?)\n\nAnswer", content, re.S)[1]))
    responses = re.findall(r"### Response \d+\n\n(.*?)(?=\n\n### Response|\n\nAnswer with)",
                           content, re.S)
    return json.dumps({"ratings": [rating(r) for r in responses]})


def completions(path, spec):
    """spec: list of (id, prompt_id, model, quality)."""
    with open(path, "w") as f:
        for cid, pid, model, q in spec:
            f.write(json.dumps({"id": cid, "prompt_id": pid,
                                "prompt": [{"role": "user", "content": f"question {pid}"}],
                                "response": f"{model} answer quality {q}", "model": model,
                                "sampling": "{}", "source": "t", "meta": "{}"}) + "\n")
    return path


SPEC = [("c1", "p1", "big", 5), ("c2", "p1", "small", 2), ("c3", "p2", "big", 4),
        ("c4", "p2", "small", 4), ("c5", "p2", "small", 1)]


def pool_for(server):
    return PoolConfig(endpoints=[EndpointConfig(name="judge", model="judge-model",
                                                base_url=server.base_url)],
                      retry=RetryConfig(backoff_base=0.001, parse_retries=1))


@pytest.mark.parametrize("mode", ["per_completion", "per_prompt"])
def test_rate_scores_histograms_and_calls(tmp_path, openai_server, mode):
    openai_server.set_responder(judge)
    src = completions(tmp_path / "c.jsonl", SPEC)
    result = rate(src, tmp_path / "r.jsonl", pool_for(openai_server), RateConfig(mode=mode),
                  progress=False)
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == ["c1", "c2", "c3", "c4", "c5"]
    for row in rows:
        rating = json.loads(row["rating"])
        assert set(rating["aspects"]) == set(UF) and rating["judge_model"] == "judge-model"
        assert row["score"] == quality(row["response"])
    d = result.report.details
    assert d["histogram"]["honesty"] == {"1": 1, "2": 1, "3": 0, "4": 2, "5": 1}
    assert d["histogram_by_model"]["small"]["helpfulness"] == {"1": 1, "2": 1, "3": 0, "4": 1, "5": 0}
    assert d["mean_score_by_model"] == {"big": 4.5, "small": pytest.approx(7 / 3, abs=1e-4)}
    assert d["judge_calls"] == (5 if mode == "per_completion" else 2)
    assert len(openai_server.requests) == d["judge_calls"]
    assert result.report.rows_in == 5 == result.report.rows_out


def test_parse_failure_rate_and_failure_rows(tmp_path, openai_server):
    seen = Counter()

    def flaky_judge(body):
        content = next(m["content"] for m in body["messages"] if m["role"] == "user")
        seen[content] += 1
        if "GARBLE" in content or ("ONCE" in content and seen[content] == 1):
            return '{"helpfulness": {"rationale": "cut off'
        return judge(body)

    openai_server.set_responder(flaky_judge)
    src = completions(tmp_path / "c.jsonl", SPEC[:3])
    src.write_text(src.read_text().replace("big answer quality 5", "big answer quality 5 GARBLE")
                   .replace("small answer quality 2", "small answer quality 2 ONCE"))
    result = rate(src, tmp_path / "r.jsonl", pool_for(openai_server), progress=False)
    failures = [json.loads(line) for line in (tmp_path / "r.failures.jsonl").read_text().splitlines()]
    assert [(f["id"], f["reason"]) for f in failures] == [("c1", "parse_error")]
    assert "helpfulness" in failures[0]["detail"] or "JSON" in failures[0]["detail"]
    assert result.report.rejected == {"parse_error": 1} and result.report.rows_out == 2
    # answers checked: c1 x2 (both bad), c2 x2 (bad, good), c3 x1 -> 3 bad of 5
    assert result.report.details["parse_failure_rate"] == 0.6


def test_custom_rubric_from_yaml(tmp_path, openai_server):
    openai_server.set_responder(judge)
    rubric = tmp_path / "rubric.yaml"
    rubric.write_text("name: terse\naspects:\n  - name: brevity\n    question: Is it short?\n"
                      "    scale: {1: rambling, 5: nothing to cut}\n")
    src = completions(tmp_path / "c.jsonl", SPEC[:2])
    rate(src, tmp_path / "r.jsonl", pool_for(openai_server), RateConfig(rubric=str(rubric)))
    row = json.loads((tmp_path / "r.jsonl").read_text().splitlines()[0])
    assert list(json.loads(row["rating"])["aspects"]) == ["brevity"]
    assert "Is it short?" in openai_server.chat_requests()[0]["messages"][-1]["content"]


def test_bad_rubrics_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown rubric"):
        load_rubric("nonexistent")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\naspects:\n  - name: Bad Name\n    question: q\n")
    with pytest.raises(ConfigError, match="aspects"):
        load_rubric(bad)


def positional_judge(prefers):
    """A judge that always prefers the response shown in position ``prefers`` unless one of the
    two is marked BEST, which it recognises in either position."""
    def respond(body):
        content = body["messages"][-1]["content"]
        first = re.search(r"## Response 1\n\n(.*?)\n\n## Response 2", content, re.S)[1]
        second = re.search(r"## Response 2\n\n(.*?)\n\nWhich", content, re.S)[1]
        if "BEST" in first:
            winner = "1"
        elif "BEST" in second:
            winner = "2"
        else:
            winner = prefers
        return json.dumps({"rationale": "because", "winner": winner})
    return respond


def test_compare_both_orders_flips_count_as_ties(tmp_path, openai_server):
    openai_server.set_responder(positional_judge("1"))
    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    rows_a = [("a1", "p1", "A", 1), ("a2", "p2", "A", 2), ("a3", "p3", "A", 3), ("a4", "p9", "A", 3)]
    rows_b = [("b1", "p1", "B", 1), ("b2", "p2", "B", 2), ("b3", "p3", "B", 4)]
    completions(a, rows_a)
    completions(b, rows_b)
    # mark the clear winners: p1 -> A is BEST, p2 -> B is BEST, p3 -> nobody (position decides)
    text = a.read_text().replace("A answer quality 1", "A answer quality 1 BEST")
    a.write_text(text)
    b.write_text(b.read_text().replace("B answer quality 2", "B answer quality 2 BEST"))
    result = compare(a, b, tmp_path / "cmp.jsonl", pool_for(openai_server), CompareConfig())
    rows = {r["prompt_id"]: r for r in map(json.loads, (tmp_path / "cmp.jsonl").read_text().splitlines())}
    assert rows["p1"]["verdict"] == "a" and not rows["p1"]["flipped"]
    assert rows["p2"]["verdict"] == "b" and not rows["p2"]["flipped"]
    assert rows["p3"]["verdict"] == "tie" and rows["p3"]["flipped"]
    assert (rows["p3"]["winner_ab"], rows["p3"]["winner_ba"]) == ("1", "1")
    d = result.report.details
    assert (d["a_wins"], d["b_wins"], d["ties"]) == (1, 1, 1)
    assert d["position_flip_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert d["position_flip_rate_strict"] == pytest.approx(1 / 3, abs=1e-4)
    assert d["win_rate_a"] == 0.5
    assert result.report.rejected == {"unmatched_prompt": 1} and result.report.rows_in == 4
    # each pair was asked twice, with the responses swapped
    bodies = openai_server.chat_requests()
    assert len(bodies) == 6
    assert Counter(b["response_format"]["json_schema"]["name"] for b in bodies) == {"Verdict": 6}


def test_compare_accounts_for_unreadable_rows_of_b(tmp_path, openai_server):
    openai_server.set_responder(positional_judge("1"))
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    completions(a, [("a1", "p1", "A", 1), ("a7", "p7", "A", 2)])
    completions(b, [("b1", "p1", "B", 1)])
    with b.open("a") as handle:
        handle.write("{bad\n" + json.dumps({"id": "b7", "prompt_id": "p7"}) + "\n")
    result = compare(a, b, tmp_path / "cmp.jsonl", pool_for(openai_server), CompareConfig())
    failures = [json.loads(line) for line in result.failures.read_text().splitlines()]
    assert sorted(f["reason"] for f in failures) == ["b_bad_row", "b_malformed_json", "unmatched_prompt"]
    unmatched = next(f for f in failures if f["reason"] == "unmatched_prompt")
    assert "2 row(s) of B could not be read" in unmatched["detail"]
    report = result.report
    assert report.rows_in == 4 and report.rows_out == 1  # 2 rows of A + 2 unreadable rows of B
    assert report.details["b_unreadable_rows"] == 2


def test_compare_pairs_every_sample_of_a_prompt_with_the_same_sample_of_b(tmp_path, openai_server):
    """Issue 14: with several rows per prompt, each A row used to meet B's first row of that
    prompt and the other B rows were ignored without a word."""
    openai_server.set_responder(positional_judge("1"))
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    completions(a, [(f"a{p}{k}", f"p{p}", "A", k) for p in range(3) for k in range(2)])
    completions(b, [(f"b{p}{k}", f"p{p}", "B", k) for p in range(3) for k in range(3)])
    result = compare(a, b, tmp_path / "cmp.jsonl", pool_for(openai_server), CompareConfig())
    rows = [json.loads(line) for line in (tmp_path / "cmp.jsonl").read_text().splitlines()]
    pairs = sorted((r["response_a"], r["response_b"], r["prompt_id"]) for r in rows)
    assert pairs == sorted((f"A answer quality {k}", f"B answer quality {k}", f"p{p}")
                           for p in range(3) for k in range(2))
    assert result.report.rows_in == 6 and result.report.rows_out == 6
    assert result.report.details["b_rows_not_compared"] == 3  # each prompt's third B sample

