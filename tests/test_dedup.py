"""Dedup as a stage: planted duplicates found, survivors per --keep, --verify, --against, report, CLI."""

from __future__ import annotations

import json
import random

import datasets
import pytest
from typer.testing import CliRunner

from postmix.cli import app
from postmix.curate import minhash
from postmix.curate.dedup import DedupConfig, dedup, dedup_file
from postmix.io.dataset import save_records
from postmix.schemas import FEATURES

_VOCAB = [f"w{i}x{random.Random(i).randint(0, 10**6)}" for i in range(5000)]


def words(seed: int, n: int = 100) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(_VOCAB) for _ in range(n)]


def text(ws: list[str]) -> str:
    return " ".join(ws)


def changed(ws: list[str], position: int) -> list[str]:
    """One word replaced: with 100 words and 5-word shingles, Jaccard = 91/101 = 0.901."""
    out = list(ws)
    out[position] = "replacedword"
    return out


def sft(rows: list[tuple[str, str, str] | tuple[str, str, str, str]]) -> datasets.Dataset:
    records = []
    for row in rows:
        rid, user, source = row[:3]
        answer = row[3] if len(row) > 3 else "ok"
        records.append({"id": rid, "source": source, "meta": "{}",
                        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]})
    return datasets.Dataset.from_list(records, features=FEATURES["sft"])


def verdict_map(ds, verdicts):
    return {ds[i]["id"]: (r, d) for i, (r, d) in enumerate(zip(verdicts.reasons, verdicts.details, strict=True))}


def detail_field(detail: str, key: str) -> str:
    return dict(part.split("=", 1) for part in detail.split() if "=" in part)[key]


A, B, C, D = words(1), words(2), words(3), words(4)


def planted() -> datasets.Dataset:
    return sft([
        ("a", text(A), "web"),
        ("b", text(B), "web"),
        ("a-copy", "  " + text(A).upper().replace(" ", ",  ") + "!", "web"),  # exact after normalising
        ("c", text(C), "human"),
        ("b-near", text(changed(B, 50)), "human"),
        ("d", text(D), "human"),
    ])


def test_planted_exact_and_near_duplicates_are_found_and_distinct_rows_kept():
    ds = planted()
    got = verdict_map(ds, dedup(ds, DedupConfig()))
    assert got["a"] == (None, "") and got["b"] == (None, "") and got["c"] == (None, "") and got["d"] == (None, "")
    reason, detail = got["a-copy"]
    assert reason == "exact_duplicate" and detail_field(detail, "duplicate_of") == "a"
    assert detail_field(detail, "method") == "exact-hash" and float(detail_field(detail, "similarity")) == 1.0
    reason, detail = got["b-near"]
    assert reason == "near_duplicate" and detail_field(detail, "duplicate_of") == "b"
    # a MinHash estimate of a 0.901 pair: within 5 standard errors (0.026 each)
    assert abs(float(detail_field(detail, "similarity")) - 91 / 101) < 0.13


def test_keep_policies_pick_the_survivor():
    ds = sft([
        ("short-web", text(B), "web", "ok"),
        ("long-human", text(changed(B, 30)), "human", "a much longer answer " * 10),
        ("other", text(C), "web", "ok"),
    ])
    first = verdict_map(ds, dedup(ds, DedupConfig(keep="first")))
    assert first["short-web"][0] is None and detail_field(first["long-human"][1], "duplicate_of") == "short-web"
    longest = verdict_map(ds, dedup(ds, DedupConfig(keep="longest")))
    assert longest["long-human"][0] is None and detail_field(longest["short-web"][1], "duplicate_of") == "long-human"
    ranked = verdict_map(ds, dedup(ds, DedupConfig(keep="source-priority", source_priority=["human", "web"])))
    assert ranked["long-human"][0] is None and ranked["short-web"][0] == "near_duplicate"
    assert all(v[0] is None for k, v in ranked.items() if k == "other")


def test_keep_policy_applies_to_exact_groups_and_ties_go_to_the_first_row():
    ds = sft([("x1", text(A), "web"), ("x2", text(A), "human"), ("x3", text(A), "human")])
    got = verdict_map(ds, dedup(ds, DedupConfig(keep="source-priority", source_priority=["human"])))
    assert got["x2"][0] is None
    assert {detail_field(got[k][1], "duplicate_of") for k in ("x1", "x3")} == {"x2"}


def test_modes_exact_only_and_near_only():
    ds = planted()
    exact = verdict_map(ds, dedup(ds, DedupConfig(mode="exact")))
    assert exact["a-copy"][0] == "exact_duplicate" and exact["b-near"][0] is None
    near = verdict_map(ds, dedup(ds, DedupConfig(mode="near")))
    assert near["a-copy"][0] == "near_duplicate" and float(detail_field(near["a-copy"][1], "similarity")) == 1.0
    assert near["b-near"][0] == "near_duplicate"


