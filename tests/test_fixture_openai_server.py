"""The fake OpenAI server, exercised through the real openai clients over real sockets."""

import asyncio
import json
import subprocess
import sys
import threading
import time

import aiohttp
import openai
import pytest

from postmix.testing.openai_server import (
    ALL_FAULTS,
    DROP,
    EMPTY_CHOICES,
    MALFORMED_CONTENT,
    MALFORMED_JSON,
    RATE_LIMIT,
    SERVER_ERROR,
    SLOW,
    FakeOpenAIServer,
    FaultKind,
)

USER = [{"role": "user", "content": "two words"}]


def client(server, **kw):
    kw.setdefault("timeout", 5.0)
    return openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0, **kw)


def ask(c, **kw):
    return c.chat.completions.create(model="fake-model", messages=kw.pop("messages", USER), **kw)


def test_sync_client_gets_echo_with_realistic_envelope(openai_server):
    resp = ask(client(openai_server))
    assert resp.choices[0].message.content == "echo: two words"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.object == "chat.completion" and resp.model == "fake-model"
    assert resp.id and resp.created > 0
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (2, 3)
    assert resp.usage.total_tokens == 5
    [entry] = openai_server.requests
    assert (entry.index, entry.path, entry.outcome, entry.status) == (
        0,
        "/v1/chat/completions",
        "ok",
        200,
    )
    assert entry.headers["Authorization"] == "Bearer test-key"
    assert openai_server.chat_requests() == [entry.body]
    assert entry.body["messages"] == USER


def test_scripted_responder_dict_fault_and_async(openai_server):
    c = client(openai_server)
    openai_server.set_responder(
        lambda body: {
            "content": "scripted",
            "finish_reason": "length",
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }
    )
    resp = ask(c)
    assert resp.choices[0].message.content == "scripted"
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage.total_tokens == 18

    openai_server.set_responder(lambda body: SERVER_ERROR)
    with pytest.raises(openai.InternalServerError):
        ask(c)

    async def slow_echo(body):
        await asyncio.sleep(0)
        return body["messages"][-1]["content"].upper()

    openai_server.set_responder(slow_echo)
    assert ask(c).choices[0].message.content == "TWO WORDS"

    # A plain string that happens to spell a fault name is content, not a fault.
    openai_server.set_responder(lambda body: "drop")
    assert ask(c).choices[0].message.content == "drop"

    openai_server.set_responder(None)
    assert ask(c).choices[0].message.content == "echo: two words"
    assert [e.outcome for e in openai_server.requests] == ["ok", "server_error", "ok", "ok", "ok"]


def test_responder_exception_becomes_500_and_is_logged(openai_server):
    def broken(body):
        raise KeyError("missing")

    openai_server.set_responder(broken)
    with pytest.raises(openai.InternalServerError, match="missing"):
        ask(client(openai_server))
    assert openai_server.requests[-1].outcome == "responder_error"


def test_async_client_concurrent_requests_overlap():
    async def main(server):
        c = openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        start = time.perf_counter()
        resps = await asyncio.gather(
            *(
                c.chat.completions.create(
                    model="fake-model", messages=[{"role": "user", "content": f"q{i}"}]
                )
                for i in range(50)
            )
        )
        elapsed = time.perf_counter() - start
        await c.close()
        return resps, elapsed

    with FakeOpenAIServer(latency=0.3) as server:
        resps, elapsed = asyncio.run(main(server))
    assert sorted(r.choices[0].message.content for r in resps) == sorted(
        f"echo: q{i}" for i in range(50)
    )
    # 50 x 0.3 s serially would be 15 s.
    assert 0.3 <= elapsed < 8.0


def test_thousand_concurrent_connections():
    async def main(base_url):
        # limit=0: one connection per request, so the server really holds 1000 sockets at once.
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(i):
                payload = {"model": "m", "messages": [{"role": "user", "content": str(i)}]}
                async with session.post(f"{base_url}/chat/completions", json=payload) as r:
                    assert r.status == 200
                    return (await r.json())["choices"][0]["message"]["content"]

            start = time.perf_counter()
            answers = await asyncio.gather(*(one(i) for i in range(1000)))
            return answers, time.perf_counter() - start

    with FakeOpenAIServer(latency=0.5) as server:
        answers, elapsed = asyncio.run(main(server.base_url))
        assert len(server.requests) == 1000
    assert sorted(answers) == sorted(f"echo: {i}" for i in range(1000))
    assert elapsed < 30.0  # serially: 500 s; generous for slow CI and asyncio debug mode


