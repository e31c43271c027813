"""The engine against a real local HTTP server: retries per fault kind, attempt caps, structured
output re-asks, the cache, bounded concurrency, load spreading and key handling."""

import asyncio
import contextlib
import json
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from postmix.errors import EndpointError
from postmix.llm import (
    ChatRequest,
    EndpointConfig,
    PoolConfig,
    RequestCache,
    RetryConfig,
    run_requests,
)
from postmix.testing.openai_server import (
    DROP,
    EMPTY_CHOICES,
    MALFORMED_JSON,
    RATE_LIMIT,
    SERVER_ERROR,
    SLOW,
    FakeOpenAIServer,
)

FAST = RetryConfig(max_attempts=3, backoff_base=0.001, backoff_max=0.01, parse_retries=1)


def pool_for(*servers, backend="http", retry=FAST, **endpoint):
    endpoint.setdefault("timeout", 2.0)
    return PoolConfig(endpoints=[EndpointConfig(name=f"e{i}", model="m", base_url=s.base_url,
                                                backend=backend, **endpoint)
                                 for i, s in enumerate(servers)], retry=retry)


def ask(text, **kw):
    return ChatRequest([{"role": "user", "content": text}], **kw)


class Answer(BaseModel):
    value: int


@pytest.mark.parametrize("backend", ["http", "openai"])
@pytest.mark.parametrize("fault", [RATE_LIMIT, SERVER_ERROR, DROP, SLOW, EMPTY_CHOICES])
def test_each_transient_fault_is_retried_and_recorded(openai_server, backend, fault):
    openai_server.slow_seconds = 1.0
    openai_server.inject(fault)
    pool = pool_for(openai_server, backend=backend, timeout=0.3)
    (result,), ledger = run_requests(pool, [ask("hello")])
    assert result.ok and result.content == "echo: hello" and result.attempts == 2
    kind = {RATE_LIMIT: "rate_limit", SERVER_ERROR: "server_error", DROP: "connection",
            SLOW: "timeout", EMPTY_CHOICES: "bad_response"}[fault]
    if backend == "openai" and fault == DROP:
        kind = next(iter(ledger.endpoints["e0"].retries))  # the SDK reports a drop as either
        assert kind in ("connection", "timeout")
    assert ledger.endpoints["e0"].retries == {kind: 1}
    assert [e.outcome for e in openai_server.requests] == [str(fault), "ok"]


def test_attempt_cap_turns_into_a_failure_with_the_last_error(openai_server):
    openai_server.inject(SERVER_ERROR, times=2)
    openai_server.inject(RATE_LIMIT)
    results, ledger = run_requests(pool_for(openai_server), [ask("x")])
    assert not results[0].ok and results[0].error_kind == "rate_limit"
    assert "429" in results[0].error and results[0].attempts == 3
    assert ledger.failed == {"rate_limit": 1} and len(openai_server.requests) == 3


def test_client_errors_are_not_retried(openai_server):
    # the fake server answers 400 to stream=true: the request itself is wrong
    results, _ = run_requests(pool_for(openai_server), [ask("x", sampling={"stream": True})])
    assert results[0].error_kind == "http_error" and len(openai_server.requests) == 1


def test_retry_after_is_honoured(openai_server):
    openai_server.retry_after = 0.3
    openai_server.inject(RATE_LIMIT)
    run_requests(pool_for(openai_server), [ask("x")])
    first, second = openai_server.requests
    assert second.time - first.time >= 0.3  # the backoff alone would wait ~1 ms


def test_structured_output_reasks_then_validates(openai_server):
    answers = iter(['{"value": "not a number"}', '{"value": 7}'])
    openai_server.set_responder(lambda body: next(answers))
    (result,), ledger = run_requests(pool_for(openai_server), [ask("n?", schema=Answer)])
    assert result.ok and result.parsed == Answer(value=7) and result.parse_failures == 1
    first, second = openai_server.chat_requests()
    assert first["response_format"]["json_schema"]["schema"]["properties"]["value"]["type"] == "integer"
    assert second["messages"][1] == {"role": "assistant", "content": '{"value": "not a number"}'}
    assert "value" in second["messages"][2]["content"]
    assert ledger.parse_failures == 1 and ledger.parse_failure_rate == 0.5


