"""Weighted mixes: the largest-remainder target, row and token quotas, the token-count cache,
`where:` filters and attribute sidecars."""

import json
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_mix_build import shard_bytes, write_source, write_spec

from postmix import mix
from postmix.errors import ConfigError
from postmix.mix.sampling import apportion, hash_order, take


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTMIX_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write_source(folder / "a.jsonl", "a", 100)
    write_source(folder / "b.jsonl", "b", 40, texts=[f"b longer question {i} " * (1 + i % 5) for i in range(40)])
    return folder


# ---------------------------------------------------------------- the solver


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**9), st.lists(st.floats(0.001, 1000, allow_nan=False), min_size=1, max_size=12))
def test_apportion_is_exact_and_each_part_within_one_of_its_quota(total, weights):
    parts = apportion(total, weights)
    assert sum(parts) == total
    whole = sum(Fraction(w) for w in weights)
    for part, weight in zip(parts, weights, strict=True):
        quota = Fraction(total) * Fraction(weight) / whole
        assert quota - 1 < part < quota + 1
    assert apportion(total, weights) == parts


def test_apportion_gives_leftover_units_to_the_largest_remainders_ties_to_the_earlier():
    assert apportion(10, [1, 1, 1]) == [4, 3, 3]  # 3.33 each: the first gets the spare unit
    assert apportion(5, [0.1, 0.2, 0.3]) == [1, 2, 2]  # 0.83, 1.67, 2.5: remainders .83 > .67 > .5
    with pytest.raises(ValueError):
        apportion(3, [1, 0])


def test_a_rows_share_larger_than_the_source_repeats_whole_passes_then_a_ranked_prefix():
    ids = pa.array([f"r{i}" for i in range(7)])
    taken = take(ids, {"rows": 17}, key=5)
    assert len(taken.indices) == 17 and taken.unique_rows == 7
    assert np.bincount(taken.indices, minlength=7).tolist().count(3) == 3  # 17 = 2*7 + 3
    assert sorted(taken.indices[14:].tolist()) == sorted(hash_order(ids, 5)[:3].tolist())
    smaller = take(ids, {"rows": 16}, key=5)  # a larger share is a superset of a smaller one
    assert not (np.bincount(smaller.indices, minlength=7) > np.bincount(taken.indices, minlength=7)).any()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=30), st.integers(1, 3000))
def test_a_tokens_share_never_exceeds_the_budget_and_misses_it_by_less_than_the_next_row(tokens, budget):
    ids = pa.array([f"id-{i}" for i in range(len(tokens))])
    counts = np.array(tokens, dtype=np.int64)
    taken = take(ids, {"tokens": budget}, key=9, tokens=counts)
    got = int(counts[taken.indices].sum())
    assert got <= budget
    passes = budget // counts.sum()
    prefix = len(taken.indices) - passes * len(tokens)
    order = hash_order(ids, 9)
    if prefix < len(tokens):  # the ranked row after the prefix would not have fitted
        assert got + counts[order[prefix]] > budget


# ---------------------------------------------------------------- builds


def chat_template_tokens(tokenizer, rows):
    return sum(len(tokenizer(tokenizer.apply_chat_template(r["messages"], tokenize=False),
                             add_special_tokens=False)["input_ids"]) for r in rows)