def test_models_endpoint_lists_model(openai_server):
    c = client(openai_server)
    assert [m.id for m in c.models.list()] == ["fake-model"]
    assert c.models.retrieve("fake-model").id == "fake-model"
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("other-model")
    assert [e.path for e in openai_server.requests] == [
        "/v1/models",
        "/v1/models/fake-model",
        "/v1/models/other-model",
    ]
    assert openai_server.chat_requests() == []


def test_unknown_endpoint_is_logged_404(openai_server):
    with pytest.raises(openai.NotFoundError):
        client(openai_server).images.generate(model="fake-model", prompt="x")
    assert (openai_server.requests[-1].path, openai_server.requests[-1].status) == (
        "/v1/images/generations",
        404,
    )


def test_rate_limit_is_429_with_retry_after_header():
    with FakeOpenAIServer(retry_after=0.25) as server:
        server.inject(RATE_LIMIT)
        c = client(server)
        with pytest.raises(openai.RateLimitError) as exc_info:
            ask(c)
        assert exc_info.value.status_code == 429
        assert exc_info.value.response.headers["retry-after"] == "0.25"
        assert ask(c).choices[0].message.content == "echo: two words"  # only one was queued
        assert [(e.outcome, e.status) for e in server.requests] == [
            ("rate_limit", 429),
            ("ok", 200),
        ]


def test_client_retry_honours_retry_after_and_recovers():
    with FakeOpenAIServer(retry_after=0.15) as server:
        server.inject(RATE_LIMIT, times=2)
        c = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=2)
        start = time.perf_counter()
        assert ask(c).choices[0].message.content == "echo: two words"
        elapsed = time.perf_counter() - start
        assert [e.outcome for e in server.requests] == ["rate_limit", "rate_limit", "ok"]
    # Two 0.15 s waits; the client's own backoff without the header would take >= 1.1 s.
    assert 0.3 <= elapsed < 1.0


def test_server_error_is_internal_server_error(openai_server):
    openai_server.inject("server_error")
    with pytest.raises(openai.InternalServerError) as exc_info:
        ask(client(openai_server))
    assert exc_info.value.status_code == 500
    assert exc_info.value.body["type"] == "server_error"
    assert openai_server.requests[-1].outcome == "server_error"


def test_drop_is_connection_error(openai_server):
    openai_server.inject(DROP)
    c = client(openai_server)
    with pytest.raises(openai.APIConnectionError) as exc_info:
        ask(c)
    assert not isinstance(exc_info.value, openai.APITimeoutError)
    assert (openai_server.requests[-1].outcome, openai_server.requests[-1].status) == ("drop", 0)
    assert ask(c).choices[0].message.content == "echo: two words"


def test_slow_times_out_short_client_but_answers_patient_one():
    with FakeOpenAIServer(slow_seconds=0.6) as server:
        server.inject(SLOW, times=2)
        start = time.perf_counter()
        with pytest.raises(openai.APITimeoutError):
            ask(client(server, timeout=0.2))
        assert time.perf_counter() - start < 0.55
        start = time.perf_counter()
        resp = ask(client(server, timeout=5.0))
        assert time.perf_counter() - start >= 0.6
        assert resp.choices[0].message.content == "echo: two words"
        assert [e.outcome for e in server.requests] == ["slow", "slow"]


def test_malformed_json_arrives_as_text(openai_server):
    openai_server.inject(MALFORMED_JSON)
    resp = ask(client(openai_server), response_format={"type": "json_object"})
    content = resp.choices[0].message.content
    assert content == MALFORMED_CONTENT
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)
    assert openai_server.requests[-1].outcome == "malformed_json"


def test_default_responder_returns_valid_json_when_json_requested(openai_server):
    resp = ask(client(openai_server), response_format={"type": "json_object"})
    assert json.loads(resp.choices[0].message.content) == {"echo": "two words"}


def test_empty_choices_arrive_as_empty_list(openai_server):
    openai_server.inject(EMPTY_CHOICES)
    resp = ask(client(openai_server))
    assert resp.choices == []
    assert openai_server.requests[-1].outcome == "empty_choices"


def test_injected_faults_queue_in_order(openai_server):
    openai_server.inject(SERVER_ERROR)
    openai_server.inject(EMPTY_CHOICES)
    c = client(openai_server)
    with pytest.raises(openai.InternalServerError):
        ask(c)
    assert ask(c).choices == []
    assert ask(c).choices[0].message.content == "echo: two words"
    with pytest.raises(ValueError):
        openai_server.inject("not-a-fault")


