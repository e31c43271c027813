"""`weight_by:` of a mix source: rows taken with probability proportional to an attribute or a
column (Efraimidis-Spirakis keys), deterministic, recorded, and part of a version's identity."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_mix_build import write_source, write_spec

from postmix import mix
from postmix.errors import ConfigError
from postmix.mix.row_weights import log_weights
from postmix.mix.sampling import take, weighted_order
from postmix.mix.spec import WeightBySpec


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTMIX_CACHE_DIR", str(tmp_path / "cache"))


def ids(n, prefix="r"):
    return pa.array([f"{prefix}-{i:04d}" for i in range(n)])


def first_pick_frequencies(logs, draws=6000):
    """How often each row is the first of the weighted ranking, over ``draws`` sampling keys."""
    names = ids(len(logs))
    firsts = [int(weighted_order(names, key, logs)[0]) for key in range(draws)]
    return np.bincount(firsts, minlength=len(logs)) / draws


def test_the_first_row_drawn_is_row_i_with_probability_w_i_over_the_sum():
    weights = np.array([1.0, 2.0, 3.0, 4.0, 0.0])
    logs, _ = log_weights(pa.table({"id": ids(5), "w": weights}), WeightBySpec(column="w"), what="t")
    freq = first_pick_frequencies(logs)
    # 6000 draws: one standard deviation is at most 0.0065; 0.03 is over four of them
    assert freq == pytest.approx(weights / weights.sum(), abs=0.03)
    assert freq[4] == 0  # a zero weight is never drawn before a positive one


def test_a_temperature_samples_by_exp_of_the_score_over_it():
    scores = np.array([-2.0, 0.0, 1.0, 3.0])  # raw reward-model outputs: any sign
    logs, _ = log_weights(pa.table({"id": ids(4), "reward": scores}),
                          WeightBySpec(column="reward", temperature=2.0), what="t")
    freq = first_pick_frequencies(logs)
    softmax = np.exp(scores / 2.0) / np.exp(scores / 2.0).sum()
    assert freq == pytest.approx(softmax, abs=0.03)


def test_without_replacement_the_inclusion_follows_successive_draws():
    """Taking 2 of weights (1, 1, 8): P(row 0 in) = P(first) + P(second) by successive draws."""
    weights = np.array([1.0, 1.0, 8.0])
    names = ids(3)
    picked = np.zeros(3)
    draws = 6000
    for key in range(draws):
        picked[take(names, {"count": 2}, key, log_weights=np.log(weights)).indices] += 1
    p0 = 0.1 + 0.1 * (1 / 9) + 0.8 * (1 / 2)  # first, or second after row 1, or after row 2
    assert picked / draws == pytest.approx([p0, p0, 2 - 2 * p0], abs=0.03)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1000.0), min_size=1, max_size=60), st.integers(0, 2**32),
       st.integers(0, 60), st.integers(0, 60))
def test_a_larger_weighted_take_is_a_superset_and_order_independent(weights, key, small, extra):
    with np.errstate(divide="ignore"):
        logs = np.log(np.array(weights))
    names = ids(len(weights))
    small = min(small, len(weights))
    large = min(small + extra, len(weights))
    a = set(take(names, {"count": small}, key, log_weights=logs).indices.tolist())
    b = set(take(names, {"count": large}, key, log_weights=logs).indices.tolist())
    assert a <= b and len(a) == small and len(b) == large
    reverse = np.arange(len(weights))[::-1]  # the same rows in another order: the same ids taken
    c = take(names.take(pa.array(reverse)), {"count": small}, key, log_weights=logs[reverse])
    assert {names[int(reverse[i])].as_py() for i in c.indices} == {names[i].as_py() for i in a}


# ------------------------------------------------------------------ in a mix build


@pytest.fixture
def scored(tmp_path):
    """200 rows and a sidecar whose `quality` is 1 for most rows and 50 for ids ending in 0."""
    folder = tmp_path / "data"
    folder.mkdir()
    write_source(folder / "a.jsonl", "a", 200)
    names = [f"a-{i:04d}" for i in range(200)]
    pq.write_table(pa.table({"id": names, "quality": [50.0 if i % 10 == 0 else 1.0 for i in range(200)],
                             "reward": [(-1.0) ** i * i / 50 for i in range(200)]}),
                   folder / "tags.parquet")
    return folder


def kept_ids(built, home):
    return sorted(mix.load(built.mix.ref, home=home)["id"])


def test_weight_by_an_attribute_prefers_heavy_rows_and_is_recorded(scored, tmp_path):
    home = tmp_path / "reg"
    spec = write_spec(scored, sources=[{"path": "a.jsonl", "count": 20, "weight_by": "quality"}],
                      attributes="tags.parquet")
    built = mix.build(spec, home=home)
    kept = kept_ids(built, home)
    heavy = [k for k in kept if k.endswith("0")]
    # 20 heavy rows (weight 50) against 180 light ones (weight 1): nearly all picks are heavy
    assert len(kept) == 20 and len(heavy) >= 15
    take_report = built.manifest["sources"][0]["steps"][-1]
    assert take_report["details"]["weight_by"] == {"column": "quality", "temperature": None, "min": 1.0,
                                                   "max": 50.0, "zero_weight_rows": 0}
    assert "Efraimidis-Spirakis" in take_report["details"]["sampling"]
    assert built.manifest["spec"]["sources"][0]["weight_by"] == {"column": "quality", "temperature": None}

    again = mix.build(spec, home=tmp_path / "other")  # reproducible: the same rows, the same bytes
    assert again.mix.content_hash == built.mix.content_hash


def test_changing_weight_by_is_a_new_version_even_when_the_rows_do_not_change(scored, tmp_path):
    home = tmp_path / "reg"
    everything = {"path": "a.jsonl", "fraction": 1.0}
    plain = mix.build(write_spec(scored, sources=[everything], attributes="tags.parquet", shuffle=False),
                      home=home)
    weighted = mix.build(write_spec(scored, sources=[{**everything, "weight_by": "quality"}],
                                    attributes="tags.parquet", shuffle=False), home=home)
    assert weighted.mix.content_hash == plain.mix.content_hash  # every row either way
    assert weighted.created and weighted.mix.ref == "m@2"
    assert weighted.manifest["selection_fingerprint"] != plain.manifest["selection_fingerprint"]
    tempered = mix.build(write_spec(scored, sources=[{**everything, "weight_by": {"column": "reward",
                                                                                  "temperature": 0.5}}],
                                    attributes="tags.parquet", shuffle=False), home=home)
    assert tempered.created and tempered.mix.ref == "m@3"
    same = mix.build(write_spec(scored, sources=[{**everything, "weight_by": {"column": "reward",
                                                                              "temperature": 0.5}}],
                                attributes="tags.parquet", shuffle=False), home=home)
    assert not same.created


def test_weight_by_a_signed_score_with_a_temperature_and_a_target(scored, tmp_path):
    home = tmp_path / "reg"
    spec = write_spec(scored, sources=[{"path": "a.jsonl", "weight": 1.0,
                                        "weight_by": {"column": "reward", "temperature": 0.2}}],
                      attributes="tags.parquet", target={"rows": 30})
    kept = kept_ids(mix.build(spec, home=home), home)
    reward = {f"a-{i:04d}": (-1.0) ** i * i / 50 for i in range(200)}
    assert len(kept) == 30
    # exp(reward / 0.2) spans e^-20 .. e^20: the top-scored rows dominate, no negative one is in
    assert sum(reward[k] > 2 for k in kept) >= 20 and all(reward[k] >= 0 for k in kept)


def test_weight_by_problems_are_one_line_errors_with_the_way_out(scored, tmp_path):
    home = tmp_path / "reg"

    def build(source, **extra):
        return mix.build(write_spec(scored, sources=[{"path": "a.jsonl", "count": 5, **source}],
                                    **extra), home=home)

    with pytest.raises(ConfigError, match="negative|no usable weight.*temperature"):
        build({"weight_by": "reward"}, attributes="tags.parquet")
    with pytest.raises(ConfigError, match="neither a record column nor an attribute"):
        build({"weight_by": "quality"})
    with pytest.raises(ConfigError, match="holds string; it needs numbers"):
        build({"weight_by": "source"})
    with pytest.raises(ConfigError, match="without one every row is taken"):
        mix.build(write_spec(scored, sources=[{"path": "a.jsonl", "weight_by": "quality"}],
                             attributes="tags.parquet"), home=home)
    partial = pa.table({"id": [f"a-{i:04d}" for i in range(150)], "quality": [1.0] * 150})
    pq.write_table(partial, scored / "partial.parquet")
    with pytest.raises(ConfigError, match=r"50 of 200 rows have no value \(first: id a-0150\).*where"):
        build({"weight_by": "quality"}, attributes="partial.parquet")
    # the way out the message names: a where that no null passes
    built = build({"weight_by": "quality", "where": {"quality": {"gte": 0}}}, attributes="partial.parquet")
    assert built.mix.rows == 5 and all(int(i[2:]) < 150 for i in mix.load(built.mix.ref, home=home)["id"])


def test_weight_by_a_record_column_of_preference_rows(tmp_path):
    import json

    rows = [{"id": f"p-{i:03d}", "source": "s", "meta": "{}", "prompt": [{"role": "user", "content": f"q{i}"}],
             "chosen": [{"role": "assistant", "content": f"good {i}"}],
             "rejected": [{"role": "assistant", "content": f"bad {i}"}],
             "chosen_score": 0.0 if i < 90 else 9.0, "rejected_score": 1.0, "chosen_model": None,
             "rejected_model": None, "judge": None} for i in range(100)]
    (tmp_path / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"name": "p", "kind": "preference", "sources": [{"path": "prefs.jsonl", "count": 12,
                                                           "weight_by": "chosen_score"}]}
    built = mix.build(spec, home=tmp_path / "reg", base=tmp_path)
    kept = sorted(mix.load(built.mix.ref, home=tmp_path / "reg")["id"])
    # the 10 rows of weight 9 first; weight-0 rows only once every positive one is taken
    assert kept[-10:] == [f"p-{i:03d}" for i in range(90, 100)] and len(kept) == 12
    assert built.manifest["sources"][0]["steps"][-1]["details"]["weight_by"]["zero_weight_rows"] == 90

