"""The vectorised record checks agree with the pydantic records on every row they see, so the
fast load path never lets through a row the careful path would reject."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from postmix.io.dataset import load_records
from postmix.io.write import RowWriter
from postmix.schemas import FEATURES, PreferenceRecord, RLVRRecord, SFTRecord
from postmix.schemas.arrow_checks import all_rows_valid

# weighted towards valid turns, so both outcomes are common
roles = st.sampled_from(["user"] * 4 + ["assistant"] * 4 + ["system", "tool", "bogus", "User"])
contents = st.sampled_from(["hi"] * 3 + ["same", " same ", "x\ny", "  ", ""])
turn = st.fixed_dictionaries({"role": roles, "content": contents})
turns = st.one_of(st.lists(turn, max_size=4),
                  st.tuples(turn, turn).map(lambda t: [{**t[0], "role": "user"}, {**t[1], "role": "assistant"}]),
                  turn.map(lambda t: [{**t, "role": "user"}]), turn.map(lambda t: [{**t, "role": "assistant"}]))
MODELS = {"sft": SFTRecord, "preference": PreferenceRecord, "rlvr": RLVRRecord}


def row_for(kind, draw_turns, rid):
    if kind == "sft":
        return {"id": rid, "messages": draw_turns[0], "source": "s", "meta": "{}"}
    if kind == "preference":
        return {"id": rid, "prompt": draw_turns[0], "chosen": draw_turns[1], "rejected": draw_turns[2],
                "chosen_score": None, "rejected_score": None, "chosen_model": None, "rejected_model": None,
                "judge": "{}", "source": "s", "meta": "{}"}
    return {"id": rid, "prompt": draw_turns[0], "ground_truth": "4", "verifier": "gsm8k",
            "constraints": None, "source": "s", "meta": "{}"}


def pydantic_ok(kind, row):
    try:
        MODELS[kind].model_validate(row)
    except ValidationError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(MODELS)), conversations=st.lists(st.tuples(turns, turns, turns), min_size=1,
                                                                      max_size=5),
       ids=st.lists(st.sampled_from(["a", "b", "c", "d", "e", ""]), min_size=5, max_size=5))
def test_vectorised_checks_agree_with_the_records(kind, conversations, ids):
    rows = [row_for(kind, convo, ids[i]) for i, convo in enumerate(conversations)]
    table = pa.Table.from_pylist(rows, schema=FEATURES[kind].arrow_schema)
    used = [r["id"] for r in rows]
    expected = all(pydantic_ok(kind, r) for r in rows) and len(set(used)) == len(used)
    assert all_rows_valid(table, kind) == expected
    # and on a slice (offsets that do not start at zero)
    if len(rows) > 1:
        tail = table.slice(1)
        assert all_rows_valid(tail, kind) == (all(pydantic_ok(kind, r) for r in rows[1:])
                                              and len(set(used[1:])) == len(used[1:]))


def test_a_postmix_parquet_with_bad_rows_is_validated_row_by_row(tmp_path):
    good = {"id": "ok-1", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
            "source": "s", "meta": "{}"}
    rows = [good,
            {**good, "id": "b1", "messages": [{"role": "bogus", "content": "hi"}, good["messages"][1]]},
            {**good, "id": "b2", "messages": [good["messages"][0]]},
            {**good, "messages": [{"role": "user", "content": "again"}, good["messages"][1]]}]
    for suffix in ("parquet", "jsonl"):
        path = tmp_path / f"rows.{suffix}"
        with RowWriter(path, schema=FEATURES["sft"].arrow_schema) as writer:
            writer.write_many(rows)
        ds, kind, rejects = load_records(path)
        assert kind == "sft" and ds["id"] == ["ok-1"]
        assert [(r.reason, r.line) for r in rejects] == [("schema", 2), ("schema", 3), ("duplicate_id", 4)]


def test_preference_rows_valid_and_identical_pairs():
    user, a, b = ({"role": "user", "content": "q"}, {"role": "assistant", "content": "A"},
                  {"role": "assistant", "content": " A "})
    def table(chosen, rejected, prompt=(user,)):
        row = row_for("preference", [list(prompt), list(chosen), list(rejected)], "p1")
        return pa.Table.from_pylist([row], schema=FEATURES["preference"].arrow_schema), row

    for chosen, rejected, prompt in [([a], [{**a, "content": "B"}], (user,)),  # valid
                                     ([a], [b], (user,)),  # identical after trimming
                                     ([a], [a, a], (user,)),  # same text split differently: not identical
                                     ([a], [{**a, "content": "B"}], (user, a))]:  # prompt ends with assistant
        tbl, row = table(chosen, rejected, prompt)
        assert all_rows_valid(tbl, "preference") == pydantic_ok("preference", row), (chosen, rejected, prompt)


def test_completion_files_load_as_they_are(tmp_path):
    """Postmix's own completion rows (judge generate output) have no ingest format to fall back to."""
    rows = [{"id": f"c{i}", "prompt_id": "p", "prompt": [{"role": "user", "content": "q"}], "response": "a",
             "model": "m", "sampling": "{}", "source": "s", "meta": "{}"} for i in range(3)]
    path = tmp_path / "completions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds, kind, rejects = load_records(path)
    assert (kind, len(ds), rejects) == ("completion", 3, [])


def test_rows_the_fast_path_would_change_take_the_careful_path(tmp_path):
    good = {"id": "a", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "x"}],
            "source": "s", "meta": "{}"}
    # tool calls would be dropped by the typed reader: the row is rejected whole instead
    tool = {**good, "id": "t", "messages": [{"role": "user", "content": "q"},
                                             {"role": "assistant", "content": "x", "tool_calls": [{"id": "1"}]}]}
    path = tmp_path / "tools.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (good, tool)))
    ds, _, rejects = load_records(path)
    assert ds["id"] == ["a"] and [r.reason for r in rejects] == ["tool_calls"]
    # a meta that is not a JSON object is not loaded as it is
    path = tmp_path / "meta.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (good, {**good, "id": "m", "meta": "not json"})))
    ds, _, rejects = load_records(path)
    assert ds["id"] == ["a", "m"] and json.loads(ds["meta"][1]) == {"meta": "not json"} and rejects == []
    # Parquet turns that are not {role, content} (ShareGPT's from/value) are converted, not crashed on
    table = pa.Table.from_pylist([{"id": "g", "source": "s", "meta": "{}",
                                   "messages": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "x"}]}])
    pq.write_table(table, tmp_path / "sharegpt.parquet")
    ds, kind, rejects = load_records(tmp_path / "sharegpt.parquet")
    assert kind == "sft" and len(ds) + len(rejects) == 1
