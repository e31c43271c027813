"""The recipe runner: content-addressed stages, skipped when cached, resumed after a failure."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from postmix.cli import app
from postmix.errors import ConfigError, PostmixError
from postmix.pipeline import STAGE_TYPES, load_recipe, plan, run_recipe, stage_type

CALLS: list[str] = []


@stage_type("test_upper", "test-only: upper-case every assistant turn")
def _upper(ctx):
    import datasets

    from postmix.io import load_records, save_records

    CALLS.append(ctx.stage.name)
    if ctx.stage.config.get("fail_marker") and (ctx.recipe_dir / ctx.stage.config["fail_marker"]).exists():
        raise PostmixError("asked to fail")
    ds, _, _ = load_records(ctx.inputs[0])
    rows = ds.to_list()
    for row in rows:
        row["messages"][-1]["content"] = row["messages"][-1]["content"].upper()
    out = ctx.out_dir / "upper.jsonl"
    save_records(datasets.Dataset.from_list(rows, features=ds.features), out)
    return {"data": str(out)}


def write_recipe(tmp_path, stages):
    (tmp_path / "raw.jsonl").write_text(
        "".join(json.dumps({"prompt": f"p{i}", "completion": f"c{i}"}) + "\n" for i in range(4)))
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "stages": stages}))
    return path


STAGES = [
    {"name": "raw", "run": "ingest", "input": "raw.jsonl"},
    {"name": "upper", "run": "test_upper", "input": "raw", "config": {"fail_marker": "FAIL"}},
]


def test_rerun_skips_finished_stages_and_failure_resumes_at_the_failed_one(tmp_path):
    CALLS.clear()
    recipe_path = write_recipe(tmp_path, STAGES)
    recipe = load_recipe(recipe_path)
    (tmp_path / "FAIL").write_text("")
    with pytest.raises(PostmixError, match="stage 'upper' failed"):
        run_recipe(recipe, tmp_path / "work", recipe_dir=tmp_path, echo=lambda _: None)
    assert [p.cached for p in plan(recipe, tmp_path / "work", tmp_path)] == [True, False]
    (failed,) = (tmp_path / "work" / "stages").glob("upper-*")
    assert not (failed / "stage.json").exists()  # a failed attempt is never taken for finished
    (tmp_path / "FAIL").unlink()
    result = run_recipe(recipe, tmp_path / "work", recipe_dir=tmp_path, echo=lambda _: None)
    assert [s["status"] for s in result.stages.values()] == ["cached", "ran"]
    lines = Path(result.stages["upper"]["outputs"]["data"]).read_text().splitlines()
    out = [json.loads(line) for line in lines]
    assert [r["messages"][-1]["content"] for r in out] == ["C0", "C1", "C2", "C3"]
    again = run_recipe(recipe, tmp_path / "work", recipe_dir=tmp_path, echo=lambda _: None)
    assert [s["status"] for s in again.stages.values()] == ["cached", "cached"]
    assert CALLS == ["upper", "upper"]


def test_changing_an_input_file_or_config_changes_the_keys_downstream(tmp_path):
    recipe_path = write_recipe(tmp_path, STAGES)
    first = [p.key for p in plan(load_recipe(recipe_path), tmp_path / "w", tmp_path)]
    with open(tmp_path / "raw.jsonl", "a") as handle:
        handle.write(json.dumps({"prompt": "new", "completion": "row"}) + "\n")
    second = [p.key for p in plan(load_recipe(recipe_path), tmp_path / "w", tmp_path)]
    assert first[0] != second[0] and first[1] != second[1]
    stages = [STAGES[0], {**STAGES[1], "config": {"fail_marker": "OTHER"}}]
    third = [p.key for p in plan(load_recipe(write_recipe(tmp_path, stages)), tmp_path / "w", tmp_path)]
    assert third[1] != second[1]


def test_recipe_errors_are_one_line_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown run 'nope'"):
        load_recipe(write_recipe(tmp_path, [{"name": "a", "run": "nope"}]))
    with pytest.raises(ConfigError, match="used twice"):
        load_recipe(write_recipe(tmp_path, [STAGES[0], STAGES[0]]))
    bad_input = write_recipe(tmp_path, [{"name": "a", "run": "ingest", "input": "missing.jsonl"}])
    with pytest.raises(ConfigError, match="neither an earlier stage nor an existing path"):
        plan(load_recipe(bad_input), tmp_path / "w", tmp_path)
    assert "ingest" in STAGE_TYPES


def test_dry_run_prints_the_plan_without_running(tmp_path):
    recipe_path = write_recipe(tmp_path, STAGES)
    result = CliRunner().invoke(app, ["run", str(recipe_path), "--output", str(tmp_path / "w"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "to run" in result.output and "upper" in result.output
    assert not (tmp_path / "w").exists()


def test_bundled_recipes_validate_in_a_dry_run():
    """Every stage config of the shipped recipes is checked against the library's config models."""
    root = Path(__file__).resolve().parents[1]
    for recipe in (root / "recipes" / "tulu3.yaml", root / "recipes" / "ablation.yaml",
                   root / "postmix" / "data" / "recipes" / "quickstart.yaml"):
        result = CliRunner().invoke(app, ["run", str(recipe), "--dry-run", "--output", "unused-dir"])
        assert result.exit_code == 0, result.output
        assert "to run" in result.output
    assert not Path("unused-dir").exists()