def test_parse_failures_past_the_cap_fail_the_item_not_the_run(openai_server):
    openai_server.inject(MALFORMED_JSON, times=2)
    results, ledger = run_requests(pool_for(openai_server), [ask("a", schema=Answer),
                                                             ask("b")])
    assert results[0].error_kind == "parse_error" and results[0].parse_failures == 2
    assert results[1].ok and ledger.failed == {"parse_error": 1}


def test_fenced_json_is_accepted(openai_server):
    openai_server.set_responder(lambda body: '```json\n{"value": 3}\n```')
    (result,), _ = run_requests(pool_for(openai_server), [ask("n?", schema=Answer)])
    assert result.parsed.value == 3


def test_cache_answers_a_rerun_without_requests(openai_server, tmp_path):
    requests = [ask(f"q{i}") for i in range(20)] + [ask("q0", salt="sample=1")]
    first, _ = run_requests(pool_for(openai_server), requests, cache_path=tmp_path / "c.sqlite")
    assert len(openai_server.requests) == 21  # the salt makes a distinct request
    second, ledger = run_requests(pool_for(openai_server), requests,
                                  cache_path=tmp_path / "c.sqlite")
    assert len(openai_server.requests) == 21 and ledger.cached == 21
    assert [r.content for r in second] == [r.content for r in first]
    assert all(r.cached for r in second)
    with RequestCache(tmp_path / "c.sqlite") as cache:
        assert len(cache) == 21
        mode = cache._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_failures_are_not_cached(openai_server, tmp_path):
    openai_server.inject(SERVER_ERROR, times=3)
    first, _ = run_requests(pool_for(openai_server), [ask("x")], cache_path=tmp_path / "c.sqlite")
    second, _ = run_requests(pool_for(openai_server), [ask("x")], cache_path=tmp_path / "c.sqlite")
    assert not first[0].ok and second[0].ok and not second[0].cached


def test_blank_answers_are_returned_but_not_cached(openai_server, tmp_path):
    """Callers reject a blank answer (a failure in `judge generate`, an `empty` reject in
    `respond`); a re-run must ask again instead of replaying it from the cache."""
    answers = iter(["   ", "a real answer"])
    openai_server.set_responder(lambda body: next(answers))
    (first,), _ = run_requests(pool_for(openai_server), [ask("x")], cache_path=tmp_path / "c.sqlite")
    (second,), _ = run_requests(pool_for(openai_server), [ask("x")], cache_path=tmp_path / "c.sqlite")
    assert first.ok and first.content == "   "
    assert second.content == "a real answer" and not second.cached
    assert len(openai_server.requests) == 2


def test_in_flight_requests_never_exceed_max_concurrency(openai_server):
    live, peak, lock = [0], [0], threading.Lock()

    async def responder(body):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        await asyncio.sleep(0.02)
        with lock:
            live[0] -= 1
        return "ok"

    openai_server.set_responder(responder)
    results, _ = run_requests(pool_for(openai_server, max_concurrency=3),
                              [ask(str(i)) for i in range(30)])
    assert all(r.ok for r in results) and peak[0] == 3


def test_a_pool_of_replicas_spreads_load_and_keeps_input_order():
    with FakeOpenAIServer(latency=0.01) as a, FakeOpenAIServer(latency=0.01) as b:
        results, ledger = run_requests(pool_for(a, b, max_concurrency=2),
                                       [ask(str(i)) for i in range(40)])
        assert [r.content for r in results] == [f"echo: {i}" for i in range(40)]
        assert len(a.requests) + len(b.requests) == 40
        assert len(a.requests) >= 10 and len(b.requests) >= 10
        assert ledger.endpoints["e0"].answered + ledger.endpoints["e1"].answered == 40


def test_key_is_sent_as_bearer_and_a_rejected_key_stops_the_run(monkeypatch):
    monkeypatch.setenv("POSTMIX_TEST_KEY", "sk-right")
    with FakeOpenAIServer(api_key="sk-right") as server:
        results, _ = run_requests(pool_for(server, api_key_env="POSTMIX_TEST_KEY"), [ask("x")])
        assert results[0].ok
        monkeypatch.setenv("POSTMIX_TEST_KEY", "sk-wrong")
        with pytest.raises(EndpointError) as info:
            run_requests(pool_for(server, api_key_env="POSTMIX_TEST_KEY"), [ask("x")])
        assert "sk-wrong" not in str(info.value) and "api_key_env" in str(info.value)


