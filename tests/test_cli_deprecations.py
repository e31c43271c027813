"""The old spellings keep working for one release: each gives the same library call as the new
spelling, and prints one deprecation line on stderr (once, however often it is repeated)."""

import importlib
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from postmix.cli import app
from postmix.judge.pairs import quality
from postmix.schemas.report import StepReport

runner = CliRunner()
DETAILS = {
    "diversity": {
        "distinct_personas": 0,
        "distinct_2": 0.0,
        "distinct_3": 0.0,
        "near_duplicate_rate": 0.0,
    },
    "cost_usd": 0.0,
    "a_wins": 0,
    "b_wins": 0,
    "ties": 0,
    "win_rate_a": 0.0,
    "position_flip_rate": 0.0,
    "quality": quality([]),  # what a run that kept no pairs reports
}


def _result() -> SimpleNamespace:
    report = StepReport(step="x", rows_in=0, rows_out=0, details=DETAILS)
    return SimpleNamespace(
        report=report,
        output=Path("o.jsonl"),
        rejects=Path("r.jsonl"),
        failures=Path("f.jsonl"),
        stages={},
    )


@pytest.fixture
def calls(monkeypatch):
    """Every library entry point the verbs call, recording its arguments."""
    seen: list = []

    def record(name):
        return lambda *args, **kwargs: seen.append((name, args, kwargs)) or _result()

    # by module path: postmix.judge re-exports functions named like its modules
    for module, name in (
        ("postmix.judge.generate", "generate"),
        ("postmix.judge.rate", "rate"),
        ("postmix.judge.pairs", "make_pairs"),
        ("postmix.judge.compare", "compare"),
        ("postmix.curate.synth", "synthesize"),
        ("postmix.curate.respond", "respond"),
        ("postmix.io", "ingest"),
        ("postmix.mix", "export"),
        ("postmix.pipeline", "run_recipe"),
    ):
        monkeypatch.setattr(importlib.import_module(module), name, record(name))
    monkeypatch.setattr(
        importlib.import_module("postmix.llm"),
        "load_endpoints",
        lambda path: ("endpoints", str(path)),
    )
    monkeypatch.setattr(
        importlib.import_module("postmix.pipeline"),
        "load_recipe",
        lambda path: SimpleNamespace(workdir=None, name="r"),
    )

    class Executor:
        def run_file(self, step, source, output, config, *, format=None, **options):
            seen.append(
                ("run_file", (step.name, source, output, config), {"format": format, **options})
            )
            return _result()

    monkeypatch.setattr(
        importlib.import_module("postmix.curate.executor"),
        "make_executor",
        lambda engine, ray=None: Executor(),
    )
    return seen