def test_a_config_typo_fails_at_plan_time(tmp_path):
    stages = [STAGES[0], {"name": "d", "run": "dedup", "input": "raw", "config": {"treshold": 0.9}}]
    with pytest.raises(ConfigError, match="stage 'd' \\(dedup\\).*treshold"):
        plan(load_recipe(write_recipe(tmp_path, stages)), tmp_path / "w", tmp_path)


def test_a_relative_workdir_outside_the_recipe_folder_feeds_a_mix_build(tmp_path, monkeypatch):
    """Stage outputs reach a mix spec, which resolves relative source paths against the recipe's
    folder: with the recipe elsewhere (as the bundled quickstart is) they must still be found,
    and a re-run from another cwd must find the cached outputs."""
    recipe_dir = tmp_path / "recipes"
    recipe_dir.mkdir()
    stages = [STAGES[0], {"name": "mix", "run": "mix_build", "input": "raw",
                          "config": {"name": "m", "kind": "sft", "sources": [{"path": "raw"}]}}]
    recipe = load_recipe(write_recipe(recipe_dir, stages))
    monkeypatch.chdir(tmp_path)
    result = run_recipe(recipe, Path("out"), recipe_dir=recipe_dir, echo=lambda _: None)
    assert result.stages["mix"]["outputs"]["mix"] == "m@1"
    assert Path(result.stages["raw"]["outputs"]["data"]).is_absolute()
    monkeypatch.chdir(recipe_dir)
    again = run_recipe(recipe, tmp_path / "out", recipe_dir=recipe_dir, echo=lambda _: None)
    assert [s["status"] for s in again.stages.values()] == ["cached", "cached"]


def test_the_cli_says_which_stages_ran_and_which_were_cached(tmp_path):
    recipe = write_recipe(tmp_path, STAGES)
    runner = CliRunner()
    first = runner.invoke(app, ["run", str(recipe), "--output", str(tmp_path / "w")])
    second = runner.invoke(app, ["run", str(recipe), "--output", str(tmp_path / "w")])
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert "[run]    raw (ingest)" in first.output and "[cached]" not in first.output
    assert "[cached] raw (ingest)" in second.output and "[cached] upper (test_upper)" in second.output