def test_usage_and_cost_go_to_the_ledger(openai_server):
    openai_server.set_responder(lambda body: {"content": "fine",
                                              "usage": {"prompt_tokens": 1000,
                                                        "completion_tokens": 500}})
    pool = pool_for(openai_server, price_input_per_m=2.0, price_output_per_m=10.0)
    results, ledger = run_requests(pool, [ask("a"), ask("b")])
    entry = ledger.to_dict()["endpoints"]["e0"]
    assert entry["prompt_tokens"] == 2000 and entry["completion_tokens"] == 1000
    assert entry["cost_usd"] == pytest.approx((2000 * 2.0 + 1000 * 10.0) / 1e6)
    assert results[0].usage.prompt_tokens == 1000


def test_endpoint_defaults_merge_under_request_sampling(openai_server):
    pool = pool_for(openai_server, sampling={"temperature": 0.1, "max_tokens": 50})
    run_requests(pool, [ask("x", sampling={"temperature": 0.9})])
    body = openai_server.chat_requests()[0]
    assert body["temperature"] == 0.9 and body["max_tokens"] == 50 and body["model"] == "m"
    assert json.dumps(body).count("Authorization") == 0


def _head_waits_for_the_rest(server, others, timeout):
    """Responder: request "slow" answers only once ``others`` other requests have reached the
    server (or after ``timeout``); returns how many had arrived when it answered."""
    arrived, seen_when_slow_answered = [0], []
    everyone = asyncio.Event()

    async def responder(body):
        text = body["messages"][-1]["content"]
        if text != "slow":
            arrived[0] += 1
            if arrived[0] >= others:
                everyone.set()
            await asyncio.sleep(0.002)
            return f"echo: {text}"
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(everyone.wait(), timeout)
        seen_when_slow_answered.append(arrived[0])
        return "echo: slow"

    server.set_responder(responder)
    return seen_when_slow_answered


def test_a_slow_request_at_the_head_does_not_hold_back_the_others(openai_server):
    """Head-of-line: every later request is sent and answered while the first one is still
    pending, and the results still come back in input order."""
    seen = _head_waits_for_the_rest(openai_server, others=300, timeout=20.0)
    requests = [ask("slow")] + [ask(str(i)) for i in range(300)]
    results, _ = run_requests(pool_for(openai_server, max_concurrency=4, timeout=30.0), requests)
    assert seen == [300]
    assert [r.content for r in results] == ["echo: slow"] + [f"echo: {i}" for i in range(300)]


def test_the_reorder_window_bounds_what_is_held_for_a_slow_head(openai_server):
    """With ``window=10`` at most 10 requests are started and not yet yielded: 9 others go out
    while the head is pending, then sending waits for it (memory stays bounded)."""
    from postmix.llm import Engine

    seen = _head_waits_for_the_rest(openai_server, others=50, timeout=0.5)

    async def drive():
        async with Engine(pool_for(openai_server, max_concurrency=4, timeout=30.0)) as engine:
            requests = [ask("slow")] + [ask(str(i)) for i in range(50)]
            return [r.content async for r in engine.map(requests, window=10)]

    contents = asyncio.run(drive())
    assert seen == [9]
    assert contents == ["echo: slow"] + [f"echo: {i}" for i in range(50)]


def test_many_slow_answers_overlap_instead_of_queueing_one_after_another():
    """1 request in 64 takes 0.8 s: sent as slots free up, the slow ones overlap, so the run
    takes a small multiple of one slow answer, far below the sum of them (10 x 0.8 s), which is
    what an in-order window that stops sending behind a slow head costs."""
    import time

    async def responder(body):
        text = body["messages"][-1]["content"]
        await asyncio.sleep(0.8 if int(text) % 64 == 0 else 0.002)
        return text

    with FakeOpenAIServer(responder) as server:
        started = time.perf_counter()
        results, _ = run_requests(pool_for(server, max_concurrency=16, timeout=30.0),
                                  [ask(str(i)) for i in range(640)])
        elapsed = time.perf_counter() - started
    assert [r.content for r in results] == [str(i) for i in range(640)]
    assert elapsed < 10 * 0.8 / 3


