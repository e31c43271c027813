"""Issue 14's fault matrix for the file stages: each curation verb is stopped by SIGKILL or
SIGINT at each point between its writes (``postmix.pausepoints``). Whatever the point, the
output is complete (with its rejects and a reconciling report) or absent, nothing half-written
sits under a final name, an interrupt is one line and exit 130, and a re-run gives exactly
what an undisturbed run gives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from postmix.pausepoints import PAUSE_ENV
from postmix.schemas import StepReport

POINTS = ["stage:loaded", "stage:decided", "stage:rejects_written", "stage:report_written"]
VERBS = {
    "filter": [],
    "dedup": [],
    "decontam": ["--benchmark", "gsm8k-sample"],
}


def write_rows(path: Path, n: int) -> Path:
    with open(path, "w") as handle:
        for i in range(n):
            text = "As an AI language model, I cannot." if i % 7 == 0 else f"answer number {i // 2}"
            handle.write(json.dumps({"id": f"r-{i}", "source": "t", "meta": "{}", "messages": [
                {"role": "user", "content": f"question number {i // 2} about things"},
                {"role": "assistant", "content": text}]}) + "\n")
        handle.write("{not json\n")
    return path


def command(verb: str, data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "postmix.cli", "curate", verb, str(data), "-o", str(out), *VERBS[verb]]


def stopped_at(verb: str, data: Path, out: Path, point: str, sig: signal.Signals) -> subprocess.CompletedProcess:
    return _stop(command(verb, data, out)[3:], point, sig)


def complete_or_absent(out: Path) -> bool:
    """True when complete, False when absent; an assertion error for anything in between."""
    names = {p.name for p in out.parent.iterdir()}
    if out.name not in names:
        return False
    report = StepReport.read(out.with_name("out.report.json"))  # reconciles, or it would not load
    rows = len(out.read_text().splitlines())
    rejects = len(out.with_name("out.rejects.jsonl").read_text().splitlines())
    assert (rows, rejects) == (report.rows_out, report.rejected_total)
    assert not [n for n in names if n.endswith(".partial")]
    return True


@pytest.fixture(scope="module")
def clean_runs(tmp_path_factory):
    """Each verb's undisturbed result, to compare re-runs with."""
    folder = tmp_path_factory.mktemp("clean")
    data = write_rows(folder / "in.jsonl", 400)
    results = {}
    for verb in VERBS:
        out = folder / verb / "out.jsonl"
        out.parent.mkdir()
        subprocess.run(command(verb, data, out), check=True, capture_output=True)
        results[verb] = (out.read_text(), out.with_name("out.rejects.jsonl").read_text())
    return data, results


# every point for filter; the first and last write points for the others (the runner they share
# is what is under test, each verb's start-up costs seconds)
CASES = [("filter", point, sig) for point in POINTS for sig in (signal.SIGKILL, signal.SIGINT)]
CASES += [(verb, point, signal.SIGKILL) for verb in ("dedup", "decontam")
          for point in ("stage:decided", "stage:report_written")]
CASES += [("dedup", "stage:rejects_written", signal.SIGINT)]


@pytest.mark.parametrize(("verb", "point", "sig"), CASES,
                         ids=[f"{v}-{p.split(':')[1]}-{s.name}" for v, p, s in CASES])
def test_a_stopped_stage_leaves_its_output_complete_or_absent(clean_runs, tmp_path, verb, point, sig):
    data, clean = clean_runs
    out = tmp_path / "out.jsonl"
    stopped = stopped_at(verb, data, out, point, sig)
    if sig == signal.SIGINT:
        assert stopped.returncode == 130
        assert "Traceback" not in stopped.stderr and len(stopped.stderr.strip().splitlines()) == 1
        assert not complete_or_absent(out)  # interrupted before the output was published
        assert not [p for p in tmp_path.iterdir() if not p.name.endswith(".jsonl")]
    else:
        complete_or_absent(out)
    rerun = subprocess.run(command(verb, data, out), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr  # the dead run's lock went with it
    assert complete_or_absent(out)
    assert (out.read_text(), out.with_name("out.rejects.jsonl").read_text()) == clean[verb]
    assert not list(tmp_path.glob(".*.partial"))  # the killed run's leftovers were cleaned


def _stop(args: list[str], point: str, sig: signal.Signals) -> subprocess.CompletedProcess:
    env = {**os.environ, PAUSE_ENV: f"{point}:60"}
    proc = subprocess.Popen([sys.executable, "-m", "postmix.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("postmix-paused"):
            break
    else:
        raise AssertionError(f"never paused at {point}: {proc.stderr.read()}")
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_stopped_ingest_leaves_no_output_and_reruns_cleanly(tmp_path, sig):
    source = tmp_path / "raw.jsonl"
    source.write_text("".join(json.dumps({"prompt": f"p{i}", "completion": f"c{i}"}) + "\n" for i in range(300))
                      + "{not json\n")
    out = tmp_path / "out" / "out.parquet"
    stopped = _stop(["ingest", str(source), "-o", str(out)], "ingest:rows_written", sig)
    if sig == signal.SIGINT:
        assert stopped.returncode == 130 and len(stopped.stderr.strip().splitlines()) == 1
    assert not out.exists()  # written rows are in a .partial, never under the final name
    assert not (out.parent / "out.report.json").exists()
    rerun = subprocess.run([sys.executable, "-m", "postmix.cli", "ingest", str(source), "-o", str(out)],
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    report = StepReport.read(out.parent / "out.report.json")
    assert (report.rows_in, report.rows_out, report.rejected) == (301, 300, {"malformed_json": 1})


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_stopped_generate_publishes_nothing_and_the_rerun_sends_nothing_again(tmp_path, sig):
    from postmix.testing.openai_server import FakeOpenAIServer

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"question {i}"}) + "\n" for i in range(30)))
    with FakeOpenAIServer() as server:
        pool = tmp_path / "pool.yaml"
        pool.write_text(f"endpoints:\n  - {{name: a, model: fake-model, base_url: '{server.base_url}'}}\n")
        args = ["judge", "generate", str(prompts), "-o", str(tmp_path / "c.jsonl"), "--endpoints", str(pool),
                "--n", "2"]
        stopped = _stop(args, "model_stage:answered", sig)
        if sig == signal.SIGINT:
            assert stopped.returncode == 130 and len(stopped.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "c.jsonl").exists()
        sent = len(server.requests)
        rerun = subprocess.run([sys.executable, "-m", "postmix.cli", *args], capture_output=True, text=True)
        assert rerun.returncode == 0, rerun.stderr
        assert len(server.requests) == sent  # every answer came from the request cache
    rows = [json.loads(line) for line in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert len(rows) == 60 and len({r["id"] for r in rows}) == 60