def test_files_named_in_configs_are_part_of_the_cache_key_and_resolve_from_the_recipe(tmp_path, monkeypatch):
    """A mix source that is a file (not an earlier stage), a decontam benchmark file and a mix
    `home:` are read relative to the recipe's folder from any cwd, and changing such a file
    re-runs the stage that reads it."""
    recipe_dir = tmp_path / "recipes"
    recipe_dir.mkdir()
    extra = recipe_dir / "extra.jsonl"
    extra.write_text("".join(json.dumps({"prompt": f"extra {i}", "completion": f"x{i}"}) + "\n" for i in range(3)))
    bench = recipe_dir / "bench.jsonl"
    bench.write_text(json.dumps({"question": "an unrelated benchmark question about eight tokens or more"}) + "\n")
    stages = [
        STAGES[0],
        {"name": "clean", "run": "decontam", "input": "raw", "config": {"benchmarks": ["b=bench.jsonl:question"]}},
        {"name": "mix", "run": "mix_build", "input": "clean",
         "config": {"name": "m", "kind": "sft", "home": "registry", "sources": [{"path": "clean"}, {"path": "extra.jsonl"}]}},
    ]
    recipe = load_recipe(write_recipe(recipe_dir, stages))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    first = run_recipe(recipe, tmp_path / "w", recipe_dir=recipe_dir, echo=lambda _: None)
    assert first.stages["mix"]["outputs"]["home"] == str(recipe_dir / "registry")
    assert (recipe_dir / "registry").is_dir() and not (elsewhere / "registry").exists()
    keys = [p.key for p in plan(recipe, tmp_path / "w", recipe_dir)]
    with extra.open("a") as handle:
        handle.write(json.dumps({"prompt": "extra 3", "completion": "x3"}) + "\n")
    after_extra = [p.key for p in plan(recipe, tmp_path / "w", recipe_dir)]
    assert after_extra[:2] == keys[:2] and after_extra[2] != keys[2]
    again = run_recipe(recipe, tmp_path / "w", recipe_dir=recipe_dir, echo=lambda _: None)
    assert [s["status"] for s in again.stages.values()] == ["cached", "cached", "ran"]
    assert again.stages["mix"]["outputs"]["mix"] == "m@2"
    bench.write_text(json.dumps({"question": "a different benchmark question with enough tokens here"}) + "\n")
    after_bench = [p.key for p in plan(recipe, tmp_path / "w", recipe_dir)]
    assert after_bench[0] == keys[0] and after_bench[1] != keys[1]


def test_a_recipe_workdir_is_relative_to_the_recipe(tmp_path, monkeypatch):
    recipe_dir = tmp_path / "recipes"
    recipe_dir.mkdir()
    path = write_recipe(recipe_dir, STAGES[:1])
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**data, "workdir": "runs"}))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output
    assert (recipe_dir / "runs" / "last_run.json").exists() and not (tmp_path / "runs").exists()


def test_a_tiny_model_option_typo_fails_at_plan_time(tmp_path):
    stages = [{"name": "m", "run": "tiny_model", "config": {"sed": 1}}]
    with pytest.raises(ConfigError, match="stage 'm' \\(tiny_model\\).*unknown tiny_model options \\['sed'\\]"):
        plan(load_recipe(write_recipe(tmp_path, stages)), tmp_path / "w", tmp_path)


def test_a_home_with_a_tilde_is_the_users_not_under_the_recipe(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    recipe_dir = tmp_path / "recipes"
    recipe_dir.mkdir()
    stages = [STAGES[0], {"name": "mix", "run": "mix_build", "input": "raw",
                          "config": {"name": "m", "kind": "sft", "home": "~/registry", "sources": [{"path": "raw"}]}}]
    result = run_recipe(load_recipe(write_recipe(recipe_dir, stages)), tmp_path / "w", recipe_dir=recipe_dir,
                        echo=lambda _: None)
    assert result.stages["mix"]["outputs"]["home"] == str(tmp_path / "home" / "registry")
