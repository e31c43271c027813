"""Answers cut off by max_tokens never become chosen: `generate` marks them, `rate` and `pairs`
drop them as `truncated` (or, with keep_truncated, use them on the rejected side only), and every
report reconciles. Also the pair quality report, the on-policy rule and length balancing."""

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from postmix.judge import GenerateConfig, PairsConfig, RateConfig, generate, make_pairs, rate
from postmix.llm import EndpointConfig, PoolConfig, RetryConfig
from postmix.testing.openai_server import FakeOpenAIServer

ASPECTS = ("helpfulness", "honesty")


def pool(server, *models):
    return PoolConfig(endpoints=[EndpointConfig(name=m, model=m, base_url=server.base_url,
                                                timeout=5.0) for m in models],
                      retry=RetryConfig(max_attempts=2, backoff_base=0.001))


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def reconciles(report):
    assert report.rows_in == report.rows_out + sum(report.rejected.values())


def test_a_truncated_completion_never_reaches_pairs_as_chosen(tmp_path):
    """The judge loves long answers, and the long answers are the cut-off ones: without the
    truncated rule they would be chosen in every pair (as 15 of 44 were in the issue's run)."""
    def responder(body):
        if body.get("response_format"):  # the judge: 5 for a long (cut-off) answer, else 2
            text = body["messages"][-1]["content"]
            long = "padding" in re.search(r"## Response\n\n(.*?)\n\nAnswer", text, re.S)[1]
            score = 5 if long else 2
            return json.dumps({a: {"rationale": "r", "score": score} for a in
                               body["response_format"]["json_schema"]["schema"]["required"]})
        if body["model"] == "verbose":
            return "a long answer " + "padding " * 50
        return "short answer"

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"question {i}"}) + "\n"
                               for i in range(6)))
    with FakeOpenAIServer(responder) as server:
        gen = generate(prompts, tmp_path / "c.jsonl", pool(server, "verbose", "terse"),
                       GenerateConfig(n=2, sampling={"max_tokens": 20}), progress=False)
        completions = lines(tmp_path / "c.jsonl")
        cut = {c["id"] for c in completions if json.loads(c["meta"])["truncated"]}
        assert len(cut) == 6 and all(c["model"] == "verbose" for c in completions
                                     if c["id"] in cut)
        assert gen.report.details["truncated"] == 6 and gen.report.details["warnings"]
        reconciles(gen.report)

        rated = rate(tmp_path / "c.jsonl", tmp_path / "r.jsonl", pool(server, "verbose"),
                     RateConfig(), progress=False)
        assert rated.report.rejected == {"truncated": 6}
        assert {f["id"] for f in lines(tmp_path / "r.failures.jsonl")} == cut
        assert not cut & {r["id"] for r in lines(tmp_path / "r.jsonl")}
        reconciles(rated.report)

        kept = rate(tmp_path / "c.jsonl", tmp_path / "rk.jsonl", pool(server, "verbose"),
                    RateConfig(keep_truncated=True), progress=False)
        assert kept.report.rows_out == 12

    pairs = make_pairs(tmp_path / "r.jsonl", tmp_path / "p.jsonl")
    assert pairs.report.rows_out == 0 and pairs.report.rejected == {"single_completion": 6}
    # rated with the cut-off ones kept: pairs drops them by default...
    default = make_pairs(tmp_path / "rk.jsonl", tmp_path / "pk.jsonl")
    assert default.report.rejected == {"truncated": 6, "single_completion": 6}
    reconciles(default.report)
    # ...and with keep_truncated they lose to the complete answer despite their 5s
    loose = make_pairs(tmp_path / "rk.jsonl", tmp_path / "pl.jsonl",
                       PairsConfig(keep_truncated=True))
    chosen = [json.loads(p["meta"])["chosen_id"] for p in lines(tmp_path / "pl.jsonl")]
    assert len(chosen) == 0 and loose.report.rejected == {"tie": 6}  # 2 vs 5: no preference
    assert not cut & set(chosen)
    reconciles(loose.report)


def rated_row(cid, pid, model, score, *, truncated=False, on_policy=False, length=10):
    aspects = {a: {"score": score, "rationale": "r"} for a in ASPECTS}
    rating = {"completion_id": cid, "prompt_id": pid, "judge_model": "judge", "aspects": aspects}
    meta = {"truncated": truncated, "on_policy": on_policy,
            "finish_reason": "length" if truncated else "stop"}
    return {"id": cid, "prompt_id": pid, "prompt": [{"role": "user", "content": f"q {pid}"}],
            "response": cid + "x" * length, "model": model, "sampling": "{}", "source": "s",
            "meta": json.dumps(meta), "rating": json.dumps(rating), "score": float(score)}


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


