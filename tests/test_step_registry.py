"""The step registry and the executors: one declaration makes a step usable in mix specs and
recipes; the engine is an object handed down, never process-wide state."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from pydantic import BaseModel, ConfigDict

from postmix import mix
from postmix.curate.executor import LocalExecutor, make_executor
from postmix.curate.runner import REJECT_FIELDS, Verdicts
from postmix.curate.steps import STEPS, Step, get_step
from postmix.errors import ConfigError, PostmixError
from postmix.pipeline import load_recipe, run_recipe


class EveryNth(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = 3


def drop_every_nth(ds, config, *, kind):
    return Verdicts([f"nth_{config.n}" if i % config.n == 0 else None for i in range(len(ds))],
                    [f"kind={kind}"] * len(ds), {"seen": len(ds)})


NTH = Step("nth", "drop every n-th row", config=f"{__name__}:EveryNth", local=f"{__name__}:drop_every_nth",
           ray=f"{__name__}:drop_every_nth")


def write_rows(path, prefix, n):
    with open(path, "w") as handle:
        for i in range(n):
            handle.write(json.dumps({"id": f"{prefix}-{i:03d}", "source": prefix, "meta": "{}", "messages": [
                {"role": "user", "content": f"{prefix} question {i}"},
                {"role": "assistant", "content": f"answer {i}"}]}) + "\n")
    return path


class SpyExecutor(LocalExecutor):
    """The local decider, counting which steps it was handed."""

    def __init__(self, name="local"):
        self.name = name
        self.steps: list[str] = []

    def decide(self, step, ds, config, *, kind, **options):
        self.steps.append(step.name)
        return super().decide(step, ds, config, kind=kind, **options)


def test_the_built_in_steps_are_declared_once_with_importable_parts():
    assert set(STEPS) == {"filter", "dedup", "decontam"}
    for step in STEPS.values():
        assert issubclass(step.config_class(), BaseModel)
        assert callable(step.decider("local"))
        assert step.description
    assert get_step("dedup").local_only == ("against", "cache_dir")
    with pytest.raises(ConfigError, match="unknown step 'dedupe': use one of decontam, dedup, filter"):
        get_step("dedupe")


def test_a_step_with_a_missing_module_is_one_line():
    step = Step("later", "", config="postmix.curate.not_there:X", local="postmix.curate.not_there:f", ray="x:y")
    with pytest.raises(PostmixError, match="step 'later' needs postmix.curate.not_there"):
        step.config_class()
    step = Step("typo", "", config="postmix.curate.dedup:DedupConfg", local="x:y", ray="x:y")
    with pytest.raises(PostmixError, match="has no DedupConfg"):
        step.config_class()


def test_one_declaration_makes_a_mix_step_and_a_recipe_stage(tmp_path, monkeypatch):
    monkeypatch.setitem(STEPS, "nth", NTH)
    write_rows(tmp_path / "a.jsonl", "a", 30)
    built = mix.build({"name": "m", "kind": "sft", "shuffle": False,
                       "sources": [{"path": "a.jsonl", "steps": [{"nth": {"n": 5}}]}]},
                      home=tmp_path / "home", base=tmp_path)
    assert built.mix.rows == 24
    rejects = pq.read_table(built.mix.path / "rejects.parquet").to_pylist()
    assert {r["reason"] for r in rejects} == {"nth_5"} and len(rejects) == 6
    assert all(r["detail"] == "kind=sft" and r["source"] == "a" for r in rejects)

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "r", "stages": [
        {"name": "thin", "run": "nth", "input": "a.jsonl", "config": {"n": 10}}]}))
    result = run_recipe(load_recipe(recipe), tmp_path / "w", recipe_dir=tmp_path, echo=lambda line: None)
    lines = (tmp_path / "w").glob("stages/thin-*/thin.rejects.jsonl")
    file_rejects = [json.loads(line) for path in lines for line in path.read_text().splitlines()]
    assert [r["id"] for r in file_rejects] == ["a-000", "a-010", "a-020"]
    assert all(tuple(r) == REJECT_FIELDS and r["step"] == "nth" for r in file_rejects)  # the one layout
    report = json.loads(Path(result.stages["thin"]["outputs"]["report"]).read_text())
    assert (report["rows_in"], report["rows_out"]) == (30, 27)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "r", "stages": [
        {"name": "thin", "run": "nth", "input": "a.jsonl", "config": {"m": 10}}]}))
    with pytest.raises(ConfigError, match="stage 'thin' \\(nth\\)"):
        run_recipe(load_recipe(bad), tmp_path / "w2", recipe_dir=tmp_path, echo=lambda line: None)


def test_the_executor_is_chosen_by_name_and_checked():
    assert isinstance(make_executor("local"), LocalExecutor)
    ray = make_executor("ray", {"address": "ray://head:10001", "partitions": 4})
    assert ray.name == "ray" and ray.config.address == "ray://head:10001" and ray.config.partitions == 4
    with pytest.raises(ConfigError, match="unknown engine 'spark'"):
        make_executor("spark")
    with pytest.raises(ConfigError, match="need engine ray"):
        make_executor("local", {"address": "auto"})
    with pytest.raises(ConfigError, match="against runs on the local engine only"):
        ray.run_file(STEPS["dedup"], "in.jsonl", "out.jsonl", STEPS["dedup"].parse({}), against="ref.jsonl")


def test_a_build_uses_the_executor_it_is_handed_and_records_it(tmp_path):
    write_rows(tmp_path / "a.jsonl", "a", 20)
    spec = {"name": "m", "kind": "sft", "sources": [{"path": "a.jsonl", "steps": ["filter"]}],
            "global_steps": [{"dedup": {}}]}
    spy = SpyExecutor(name="ray")  # a stand-in: only its name is Ray's
    built = mix.build(spec, home=tmp_path / "home", base=tmp_path, executor=spy)
    assert spy.steps == ["filter", "dedup"]
    assert built.manifest["spec"]["engine"] == "ray"


def test_two_builds_in_two_threads_keep_their_own_executors(tmp_path):
    """The old engine switch swapped a process-wide step table: two builds at once saw each
    other's engine. Executors are per build."""
    write_rows(tmp_path / "a.jsonl", "a", 200)
    spies = [SpyExecutor("local"), SpyExecutor("ray")]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def build(index):
        try:
            start.wait()
            for round_ in range(3):
                spec = {"name": f"m{index}", "kind": "sft", "seed": round_,
                        "sources": [{"path": "a.jsonl", "steps": ["filter", "dedup"]}]}
                mix.build(spec, home=tmp_path / f"home{index}", base=tmp_path, executor=spies[index])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert spies[0].steps == spies[1].steps == ["filter", "dedup"] * 3
