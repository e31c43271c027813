"""A pool of OpenAI-compatible servers with health: a dead replica is taken out, its requests go to
the others and none is lost; a replica that recovers is probed and taken back."""

from __future__ import annotations

import time

import pytest

from postmix.llm import ChatRequest, EndpointConfig, PoolConfig, RetryConfig, run_requests
from postmix.llm.config import HealthConfig
from postmix.testing.openai_server import FakeOpenAIServer


def pool_of(servers, *, cooldown: float, max_concurrency: int = 8) -> PoolConfig:
    return PoolConfig(
        endpoints=[EndpointConfig(name=f"node{i}", model="m", base_url=s.base_url, max_concurrency=max_concurrency,
                                  timeout=5) for i, s in enumerate(servers)],
        retry=RetryConfig(max_attempts=4, backoff_base=0.01, backoff_max=0.05),
        health=HealthConfig(failures_to_eject=3, cooldown=cooldown))


def ask(i: int) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": f"req {i}"}])


def answered(server) -> list[str]:
    """The prompts a server answered (logged 200s), in arrival order."""
    return [e.body["messages"][-1]["content"] for e in server.requests if e.outcome == "ok"]


def test_a_killed_server_is_taken_out_and_its_share_rerouted_with_none_lost():
    servers = [FakeOpenAIServer(latency=0.002).start() for _ in range(4)]
    victim = servers[2]
    killed_at: list[float] = []
    done = [0]

    def on_result(result) -> None:  # runs on the client's loop: kill node2 a quarter of the way in
        done[0] += 1
        if done[0] == 500:
            killed_at.append(time.time())
            victim.kill()

    try:
        total = 2000
        results, ledger = run_requests(pool_of(servers, cooldown=60.0), [ask(i) for i in range(total)],
                                       on_result=on_result)
        # every request answered exactly once in the output, in input order, none failed
        assert [r.content for r in results] == [f"echo: req {i}" for i in range(total)]
        assert all(r.ok for r in results)
        # the dead server's log stops at the kill; it served part of the first quarter only
        assert killed_at and all(e.time <= killed_at[0] + 0.05 for e in victim.requests)
        before_kill = answered(victim)
        assert 0 < len(before_kill) < 500
        survivors = servers[:2] + servers[3:]
        # the others absorb the rest: every prompt was answered by someone, and each survivor
        # took more than a fair quarter (its share plus part of the victim's)
        answered_anywhere = {p for s in servers for p in answered(s)}
        assert answered_anywhere == {f"req {i}" for i in range(total)}
        assert all(len(answered(s)) > total // 4 for s in survivors)
        # answers whose connection the kill cut (logged ok, never delivered) were asked again elsewhere
        assert sum(len(answered(s)) for s in survivors) + len(before_kill) >= total
        # the ledger (what stage reports carry) shows the endpoint taken out
        health = ledger.to_dict()["health"]
        assert health["node2"]["state"] == "ejected" and health["node2"]["ejections"] == 1
        assert health["node2"]["events"][0]["event"] == "ejected"
        assert health["node2"]["events"][0]["after"] == "connection"
        assert all(health[f"node{i}"]["ejections"] == 0 for i in (0, 1, 3))
        assert ledger.endpoints["node2"].retries["connection"] >= 3
        assert not ledger.failed
    finally:
        for server in servers:
            server.stop()


def test_an_endpoint_back_from_errors_is_probed_after_the_cooldown_and_rejoins():
    with FakeOpenAIServer(latency=0.002) as steady, FakeOpenAIServer(latency=0.002) as flaky:
        flaky.inject("server_error", times=3)  # three 500s in a row: taken out
        pool = pool_of([steady, flaky], cooldown=0.2, max_concurrency=1)

        def slow_start(result) -> None:
            time.sleep(0.002)  # spread the run over more than one cool-down

        results, ledger = run_requests(pool, [ask(i) for i in range(300)], on_result=slow_start)
        assert all(r.ok for r in results) and len(results) == 300
        events = [e["event"] for e in ledger.to_dict()["health"]["node1"]["events"]]
        assert events[:3] == ["ejected", "probe", "recovered"]
        recovered = ledger.to_dict()["health"]["node1"]["events"][2]["at"]
        assert recovered >= 0.2  # not before the cool-down
        # after rejoining it answers again: its 200s outnumber the probe alone
        assert len(answered(flaky)) > 1
        assert ledger.to_dict()["health"]["node1"]["state"] == "healthy"


def test_the_last_healthy_endpoint_is_never_taken_out():
    with FakeOpenAIServer() as only:
        only.inject("server_error", times=3)
        pool = pool_of([only], cooldown=60.0)
        (result,), ledger = run_requests(pool, [ask(0)])
        assert result.ok and result.attempts == 4
        assert ledger.to_dict()["health"]["node0"] == {"state": "healthy", "ejections": 0,
                                                       "consecutive_failures": 0, "events": []}


@pytest.mark.parametrize("kind", ["rate_limit", "empty_choices"])
def test_replies_from_a_live_server_do_not_count_towards_ejection(kind):
    with FakeOpenAIServer() as a, FakeOpenAIServer() as b:
        a.inject(kind, times=5)
        b.inject(kind, times=5)
        results, ledger = run_requests(pool_of([a, b], cooldown=60.0), [ask(i) for i in range(4)])
        assert all(r.ok for r in results)
        assert sum(sum(e.retries.values()) for e in ledger.endpoints.values()) == 10
        assert all(h["ejections"] == 0 for h in ledger.to_dict()["health"].values())


def test_a_probe_answered_with_a_429_brings_the_endpoint_back():
    """A rate-limit reply proves the server is up: the endpoint must not stay half-out for good."""
    from postmix.llm.health import EndpointHealth

    health = EndpointHealth("node1", HealthConfig(failures_to_eject=3, cooldown=1.0))
    for _ in range(3):
        health.failed("server_error", 0.0, can_eject=True)
    assert health.state == "ejected" and health.probe_ready(1.5)
    health.start_probe(1.5)
    health.answered_with_error(1.6)
    assert health.healthy and [e["event"] for e in health.events] == ["ejected", "probe", "recovered"]