def test_n_choices_and_max_tokens(openai_server):
    counter = iter(range(100))
    openai_server.set_responder(lambda body: f"answer {next(counter)} has five words")
    resp = ask(client(openai_server), n=3, max_tokens=2)
    assert [c.index for c in resp.choices] == [0, 1, 2]
    assert [c.message.content for c in resp.choices] == ["answer 0", "answer 1", "answer 2"]
    assert {c.finish_reason for c in resp.choices} == {"length"}
    assert resp.usage.completion_tokens == 6


def test_latency_applies_and_is_settable_at_runtime(openai_server):
    c = client(openai_server)
    openai_server.latency = 0.3
    start = time.perf_counter()
    ask(c)
    assert time.perf_counter() - start >= 0.3
    openai_server.latency = 0.0
    start = time.perf_counter()
    ask(c)
    assert time.perf_counter() - start < 0.25


def _outcomes(seed, count=40):
    kinds = (RATE_LIMIT, SERVER_ERROR, EMPTY_CHOICES)
    seen = []
    with FakeOpenAIServer(fault_rate=0.5, fault_kinds=kinds, seed=seed) as server:
        c = client(server)
        for _ in range(count):
            try:
                resp = ask(c)
                seen.append("empty_choices" if resp.choices == [] else "ok")
            except openai.RateLimitError:
                seen.append("rate_limit")
            except openai.InternalServerError:
                seen.append("server_error")
        logged = [e.outcome for e in server.requests]
    assert seen == logged  # what the client observed is what the server logged
    return seen


def test_random_faults_are_reproducible_per_seed():
    first, again, other = _outcomes(7), _outcomes(7), _outcomes(8)
    assert first == again
    assert first != other
    assert set(first) == {"ok", "rate_limit", "server_error", "empty_choices"}
    assert 8 <= first.count("ok") <= 32


def test_api_key_is_enforced():
    with FakeOpenAIServer(api_key="secret") as server:
        with pytest.raises(openai.AuthenticationError):
            ask(client(server))  # sends "test-key"
        good = openai.OpenAI(base_url=server.base_url, api_key="secret", max_retries=0)
        assert ask(good).choices[0].message.content == "echo: two words"
        assert [m.id for m in good.models.list()] == ["fake-model"]
        assert [(e.outcome, e.status) for e in server.requests] == [
            ("unauthorized", 401),
            ("ok", 200),
            ("ok", 200),
        ]


def test_kill_fails_in_flight_and_later_calls_with_connection_errors():
    server = FakeOpenAIServer(latency=2.0).start()
    try:
        c = client(server)
        killer = threading.Timer(0.3, server.kill)
        killer.start()
        start = time.perf_counter()
        with pytest.raises(openai.APIConnectionError) as in_flight:
            ask(c)
        assert time.perf_counter() - start < 1.5
        assert not isinstance(in_flight.value, openai.APITimeoutError)
        killer.join()
        with pytest.raises(openai.APIConnectionError):
            ask(c)
        with pytest.raises(openai.APIConnectionError):
            ask(client(server))
    finally:
        server.stop()
    server.stop()  # idempotent


def test_stop_is_prompt_with_slow_request_in_flight():
    server = FakeOpenAIServer(slow_seconds=30, shutdown_timeout=0.2).start()
    server.inject(SLOW)
    errors = []

    def call():
        try:
            ask(client(server, timeout=60))
        except openai.APIConnectionError as exc:
            errors.append(exc)

    t = threading.Thread(target=call)
    t.start()
    deadline = time.monotonic() + 5
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    start = time.perf_counter()
    server.stop()
    assert time.perf_counter() - start < 2.0
    t.join(timeout=5)
    assert len(errors) == 1


def test_fault_kind_constants():
    assert [str(k) for k in ALL_FAULTS] == [
        "rate_limit",
        "server_error",
        "drop",
        "slow",
        "malformed_json",
        "empty_choices",
    ]
    assert RATE_LIMIT == "rate_limit" and isinstance(RATE_LIMIT, FaultKind)


def test_standalone_cli_serves_and_prints_base_url():
    cmd = [sys.executable, "-m", "postmix.testing.openai_server", "--port", "0", "--model", "bench"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        try:
            base_url = proc.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
            c = openai.OpenAI(base_url=base_url, api_key="k", max_retries=0, timeout=5)
            assert [m.id for m in c.models.list()] == ["bench"]
            assert ask(c).choices[0].message.content == "echo: two words"
        finally:
            proc.terminate()