CASES = [  # (old arguments, new arguments, the old spelling named in the warning)
    ("judge generate p.jsonl -o c.jsonl --pool E",
     "judge generate p.jsonl -o c.jsonl --endpoints E",
     "--pool"),
    ("judge generate p.jsonl -o c.jsonl -e E --models a --models b",
     "judge generate p.jsonl -o c.jsonl -e E --model a --model b", "--models"),
    ("judge generate p.jsonl c.jsonl -e E",
     "judge generate p.jsonl -o c.jsonl -e E", "positional OUT"),
    ("judge rate c.jsonl -o r.jsonl --judge E",
     "judge rate c.jsonl -o r.jsonl --endpoints E", "--judge"),
    ("judge compare a.jsonl b.jsonl -o v.jsonl --judge E",
     "judge compare a.jsonl b.jsonl -o v.jsonl --endpoints E", "--judge"),
    ("judge compare a.jsonl b.jsonl v.jsonl -e E", "judge compare a.jsonl b.jsonl -o v.jsonl -e E",
     "positional OUT"),
    ("judge pairs r.jsonl -o p.jsonl --aspects helpfulness,honesty",
     "judge pairs r.jsonl -o p.jsonl --aspect helpfulness,honesty", "--aspects"),
    ("judge pairs r.jsonl p.jsonl", "judge pairs r.jsonl -o p.jsonl", "positional OUT"),
    ("curate synth -o s.jsonl --model {endpoints}",
     "curate synth -o s.jsonl --endpoints {endpoints}",
     "--model FILE"),
    ("curate synth -o s.jsonl -e E --model-name m", "curate synth -o s.jsonl -e E --model m",
     "--model-name"),
    ("curate synth s.jsonl -e E", "curate synth -o s.jsonl -e E", "positional OUT"),
    ("curate respond p.jsonl -o s.jsonl --model {endpoints}",
     "curate respond p.jsonl -o s.jsonl --endpoints {endpoints}", "--model FILE"),
    ("curate respond p.jsonl -o s.jsonl -e E --model-name m",
     "curate respond p.jsonl -o s.jsonl -e E --model m", "--model-name"),
    ("curate respond p.jsonl -o s.jsonl -e E --filters none",
     "curate respond p.jsonl -o s.jsonl -e E --filter none", "--filters"),
    ("curate respond p.jsonl s.jsonl -e E",
     "curate respond p.jsonl -o s.jsonl -e E", "positional OUT"),
    ("curate dedup in.jsonl -o o.jsonl --against ref.jsonl --cache-dir c",
     "curate dedup in.jsonl -o o.jsonl --against ref.jsonl --cache c", "--cache-dir"),
    ("curate dedup in.jsonl -o o.jsonl --case-sensitive",
     "curate dedup in.jsonl -o o.jsonl --no-lowercase",
     "--case-sensitive"),
    ("curate decontam in.jsonl -o o.jsonl -b gsm8k --keep-punctuation",
     "curate decontam in.jsonl -o o.jsonl -b gsm8k --no-strip-punctuation", "--keep-punctuation"),
    ("curate filter in.jsonl o.jsonl", "curate filter in.jsonl -o o.jsonl", "positional OUT"),
    ("ingest raw.jsonl clean.jsonl", "ingest raw.jsonl -o clean.jsonl", "positional OUT"),
    ("run recipe.yaml --workdir w", "run recipe.yaml --output w", "--workdir"),
    ("run recipe.yaml -w w", "run recipe.yaml -o w", "-w"),
    ("mix export m@1 -o dir --format jsonl", "mix export m@1 -o dir --to jsonl", "--format"),
    ("mix export m@1 dir", "mix export m@1 -o dir", "positional OUT"),
]


@pytest.mark.parametrize(("old", "new", "spelling"), CASES,
                         ids=[f"{c[0].split()[1]}:{c[2]}" for c in CASES])
def test_old_spelling_works_warns_once_and_matches_the_new_one(old, new, spelling, calls, tmp_path):
    endpoints = tmp_path / "endpoints.yaml"
    endpoints.write_text("name: local\nmodel: m\nbase_url: http://127.0.0.1:9\n")
    old = old.format(endpoints=endpoints).split()
    new = new.format(endpoints=endpoints).split()
    fresh = runner.invoke(app, new)
    assert fresh.exit_code == 0, fresh.output
    assert "deprecated" not in fresh.stderr
    legacy = runner.invoke(app, old)
    assert legacy.exit_code == 0, legacy.output
    warnings = [line for line in legacy.stderr.splitlines() if "deprecated" in line]
    assert len(warnings) == 1 and spelling in warnings[0], legacy.stderr
    assert len(calls) == 2 and calls[0] == calls[1]


def test_both_old_synth_spellings_together(calls, tmp_path):
    endpoints = tmp_path / "endpoints.yaml"
    endpoints.write_text("name: local\nmodel: m\nbase_url: http://127.0.0.1:9\n")
    legacy = runner.invoke(
        app, ["curate", "synth", "out.jsonl", "--model", str(endpoints), "--model-name", "m"]
    )
    fresh = runner.invoke(
        app, ["curate", "synth", "-o", "out.jsonl", "--endpoints", str(endpoints), "--model", "m"]
    )
    assert legacy.exit_code == 0 and fresh.exit_code == 0, legacy.output + fresh.output
    assert len([line for line in legacy.stderr.splitlines() if "deprecated" in line]) == 3
    assert calls[0] == calls[1] and calls[0][1][2].model == "m"


def test_quickstart_out_is_a_first_class_spelling():
    from postmix.cli.command import DEPRECATED

    assert "--out" not in DEPRECATED  # the README's first command must not warn


def test_two_outputs_are_refused(calls):
    result = runner.invoke(app, ["judge", "pairs", "r.jsonl", "p.jsonl", "-o", "q.jsonl"])
    assert result.exit_code != 0 and "two outputs" in str(result.exception)