groups = st.lists(st.lists(st.tuples(st.integers(1, 5), st.booleans(), st.booleans(),
                                     st.sampled_from(["m1", "m2", "pol"])),
                           min_size=1, max_size=5), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(spec=groups, keep=st.booleans(), policy=st.sampled_from([None, "pol"]),
       balance=st.booleans(),
       strategy=st.sampled_from(["best-vs-random-lower", "best-vs-worst", "all-pairs"]))
def test_no_chosen_is_ever_truncated_and_counts_reconcile(tmp_path_factory, spec, keep, policy,
                                                          balance, strategy):
    rows, truncated = [], set()
    for p, group in enumerate(spec):
        for k, (score, cut, on_policy, model) in enumerate(group):
            cid = f"p{p}c{k}"
            rows.append(rated_row(cid, f"p{p}", model, score, truncated=cut,
                                  on_policy=on_policy, length=3 * k))
            truncated |= {cid} if cut else set()
    tmp = tmp_path_factory.mktemp("pairs")
    result = make_pairs(write(tmp / "r.jsonl", rows), tmp / "p.jsonl",
                        PairsConfig(keep_truncated=keep, policy=policy, balance_length=balance,
                                    strategy=strategy))
    pairs = [json.loads(p["meta"]) for p in lines(tmp / "p.jsonl")]
    assert not truncated & {p["chosen_id"] for p in pairs}
    if not keep:
        assert not truncated & {p["rejected_id"] for p in pairs}
    if policy:
        by_id = {r["id"]: r["model"] for r in rows}
        assert all(policy in (by_id[p["chosen_id"]], by_id[p["rejected_id"]]) for p in pairs)
    quality = result.report.details["quality"]
    if balance and pairs:
        assert quality["chosen_longer_fraction"] <= 0.5
    assert quality["pairs"] == len(pairs) == sum(quality["margin_histogram"].values())
    reconciles(result.report)


def test_the_quality_report(tmp_path):
    rows = [rated_row("a1", "A", "pol", 5, on_policy=True, length=40),
            rated_row("a2", "A", "m1", 3, length=10),
            rated_row("b1", "B", "m1", 4, length=10), rated_row("b2", "B", "m2", 1, length=20),
            rated_row("c1", "C", "m2", 5, length=30), rated_row("c2", "C", "m1", 4, length=10)]
    result = make_pairs(write(tmp_path / "r.jsonl", rows), tmp_path / "p.jsonl",
                        PairsConfig(strategy="best-vs-worst"))
    q = result.report.details["quality"]
    assert q["margin_histogram"] == {"(0, 0.5]": 0, "(0.5, 1]": 1, "(1, 1.5]": 0, "(1.5, 2]": 1,
                                     "(2, 3]": 1, "(3, 4]": 0}
    # lengths: a 42 vs 12, b 12 vs 22, c 32 vs 12
    assert q["length_ratio_median"] == round(32 / 12, 4)
    assert q["chosen_longer_fraction"] == round(2 / 3, 4)
    assert q["on_policy_pairs"] == 1 and q["on_policy_share"] == round(1 / 3, 4)
    assert q["wins_by_model"] == {"m1": 1, "m2": 1, "pol": 1}
    assert q["losses_by_model"] == {"m1": 2, "m2": 1}

    balanced = make_pairs(write(tmp_path / "r.jsonl", rows), tmp_path / "b.jsonl",
                          PairsConfig(strategy="best-vs-worst", balance_length=True))
    # 2 of 3 chosen-longer: dropping the one with the smaller margin (c, 1.0) leaves 1 of 2
    assert balanced.report.rejected == {"length_balance": 1}
    assert [json.loads(p["meta"])["chosen_id"] for p in lines(tmp_path / "b.jsonl")] == ["a1", "b1"]


def test_policy_puts_the_on_policy_completion_in_every_pair(tmp_path):
    rows = [rated_row("a1", "A", "m1", 5), rated_row("a2", "A", "pol", 3),
            rated_row("a3", "A", "m2", 1),
            rated_row("b1", "B", "m1", 5), rated_row("b2", "B", "m2", 2)]
    result = make_pairs(write(tmp_path / "r.jsonl", rows), tmp_path / "p.jsonl",
                        PairsConfig(strategy="best-vs-worst", policy="pol"))
    pairs = [json.loads(p["meta"]) for p in lines(tmp_path / "p.jsonl")]
    assert [(p["chosen_id"], p["rejected_id"]) for p in pairs] == [("a1", "a2")]
    assert result.report.rejected == {"no_on_policy": 1}
    assert result.report.details["quality"]["on_policy_share"] == 1.0
