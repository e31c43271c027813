"""Reliability against the local server: random faults of every kind on a 500-item run, a run
killed with SIGKILL and resumed, and API keys that never reach a file or a log line."""

import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from postmix.judge import GenerateConfig, RateConfig, compare, generate, make_pairs, rate
from postmix.llm import EndpointConfig, PoolConfig, RetryConfig
from postmix.testing.openai_server import ALL_FAULTS, RATE_LIMIT, SERVER_ERROR, FakeOpenAIServer

ASPECTS = ("helpfulness", "instruction_following", "honesty", "truthfulness")
RESPONSE = re.compile(r"## Response\n\n(.*?)\n\nAnswer with only", re.S)


def judge_responder(body):
    """Scores read off the response text ("... quality 4"); "POISON" always fails."""
    text = RESPONSE.search(body["messages"][-1]["content"]).group(1)
    if "POISON" in text:
        return SERVER_ERROR
    quality = int(re.search(r"quality (\d)", text).group(1))
    return json.dumps({a: {"rationale": "as read", "score": quality} for a in ASPECTS})


def write_completions(path, n, poison=()):
    with open(path, "w") as f:
        for i in range(n):
            text = f"answer {i} quality {i % 5 + 1}" + (" POISON" if i in poison else "")
            f.write(json.dumps({"id": f"c{i}", "prompt_id": f"p{i // 2}",
                                "prompt": [{"role": "user", "content": f"question {i // 2}"}],
                                "response": text, "model": f"m{i % 3}", "sampling": "{}",
                                "source": "t", "meta": "{}"}) + "\n")


def read_jsonl(path):
    return [json.loads(line) for line in (path).read_text().splitlines()] if os.path.exists(path) else []


def test_500_items_with_10_percent_random_faults_lose_and_duplicate_nothing(tmp_path):
    poison = {7, 123, 499}
    write_completions(tmp_path / "c.jsonl", 500, poison)
    with FakeOpenAIServer(judge_responder, fault_rate=0.10, fault_kinds=ALL_FAULTS, seed=3,
                          slow_seconds=0.6) as server:
        pool = PoolConfig(endpoints=[EndpointConfig(name="judge", model="j", base_url=server.base_url,
                                                    max_concurrency=16, timeout=0.25)],
                          retry=RetryConfig(max_attempts=3, backoff_base=0.01, backoff_max=0.05,
                                            parse_retries=1))
        result = rate(tmp_path / "c.jsonl", tmp_path / "r.jsonl", pool, RateConfig(), progress=False)
        log = server.requests
    out, failed = read_jsonl(tmp_path / "r.jsonl"), read_jsonl(tmp_path / "r.failures.jsonl")
    out_ids, failed_ids = [r["id"] for r in out], [r["id"] for r in failed]
    assert len(set(out_ids)) == len(out_ids) and len(set(failed_ids)) == len(failed_ids)
    assert set(out_ids) | set(failed_ids) == {f"c{i}" for i in range(500)}
    assert not set(out_ids) & set(failed_ids)
    assert {f"c{i}" for i in poison} <= set(failed_ids)
    assert all(r["reason"] and r["detail"] for r in failed)
    assert {r["reason"] for r in failed} <= {"server_error", "rate_limit", "timeout", "connection",
                                             "bad_response", "parse_error"}
    # every rating that came out is the one the responder gave for that response
    for row in out:
        quality = int(re.search(r"quality (\d)", row["response"]).group(1))
        assert {a["score"] for a in json.loads(row["rating"])["aspects"].values()} == {quality}
    report = result.report
    assert report.rows_in == 500 and report.rows_out == len(out)
    assert sum(report.rejected.values()) == len(failed)
    outcomes = {e.outcome for e in log}
    assert {str(k) for k in ALL_FAULTS} <= outcomes  # every fault kind really happened
    assert report.details["parse_failure_rate"] > 0


def _responder(body):
    return f"{body['model']} says {body['messages'][-1]['content']} (seed {body['seed']})"


def _generate_cmd(tmp, out, pool):
    return [sys.executable, "-m", "postmix.cli", "judge", "generate", str(tmp / "prompts.jsonl"),
            "-o", str(out), "--endpoints", str(pool), "--n", "2"]


