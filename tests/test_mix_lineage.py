"""Eval results in the lineage (mix version -> run -> scores) and the leaderboard built on them,
with EvalResults made by hand: what the registry, the run card, `mix show`, `mix report` and
`postmix leaderboard` say of them."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from postmix import mix
from postmix.cli import app
from postmix.errors import PostmixError
from postmix.mix.comparison import MIN_PAIRED, LeaderboardError, paired_bootstrap, step_changes
from postmix.mix.comparison_html import write_leaderboard_html
from postmix.schemas.eval import BenchmarkScore, EvalResult, ItemResult, write_result

runner = CliRunner()


def write_source(path: Path, prefix: str, n: int) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            handle.write(json.dumps({"id": f"{prefix}-{i:03d}", "source": prefix, "meta": "{}",
                                     "messages": [
                                         {"role": "user", "content": f"{prefix} asks thing {i}"},
                                         {"role": "assistant", "content": f"reply {i}"}]}) + "\n")


@pytest.fixture
def registry(tmp_path):
    """m@1: chat + math, decontaminated against gsm8k-sample; m@2: math dropped, no decontam."""
    write_source(tmp_path / "chat.jsonl", "chat", 30)
    write_source(tmp_path / "math.jsonl", "math", 20)
    home = tmp_path / "reg"
    decontam = [{"decontam": {"benchmarks": ["gsm8k-sample"]}}]
    both = {"name": "m", "kind": "sft", "global_steps": decontam,
            "sources": [{"name": "chat", "path": "chat.jsonl", "count": 25},
                        {"name": "math", "path": "math.jsonl"}]}
    mix.build(both, home=home, base=tmp_path)
    chat_only = {"name": "m", "kind": "sft", "sources": [{"name": "chat", "path": "chat.jsonl"}]}
    mix.build(chat_only, home=home, base=tmp_path)
    return tmp_path, home


def make_run(folder: Path, home: Path, ref: str, run_id: str) -> Path:
    run_dir = folder / run_id
    run_dir.mkdir()
    card = {"run_id": run_id, "method": "sft", "model": "tiny", "mix": ref,
            "output_dir": str(run_dir), "status": "completed"}
    (run_dir / "run_card.json").write_text(json.dumps(card))
    mix.record_run(ref, card, home=home)
    return run_dir


def score(benchmark: str, value: float, half: float = 0.05, items: int = 40,
          items_file: str | None = None) -> BenchmarkScore:
    return BenchmarkScore(benchmark=benchmark, metric="accuracy", score=value,
                          ci_low=value - half, ci_high=value + half, items=items, scored=items,
                          items_file=items_file)


def write_eval(folder: Path, scores: list[BenchmarkScore], *, run_dir: Path | None = None,
               run_id: str | None = None, ref: str | None = None,
               items: dict[str, list[float]] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, values in (items or {}).items():
        with open(folder / f"{name}.items.jsonl", "w", encoding="utf-8") as handle:
            for i, value in enumerate(values):
                item = ItemResult(id=f"q{i}", prompt=f"q{i}", response="r", verdict=value == 1.0,
                                  score=value)
                handle.write(item.model_dump_json() + "\n")
    result = EvalResult(model=str(run_dir or "somewhere"), model_kind="run" if run_dir else "hub",
                        run_id=run_id, run_dir=str(run_dir) if run_dir else None, mix=ref,
                        scores=scores)
    return write_result(folder, result)


# ---------------------------------------------------------------------------- recording


def test_an_eval_is_recorded_against_its_run_and_version_and_on_the_run_card(registry):
    folder, home = registry
    run_dir = make_run(folder, home, "m@1", "run-a")
    path = write_eval(folder / "eval-a", [score("gsm8k-sample", 0.4)], run_dir=run_dir,
                      run_id="run-a", ref="m@1")
    entry = mix.record_eval(path, home=home)
    assert (entry["ref"], entry["run_id"]) == ("m@1", "run-a")
    recorded = mix.Registry(home).evals("m", 1)
    assert [(e["run_id"], e["result"]["scores"][0]["score"]) for e in recorded] == [("run-a", 0.4)]
    assert mix.Registry(home).evals("m", 2) == []
    card = json.loads((run_dir / "run_card.json").read_text())
    assert card["evals"][0]["scores"]["gsm8k-sample"]["score"] == 0.4
    assert card["evals"][0]["results"] == str(path.absolute())
    # the same results file recorded again (a re-scored eval) replaces its row and its card entry
    write_eval(folder / "eval-a", [score("gsm8k-sample", 0.5)], run_dir=run_dir, run_id="run-a",
               ref="m@1")
    mix.record_eval(folder / "eval-a", home=home)
    assert [e["result"]["scores"][0]["score"] for e in mix.Registry(home).evals()] == [0.5]
    card = json.loads((run_dir / "run_card.json").read_text())
    assert [e["scores"]["gsm8k-sample"]["score"] for e in card["evals"]] == [0.5]


def test_the_version_comes_from_the_registered_run_or_the_run_card(registry):
    folder, home = registry
    run_dir = make_run(folder, home, "m@2", "run-b")
    by_run_id = write_eval(folder / "e1", [score("gsm8k-sample", 0.3)], run_id="run-b")
    assert mix.record_eval(by_run_id, home=home)["ref"] == "m@2"
    by_card = write_eval(folder / "e2", [score("gsm8k-sample", 0.3)], run_dir=run_dir)
    entry = mix.record_eval(by_card, home=home)
    assert (entry["ref"], entry["run_id"]) == ("m@2", "run-b")


def test_a_result_that_names_no_pinned_version_is_refused(registry):
    folder, home = registry
    nothing = write_eval(folder / "e1", [score("gsm8k-sample", 0.3)])
    with pytest.raises(PostmixError, match="--mix name@N"):
        mix.record_eval(nothing, home=home)
    with pytest.raises(PostmixError, match="pin it as name@N"):
        mix.record_eval(nothing, home=home, mix="m")
    with pytest.raises(PostmixError, match="no version 9"):
        mix.record_eval(nothing, home=home, mix="m@9")
    assert mix.Registry(home).evals() == []
    # given by hand, it is recorded without a run
    assert mix.record_eval(nothing, home=home, mix="m@1")["run_id"] == ""


def test_mix_show_report_and_record_eval_verb_list_the_scores(registry):
    folder, home = registry
    make_run(folder, home, "m@1", "run-a")
    path = write_eval(folder / "eval-a", [score("gsm8k-sample", 0.375)], run_id="run-a")
    result = runner.invoke(app, ["mix", "record-eval", str(path), "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert "against m@1 run run-a" in result.output
    shown = runner.invoke(app, ["mix", "show", "m@1", "--home", str(home), "--json"])
    evals = json.loads(shown.stdout)["evals"]
    assert [(e["run_id"], e["result"]["scores"][0]["benchmark"]) for e in evals] == [
        ("run-a", "gsm8k-sample")]
    table = runner.invoke(app, ["mix", "show", "m@1", "--home", str(home)]).output
    assert "evaluations" in table and "0.375" in table
    page = mix.report("m@1", folder / "report.html", home=home).read_text()
    evaluations = page.split("<h2>Evaluations</h2>")[1]
    assert "gsm8k-sample" in evaluations and "0.375" in evaluations and "run-a" in evaluations


def test_postmix_eval_of_a_run_records_itself_in_the_lineage(registry, tiny_model_dir):
    folder, home = registry
    run_dir = folder / "run"
    shutil.copytree(tiny_model_dir, run_dir)
    card = {"run_id": "run-e", "method": "sft", "mix": "m@2", "output_dir": str(run_dir),
            "status": "completed"}
    (run_dir / "run_card.json").write_text(json.dumps(card))
    mix.record_run("m@2", card, home=home)
    out = folder / "eval"
    result = runner.invoke(app, ["eval", str(run_dir), "--benchmark", "gsm8k-sample", "--limit",
                                 "2", "--max-tokens", "4", "-o", str(out), "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert "recorded against m@2 run run-e" in result.output
    [entry] = mix.Registry(home).evals("m", 2)
    assert (entry["run_id"], entry["results"]) == ("run-e", str(out / "results.json"))
    assert entry["result"]["scores"][0]["items"] == 2
    assert json.loads((run_dir / "run_card.json").read_text())["evals"][0]["mix"] == "m@2"
    # a registry without that version: the scores are written, the lineage says what to do
    other = runner.invoke(app, ["eval", str(run_dir), "--benchmark", "gsm8k-sample", "--limit",
                                "2", "--max-tokens", "4", "-o", str(folder / "eval2"),
                                "--home", str(folder / "empty")])
    assert other.exit_code == 0, other.output
    assert "not recorded in the lineage" in other.output and "mix record-eval" in other.output
    assert (folder / "eval2" / "results.json").exists()


# ---------------------------------------------------------------------------- the leaderboard


def test_the_leaderboard_has_deltas_noise_marks_diffs_and_decontamination_flags(registry):
    folder, home = registry
    run_1, run_2 = make_run(folder, home, "m@1", "r1"), make_run(folder, home, "m@2", "r2")
    write_eval(folder / "e1", [score("gsm8k-sample", 0.40), score("ifeval", 0.60)],
               run_dir=run_1, run_id="r1")
    write_eval(folder / "e2", [score("gsm8k-sample", 0.43), score("ifeval", 0.80)],
               run_dir=run_2, run_id="r2")
    for name in ("e1", "e2"):
        mix.record_eval(folder / name, home=home)
    board = mix.leaderboard(["m"], home=home)
    assert board["baseline"] == "m@1"  # the first version, by default
    assert [(r["ref"], r["run_id"], r["is_baseline"]) for r in board["rows"]] == [
        ("m@1", "r1", True), ("m@2", "r2", False)]
    assert board["rows"][1]["run"]["output_dir"] == str(run_2)
    base, other = (row["cells"] for row in board["rows"])
    assert other["gsm8k-sample"]["delta"] == pytest.approx(0.43 - 0.40)
    assert other["ifeval"]["delta"] == pytest.approx(0.20)
    # [0.38, 0.48] overlaps [0.35, 0.45]; [0.75, 0.85] does not overlap [0.55, 0.65]
    assert other["gsm8k-sample"]["noise"] == {"method": "interval_overlap", "within": True}
    assert other["ifeval"]["noise"] == {"method": "interval_overlap", "within": False}
    assert base["gsm8k-sample"]["delta"] is None and base["gsm8k-sample"]["baseline"]
    # m@1 ran a decontam step against gsm8k-sample; m@2 ran none; neither checked ifeval
    assert base["gsm8k-sample"]["decontaminated"] and not other["gsm8k-sample"]["decontaminated"]
    assert not base["ifeval"]["decontaminated"]
    summary = board["rows"][1]["diff"]
    assert summary["sources_removed"] == ["math"] and summary["sources_added"] == []
    assert summary["counts"] == {"chat": [25, 30]}
    assert summary["steps"] == ["-global decontam"]
    assert summary["spec"] == ["sources.chat.count: 25 -> None"]  # take 25 -> all
    assert summary["rows"] == [45, 30]
    # the other way round: m@2 as the baseline
    flipped = mix.leaderboard(["m"], home=home, baseline="m@v2")
    assert flipped["baseline"] == "m@2" and flipped["rows"][1]["is_baseline"]
    assert flipped["rows"][0]["cells"]["ifeval"]["delta"] == pytest.approx(-0.20)
    assert flipped["rows"][0]["diff"]["sources_added"] == ["math"]


def test_per_item_files_give_a_paired_bootstrap(registry):
    folder, home = registry
    n = 40
    same = [float(i % 2) for i in range(n)]
    better = [1.0] * n  # every item the baseline failed, this one passes: a real difference
    # wide intervals that overlap: only pairing can tell the two apart
    write_eval(folder / "e1", [score("gsm8k-sample", 0.5, 0.3, n, "gsm8k-sample.items.jsonl")],
               ref="m@1", items={"gsm8k-sample": same})
    write_eval(folder / "e2", [score("gsm8k-sample", 1.0, 0.3, n, "gsm8k-sample.items.jsonl")],
               ref="m@2", items={"gsm8k-sample": better})
    mix.record_eval(folder / "e1", home=home)
    mix.record_eval(folder / "e2", home=home)
    cell = mix.leaderboard(home=home)["rows"][1]["cells"]["gsm8k-sample"]
    assert cell["noise"]["method"] == "paired_bootstrap" and cell["noise"]["within"] is False
    assert cell["noise"]["items"] == n
    assert cell["noise"]["mean_difference"] == pytest.approx(0.5)


def test_a_baseline_without_evals_and_a_registry_without_evals_are_refused(registry):
    folder, home = registry
    with pytest.raises(LeaderboardError, match="no eval results recorded"):
        mix.leaderboard(home=home)
    write_eval(folder / "e2", [score("gsm8k-sample", 0.4)], ref="m@2")
    mix.record_eval(folder / "e2", home=home)
    with pytest.raises(LeaderboardError, match="baseline m@1 has no eval"):
        mix.leaderboard(home=home, baseline="m@1")
    with pytest.raises(LeaderboardError, match="pin a version"):
        mix.leaderboard(home=home, baseline="m")
    board = mix.leaderboard(home=home)
    assert board["baseline"] == "m@2" and board["unevaluated"] == ["m@1"]


def test_leaderboard_cli_prints_the_table_json_and_an_html_page_with_its_plot(registry):
    folder, home = registry
    write_eval(folder / "e1", [score("gsm8k-sample", 0.40)], ref="m@1")
    write_eval(folder / "e2", [score("gsm8k-sample", 0.90)], ref="m@2")
    for name in ("e1", "e2"):
        mix.record_eval(folder / name, home=home)
    page = folder / "board.html"
    result = runner.invoke(app, ["leaderboard", "m", "--home", str(home), "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert "+0.500" in result.output and "m@2 vs m@1" in result.output and "-math" in result.output
    text = page.read_text()
    assert "data:image/png;base64," in text and "+0.500!" in text  # m@2: not decontaminated
    as_json = runner.invoke(app, ["leaderboard", "m@1", "m@2", "--home", str(home), "--json"])
    rows = json.loads(as_json.stdout)["rows"]
    assert [r["ref"] for r in rows] == ["m@1", "m@2"]
    only = runner.invoke(app, ["leaderboard", "--home", str(home), "--benchmark", "ifeval"])
    assert isinstance(only.exception, LeaderboardError)
    assert "no eval results recorded for these mixes on ifeval" in str(only.exception)


def test_a_benchmark_counts_as_decontaminated_only_when_every_row_was_checked(tmp_path):
    from postmix.curate.decontam import DecontamConfig, decontaminate_file
    from postmix.mix.comparison import decontaminated_against

    write_source(tmp_path / "chat.jsonl", "chat", 10)
    write_source(tmp_path / "math.jsonl", "math", 10)
    # math.clean.jsonl is the output of a decontam stage run before the mix (matrix beside it)
    decontaminate_file(tmp_path / "math.jsonl", tmp_path / "math.clean.jsonl",
                       DecontamConfig(benchmarks=["gsm8k-sample"]))
    home = tmp_path / "reg"

    def build(chat_steps, math_path="math.jsonl", global_steps=()):
        # a mix name per build: the same rows under one name would give the first version back
        spec = {"name": f"d{len(list(home.glob('mixes/*')))}", "kind": "sft", "global_steps": list(global_steps), "sources": [
            {"name": "chat", "path": "chat.jsonl", "steps": chat_steps},
            {"name": "math", "path": math_path}]}
        return decontaminated_against(mix.build(spec, home=home, base=tmp_path).mix)

    step = {"decontam": {"benchmarks": ["GSM8K-sample"]}}
    assert build([step]) == set()  # math was never checked
    assert build([step], "math.clean.jsonl") == {"gsm8k-sample"}  # by its own step and upstream
    assert build([], "math.clean.jsonl") == set()  # chat was never checked
    assert build([], global_steps=[step]) == {"gsm8k-sample"}


def test_step_changes_name_the_place_the_step_and_the_changed_key():
    def spec(threshold, extra=()):
        dedup = {"step": "dedup", "config": {"threshold": threshold, "mode": "near"}}
        return {"global_steps": [dedup, *extra],
                "sources": [{"name": "chat", "steps": [{"step": "filter", "config": {}}]}]}

    decontam = {"step": "decontam", "config": {"benchmarks": ["gsm8k"]}}
    assert step_changes(spec(0.8), spec(0.7)) == ["global dedup.threshold 0.8->0.7"]
    assert step_changes(spec(0.8), spec(0.8, [decontam])) == ["+global decontam"]
    assert step_changes(spec(0.8, [decontam]), spec(0.8)) == ["-global decontam"]
    assert step_changes(spec(0.8), spec(0.8)) == []


def test_the_page_writes_without_intervals_or_deltas(tmp_path):
    board = {"baseline": "a@1", "benchmarks": ["x"], "unevaluated": [], "rows": [
        {"ref": "a@1", "run_id": None, "is_baseline": True, "diff": None,
         "cells": {"x": {"score": 0.5, "ci_low": None, "ci_high": None, "delta": None,
                         "noise": {"method": None, "within": None}, "decontaminated": True,
                         "baseline": True}}}]}
    text = write_leaderboard_html(board, tmp_path / "b.html").read_text()
    assert "<td>0.500</td>" in text


# ---------------------------------------------------------------------------- paired bootstrap

scores_list = st.lists(st.sampled_from([0.0, 1.0]), min_size=MIN_PAIRED, max_size=60)


@settings(max_examples=40, deadline=None)
@given(scores_list, st.data())
def test_the_paired_interval_holds_the_mean_difference_and_is_zero_for_equal_runs(a, data):
    b = data.draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=len(a), max_size=len(a)))
    first = {f"q{i}": v for i, v in enumerate(a)}
    second = {f"q{i}": v for i, v in enumerate(b)}
    found = paired_bootstrap(first, second, samples=300)
    mean = float(np.mean(np.array(b) - np.array(a)))
    assert found["mean_difference"] == pytest.approx(mean)
    assert found["ci_low"] - 1e-9 <= mean <= found["ci_high"] + 1e-9
    assert -1.0 <= found["ci_low"] <= found["ci_high"] <= 1.0
    same = paired_bootstrap(first, dict(first), samples=300)
    assert same["ci_low"] == same["ci_high"] == 0.0


def test_too_few_shared_items_give_no_paired_interval():
    a = {f"q{i}": 1.0 for i in range(MIN_PAIRED)}
    b = {f"r{i}": 1.0 for i in range(MIN_PAIRED)}  # no item in common
    assert paired_bootstrap(a, b) is None
