"""Sampling hash, take rules and content hashing: exact outcomes from the construction."""

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postmix.mix.content import content_hash, write_shard
from postmix.mix.sampling import keyed_hash, mix64, take

MASK = (1 << 64) - 1


def _mix64_py(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def _keyed_hash_py(text: str, key: int) -> int:
    """The documented definition, one row at a time: the vectorised version must agree."""
    data = text.encode("utf-8")
    total = sum(_mix64_py(key ^ ((j << 8) | b)) for j, b in enumerate(data)) & MASK
    return _mix64_py(total ^ _mix64_py(len(data) ^ key))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=12), max_size=30), st.integers(min_value=0, max_value=MASK))
def test_vectorised_hash_matches_the_per_row_definition(ids, key):
    got = keyed_hash(pa.array(ids, pa.string()), key)
    assert got.tolist() == [_keyed_hash_py(i, key) for i in ids]


def test_hash_ignores_chunking_and_slicing_and_large_string():
    ids = [f"row-{i}" for i in range(50)]
    plain = keyed_hash(pa.array(ids), 7)
    chunked = pa.chunked_array([pa.array(ids[:13]), pa.array(ids[13:])])
    sliced = pa.array(["junk"] + ids + ["junk"]).slice(1, 50)
    assert np.array_equal(keyed_hash(chunked, 7), plain)
    assert np.array_equal(keyed_hash(sliced, 7), plain)
    assert np.array_equal(keyed_hash(pa.array(ids, pa.large_string()), 7), plain)


def test_mix64_is_a_bijection_on_a_sample():
    values = np.arange(100_000, dtype=np.uint64)
    assert len(np.unique(mix64(values))) == len(values)


def _ids(n):
    return pa.array([f"id-{i:05d}" for i in range(n)])


def test_count_fraction_epochs_select_exact_sizes():
    ids = _ids(200)
    counted = take(ids, {"count": 37}, key=1)
    assert len(counted.indices) == 37 == counted.unique_rows
    assert list(counted.indices) == sorted(set(counted.indices.tolist()))  # each once, source order
    assert len(take(ids, {"fraction": 0.25}, key=1).indices) == 50
    assert len(take(ids, {"fraction": 0.0025}, key=1).indices) == 1  # 0.5 rounds half up
    upsampled = take(ids, {"epochs": 2.5}, key=1)
    assert len(upsampled.indices) == 500 and upsampled.unique_rows == 200
    counts = np.bincount(upsampled.indices, minlength=200)
    assert set(counts.tolist()) == {2, 3} and (counts == 3).sum() == 100
    assert sorted(set(upsampled.copies.tolist())) == [0, 1, 2]
    # the partial epoch is exactly the 100 best-ranked rows
    assert np.array_equal(np.flatnonzero(counts == 3), np.sort(take(ids, {"count": 100}, key=1).indices))


def test_larger_count_is_a_superset_and_other_keys_differ():
    ids = _ids(1000)
    small = set(take(ids, {"count": 100}, key=5).indices.tolist())
    large = set(take(ids, {"count": 300}, key=5).indices.tolist())
    assert small < large
    assert small != set(take(ids, {"count": 100}, key=6).indices.tolist())


def test_selection_depends_on_ids_not_positions():
    ids = [f"id-{i}" for i in range(500)]
    chosen = {ids[i] for i in take(pa.array(ids), {"count": 50}, key=3).indices}
    reversed_ids = ids[::-1]
    chosen_rev = {reversed_ids[i] for i in take(pa.array(reversed_ids), {"count": 50}, key=3).indices}
    assert chosen == chosen_rev


def _table(texts, ids=None):
    ids = ids or [f"r{i}" for i in range(len(texts))]
    messages = [[{"role": "user", "content": t}, {"role": "assistant", "content": t.upper()}] for t in texts]
    return pa.table({"id": ids, "messages": messages, "score": [float(i) for i in range(len(texts))]})


def test_content_hash_is_about_values_not_layout():
    texts = [f"text number {i}" for i in range(40)]
    table = _table(texts)
    rechunked = pa.concat_tables([table.slice(0, 7), table.slice(7, 20), table.slice(27)])
    assert content_hash(rechunked) == content_hash(table)
    assert content_hash(pa.concat_tables([_table(["x"]), table]).slice(1)) == content_hash(table)
    changed = texts.copy()
    changed[17] = changed[17] + "!"
    assert content_hash(_table(changed)) != content_hash(table)
    assert content_hash(table.take(pa.array(range(39, -1, -1)))) != content_hash(table)  # order counts
    with_null = table.set_column(2, "score", pa.array([None] + [float(i) for i in range(1, 40)]))
    with_zero = table.set_column(2, "score", pa.array([0.0] + [float(i) for i in range(1, 40)]))
    assert content_hash(with_null) != content_hash(with_zero)


def test_shards_are_byte_identical_however_the_table_was_chunked(tmp_path):
    table = _table([f"row {i} " * (i % 7 + 1) for i in range(25_000)])
    rechunked = pa.concat_tables([table.slice(s, 3_333) for s in range(0, table.num_rows, 3_333)])
    assert rechunked.column(1).num_chunks > 1
    write_shard(table.replace_schema_metadata({"created": "now"}), tmp_path / "a.parquet")
    write_shard(rechunked, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


@pytest.mark.parametrize("rule", [{"count": 0}, {"fraction": 1.0}, {"epochs": 1.0}])
def test_edge_rules(rule):
    ids = _ids(10)
    result = take(ids, rule, key=0)
    expected = {"count": 0, "fraction": 10, "epochs": 10}[next(iter(rule))]
    assert len(result.indices) == expected


@settings(max_examples=200, deadline=None)
@given(available=st.integers(1, 5000), extra=st.integers(0, 100000))
def test_the_suggested_epochs_take_exactly_the_asked_count(available, extra):
    """The hint a too-large count prints must be a value that actually gives that count."""
    from postmix.mix.builder import epochs_for

    count = available + extra
    value = float(epochs_for(count, available))
    ids = pa.array([f"r{i}" for i in range(available)])
    assert len(take(ids, {"epochs": value}, key=7).indices) == count
