"""Ablations as recipes: a base mix and named variants, expanded into mix -> train -> eval stages
per variant and one leaderboard stage whose rows link to the variants' mix versions and runs."""

import copy
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from postmix.cli import app
from postmix.errors import ConfigError
from postmix.pipeline import Recipe, load_recipe, run_recipe
from postmix.pipeline.ablation import Variant, apply_variant, set_path
from postmix.schemas.eval import read_result

BASE = {
    "name": "abl", "kind": "sft", "seed": 0,
    "sources": [{"name": "chat", "path": "raw", "where": {"source": "chat"}, "count": 20},
                {"name": "math", "path": "raw", "where": {"source": "math"}}],
    "global_steps": [{"dedup": {"mode": "near", "threshold": 0.8}}, "filter"],
}


def variant(**values) -> Variant:
    return Variant.model_validate({"name": "v", **values})


def test_a_variant_drops_changes_adds_and_sets_without_touching_the_base():
    base = copy.deepcopy(BASE)
    assert [s["name"] for s in apply_variant(base, variant(drop=["math"]))["sources"]] == ["chat"]
    taken = apply_variant(base, variant(sources={"chat": {"fraction": 0.5}}))["sources"][0]
    assert taken["fraction"] == 0.5 and "count" not in taken  # a take rule replaces the old one
    steps = apply_variant(base, variant(add_steps={"global": [{"decontam": {"benchmarks": ["x"]}}],
                                                   "math": ["filter"]}))
    assert steps["global_steps"][-1] == {"decontam": {"benchmarks": ["x"]}}
    assert steps["sources"][1]["steps"] == ["filter"]
    changed = apply_variant(base, variant(set={"global_steps.dedup.threshold": 0.7,
                                               "sources.math.count": 5,
                                               "global_steps.filter.min_chars": 3}))
    assert changed["global_steps"] == [{"dedup": {"mode": "near", "threshold": 0.7}},
                                       {"filter": {"min_chars": 3}}]
    assert changed["sources"][1]["count"] == 5
    assert base == BASE


@pytest.mark.parametrize(("values", "message"), [
    ({"drop": ["code"]}, "no source 'code'"),
    ({"sources": {"code": {"count": 1}}}, "no source 'code'"),
    ({"add_steps": {"code": ["filter"]}}, "add_steps names no source 'code'"),
    ({"set": {"global_steps.decontam.threshold": 0.5}}, "no item 'decontam'"),
    ({"set": {"seed.value": 1}}, "holds a value, not a mapping"),
    ({"set": {"seed.value.more": 1}}, "holds a value, not a mapping"),
])
def test_a_variant_naming_what_the_base_lacks_is_refused(values, message):
    with pytest.raises(ValueError, match=message):
        apply_variant(BASE, variant(**values))


keys = st.text(alphabet="abcdef", min_size=1, max_size=4)


@given(st.lists(keys, min_size=1, max_size=4), st.integers())
def test_set_path_writes_the_value_where_the_path_reads_it_back(path, value):
    spec: dict = {}
    node = spec
    for key in path[:-1]:
        node = node.setdefault(key, {})
    set_path(spec, ".".join(path), value)
    read = spec
    for key in path:
        read = read[key]
    assert read == value


# ---------------------------------------------------------------------------- a recipe ablation