def test_lognormal_latency_is_heavy_tailed_and_the_same_for_the_same_request():
    from statistics import median

    from postmix.testing.openai_server import request_latency

    bodies = [{"messages": [{"role": "user", "content": f"q{i}"}], "seed": i} for i in range(4001)]
    draws = [request_latency(b, 0.1, 1.5, seed=3) for b in bodies]
    assert draws == [request_latency(b, 0.1, 1.5, seed=3) for b in bodies]
    assert draws != [request_latency(b, 0.1, 1.5, seed=4) for b in bodies]
    assert 0.09 < median(draws) < 0.11
    assert max(draws) > 20 * 0.1  # the tail: sigma 1.5 puts the slowest of 4,000 at ~100x
    assert request_latency(bodies[0], 0.1, 0.0) == 0.1


# -- reward models (vLLM's /pooling) -----------------------------------------------------------

def test_pooling_lives_at_the_server_root_as_vllm_serves_it():
    from postmix.llm.transport import pooling_url

    assert pooling_url("http://gpu-3:8000/v1") == "http://gpu-3:8000/pooling"
    assert pooling_url("http://gpu-3:8000/v1/") == "http://gpu-3:8000/pooling"
    assert pooling_url("http://user:secret@gpu-3:8000/v1").endswith("gpu-3:8000/pooling")
    assert "secret" not in pooling_url("http://user:secret@gpu-3:8000/v1")
    assert pooling_url("https://rm.example/serve") == "https://rm.example/serve/pooling"


finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


@given(st.lists(finite, min_size=1, max_size=4), st.lists(st.lists(finite, min_size=1, max_size=3),
                                                           min_size=1, max_size=5))
def test_a_pooling_reply_gives_the_sequence_values_or_the_last_tokens(sequence, tokens):
    from postmix.llm.transport import pooling_from_bytes

    def reply(data):
        return json.dumps({"object": "list", "data": [{"index": 0, "object": "pooling", "data": data}],
                           "usage": {"prompt_tokens": 3}}).encode()

    assert pooling_from_bytes(reply(sequence)).values == sequence
    assert pooling_from_bytes(reply(tokens)).values == tokens[-1]
    assert pooling_from_bytes(reply(sequence)).usage == {"prompt_tokens": 3}


@given(st.one_of(st.none(), st.text(max_size=5), st.lists(st.text(max_size=3), min_size=1, max_size=3),
                 st.just([]), st.just([[]]), st.just([True])))
def test_a_pooling_reply_without_numbers_is_a_bad_response(data):
    from postmix.llm.transport import TransportError, pooling_from_bytes

    raw = json.dumps({"data": [{"index": 0, "data": data}]}).encode()
    with pytest.raises(TransportError) as caught:
        pooling_from_bytes(raw)
    assert caught.value.kind == "bad_response" and caught.value.retryable


def test_engine_reward_retries_faults_counts_them_and_caches_the_score(tmp_path):
    from postmix.llm import Engine

    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "one two three"}]
    with FakeOpenAIServer(model="m") as server:
        server.inject(RATE_LIMIT)
        server.inject(MALFORMED_JSON)

        async def once():
            async with Engine(pool_for(server), cache_path=tmp_path / "c.sqlite") as engine:
                return await engine.reward(conversation), engine.ledger.to_dict()

        (first, ledger), (second, again) = asyncio.run(once()), asyncio.run(once())
        assert first.ok and first.score == pytest.approx(1.386294) and first.attempts == 3
        assert second.cached and second.score == first.score
        assert len(server.pooling_requests()) == 3
        assert ledger["endpoints"]["e0"]["answered"] == 1 and again["cached"] == 1

        server.inject(SERVER_ERROR, 3)

        async def failing():
            async with Engine(pool_for(server)) as engine:
                return await engine.reward(conversation), engine.ledger.to_dict()

        result, ledger = asyncio.run(failing())
        assert not result.ok and result.error_kind == "server_error" and result.score is None
        assert ledger["failed"] == {"server_error": 1}
