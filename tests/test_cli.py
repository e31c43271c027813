"""The CLI as a user meets it: subprocess for exit codes and one-line errors, CliRunner elsewhere."""

import json
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

from typer.testing import CliRunner

from postmix import __version__
from postmix.cli import app

runner = CliRunner()
SAMPLE = str(files("postmix") / "data" / "sample_sft.jsonl")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "postmix.cli", *args], capture_output=True, text=True)


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_user_error_is_one_line_and_nonzero_and_debug_shows_traceback(tmp_path):
    missing = str(tmp_path / "missing.jsonl")
    result = run_cli("ingest", missing, "-o", str(tmp_path / "o.jsonl"))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no such file" in lines[0] and "Traceback" not in result.stderr
    debug = run_cli("--debug", "ingest", missing, "-o", str(tmp_path / "o.jsonl"))
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_ingest_and_stats_on_the_bundled_sample(tmp_path):
    out = tmp_path / "clean.jsonl"
    result = runner.invoke(app, ["ingest", SAMPLE, "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "clean.report.json").read_text())
    rejects = (tmp_path / "clean.rejects.jsonl").read_text().splitlines()
    written = out.read_text().splitlines()
    raw_rows = [line for line in Path(SAMPLE).read_text(encoding="utf-8").splitlines() if line.strip()]
    assert report["rows_in"] == len(raw_rows) == len(written) + len(rejects)
    assert report["rows_out"] == len(written) and len(rejects) >= 3
    stats = runner.invoke(app, ["stats", str(out), "--json"])
    assert stats.exit_code == 0, stats.output
    data = json.loads(stats.stdout)
    assert data["rows"] == len(written)
    assert sum(data["sources"].values()) == len(written) and len(data["sources"]) >= 3
    roles = data["columns"]["messages"]["roles"]
    assert roles["assistant"] >= len(written)
    table = runner.invoke(app, ["stats", str(out)])
    assert table.exit_code == 0 and "general_chat" in table.output


def test_stats_counts_tokens_with_a_tokenizer(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    rows = [{"messages": [{"role": "user", "content": "hello world"}, {"role": "assistant", "content": "hi there friend"}]}]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = runner.invoke(app, ["stats", str(src), "--json", "--tokenizer", str(tiny_model_dir)])
    assert result.exit_code == 0, result.output
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    expected = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in ("hello world", "hi there friend"))
    assert json.loads(result.stdout)["columns"]["messages"]["tokens_total"] == expected


def test_an_output_path_that_cannot_be_written_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file.jsonl"
    blocker.write_text("x")
    result = run_cli("ingest", SAMPLE, "-o", str(blocker / "out.jsonl"))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr
    assert str(blocker) in lines[0]