def test_rows_with_no_text_after_normalising_are_not_duplicates():
    ds = sft([("p1", "!!!", "web"), ("p2", "?? ...", "web"), ("p3", "—", "web"), ("a", text(A), "web")])
    verdicts = dedup(ds, DedupConfig())
    assert list(verdicts.reasons) == [None] * 4
    assert verdicts.stats["empty_text_rows"] == 3


def test_same_input_and_config_give_the_same_kept_rows():
    ds = planted()
    for config in (DedupConfig(), DedupConfig(hash="datasketch", verify=True, keep="longest")):
        first, second = dedup(ds, config), dedup(ds, config)
        assert list(first.reasons) == list(second.reasons) and list(first.details) == list(second.details)


def test_verify_drops_planted_false_positive_candidates():
    half = A[:50] + words(9, 50)  # shares half its words in one run: Jaccard 46/146 with A
    ds = sft([("a", text(A), "web"), ("half", text(half), "web"), ("b", text(B), "web"),
              ("b-near", text(changed(B, 70)), "web")])
    # one-row bands: any equal minimum makes a candidate, so `half` is certainly one
    loose = DedupConfig(bands=64, rows=1)
    unverified = verdict_map(ds, dedup(ds, loose.model_copy(update={"verify": False})))
    assert unverified["half"][0] == "near_duplicate"
    assert detail_field(unverified["half"][1], "method") == "minhash"
    verdicts = dedup(ds, loose)  # verification is the default
    verified = verdict_map(ds, verdicts)
    assert verified["half"] == (None, "") and verified["a"] == (None, "")
    assert verdicts.stats["near"]["pairs_below_threshold"] >= 1
    reason, detail = verified["b-near"]
    assert reason == "near_duplicate" and detail_field(detail, "method") == "jaccard"
    assert detail_field(detail, "similarity") == f"{91 / 101:.3f}"


def test_against_removes_rows_duplicating_the_reference_and_reuses_cached_signatures(tmp_path, monkeypatch):
    reference = tmp_path / "reference.jsonl"
    save_records(sft([("ref-a", text(A), "old"), ("ref-b", text(B), "old"), ("ref-d", text(D), "old")]), reference)
    new = sft([("new-a", text(A), "new"), ("new-b", text(changed(B, 10)), "new"), ("new-c", text(C), "new")])
    calls = []
    original = minhash.signatures_of_normalised
    monkeypatch.setattr(minhash, "signatures_of_normalised", lambda d, o, c: calls.append(len(o) - 1) or original(d, o, c))
    cache = tmp_path / "cache"

    first = dedup(new, DedupConfig(), against=reference, cache_dir=cache)
    got = verdict_map(new, first)
    assert got["new-a"][0] == "exact_duplicate" and detail_field(got["new-a"][1], "duplicate_of") == "ref-a"
    assert "kept_in=reference" in got["new-a"][1]
    assert got["new-b"][0] == "near_duplicate" and detail_field(got["new-b"][1], "duplicate_of") == "ref-b"
    assert got["new-c"][0] is None
    assert sorted(calls) == [3, 3] and first.stats["against"]["cache_hit"] is False
    assert len(list(cache.glob("reference-*.npz"))) == 1

    calls.clear()
    second = dedup(new, DedupConfig(), against=reference, cache_dir=cache)
    assert calls == [3], "the reference must come from the cache, only the new rows are hashed"
    assert second.stats["against"]["cache_hit"] is True
    assert list(second.reasons) == list(first.reasons) and list(second.details) == list(first.details)

    calls.clear()
    dedup(new, DedupConfig(num_perm=64), against=reference, cache_dir=cache)  # other config: other key
    assert sorted(calls) == [3, 3]