def test_a_weighted_token_budget_mix_builds_deterministically_and_records_its_counts(data, tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    sources = [{"path": "a.jsonl", "weight": 1}, {"path": "b.jsonl", "weight": 3}]
    spec = write_spec(data, sources=sources, target={"tokens": 9000}, tokenizer=str(tiny_model_dir))
    first = mix.build(spec, home=tmp_path / "reg1")
    second = mix.build(spec, home=tmp_path / "reg2")
    assert first.mix.content_hash == second.mix.content_hash
    assert shard_bytes(first.mix) == shard_bytes(second.mix)

    manifest = first.manifest
    target = manifest["target"]
    assert target["tokens"] == 9000 and target["method"] == "largest remainder"
    assert [s["quota"] for s in target["solution"]] == [2250, 6750]
    # the counts the manifest records are the chat-templated counts of the rows in the mix
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    rows = mix.load(first.mix.ref, home=tmp_path / "reg1").to_list()
    owner = pq.read_table(first.mix.path / "provenance.parquet").column("mix_source").to_pylist()
    for entry, solved in zip(manifest["sources"], target["solution"], strict=True):
        mine = [r for r, o in zip(rows, owner, strict=True) if o == entry["name"]]
        assert entry["tokens"] == solved["tokens"] == chat_template_tokens(tok, mine)
        assert entry["tokens"] <= solved["quota"]
        assert entry["rows"] == len(mine)
    assert manifest["tokens"] == sum(s["tokens"] for s in manifest["sources"]) == target["reached"]
    b = next(s for s in manifest["sources"] if s["name"] == "b")
    assert b["rows"] > b["unique_rows"]  # the small source was upsampled to reach its share
    counts = manifest["token_counts"]
    assert counts["name"] == str(tiny_model_dir) and counts["chat_template_hash"].startswith("xxh3:")
    assert counts["rows_tokenized"] == 140 and counts["rows_from_cache"] == 0
    # the second registry's build read every count from the cache
    assert second.manifest["token_counts"]["rows_tokenized"] == 0
    assert second.manifest["token_counts"]["rows_from_cache"] == 140


def test_a_changed_chat_template_is_counted_afresh(data, tmp_path, tiny_model_dir):
    import shutil

    other = tmp_path / "tok2"
    shutil.copytree(tiny_model_dir, other)
    config = json.loads((other / "tokenizer_config.json").read_text())
    config["chat_template"] = "{% for m in messages %}{{ m.content }}{% endfor %}"
    (other / "tokenizer_config.json").write_text(json.dumps(config))
    for template_file in other.glob("chat_template.*"):
        template_file.write_text(config["chat_template"])
    sources = [{"path": "a.jsonl", "tokens": 500}]
    one = mix.build(write_spec(data, sources=sources, tokenizer=str(tiny_model_dir)), home=tmp_path / "r1")
    two = mix.build(write_spec(data, sources=sources, tokenizer=str(other)), home=tmp_path / "r2")
    assert one.manifest["token_counts"]["fingerprint"] == two.manifest["token_counts"]["fingerprint"]
    assert one.manifest["token_counts"]["chat_template_hash"] != two.manifest["token_counts"]["chat_template_hash"]
    assert two.manifest["token_counts"]["rows_tokenized"] == 100  # nothing reused from the other template
    assert two.manifest["rows"] > one.manifest["rows"]  # no role markers: shorter rows, more fit


def test_a_rows_target_is_met_exactly_with_up_and_down_sampling(data, tmp_path):
    sources = [{"path": "a.jsonl", "weight": 0.2}, {"path": "b.jsonl", "weight": 0.8}]
    result = mix.build(write_spec(data, sources=sources, target={"rows": 101}), home=tmp_path / "reg")
    assert result.mix.rows == 101
    by_name = {s["name"]: s for s in result.manifest["sources"]}
    assert (by_name["a"]["rows"], by_name["b"]["rows"]) == (20, 81)  # 20.2 and 80.8: b takes the spare
    assert by_name["a"]["unique_rows"] == 20 and by_name["b"]["unique_rows"] == 40
    take_report = by_name["a"]["steps"][-1]
    assert take_report["config"] == {"rows": 20} and take_report["rejected"] == {"not_sampled": 80}
    copies = pq.read_table(result.mix.path / "provenance.parquet").column("copy").to_pylist()
    assert max(copies) == 2  # 81 rows of 40: two whole passes and one more


def test_target_and_weight_must_come_together_and_tokens_need_a_tokenizer(data, tmp_path):
    with pytest.raises(ConfigError, match="no `target:`"):
        mix.build(write_spec(data, sources=[{"path": "a.jsonl", "weight": 1}]), home=tmp_path / "r")
    with pytest.raises(ConfigError, match="every source gives a `weight:`"):
        mix.build(write_spec(data, sources=[{"path": "a.jsonl", "weight": 1}, {"path": "b.jsonl"}],
                             target={"rows": 5}), home=tmp_path / "r")
    with pytest.raises(ConfigError, match="one of count, fraction, epochs, tokens or weight"):
        mix.build(write_spec(data, sources=[{"path": "a.jsonl", "weight": 1, "count": 3}],
                             target={"rows": 5}), home=tmp_path / "r")
    with pytest.raises(ConfigError, match="tokenizer"):
        mix.build(write_spec(data, sources=[{"path": "a.jsonl", "tokens": 100}]), home=tmp_path / "r")


# ---------------------------------------------------------------- where and attributes


@pytest.fixture
def mixed(tmp_path):
    """One file whose `source` column names two origins, 30 and 20 rows."""
    path = tmp_path / "mixed.jsonl"
    with open(path, "w") as handle:
        for i in range(50):
            origin = "code" if i % 5 < 3 else "chat"
            row = {"id": f"m-{i:03d}", "source": origin, "meta": "{}",
                   "messages": [{"role": "user", "content": f"{origin} question {i}"},
                                {"role": "assistant", "content": f"answer {i}"}]}
            handle.write(json.dumps(row) + "\n")
    return path


def test_one_file_feeds_several_sources_through_where_and_every_row_is_counted(mixed, tmp_path):
    sources = [{"name": "code", "path": "mixed.jsonl", "where": {"source": "code"}},
               {"name": "chat", "path": "mixed.jsonl", "where": {"source": {"in": ["chat"]}}, "epochs": 2}]
    result = mix.build(write_spec(tmp_path, sources=sources), home=tmp_path / "reg")
    by_name = {s["name"]: s for s in result.manifest["sources"]}
    assert (by_name["code"]["rows"], by_name["chat"]["rows"]) == (30, 40)
    for entry in by_name.values():
        where = next(st for st in entry["steps"] if st["step"] == "where")
        assert where["rows_in"] == 50 == where["rows_out"] + where["rejected"]["where_excluded"]
    assert set(mix.load(result.mix.ref, home=tmp_path / "reg")["source"]) == {"code", "chat"}
    assert result.manifest["rejects"]["rows"] == 0  # rows of another view are not rejects
    assert result.manifest["spec"]["sources"][0]["where"] == {"source": {"eq": "code"}}


def write_attributes(path, ids, **columns):
    pq.write_table(pa.table({"id": ids, **columns}), path)
    return path


def test_attributes_filter_rows_and_a_changed_threshold_or_sidecar_is_a_new_version(mixed, tmp_path):
    ids = [f"m-{i:03d}" for i in range(50)]
    sidecar = write_attributes(tmp_path / "tags.parquet", ids[:40],  # the last 10 ids have none
                               quality=[float(i % 10) for i in range(40)])
    home = tmp_path / "reg"

    def build(threshold):
        sources = [{"name": "good", "path": "mixed.jsonl", "where": {"quality": {"gte": threshold}}}]
        return mix.build(write_spec(tmp_path, sources=sources, attributes="tags.parquet"), home=home)

    v1 = build(7)
    kept = set(mix.load(v1.mix.ref, home=home)["id"])
    assert kept == {ids[i] for i in range(40) if i % 10 >= 7}  # rows without attributes never pass
    entry = v1.manifest["sources"][0]
    assert entry["attributes"]["rows_matched"] == 40 and entry["attributes"]["rows_missing"] == 10
    assert entry["attributes"]["columns"] == ["quality"]
    assert entry["attributes"]["fingerprint"].startswith("xxh3:")
    v2 = build(6.5)  # a different threshold, the same rows: still a new version
    assert v2.created and v2.mix.content_hash == v1.mix.content_hash and v2.mix.ref == "m@2"
    assert not build(6.5).created  # the same spec again is not
    write_attributes(sidecar, ids[:40], quality=[float(i % 10) for i in range(40)],
                     language=["en"] * 40)  # a changed attribute set
    v3 = build(6.5)
    assert v3.created and v3.mix.ref == "m@3"


def test_where_errors_name_the_columns_there_are(mixed, tmp_path):
    write_attributes(tmp_path / "tags.parquet", ["m-000"], quality=[1.0])
    sources = [{"path": "mixed.jsonl", "attributes": "tags.parquet", "where": {"qualty": {"gte": 1}}}]
    with pytest.raises(ConfigError, match="'qualty'.*quality"):
        mix.build(write_spec(tmp_path, sources=sources), home=tmp_path / "reg")
    sources[0]["where"] = {"quality": {"gte": "high"}}
    with pytest.raises(ConfigError, match="cannot compare"):
        mix.build(write_spec(tmp_path, sources=sources), home=tmp_path / "reg")
    sources[0]["where"] = {"quality": {"between": [1, 2]}}
    with pytest.raises(ConfigError, match="unknown operator 'between'"):
        mix.build(write_spec(tmp_path, sources=sources), home=tmp_path / "reg")
    write_attributes(tmp_path / "dup.parquet", ["m-000", "m-000"], quality=[1.0, 2.0])
    sources[0].update(attributes="dup.parquet", where={"quality": 1.0})
    with pytest.raises(ConfigError, match="repeat ids"):
        mix.build(write_spec(tmp_path, sources=sources), home=tmp_path / "reg")


OPS = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "gt": lambda a, b: a > b,
       "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b,
       "in": lambda a, b: a in b, "not_in": lambda a, b: a not in b}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-5, 5)), min_size=1, max_size=40),
       st.dictionaries(st.sampled_from(sorted(OPS)),
                       st.integers(-5, 5), min_size=1, max_size=3),
       st.lists(st.integers(-5, 5), min_size=1, max_size=4))
def test_where_agrees_with_the_per_row_definition_and_nulls_never_pass(values, ops, members):
    from postmix.mix.where import normalise_where, where_mask

    condition = {op: (members if op in ("in", "not_in") else v) for op, v in ops.items()}
    where = normalise_where({"x": condition})
    assert normalise_where(where) == where  # the canonical form is a fixed point
    got = where_mask(pa.table({"x": pa.array(values, pa.int64())}), where, what="t")
    want = [v is not None and all(OPS[op](v, arg) for op, arg in condition.items()) for v in values]
    assert got.tolist() == want
