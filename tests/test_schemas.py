import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from postmix.schemas import (
    Completion,
    Message,
    PreferenceRecord,
    Rating,
    RLVRRecord,
    SFTRecord,
    StepReport,
    content_hash,
    normalise_text,
    stable_id,
)

USER = {"role": "user", "content": "What is 2 + 2?"}
BOT = {"role": "assistant", "content": "4"}


def test_message_rejects_unknown_role_and_blank_content():
    with pytest.raises(ValidationError, match="role"):
        Message(role="narrator", content="hi")
    with pytest.raises(ValidationError, match="empty"):
        Message(role="user", content="  \n\t")


def test_sft_must_end_with_assistant_and_have_a_user_turn():
    SFTRecord(id="a", messages=[USER, BOT])
    with pytest.raises(ValidationError, match="end with an assistant"):
        SFTRecord(id="a", messages=[BOT, USER])
    with pytest.raises(ValidationError, match="no user turn"):
        SFTRecord(id="a", messages=[{"role": "system", "content": "s"}, BOT])
    with pytest.raises(ValidationError, match="no messages"):
        SFTRecord(id="a", messages=[])


def test_preference_prompt_ends_with_user_and_chosen_differs():
    ok = PreferenceRecord(id="p", prompt=[USER], chosen=[BOT], rejected=[{"role": "assistant", "content": "5"}])
    assert ok.chosen[0].content == "4"
    with pytest.raises(ValidationError, match="identical"):
        PreferenceRecord(id="p", prompt=[USER], chosen=[BOT], rejected=[{"role": "assistant", "content": " 4 "}])
    with pytest.raises(ValidationError, match="end with a user turn"):
        PreferenceRecord(id="p", prompt=[USER, BOT], chosen=[BOT], rejected=[{"role": "assistant", "content": "5"}])


def test_meta_round_trips_through_the_json_string_row_form():
    rec = SFTRecord(id="a", messages=[USER, BOT], meta={"b": [1, 2], "a": {"x": "é"}})
    row = rec.to_row()
    assert isinstance(row["meta"], str)
    assert json.loads(row["meta"]) == {"a": {"x": "é"}, "b": [1, 2]}
    assert SFTRecord.model_validate(row) == rec
    with pytest.raises(ValidationError, match="JSON object"):
        SFTRecord(id="a", messages=[USER, BOT], meta="[1, 2]")


def test_rlvr_constraints_and_completion_and_rating():
    rec = RLVRRecord(id="r", prompt=[USER], ground_truth="4", verifier="gsm8k", constraints=[{"type": "no_commas"}])
    assert RLVRRecord.model_validate(rec.to_row()) == rec
    with pytest.raises(ValidationError):
        RLVRRecord(id="r", prompt=[USER], ground_truth="4", verifier="")
    comp = Completion(id="c", prompt_id="p", prompt=[USER], response="4", model="m", sampling={"temperature": 0.7})
    assert Completion.model_validate(comp.to_row()).sampling == {"temperature": 0.7}
    rating = Rating(completion_id="c", prompt_id="p", judge_model="j",
                    aspects={"helpfulness": {"score": 5}, "honesty": {"score": 2}})
    assert rating.mean == 3.5
    with pytest.raises(ValidationError):
        Rating(completion_id="c", prompt_id="p", judge_model="j", aspects={"helpfulness": {"score": 6}})


def test_report_refuses_counts_that_do_not_reconcile(tmp_path):
    report = StepReport(step="s", rows_in=10, rows_out=7, rejected={"a": 2, "b": 1})
    assert report.rejected_total == 3
    assert StepReport.read(report.write(tmp_path / "r.json")) == report
    with pytest.raises(ValidationError, match="does not reconcile"):
        StepReport(step="s", rows_in=10, rows_out=7, rejected={"a": 2})


text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


@given(text)
def test_normalise_is_idempotent(value):
    once = normalise_text(value)
    assert normalise_text(once) == once
    assert once == once.strip()
    assert "  " not in once


@given(st.lists(st.text(alphabet="abc xyz\t\n\u00a0", min_size=1, max_size=20), min_size=1, max_size=4))
def test_content_hash_ignores_cosmetic_whitespace(parts):
    spaced = ["  " + p.replace(" ", "\u00a0 \t") + "\n" for p in parts]
    assert content_hash(parts) == content_hash(spaced)


def test_stable_id_depends_on_content_and_kind_only():
    a = stable_id("sft", {"messages": [USER, BOT]})
    assert a == stable_id("sft", {"messages": [USER, BOT]})
    assert a.startswith("sft-")
    assert a != stable_id("sft", {"messages": [USER, {"role": "assistant", "content": "5"}]})
    assert a != stable_id("pref", {"messages": [USER, BOT]})


def test_a_report_replacing_another_outputs_report_says_so(tmp_path, caplog):
    def report(data):
        return StepReport(step="s", rows_in=1, rows_out=1, outputs={"data": str(tmp_path / data)})

    path = tmp_path / "x.report.json"
    report("x.jsonl").write(path)
    with caplog.at_level("WARNING", logger="postmix"):
        report("x.jsonl").write(path)  # the same output again: a re-run, nothing to say
        assert not caplog.records
        report("x.parquet").write(path)
    (record,) = caplog.records
    assert "x.jsonl" in record.getMessage() and "x.parquet" in record.getMessage()