def test_sigkill_halfway_then_rerun_resends_only_unanswered_and_matches_a_clean_run(tmp_path):
    total = 240  # 120 prompts x 2 samples
    with open(tmp_path / "prompts.jsonl", "w") as f:
        for i in range(total // 2):
            f.write(json.dumps({"id": f"p{i}", "prompt": f"question {i}"}) + "\n")
    with FakeOpenAIServer(_responder, latency=0.04) as server:
        pool = tmp_path / "pool.yaml"
        pool.write_text(f"endpoints:\n  - {{name: a, model: ma, base_url: '{server.base_url}', "
                        f"max_concurrency: 4}}\n  - {{name: b, model: mb, base_url: "
                        f"'{server.base_url}', max_concurrency: 4}}\n")
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        job = subprocess.Popen(_generate_cmd(tmp_path, run_dir / "c.jsonl", pool),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(server.requests) < total // 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        job.send_signal(signal.SIGKILL)
        job.wait()
        assert not (run_dir / "c.jsonl").exists()  # killed before it could publish
        first_run = len(server.requests)
        with sqlite3.connect(run_dir / "c.cache.sqlite") as db:
            answered = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        assert total // 2 - 8 <= answered < total  # at most the 8 in flight were lost

        subprocess.run(_generate_cmd(tmp_path, run_dir / "c.jsonl", pool), check=True,
                       capture_output=True)
        resent = len(server.requests) - first_run
        assert resent == total - answered

        clean_dir = tmp_path / "clean"
        clean_dir.mkdir()
        subprocess.run(_generate_cmd(tmp_path, clean_dir / "c.jsonl", pool), check=True,
                       capture_output=True)
    resumed = (run_dir / "c.jsonl").read_bytes()
    assert resumed == (clean_dir / "c.jsonl").read_bytes()
    assert len(resumed.splitlines()) == total


def test_api_key_never_reaches_a_file_or_a_log_line(tmp_path, monkeypatch, caplog, capfd):
    secret = "sk-postmix-test-5ecret-value-0123456789"
    monkeypatch.setenv("POSTMIX_TEST_SECRET", secret)
    caplog.set_level(logging.DEBUG)
    write_completions(tmp_path / "c.jsonl", 12)

    def responder(body):
        content = body["messages"][-1]["content"]
        if "## Response 1" in content:
            return json.dumps({"rationale": "r", "winner": "1"})
        if "## Response" in content:
            return judge_responder(body)
        return "generated " + content

    with FakeOpenAIServer(responder, api_key=secret) as server:
        server.inject(RATE_LIMIT)
        server.inject(SERVER_ERROR)
        url = server.base_url.replace("http://", "http://user:urlpass@")
        pool = PoolConfig(endpoints=[
            EndpointConfig(name="a", model="m", base_url=server.base_url,
                           api_key_env="POSTMIX_TEST_SECRET"),
            EndpointConfig(name="b", model="m", base_url=url, api_key_env="POSTMIX_TEST_SECRET",
                           backend="openai")],
            retry=RetryConfig(backoff_base=0.001))
        (tmp_path / "p.jsonl").write_text(json.dumps({"prompt": "hi"}) + "\n")
        generate(tmp_path / "p.jsonl", tmp_path / "g.jsonl", pool, GenerateConfig(n=2))
        rate(tmp_path / "c.jsonl", tmp_path / "r.jsonl", pool)
        make_pairs(tmp_path / "r.jsonl", tmp_path / "pairs.jsonl")
        compare(tmp_path / "c.jsonl", tmp_path / "c.jsonl", tmp_path / "cmp.jsonl", pool)
        assert all(e.outcome != "unauthorized" for e in server.requests)  # the key was sent
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".sqlite") for p in written)
    for path in written:
        data = path.read_bytes()
        assert secret.encode() not in data and b"urlpass" not in data, path
    captured = capfd.readouterr()
    for text in (caplog.text, captured.out, captured.err):
        assert secret not in text and "urlpass" not in text


def test_a_cache_that_cannot_be_written_stops_the_sending(tmp_path, monkeypatch):
    """Issue 14: with the request cache's disk full, generate kept sending requests (money spent
    on answers it could not keep) and ended in a traceback."""
    import sqlite3 as sqlite

    from postmix.judge.generate import GenerateConfig, generate
    from postmix.llm import cache as cache_module
    from postmix.llm import load_endpoints
    from postmix.llm.cache import CacheWriteError

    real_connect = cache_module._connect

    class FullDisk:
        def __init__(self, db):
            self.db, self.batches = db, 0

        def execute(self, *args):
            return self.db.execute(*args)

        def executemany(self, *args):
            self.batches += 1
            if self.batches > 1:
                raise sqlite.OperationalError("database or disk is full")
            return self.db.executemany(*args)

        def close(self):
            self.db.close()

    writers = iter([True])  # the first connection is the reader; the writer's comes second
    monkeypatch.setattr(cache_module, "_connect",
                        lambda path: real_connect(path) if next(writers, False) else FullDisk(real_connect(path)))
    (tmp_path / "prompts.jsonl").write_text("".join(
        json.dumps({"id": f"p{i}", "prompt": f"question {i}"}) + "\n" for i in range(400)))
    with FakeOpenAIServer(_responder, latency=0.01) as server:
        pool = tmp_path / "pool.yaml"
        pool.write_text(f"endpoints:\n  - {{name: a, model: ma, base_url: '{server.base_url}', "
                        "max_concurrency: 4}\n")
        with pytest.raises(CacheWriteError, match=r"cannot write the request cache .*c\.cache\.sqlite: "
                           r"database or disk is full; stopped sending"):
            generate(tmp_path / "prompts.jsonl", tmp_path / "c.jsonl", load_endpoints(pool),
                     GenerateConfig(n=1), progress=False)
        sent = len(server.requests)
    assert sent < 200  # stopped soon after the failure, not after all 400
    assert not (tmp_path / "c.jsonl").exists()
