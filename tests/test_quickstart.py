"""The README's main job: the quickstart runs offline to the end, and with an endpoint adds the
preference branch (generate -> rate -> pairs -> preference mix -> DPO)."""

import json
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from postmix.cli import app
from postmix.pipeline.quickstart import HOW_TO_ENABLE
from postmix.schemas import StepReport
from postmix.schemas.eval import read_result


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart")
    result = CliRunner().invoke(app, ["quickstart", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_offline_quickstart_runs_every_stage_and_reports_reconcile(offline_run):
    out, printed = offline_run
    summary = json.loads((out / "last_run.json").read_text())
    assert list(summary) == ["raw", "filtered", "deduped", "clean", "sft_mix", "tiny_model", "sft",
                             "eval_sft", "sft_mix_no_math", "sft_no_math", "eval_no_math",
                             "leaderboard"]
    assert HOW_TO_ENABLE.split(":")[0] in printed
    rows = None
    for name in ("raw", "filtered", "deduped", "clean"):
        report = StepReport.read(summary[name]["outputs"]["report"])
        if rows is not None:
            assert report.rows_in == rows  # each stage reads exactly what the previous one kept
        rows = report.rows_out
        rejects = Path(summary[name]["outputs"]["rejects"]).read_text().splitlines()
        assert len(rejects) == report.rejected_total
    clean_rejects = [json.loads(r) for r in Path(summary["clean"]["outputs"]["rejects"]).read_text().splitlines()]
    assert clean_rejects and all(r["reason"] == "contaminated" for r in clean_rejects)
    assert StepReport.read(summary["deduped"]["outputs"]["report"]).rejected.get("near_duplicate", 0) > 0
    card = json.loads(Path(summary["sft"]["outputs"]["run_card"]).read_text())
    assert card["mix"] == summary["sft_mix"]["outputs"]["mix"] == "quickstart-sft@1"
    assert card["status"] == "completed"


def test_offline_quickstart_scores_both_variants_and_ends_with_their_leaderboard(offline_run):
    out, printed = offline_run
    summary = json.loads((out / "last_run.json").read_text())
    board = json.loads(Path(summary["leaderboard"]["outputs"]["leaderboard"]).read_text())
    assert board["baseline"] == "quickstart-sft@1"
    rows = [(r["ref"], r["run_id"]) for r in board["rows"]]
    cards = [json.loads(Path(summary[n]["outputs"]["run_card"]).read_text())
             for n in ("sft", "sft_no_math")]
    assert rows == [(c["mix"], c["run_id"]) for c in cards]
    assert rows[1][0] == summary["sft_mix_no_math"]["outputs"]["mix"]
    result = read_result(summary["eval_sft"]["outputs"]["results"])
    score = result.score("gsm8k-sample")
    assert score.items == score.scored + sum(score.rejected.values()) > 0
    assert board["rows"][0]["cells"]["gsm8k-sample"]["score"] == score.score
    # gsm8k-sample was decontaminated against upstream (the clean stage wrote both mixes' source)
    assert board["rows"][1]["cells"]["gsm8k-sample"]["decontaminated"]
    assert board["rows"][1]["diff"]["sources_removed"] == ["math"]
    assert "quickstart-sft-no-math@1 vs quickstart-sft@1" in printed


def test_rerun_is_fully_cached(offline_run):
    out, _ = offline_run
    result = CliRunner().invoke(app, ["quickstart", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert {s["status"] for s in json.loads((out / "last_run.json").read_text()).values()} == {"cached"}


def scripted(body):
    """A stand-in model: plain answers of varied length, and UltraFeedback ratings derived from them."""
    fmt = body.get("response_format")
    text = " ".join(m["content"] for m in body["messages"])
    if not fmt:
        seed = body.get("seed") or 0
        return "Answer: " + " ".join(["step"] * (3 + seed % 17))
    score = 1 + zlib.crc32(text.encode()) % 5
    aspects = fmt["json_schema"]["schema"]["required"]
    return json.dumps({a: {"rationale": "scripted", "score": score} for a in aspects})


def test_with_an_endpoint_the_preference_branch_trains_dpo(offline_run, openai_server, monkeypatch):
    out, _ = offline_run
    monkeypatch.setenv("POSTMIX_API_KEY", "sk-quickstart-secret")
    openai_server.set_responder(scripted)
    # --out relative to the current folder, as in the README (the bundled recipe lives elsewhere)
    monkeypatch.chdir(out.parent)
    result = CliRunner().invoke(app, ["quickstart", "--out", out.name, "--endpoint", openai_server.base_url,
                                      "--model", "fake-model", "--prompts", "12"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "last_run.json").read_text())
    assert summary["sft"]["status"] == "cached"  # the offline part is reused, not retrained
    assert [summary[n]["status"] for n in ("completions", "ratings", "pairs", "pref_mix", "dpo")] == ["ran"] * 5
    generated = StepReport.read(summary["completions"]["outputs"]["report"])
    assert generated.rows_in == 24 and generated.rows_out + generated.rejected_total == 24
    card = json.loads(Path(summary["dpo"]["outputs"]["run_card"]).read_text())
    assert card["mix"] == "quickstart-prefs@1" and card["status"] == "completed"
    written = "".join(p.read_text(errors="ignore") for p in out.rglob("*") if p.is_file() and p.suffix in
                      (".json", ".jsonl", ".yaml", ".txt"))
    assert "sk-quickstart-secret" not in written
    auth = {r.headers.get("Authorization") for r in openai_server.requests if r.path.endswith("/chat/completions")}
    assert auth == {"Bearer sk-quickstart-secret"}


def test_the_quickstart_says_how_to_see_its_mix(offline_run):
    _, printed = offline_run
    line = next(line for line in printed.splitlines() if line.startswith("mix quickstart-sft@1:"))
    command = line.split(": ", 1)[1].split()
    assert command[:4] == ["postmix", "mix", "show", "quickstart-sft@1"]
    shown = CliRunner().invoke(app, command[1:])  # exactly what it told the user to run
    assert shown.exit_code == 0, shown.output
    assert "quickstart-sft@1" in shown.output