def test_report_reconciles_and_has_the_cluster_histogram(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ds = sft([
        ("b", text(B), "web"), ("b1", text(changed(B, 20)), "web"), ("b2", text(changed(B, 80)), "forum"),
        ("c", text(C), "web"), ("c1", text(changed(C, 50)), "forum"),
        ("d", text(D), "web"), ("d-copy", text(D), "forum"), ("a", text(A), "web"),
    ])
    save_records(ds, src)
    result = dedup_file(src, out, DedupConfig(verify=True))
    report = json.loads((tmp_path / "out.report.json").read_text())
    rejects = [json.loads(line) for line in (tmp_path / "out.rejects.jsonl").read_text().splitlines()]
    kept = out.read_text().splitlines()
    assert report["rows_in"] == 8 == len(kept) + len(rejects) and report["rows_out"] == len(kept) == 4
    assert report["rejected"] == {"exact_duplicate": 1, "near_duplicate": 3}
    details = report["details"]
    assert details["near"]["cluster_size_histogram"] == {"2": 1, "3": 1}
    assert details["removed_per_source"] == {"forum": {"exact_duplicate": 1, "near_duplicate": 2},
                                             "web": {"exact_duplicate": 0, "near_duplicate": 1}}
    largest = details["largest_clusters"][0]
    assert largest["size"] == 3 and largest["kept"]["id"] == "b"
    assert {e["id"] for e in largest["examples"]} == {"b1", "b2"}
    assert {r["id"] for r in rejects} == {"b1", "b2", "c1", "d-copy"}
    assert all(r["row"]["id"] == r["id"] and "duplicate_of=" in r["detail"] for r in rejects)
    assert result.report.rows_out == 4


def test_cli_dedup_end_to_end(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "clean.parquet"
    save_records(planted(), src)
    result = CliRunner().invoke(app, ["curate", "dedup", str(src), "-o", str(out), "--verify", "--hash", "datasketch",
                                      "--keep", "source-priority", "--source-priority", "human,web"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "clean.report.json").read_text())
    rejects = [json.loads(line) for line in (tmp_path / "clean.rejects.jsonl").read_text().splitlines()]
    assert report["rows_in"] == 6 and report["rows_out"] == 4 and len(rejects) == 2
    assert {r["id"]: detail_field(r["detail"], "duplicate_of") for r in rejects} == {"a-copy": "a", "b": "b-near"}
    assert datasets.Dataset.from_parquet(str(out)).num_rows == 4


def test_cli_no_verify_gives_minhash_clusters(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "clean.jsonl"
    save_records(planted(), src)
    result = CliRunner().invoke(app, ["curate", "dedup", str(src), "-o", str(out), "--no-verify"])
    assert result.exit_code == 0, result.output
    rejects = {json.loads(line)["id"]: json.loads(line)["detail"]
               for line in (tmp_path / "clean.rejects.jsonl").read_text().splitlines()}
    assert detail_field(rejects["b-near"], "method") == "minhash"
    report = json.loads((tmp_path / "clean.report.json").read_text())
    assert report["config"]["verify"] is False
    assert (report["details"]["near"]["bands"], report["details"]["near"]["rows"]) == (14, 8)


def test_cli_rejects_inconsistent_options_in_one_line(tmp_path):
    src = tmp_path / "in.jsonl"
    save_records(planted(), src)
    result = CliRunner().invoke(app, ["curate", "dedup", str(src), "-o", str(tmp_path / "o.jsonl"), "--bands", "20", "--rows", "20"])
    assert result.exit_code != 0 and "exceeds num_perm" in str(result.exception)


@pytest.mark.parametrize("on,expected", [("user", "u1\nu2"), ("prompt", "u1\na1\nu2"),
                                         ("assistant", "a1\na2"), ("conversation", "sys\nu1\na1\nu2\na2")])
def test_text_views_of_a_multi_turn_conversation(on, expected):
    from postmix.curate.textview import view_texts

    ds = datasets.Dataset.from_list([{"id": "x", "source": "s", "meta": "{}", "messages": [
        {"role": "system", "content": "sys"}, {"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"}, {"role": "assistant", "content": "a2"}]}], features=FEATURES["sft"])
    sliced = ds.select([0, 0]).with_format("arrow")[1:]  # a slice with an offset, as batches are
    assert view_texts(sliced, "sft", on).to_pylist() == [expected]


def test_rlvr_prompts_dedup_and_have_no_assistant_view():
    from postmix.curate.textview import UnsupportedViewError

    rows = [{"id": i, "source": "s", "meta": "{}", "ground_truth": "1", "verifier": "math", "constraints": None,
             "prompt": [{"role": "user", "content": t}]} for i, t in (("p", text(A)), ("q", text(changed(A, 3))))]
    ds = datasets.Dataset.from_list(rows, features=FEATURES["rlvr"])
    assert list(dedup(ds, DedupConfig(on="prompt")).reasons) == [None, "near_duplicate"]
    with pytest.raises(UnsupportedViewError):
        dedup(ds, DedupConfig(on="assistant"))


@pytest.mark.parametrize("on", ["user", "prompt", "assistant", "conversation"])
def test_every_text_view_of_preference_records(on):
    from postmix.curate.textview import view_texts

    ds = datasets.Dataset.from_list([{
        "id": "p", "source": "s", "meta": "{}", "judge": "{}", "chosen_score": None, "rejected_score": None,
        "chosen_model": None, "rejected_model": None,
        "prompt": [{"role": "user", "content": "q"}],
        "chosen": [{"role": "assistant", "content": "good"}],
        "rejected": [{"role": "assistant", "content": "bad"}]}], features=FEATURES["preference"])
    (text_,) = view_texts(ds.with_format("arrow")[:], "preference", on).to_pylist()
    assert "q" in text_ if on in ("user", "prompt", "conversation") else "q" not in text_
    assert ("good" in text_) == (on in ("assistant", "conversation"))


def test_a_source_priority_without_keep_source_priority_is_refused():
    with pytest.raises(ValueError, match="only used with keep=source-priority"):
        DedupConfig(source_priority=["human"])
    assert DedupConfig(keep="source-priority", source_priority=["human"]).source_priority == ["human"]
