"""Ingest: every public format into the schemas, stable ids, and every bad row accounted for."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postmix.errors import BadRowError, InputNotFoundError, UnsupportedFormatError
from postmix.io import detect_format, ingest, iter_raw_rows, rejects_path, report_path
from postmix.schemas import PreferenceRecord, RLVRRecord, SFTRecord, StepReport


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


CONVO = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Name a prime."},
    {"role": "assistant", "content": "7"},
]

SFT_FORMS = {
    "messages": {"messages": CONVO},
    "sharegpt": {"system": "Be brief.", "conversations": [{"from": "human", "value": "Name a prime."},
                                                          {"from": "gpt", "value": "7"}]},
    "alpaca": {"system": "Be brief.", "instruction": "Name a prime.", "input": "", "output": "7"},
    "prompt_completion": {"prompt": CONVO[:2], "completion": [CONVO[2]]},
}


@pytest.mark.parametrize("fmt", sorted(SFT_FORMS))
def test_each_sft_format_becomes_the_same_conversation(tmp_path, fmt):
    src = write_jsonl(tmp_path / "in.jsonl", [SFT_FORMS[fmt]])
    assert detect_format(SFT_FORMS[fmt]) == fmt
    result = ingest(src, tmp_path / "out.jsonl")
    (row,) = read_jsonl(tmp_path / "out.jsonl")
    rec = SFTRecord.model_validate(row)
    assert [m.model_dump() for m in rec.messages] == CONVO
    assert rec.source == "in"
    assert result.report.details["format"] == fmt


def test_alpaca_input_joins_the_instruction(tmp_path):
    src = write_jsonl(tmp_path / "a.jsonl", [{"instruction": "Translate", "input": "chat", "output": "cat"}])
    ingest(src, tmp_path / "o.jsonl")
    (row,) = read_jsonl(tmp_path / "o.jsonl")
    assert row["messages"][0] == {"role": "user", "content": "Translate\n\nchat"}


def test_trl_preference_string_and_implicit_prompt_forms(tmp_path):
    explicit = {"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon"}
    implicit = {
        "chosen": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris"}],
        "rejected": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Lyon"}],
    }
    src = write_jsonl(tmp_path / "p.jsonl", [explicit, implicit])
    result = ingest(src, tmp_path / "o.jsonl")
    assert result.kind == "preference"
    a, b = (PreferenceRecord.model_validate(r) for r in read_jsonl(tmp_path / "o.jsonl"))
    for rec in (a, b):
        assert [m.content for m in rec.prompt] == ["Capital of France?"]
        assert rec.chosen[0].content == "Paris" and rec.rejected[0].content == "Lyon"
    assert a.id.startswith("pref-") and b.id == a.id + "~1"  # same content, unique ids


def test_ultrafeedback_binarized_strips_the_repeated_prompt_and_keeps_scores(tmp_path):
    row = {
        "prompt": "Write a haiku", "prompt_id": "uf-1",
        "chosen": [{"role": "user", "content": "Write a haiku"}, {"role": "assistant", "content": "Leaves fall"}],
        "rejected": [{"role": "user", "content": "Write a haiku"}, {"role": "assistant", "content": "No."}],
        "score_chosen": 8.5, "score_rejected": 3.0, "messages": [],
    }
    src = write_jsonl(tmp_path / "uf.jsonl", [row])
    ingest(src, tmp_path / "o.parquet")
    (out,) = pq.read_table(tmp_path / "o.parquet").to_pylist()
    rec = PreferenceRecord.model_validate(out)
    assert rec.id == "uf-1"
    assert [m.role for m in rec.chosen] == ["assistant"]
    assert (rec.chosen_score, rec.rejected_score) == (8.5, 3.0)


def test_rlvr_tulu_style_row(tmp_path):
    row = {"messages": [{"role": "user", "content": "2+2?"}], "ground_truth": "4", "dataset": "gsm8k"}
    src = write_jsonl(tmp_path / "r.jsonl", [row])
    ingest(src, tmp_path / "o.jsonl")
    rec = RLVRRecord.model_validate(read_jsonl(tmp_path / "o.jsonl")[0])
    assert (rec.verifier, rec.ground_truth) == ("gsm8k", "4")


def test_bad_rows_go_to_rejects_with_line_numbers_and_counts_reconcile(tmp_path):
    good = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(10)]
    lines = [json.dumps(r) for r in good]
    lines.insert(2, '{"messages": [')                     # line 3: malformed
    lines.insert(5, "not json")                            # line 6: malformed
    lines.insert(7, '["a list"]')                          # line 8: not an object (malformed kind)
    lines.insert(9, json.dumps({"messages": [{"role": "user", "content": "only a question"}]}))  # 10
    lines.insert(11, json.dumps({"messages": [{"role": "wizard", "content": "x"},
                                              {"role": "assistant", "content": "y"}]}))          # 12
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    result = ingest(src, tmp_path / "out.jsonl")
    out = read_jsonl(tmp_path / "out.jsonl")
    rejects = read_jsonl(rejects_path(tmp_path / "out.jsonl"))
    assert [r["messages"][0]["content"] for r in out] == [f"q{i}" for i in range(10)]
    assert [(r["line"], r["reason"]) for r in rejects] == [
        (3, "malformed_json"), (6, "malformed_json"), (8, "not_an_object"), (10, "schema"), (12, "schema"),
    ]
    assert "assistant" in rejects[3]["detail"] and "role" in rejects[4]["detail"]
    report = StepReport.read(report_path(tmp_path / "out.jsonl"))
    assert report == result.report
    assert (report.rows_in, report.rows_out, report.rejected_total) == (15, 10, 5)


def test_non_utf8_line_is_rejected_not_fatal(tmp_path):
    src = tmp_path / "in.jsonl"
    good = json.dumps({"prompt": "p", "completion": "c"}).encode()
    src.write_bytes(good + b"\n" + b'{"prompt": "caf\xe9", "completion": "x"}\n' + good + b"\n")
    result = ingest(src, tmp_path / "o.jsonl")
    assert result.report.rejected == {"not_utf8": 1}
    assert read_jsonl(rejects_path(tmp_path / "o.jsonl"))[0]["line"] == 2


def test_strict_fails_on_first_bad_row_with_its_line(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "p", "completion": "c"}, "{oops"])
    with pytest.raises(BadRowError, match="line 2"):
        ingest(src, tmp_path / "o.jsonl", strict=True)
    assert not (tmp_path / "o.jsonl").exists()


def test_derived_ids_are_stable_across_runs_and_unique_within_a_file(tmp_path):
    row = {"prompt": "same", "completion": "row"}
    src = write_jsonl(tmp_path / "in.jsonl", [row, row, {"prompt": "other", "completion": "row"}])
    ingest(src, tmp_path / "a.jsonl")
    ingest(src, tmp_path / "b.jsonl")
    ids_a = [r["id"] for r in read_jsonl(tmp_path / "a.jsonl")]
    assert ids_a == [r["id"] for r in read_jsonl(tmp_path / "b.jsonl")]
    assert len(set(ids_a)) == 3 and ids_a[1] == ids_a[0] + "~1"


def test_repeated_given_id_is_rejected(tmp_path):
    rows = [{"id": 7, "prompt": "a", "completion": "b"}, {"id": 7, "prompt": "c", "completion": "d"}]
    result = ingest(write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "o.jsonl")
    assert result.report.rejected == {"duplicate_id": 1}
    assert read_jsonl(tmp_path / "o.jsonl")[0]["id"] == "7"


def test_unknown_format_rows_and_mixed_kinds_are_rejected(tmp_path):
    rows = [{"prompt": "p", "completion": "c"}, {"foo": 1},
            {"prompt": "p", "chosen": "a", "rejected": "b"}]
    result = ingest(write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "o.jsonl")
    assert result.report.rejected == {"mixed_kinds": 1, "unknown_format": 1}


def test_extra_fields_are_kept_in_meta(tmp_path):
    row = {"messages": CONVO, "license": "cc-by", "meta": {"lang": "en"}}
    ingest(write_jsonl(tmp_path / "in.jsonl", [row]), tmp_path / "o.jsonl")
    assert json.loads(read_jsonl(tmp_path / "o.jsonl")[0]["meta"]) == {"lang": "en", "license": "cc-by"}


def test_reads_json_parquet_and_arrow_folders(tmp_path):
    import datasets

    rows = [SFT_FORMS["messages"], {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    datasets.Dataset.from_list(rows).save_to_disk(tmp_path / "arrow")
    for src in (tmp_path / "a.json", tmp_path / "a.parquet", tmp_path / "arrow"):
        result = ingest(src, tmp_path / f"out-{src.name}.jsonl")
        assert result.report.rows_out == 2, src
    assert [r.line for r in iter_raw_rows(tmp_path / "a.parquet")] == [1, 2]


def test_missing_file_and_unknown_suffix_are_one_line_errors(tmp_path):
    with pytest.raises(InputNotFoundError, match="no such file"):
        ingest(tmp_path / "nope.jsonl", tmp_path / "o.jsonl")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(UnsupportedFormatError, match=r"\.jsonl"):
        ingest(tmp_path / "x.csv", tmp_path / "o.jsonl")
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "p", "completion": "c"}])
    with pytest.raises(UnsupportedFormatError, match="unknown format"):
        ingest(src, tmp_path / "o.jsonl", format="csv")
    with pytest.raises(UnsupportedFormatError, match="name the output"):
        ingest(src, tmp_path / "o.txt")


role_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30).filter(
    lambda s: s.strip()
)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(turns=st.lists(st.tuples(role_text, role_text), min_size=1, max_size=3))
def test_sharegpt_and_messages_forms_agree(tmp_path, turns):
    messages = [m for u, a in turns for m in ({"role": "user", "content": u}, {"role": "assistant", "content": a})]
    sharegpt = {"conversations": [{"from": "human" if m["role"] == "user" else "gpt", "value": m["content"]}
                                  for m in messages]}
    write_jsonl(tmp_path / "m.jsonl", [{"messages": messages}])
    write_jsonl(tmp_path / "s.jsonl", [sharegpt])
    ingest(tmp_path / "m.jsonl", tmp_path / "m.out.jsonl", source_name="x")
    ingest(tmp_path / "s.jsonl", tmp_path / "s.out.jsonl", source_name="x")
    (m,), (s,) = read_jsonl(tmp_path / "m.out.jsonl"), read_jsonl(tmp_path / "s.out.jsonl")
    assert m["messages"] == s["messages"] == messages
    assert m["id"] == s["id"]


def test_several_ultrafeedback_pairs_of_one_prompt_are_all_kept(tmp_path):
    def pair(good, bad):
        return {"prompt": "Write a haiku", "prompt_id": "uf-1",
                "chosen": [{"role": "user", "content": "Write a haiku"}, {"role": "assistant", "content": good}],
                "rejected": [{"role": "user", "content": "Write a haiku"}, {"role": "assistant", "content": bad}],
                "score_chosen": 8.0, "score_rejected": 2.0}

    src = write_jsonl(tmp_path / "uf.jsonl", [pair("Leaves fall", "No."), pair("Snow melts", "Nope.")])
    result = ingest(src, tmp_path / "o.jsonl")
    assert result.report.rows_out == 2
    assert [r["id"] for r in read_jsonl(tmp_path / "o.jsonl")] == ["uf-1", "uf-1~1"]


def test_turns_with_tool_calls_are_rejected_whole_not_stripped(tmp_path):
    call = {"role": "assistant", "content": None,
            "tool_calls": [{"id": "1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]}
    rows = [{"messages": [CONVO[1], call, {"role": "tool", "content": "sunny", "tool_call_id": "1"},
                          {"role": "assistant", "content": "Sunny."}]},
            {"messages": CONVO}]
    result = ingest(write_jsonl(tmp_path / "t.jsonl", rows), tmp_path / "o.jsonl")
    (reject,) = read_jsonl(rejects_path(tmp_path / "o.jsonl"))
    assert reject["reason"] == "tool_calls" and reject["line"] == 1 and "messages[1]" in reject["detail"]
    assert result.report.rows_out == 1 and result.report.rejected == {"tool_calls": 1}


def test_a_byte_order_mark_and_a_single_object_json_file_are_read(tmp_path):
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps({"messages": CONVO}).encode() + b"\n")
    assert ingest(bom, tmp_path / "a.jsonl").report.rows_out == 1
    single = tmp_path / "one.json"
    single.write_text(json.dumps({"messages": CONVO}), encoding="utf-8-sig")
    assert ingest(single, tmp_path / "b.jsonl").report.rows_out == 1


@pytest.mark.parametrize("name", ["cut.jsonl.gz", "notgzip.jsonl.gz", "cut.parquet"])
def test_a_damaged_file_is_a_one_line_error(tmp_path, name):
    import gzip

    from postmix.errors import PostmixError

    whole = "".join(json.dumps({"id": f"r{i}", "messages": CONVO}) + "\n" for i in range(500)).encode()
    if name == "cut.jsonl.gz":
        data = gzip.compress(whole)[:300]
    elif name == "notgzip.jsonl.gz":
        data = whole
    else:
        pq.write_table(pa.Table.from_pylist([{"messages": CONVO}] * 10), tmp_path / "whole.parquet")
        data = (tmp_path / "whole.parquet").read_bytes()[:200]
    (tmp_path / name).write_bytes(data)
    with pytest.raises(PostmixError, match="could not be read") as caught:
        ingest(tmp_path / name, tmp_path / "o.jsonl")
    assert "\n" not in str(caught.value)


def test_a_one_key_json_wrapper_of_records_is_unwrapped(tmp_path):
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"messages": [{"messages": CONVO}, {"messages": CONVO[1:]}]}))
    assert ingest(wrapped, tmp_path / "o.jsonl").report.rows_out == 2
