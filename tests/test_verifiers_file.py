"""``train verify``: a file of responses scored per verifier; every row lands in the scores or
the rejects with a reason, and the report reconciles."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from postmix.cli import app
from postmix.io.write import report_path
from postmix.train.verify import verify_file

ROWS = [
    {"id": "g1", "response": "9 * 2 = 18\n#### 18", "ground_truth": "18", "verifier": "gsm8k"},
    {"id": "g2", "response": "The answer is 1,234 dollars.", "ground_truth": "1234", "verifier": "gsm8k"},
    {"id": "g3", "response": "I think 20.", "ground_truth": "18", "verifier": "gsm8k"},
    {"id": "g4", "response": "No idea.", "ground_truth": "18", "verifier": "gsm8k"},
    {"id": "m1", "response": "$\\boxed{0.5}$", "ground_truth": "\\frac{1}{2}", "verifier": "math"},
    {"id": "i1", "response": "short and calm", "ground_truth": "", "verifier": "ifeval",
     "constraints": [json.dumps({"type": "no_commas"})]},
    {"id": "u1", "response": "e4", "ground_truth": "e4", "verifier": "chess"},
    {"id": "u2", "response": "x", "ground_truth": "", "verifier": "ifeval",
     "constraints": [json.dumps({"type": "haiku"})]},
    {"id": "u3", "ground_truth": "18", "verifier": "gsm8k"},
]


def write_rows(path):
    lines = [json.dumps(r) for r in ROWS] + ["{not json"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_verify_file_scores_and_accounts_for_every_row(tmp_path):
    result = verify_file(write_rows(tmp_path / "answers.jsonl"))
    assert result.scores == tmp_path / "answers.scores.jsonl"
    report = result.report
    assert (report.rows_in, report.rows_out) == (10, 6)
    assert report.rejected == {"bad_constraint": 1, "malformed_json": 1, "no_response": 1,
                               "unknown_verifier": 1}
    per = report.details["per_verifier"]
    assert per["gsm8k"] == {"rows": 4, "correct": 2, "accuracy": 0.5, "wrong_reasons": {"no_answer": 1}}
    assert per["math"]["accuracy"] == 1.0 and per["ifeval"]["accuracy"] == 1.0
    assert report.details["accuracy"] == 4 / 6
    scores = [json.loads(line) for line in result.scores.read_text().splitlines()]
    assert [(s["id"], s["correct"]) for s in scores] == [
        ("g1", True), ("g2", True), ("g3", False), ("g4", False), ("m1", True), ("i1", True)]
    rejects = [json.loads(line) for line in result.rejects.read_text().splitlines()]
    assert sorted((r["reason"], r["line"]) for r in rejects) == [
        ("bad_constraint", 8), ("malformed_json", 10), ("no_response", 9), ("unknown_verifier", 7)]
    assert json.loads(report_path(result.scores).read_text())["rows_in"] == 10


def test_verify_cli(tmp_path):
    source = write_rows(tmp_path / "answers.jsonl")
    out = tmp_path / "scored.jsonl"
    result = CliRunner().invoke(app, ["train", "verify", str(source), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "gsm8k" in result.output and "2/4 correct" in result.output
    assert (tmp_path / "scored.report.json").exists() and (tmp_path / "scored.rejects.jsonl").exists()
