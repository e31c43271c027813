"""The judge verbs as a user runs them: generate -> rate -> pairs, and compare, end to end
through the CLI against the local server; bad options are one-line errors."""

import json
import re
import subprocess
import sys

from typer.testing import CliRunner

from postmix.cli import app

runner = CliRunner()
ASPECTS = ("helpfulness", "instruction_following", "honesty", "truthfulness")


def responder(body):
    content = next(m["content"] for m in body["messages"] if m["role"] == "user")
    if "\n## Response 1" in content:  # compare (rating lists use "### Response 1")
        return json.dumps({"rationale": "r", "winner": "1"})
    if "## Responses" in content:  # per-prompt rating: one entry per listed response
        scores = [int(s) for s in re.findall(r"with score (\d)", content)]
        return json.dumps({"ratings": [{a: {"rationale": "r", "score": s} for a in ASPECTS}
                                       for s in scores]})
    # generation: the model name decides the quality the judge will read
    return f"reply to {content} with score {1 if body['model'] == 'weak' else 5}"


def test_generate_rate_pairs_compare(tmp_path, openai_server):
    openai_server.set_responder(responder)
    pool = tmp_path / "pool.yaml"
    pool.write_text(f"endpoints:\n  - {{name: w, model: weak, base_url: '{openai_server.base_url}'}}\n"
                    f"  - {{name: s, model: strong, base_url: '{openai_server.base_url}'}}\n"
                    "retry: {backoff_base: 0.001}\n")
    judge = tmp_path / "judge.yaml"
    judge.write_text(f"name: j\nmodel: judge\nbase_url: '{openai_server.base_url}'\n")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"q{i}"}) + "\n" for i in range(3)))

    result = runner.invoke(app, ["judge", "generate", str(prompts), "-o", str(tmp_path / "c.jsonl"),
                                 "--endpoints", str(pool), "--n", "2", "--assignment", "round-robin",
                                 "--temperature", "0.9", "--max-tokens", "100"])
    assert result.exit_code == 0, result.output
    assert "in=6 out=6" in result.output
    body = openai_server.chat_requests()[0]
    assert body["temperature"] == 0.9 and body["max_tokens"] == 100

    result = runner.invoke(app, ["judge", "rate", str(tmp_path / "c.jsonl"), "-o", str(tmp_path / "r.jsonl"),
                                 "--endpoints", str(judge), "--mode", "per-prompt"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r.report.json").read_text())["details"]["judge_calls"] == 3

    result = runner.invoke(app, ["judge", "pairs", str(tmp_path / "r.jsonl"), "-o", str(tmp_path / "p.jsonl"),
                                 "--strategy", "best-vs-worst", "--min-margin", "1",
                                 "--aspect", "helpfulness,honesty"])
    assert result.exit_code == 0, result.output
    pairs = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(pairs) == 3
    assert all(p["chosen_model"] == "strong" and p["rejected_model"] == "weak" for p in pairs)
    assert "margins: (0, 0.5] 0" in result.output and "(3, 4] 3" in result.output
    assert "wins-losses by model: strong 3-0, weak 0-3" in result.output
    assert "on-policy side in 0% of pairs" in result.output

    strong = tmp_path / "strong.jsonl"
    weak = tmp_path / "weak.jsonl"
    rows = [json.loads(line) for line in (tmp_path / "c.jsonl").read_text().splitlines()]
    strong.write_text("".join(json.dumps(r) + "\n" for r in rows if r["model"] == "strong"))
    weak.write_text("".join(json.dumps(r) + "\n" for r in rows if r["model"] == "weak"))
    def compare_bodies(out, *options):
        before = len(openai_server.chat_requests())
        result = runner.invoke(app, ["judge", "compare", str(strong), str(weak), "-o",
                                     str(tmp_path / out), "--endpoints", str(judge), *options])
        assert result.exit_code == 0, result.output
        assert "position-flip rate 100.0%" in result.output  # this judge always picks position 1
        bodies = openai_server.chat_requests()[before:]
        assert len(bodies) == 6  # 3 pairs, each in both orders
        return bodies, json.loads((tmp_path / out).with_suffix(".report.json").read_text())

    # defaults: greedy, the server's own max_tokens, overall quality with no rubric block
    bodies, report = compare_bodies("cmp-default.jsonl")
    for body in bodies:
        assert body["temperature"] == 0.0 and "max_tokens" not in body
        assert "## Rubric" not in body["messages"][-1]["content"]
        assert "correct, helpful, honest" in body["messages"][0]["content"]
    assert report["config"]["rubric"] is None and "rubric_aspects" not in report["config"]

    rubric = tmp_path / "brevity.yaml"
    rubric.write_text("name: brief\naspects:\n  - name: brevity\n"
                      "    question: Does it say what is needed and no more?\n")
    for choice, heading in (("ultrafeedback", "### instruction_following"),
                            (str(rubric), "### brevity")):
        bodies, report = compare_bodies(f"cmp-{len(heading)}.jsonl", "--temperature", "0.3",
                                        "--max-tokens", "77", "--rubric", choice)
        for body in bodies:
            assert body["temperature"] == 0.3 and body["max_tokens"] == 77
            content = body["messages"][-1]["content"]
            assert content.startswith("## Rubric") and heading in content
            assert "aspects of the rubric" in body["messages"][0]["content"]
        assert report["config"]["rubric"] == choice
    assert report["config"]["rubric_aspects"] == ["brevity"]


def test_bad_option_is_a_one_line_error(tmp_path):
    rated = tmp_path / "r.jsonl"
    rated.write_text("")
    proc = subprocess.run([sys.executable, "-m", "postmix.cli", "judge", "pairs", str(rated),
                           "-o", str(tmp_path / "p.jsonl"), "--strategy", "best-of-all"],
                          capture_output=True, text=True)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "--strategy" in lines[0]
    judge = tmp_path / "judge.yaml"
    judge.write_text("name: j\nmodel: judge\nbase_url: 'http://127.0.0.1:9/v1'\n")
    proc = subprocess.run([sys.executable, "-m", "postmix.cli", "judge", "compare", str(rated),
                           str(rated), "-o", str(tmp_path / "c.jsonl"), "--endpoints", str(judge),
                           "--rubric", "no-such-rubric"], capture_output=True, text=True)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1 and "unknown rubric 'no-such-rubric'" in lines[0]
    proc = subprocess.run([sys.executable, "-m", "postmix.cli", "judge", "rate", str(rated),
                           "-o", str(tmp_path / "o.jsonl"), "--endpoints", str(tmp_path / "missing.yaml")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "no such endpoints file" in proc.stderr