def write_data(path: Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for source, n in (("chat", 12), ("math", 8)):
            for i in range(n):
                handle.write(json.dumps({"id": f"{source}-{i}", "source": source, "messages": [
                    {"role": "user", "content": f"{source} question {i} " + "word " * i},
                    {"role": "assistant", "content": f"answer number {i}"}]}) + "\n")


def recipe_file(folder: Path, variants: list[dict], eval_config: dict | None = None) -> Path:
    recipe = {
        "name": "abl",
        "stages": [{"name": "raw", "run": "ingest", "input": "data.jsonl"},
                   {"name": "tiny_model", "run": "tiny_model", "config": {"seed": 0}}],
        "ablation": {
            "mix": {"name": "abl", "kind": "sft", "seed": 0, "sources": [
                {"name": "chat", "path": "raw", "where": {"source": "chat"}},
                {"name": "math", "path": "raw", "where": {"source": "math"}}],
                "global_steps": [{"dedup": {"mode": "near", "threshold": 0.8}}]},
            "variants": variants,
            "model": "tiny_model",
            "train": {"run": "train_sft", "config": {"max_steps": 1, "per_device_train_batch_size":
                                                     2, "max_length": 128}},
            "eval": eval_config or EVAL,
        },
    }
    path = folder / "ablation.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


# the tiny model on 10 GSM8K-sample items, up to 16 tokens each, cut at a newline (a random model
# seldom ends an answer itself; a cut one is rejected as truncated): seconds on CPU
EVAL = {"benchmarks": ["gsm8k-sample"], "limit": 10,
        "prompt_formats": {"gsm8k": {"max_tokens": 16, "stop": ["\n"]}}}
VARIANTS = [{"name": "base"}, {"name": "no-math", "drop": ["math"]},
            {"name": "dedup-0.7", "set": {"global_steps.dedup.threshold": 0.7}}]


def test_the_recipe_expands_into_stages_per_variant_and_one_leaderboard(tmp_path):
    write_data(tmp_path / "data.jsonl")
    recipe = load_recipe(recipe_file(tmp_path, VARIANTS))
    names = [s.name for s in recipe.stages]
    assert names == ["raw", "tiny_model", "mix-base", "train-base", "eval-base", "mix-no-math",
                     "train-no-math", "eval-no-math", "mix-dedup-0.7", "train-dedup-0.7",
                     "eval-dedup-0.7", "leaderboard"]
    stages = {s.name: s for s in recipe.stages}
    assert stages["mix-no-math"].config["name"] == "abl-no-math"
    assert stages["mix-no-math"].input == ["raw"]
    assert stages["train-base"].input == ["mix-base", "tiny_model"]
    assert stages["leaderboard"].config == {"baseline": "eval-base"}
    assert [s.name for s in Recipe.model_validate(recipe.model_dump()).stages] == names
    with pytest.raises(ConfigError, match="no source 'code'"):
        load_recipe(recipe_file(tmp_path, [{"name": "a"}, {"name": "b", "drop": ["code"]}]))


def test_a_recipe_ablation_ends_in_a_leaderboard_linked_to_versions_and_runs(tmp_path):
    write_data(tmp_path / "data.jsonl")
    path = recipe_file(tmp_path, VARIANTS[:2], EVAL)
    work = tmp_path / "work"
    result = run_recipe(load_recipe(path), work, recipe_dir=tmp_path, echo=lambda _: None)
    board = json.loads(Path(result.stages["leaderboard"]["outputs"]["leaderboard"]).read_text())
    assert board["baseline"] == result.stages["mix-base"]["outputs"]["mix"] == "abl-base@1"
    for row, name in zip(board["rows"], ["base", "no-math"], strict=True):
        card = json.loads(Path(result.stages[f"train-{name}"]["outputs"]["run_card"]).read_text())
        assert row["ref"] == result.stages[f"mix-{name}"]["outputs"]["mix"] == card["mix"]
        assert row["run_id"] == card["run_id"]
        assert row["run"]["output_dir"] == card["output_dir"]
        assert card["evals"][0]["mix"] == row["ref"]  # the run card lists its score
    base, no_math = board["rows"]
    assert no_math["diff"]["sources_removed"] == ["math"]
    scores = [read_result(result.stages[f"eval-{n}"]["outputs"]["results"]).score("gsm8k-sample")
              for n in ("base", "no-math")]
    assert base["cells"]["gsm8k-sample"]["score"] == scores[0].score
    assert no_math["cells"]["gsm8k-sample"]["delta"] == pytest.approx(scores[1].score
                                                                      - scores[0].score)
    # both per-item files hold the same 10 items: the difference is judged item by item
    assert no_math["cells"]["gsm8k-sample"]["noise"]["method"] == "paired_bootstrap"
    assert no_math["cells"]["gsm8k-sample"]["noise"]["items"] == scores[1].scored
    assert base["cells"]["gsm8k-sample"]["items"] == 10
    assert Path(result.stages["leaderboard"]["outputs"]["html"]).read_text().count("<tr>") == 3
    # a third variant: only its own stages and the leaderboard run; the rest is cached
    path = recipe_file(tmp_path, VARIANTS, EVAL)
    again = run_recipe(load_recipe(path), work, recipe_dir=tmp_path, echo=lambda _: None)
    ran = sorted(name for name, stage in again.stages.items() if stage["status"] == "ran")
    assert ran == ["eval-dedup-0.7", "leaderboard", "mix-dedup-0.7", "train-dedup-0.7"]
    board = json.loads(Path(again.stages["leaderboard"]["outputs"]["leaderboard"]).read_text())
    assert board["rows"][2]["diff"]["steps"] == ["global dedup.threshold 0.8->0.7"]
    # `postmix run` ends with the board (every stage cached now)
    printed = CliRunner().invoke(app, ["run", str(path), "-o", str(work)])
    assert printed.exit_code == 0, printed.output
    tail = printed.output.split("done:")[-1]
    assert "abl-base@1" in tail and "abl-no-math@1 vs abl-base@1" in tail and "-math" in tail


def test_a_training_run_that_names_its_mix_feeds_a_later_training_as_its_model(tmp_path,
                                                                               monkeypatch):
    """DPO after SFT: the SFT stage's outputs name its mix (for the lineage), yet it is the model."""
    import postmix.train
    from postmix.pipeline.recipe import StageSpec
    from postmix.pipeline.registry import StageContext
    from postmix.pipeline.stage_types import _train_stage

    seen = {}

    class Result:
        run_card = {"run_id": "dpo-1", "metrics": {}}

    def fake_train(method, model, **kwargs):
        seen.update(method=method, model=model, mix=kwargs["mix"])
        return Result()

    monkeypatch.setattr(postmix.train, "train", fake_train)
    prefs = {"mix": "prefs@1", "home": str(tmp_path), "data": "p.parquet"}
    sft = {"model": "runs/sft", "mix": "sft@1", "home": str(tmp_path), "run_id": "sft-1"}
    stage = StageSpec(name="dpo", run="train_dpo", input=["pref_mix", "sft"])
    ctx = StageContext(stage, [Path("p.parquet"), Path("runs/sft")], [prefs, sft], tmp_path,
                       tmp_path)
    outputs = _train_stage(ctx, "dpo")
    assert seen == {"method": "dpo", "model": "runs/sft", "mix": "prefs@1"}
    assert (outputs["mix"], outputs["run_id"]) == ("prefs@1", "dpo-1")
