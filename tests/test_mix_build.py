"""Mix builds end to end on crafted sources: versions, determinism, take rules, accounting, API, CLI."""

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from pydantic import BaseModel, ConfigDict
from typer.testing import CliRunner

from postmix import mix
from postmix.cli import app
from postmix.curate.runner import Verdicts
from postmix.errors import ConfigError, InputNotFoundError, PostmixError
from postmix.mix.registry import MixNotFoundError
from postmix.schemas import FEATURES


def write_source(path: Path, prefix: str, n: int, *, texts=None, bad_lines: int = 0) -> Path:
    """n postmix SFT rows with ids ``<prefix>-0000``...; ``bad_lines`` malformed JSON lines appended."""
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            text = texts[i] if texts else f"{prefix} question number {i}"
            row = {"id": f"{prefix}-{i:04d}", "source": prefix, "meta": "{}",
                   "messages": [{"role": "user", "content": text},
                                {"role": "assistant", "content": f"answer to {text}"}]}
            handle.write(json.dumps(row) + "\n")
        for _ in range(bad_lines):
            handle.write("{not json\n")
    return path


def write_spec(folder: Path, name="m", *, sources, **extra) -> Path:
    spec = {"name": name, "kind": "sft", "seed": 0, "sources": sources, **extra}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write_source(folder / "a.jsonl", "a", 100)
    write_source(folder / "b.jsonl", "b", 40)
    return folder


def shard_bytes(resolved):
    return [p.read_bytes() for p in resolved.shard_paths()]


def test_same_spec_twice_is_the_same_version_with_identical_bytes(data, tmp_path):
    spec = write_spec(data, sources=[{"path": "a.jsonl", "count": 30}, {"path": "b.jsonl", "fraction": 0.5}])
    first = mix.build(spec, home=tmp_path / "reg")
    again = mix.build(spec, home=tmp_path / "reg")
    assert first.created and not again.created
    assert again.mix.ref == first.mix.ref == "m@1"
    assert [v["version"] for v in mix.list_mixes(home=tmp_path / "reg")] == [1]
    other_home = mix.build(spec, home=tmp_path / "reg2")  # a fresh registry: same bytes, same hash
    assert other_home.mix.content_hash == first.mix.content_hash
    assert shard_bytes(other_home.mix) == shard_bytes(first.mix)
    assert first.mix.rows == 30 + 20
    assert not list((tmp_path / "reg" / "tmp").iterdir())  # the no-op build left nothing behind


def test_changing_a_count_makes_a_new_version_whose_diff_names_exactly_that(data, tmp_path):
    home = tmp_path / "reg"
    sources = [{"path": "a.jsonl", "count": 30}, {"path": "b.jsonl", "count": 10}]
    v1 = mix.build(write_spec(data, sources=sources), home=home).mix
    sources[0]["count"] = 45
    v2 = mix.build(write_spec(data, sources=sources), home=home).mix
    assert (v1.ref, v2.ref) == ("m@1", "m@2")
    assert v2.manifest["parent"] == 1
    d = mix.diff("m@1", "m@2", home=home)
    assert [(c["key"], c["a"], c["b"]) for c in d["spec_changes"]] == [("sources.a.count", 30, 45)]
    assert [(c["source"], c["a"], c["b"]) for c in d["source_changes"]] == [("a", 30, 45)]
    # a larger count of the same hash ranking only adds rows, all from source a
    assert (d["rows_added"], d["rows_removed"]) == (15, 0)
    assert all(i.startswith("a-") for i in d["added_sample"])
    ids_v1 = set(mix.load("m@1", home=home)["id"])
    ids_v2 = set(mix.load("m@2", home=home)["id"])
    assert ids_v1 < ids_v2 and len(ids_v2 - ids_v1) == 15


def test_take_rules_and_upsampling(data, tmp_path):
    spec = write_spec(data, sources=[{"path": "a.jsonl", "fraction": 0.25}, {"path": "b.jsonl", "epochs": 2.5}])
    result = mix.build(spec, home=tmp_path / "reg")
    ds = mix.load("m", home=tmp_path / "reg")
    ids = ds["id"]
    a_ids = [i for i in ids if i.startswith("a-")]
    b_ids = [i for i in ids if i.startswith("b-")]
    assert len(a_ids) == len(set(a_ids)) == 25
    assert len(b_ids) == 100 and len(set(b_ids)) == 40  # 2 full copies + 20 rows a third time
    counts = {i: b_ids.count(i) for i in set(b_ids)}
    assert sorted(counts.values()).count(3) == 20 and sorted(counts.values()).count(2) == 20
    b = next(s for s in result.manifest["sources"] if s["name"] == "b")
    assert (b["rows"], b["unique_rows"]) == (100, 40)
    take_report = b["steps"][-1]
    assert take_report["step"] == "take" and take_report["details"]["repeats"] == 60
    provenance = pq.read_table(result.mix.path / "provenance.parquet").to_pydict()
    assert [s for s, i in zip(provenance["mix_source"], ids, strict=True) if i.startswith("b-")] == ["b"] * 100
    assert max(provenance["copy"]) == 2


def test_impossible_count_unknown_key_and_missing_source_are_one_line_errors(data, tmp_path):
    spec = write_spec(data, sources=[{"path": "b.jsonl", "count": 41}])
    with pytest.raises(ConfigError, match=r"count 41 but only 40 rows.*epochs: 1\.02"):
        mix.build(spec, home=tmp_path / "reg")
    spec = write_spec(data, sources=[{"path": "b.jsonl", "cuont": 4}])
    with pytest.raises(ConfigError, match="cuont"):
        mix.build(spec, home=tmp_path / "reg")
    spec = write_spec(data, sources=[{"path": "missing.jsonl"}])
    with pytest.raises(InputNotFoundError, match="missing.jsonl"):
        mix.build(spec, home=tmp_path / "reg")
    spec = write_spec(data, sources=[{"path": "b.jsonl", "count": 3, "epochs": 2}])
    with pytest.raises(ConfigError, match="one of count, fraction, epochs"):
        mix.build(spec, home=tmp_path / "reg")
    spec = write_spec(data, sources=[{"path": "b.jsonl", "steps": [{"sparkle": {}}]}])
    with pytest.raises(ConfigError, match="unknown step 'sparkle'"):
        mix.build(spec, home=tmp_path / "reg")
    spec = write_spec(data, sources=[{"path": "b.jsonl", "steps": [{"dedup": {"treshold": 0.5}}]}])
    with pytest.raises(ConfigError, match="treshold"):
        mix.build(spec, home=tmp_path / "reg")
    spec = write_spec(data, sources=[{"path": "a.jsonl"}, {"path": "a.jsonl"}])
    with pytest.raises(ConfigError, match="two sources are named 'a'"):
        mix.build(spec, home=tmp_path / "reg")
    assert mix.list_mixes(home=tmp_path / "reg") == []
    for error in (ConfigError, InputNotFoundError):
        assert issubclass(error, PostmixError)


def test_seed_decides_the_sample(data, tmp_path):
    sources = [{"path": "a.jsonl", "count": 20}]
    same_a = mix.build(write_spec(data, "s", sources=sources, seed=1), home=tmp_path / "r1").mix
    same_b = mix.build(write_spec(data, "s", sources=sources, seed=1), home=tmp_path / "r2").mix
    other = mix.build(write_spec(data, "s", sources=sources, seed=2), home=tmp_path / "r3").mix
    assert same_a.content_hash == same_b.content_hash
    assert mix.load("s", home=tmp_path / "r1")["id"] == mix.load("s", home=tmp_path / "r2")["id"]
    assert set(mix.load("s", home=tmp_path / "r1")["id"]) != set(mix.load("s", home=tmp_path / "r3")["id"])
    assert other.content_hash != same_a.content_hash


def test_unshuffled_mix_keeps_spec_and_source_order(data, tmp_path):
    spec = write_spec(data, sources=[{"path": "b.jsonl", "count": 5}, {"path": "a.jsonl", "count": 5}], shuffle=False)
    ids = mix.load(mix.build(spec, home=tmp_path / "reg").mix.ref, home=tmp_path / "reg")["id"]
    assert [i[0] for i in ids] == ["b"] * 5 + ["a"] * 5
    assert ids[:5] == sorted(ids[:5]) and ids[5:] == sorted(ids[5:])


def test_every_removed_row_is_accounted_for(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    # a: 10 rows whose texts repeat in pairs (5 exact duplicates) and 2 unreadable lines
    write_source(folder / "a.jsonl", "a", 10, texts=[f"same {i // 2}" for i in range(10)], bad_lines=2)
    # b: 6 rows, the first 3 repeat texts of a (cross-source duplicates)
    write_source(folder / "b.jsonl", "b", 6, texts=["same 0", "same 1", "same 2", "new 3", "new 4", "new 5"])
    spec = write_spec(folder, sources=[
        {"path": "a.jsonl", "steps": [{"dedup": {"mode": "exact"}}]},
        {"path": "b.jsonl", "count": 2},
    ], global_steps=[{"dedup": {"mode": "exact"}}])
    result = mix.build(spec, home=tmp_path / "reg")
    a, b = result.manifest["sources"]
    assert [(s["step"], s["rows_in"], s["rows_out"], s["rejected"]) for s in a["steps"]] == [
        ("load", 12, 10, {"malformed_json": 2}),
        ("dedup", 10, 5, {"exact_duplicate": 5}),
        ("global:dedup", 5, 5, {}),
        ("take", 5, 5, {}),
    ]
    assert [(s["step"], s["rows_in"], s["rows_out"], s["rejected"]) for s in b["steps"]] == [
        ("load", 6, 6, {}),
        ("global:dedup", 6, 3, {"exact_duplicate": 3}),
        ("take", 3, 2, {"not_sampled": 1}),
    ]
    for source in (a, b):
        for step in source["steps"]:
            assert step["rows_in"] == step["rows_out"] + sum(step["rejected"].values())
    rejects = pq.read_table(result.mix.path / "rejects.parquet").to_pylist()
    assert len(rejects) == 2 + 5 + 3
    by_step = sorted((r["step"], r["source"], r["reason"]) for r in rejects)
    assert by_step.count(("load", "a", "malformed_json")) == 2
    assert by_step.count(("dedup", "a", "exact_duplicate")) == 5
    assert by_step.count(("global:dedup", "b", "exact_duplicate")) == 3
    global_rejects = [r for r in rejects if r["step"] == "global:dedup"]
    assert sorted(r["id"] for r in global_rejects) == ["b-0000", "b-0001", "b-0002"]
    assert all(json.loads(r["row"])["messages"] for r in global_rejects)  # whole rows, restorable
    unreadable = [r for r in rejects if r["step"] == "load"]
    assert [(r["line"], json.loads(r["row"])) for r in unreadable] == [(11, "{not json"), (12, "{not json")]
    assert result.manifest["rejects"]["by_step_and_reason"]["global:dedup"] == {"exact_duplicate": 3}


def test_relative_and_package_paths(tmp_path):
    from importlib.resources import files

    spec = {"name": "pkg", "kind": "sft", "sources": [{"path": "pkg://postmix/data/sample_sft.jsonl", "count": 10}]}
    result = mix.build(spec, home=tmp_path / "reg")
    assert result.mix.rows == 10
    expected = Path(str(files("postmix") / "data" / "sample_sft.jsonl"))
    assert Path(result.manifest["sources"][0]["location"]) == expected
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "mix" / "sample_sft.yaml"
    if recipe.exists():  # the bundled recipe builds offline, its relative path included
        built = mix.build(recipe, home=tmp_path / "reg")
        assert built.mix.rows > 0
        locations = {Path(s["location"]).resolve() for s in built.manifest["sources"]}
        assert locations == {expected.resolve()}


def test_resolve_load_record_run_and_errors(data, tmp_path):
    home = tmp_path / "reg"
    mix.build(write_spec(data, sources=[{"path": "a.jsonl", "count": 5}]), home=home)
    mix.build(write_spec(data, sources=[{"path": "a.jsonl", "count": 6}]), home=home)
    latest = mix.resolve("m", home=home)
    assert (latest.ref, latest.version, latest.kind, latest.rows) == ("m@2", 2, "sft", 6)
    assert latest.path == home / "mixes" / "m" / "2" and (latest.path / "manifest.json").exists()
    assert re.fullmatch(r"[0-9a-f]{32}", latest.content_hash)
    ds = mix.load("m@1", home=home)
    assert len(ds) == 5 and ds.features == FEATURES["sft"]
    mix.record_run("m@1", {"run_id": "run-1", "method": "sft", "model": "tiny", "output_dir": "/o",
                           "started_at": "t0", "finished_at": "t1", "metrics": {"loss": 1.5}}, home=home)
    mix.record_run("m@1", {"run_id": "run-1", "method": "sft", "metrics": {"loss": 1.25}}, home=home)  # update
    runs = mix.Registry(home).runs("m", 1)
    assert [(r["run_id"], r["metrics"]["loss"]) for r in runs] == [("run-1", 1.25)]
    assert mix.Registry(home).runs("m", 2) == []
    with pytest.raises(MixNotFoundError, match=r"no version 9 \(versions: m@1, m@2\)"):
        mix.resolve("m@9", home=home)
    with pytest.raises(MixNotFoundError, match=r"no mix named 'x'.*mixes: m"):
        mix.load("x", home=home)
    with pytest.raises(MixNotFoundError):
        mix.record_run("m@3", {"run_id": "r"}, home=home)


def test_home_from_environment(data, tmp_path, monkeypatch):
    monkeypatch.setenv("POSTMIX_HOME", str(tmp_path / "envhome"))
    mix.build(write_spec(data, sources=[{"path": "b.jsonl"}]))
    assert (tmp_path / "envhome" / "catalogue.sqlite").exists()
    assert len(mix.load("m@1")) == 40


def test_export_report_and_cli(data, tmp_path):
    home = tmp_path / "reg"
    runner = CliRunner()
    spec = write_spec(data, sources=[{"path": "a.jsonl", "count": 20}, {"path": "b.jsonl", "count": 10}])
    built = runner.invoke(app, ["mix", "build", str(spec), "--home", str(home)])
    assert built.exit_code == 0, built.output
    assert "built m@1" in built.output
    resolved = mix.resolve("m@1", home=home)
    exported = runner.invoke(app, ["mix", "export", "m@1", "-o", str(tmp_path / "out"), "--home", str(home)])
    assert exported.exit_code == 0, exported.output
    assert [p.read_bytes() for p in sorted((tmp_path / "out" / "data").iterdir())] == shard_bytes(resolved)
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["ref"] == "m@1"
    mix.export("m@1", tmp_path / "out_jsonl", home=home, format="jsonl")
    lines = (tmp_path / "out_jsonl" / "data" / "train-00000-of-00001.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == mix.load("m@1", home=home)["id"]
    with pytest.raises(ConfigError, match="not empty"):
        mix.export("m@1", tmp_path / "out", home=home)
    mix.record_run("m@1", {"run_id": "lineage-run", "method": "dpo", "model": "tiny"}, home=home)
    shown = runner.invoke(app, ["mix", "show", "m@1", "--home", str(home)])
    assert shown.exit_code == 0 and "lineage-run" in shown.output and "66.7%" in shown.output
    listed = runner.invoke(app, ["mix", "list", "--home", str(home), "--json"])
    assert [v["version"] for v in json.loads(listed.output)] == [1]
    html_path = tmp_path / "report.html"
    reported = runner.invoke(app, ["mix", "report", "m@1", "--html", str(html_path), "--home", str(home)])
    assert reported.exit_code == 0, reported.output
    page = html_path.read_text()
    assert page.count("data:image/png;base64,") == 2 and "<img" in page and "src=\"http" not in page
    assert "lineage-run" in page
    spec2 = write_spec(data, sources=[{"path": "a.jsonl", "count": 20}, {"path": "b.jsonl", "count": 5}])
    runner.invoke(app, ["mix", "build", str(spec2), "--home", str(home)])
    diffed = runner.invoke(app, ["mix", "diff", "m@1", "m@2", "--home", str(home), "--json"])
    result = json.loads(diffed.output)
    assert [c["key"] for c in result["spec_changes"]] == ["sources.b.count"]
    assert (result["rows_added"], result["rows_removed"]) == (0, 5)


def test_token_counts_with_a_tokenizer(data, tmp_path, tiny_model_dir, monkeypatch):
    from transformers import AutoTokenizer

    monkeypatch.setenv("POSTMIX_CACHE_DIR", str(tmp_path / "cache"))  # the token-count cache
    spec = write_spec(data, sources=[{"path": "a.jsonl", "count": 4}, {"path": "b.jsonl", "epochs": 2}])
    result = mix.build(spec, home=tmp_path / "reg", tokenizer=str(tiny_model_dir))
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    ds = mix.load("m", home=tmp_path / "reg")
    expected = {"a": 0, "b": 0}
    for row in ds:  # what the trainer sees: the chat template rendered over the row
        text = tok.apply_chat_template(row["messages"], tokenize=False)
        expected[row["id"][0]] += len(tok(text, add_special_tokens=False)["input_ids"])
    assert {s["name"]: s["tokens"] for s in result.manifest["sources"]} == expected
    assert result.manifest["tokens"] == sum(expected.values())


def test_tulu3_recipe_parses_and_sums_to_the_published_total():
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "mix" / "tulu3_sft.yaml"
    spec, _ = mix.load_spec(recipe)
    assert spec.kind == "sft" and len(spec.sources) == 19
    assert sum(s.count for s in spec.sources) == 939_344  # allenai/tulu-3-sft-mixture's card
    assert all(s.path.startswith("hf:") for s in spec.sources)


def test_changed_source_data_is_a_new_version_with_a_new_fingerprint(data, tmp_path):
    home = tmp_path / "reg"
    spec = write_spec(data, sources=[{"path": "a.jsonl", "count": 50}])
    v1 = mix.build(spec, home=home)
    write_source(data / "a.jsonl", "a", 120)  # the same 100 rows plus 20 new ones
    v2 = mix.build(spec, home=home)
    assert v2.created and v2.mix.ref == "m@2"
    assert v1.manifest["sources"][0]["fingerprint"] != v2.manifest["sources"][0]["fingerprint"]
    d = mix.diff("m@1", "m@2", home=home)
    assert d["spec_changes"] == []
    assert d["source_changes"] == [{"source": "a", "a": 50, "b": 50, "delta": 0, "fingerprint_changed": True}]
    # hash ranking: only new rows can displace old ones, so every added id is one of the 20 new rows
    assert d["rows_added"] == d["rows_removed"]
    assert all(int(i.split("-")[1]) >= 100 for i in d["added_sample"])


def test_preference_mix_and_kind_mismatch(tmp_path):
    rows = [{"id": f"p-{i}", "prompt": [{"role": "user", "content": f"q{i}"}],
             "chosen": [{"role": "assistant", "content": f"good {i}"}],
             "rejected": [{"role": "assistant", "content": f"bad {i}"}],
             "chosen_score": 5.0, "rejected_score": 1.0, "chosen_model": "a", "rejected_model": "b",
             "judge": "{}", "source": "p", "meta": "{}"} for i in range(12)]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"name": "prefs", "kind": "preference", "sources": [{"path": "p.jsonl", "count": 7}]}
    result = mix.build(spec, home=tmp_path / "reg", base=tmp_path)
    ds = mix.load("prefs@1", home=tmp_path / "reg")
    assert len(ds) == 7 and ds.features == FEATURES["preference"] and result.mix.kind == "preference"
    wrong = {"name": "wrong", "kind": "sft", "sources": [{"path": "p.jsonl"}]}
    with pytest.raises(ConfigError, match="holds preference rows but the mix is sft"):
        mix.build(wrong, home=tmp_path / "reg", base=tmp_path)


class DropConfig(BaseModel):
    """A stand-in curation stage for the step runner: drop rows whose id ends in a given digit."""

    model_config = ConfigDict(extra="forbid")
    digit: str = "7"


def drop_rows(ds, config):  # no `kind` parameter: the runner must not pass one
    return Verdicts([("ends_in_" + config.digit) if i.endswith(config.digit) else None for i in ds["id"]],
                    [f"id={i}" for i in ds["id"]])


def test_step_registry_runs_any_stage_and_reports_a_missing_one(data, tmp_path, monkeypatch):
    from postmix.curate.steps import STEPS, Step

    monkeypatch.setitem(STEPS, "drop", Step("drop", "drop ids ending in a digit", config=f"{__name__}:DropConfig",
                                            local=f"{__name__}:drop_rows", ray=f"{__name__}:drop_rows"))
    spec = write_spec(data, sources=[{"path": "a.jsonl", "steps": [{"drop": {"digit": "3"}}]}])
    result = mix.build(spec, home=tmp_path / "reg")
    assert result.mix.rows == 90  # a-0003, a-0013, ..., a-0093
    drop = result.manifest["sources"][0]["steps"][1]
    assert (drop["step"], drop["rows_in"], drop["rows_out"], drop["rejected"]) == ("drop", 100, 90, {"ends_in_3": 10})
    assert drop["config"] == {"digit": "3"}
    rejects = pq.read_table(result.mix.path / "rejects.parquet")
    assert sorted(rejects.column("id").to_pylist()) == [f"a-{i:04d}" for i in range(3, 100, 10)]
    with pytest.raises(ConfigError, match="digits"):
        mix.build(write_spec(data, sources=[{"path": "a.jsonl", "steps": [{"drop": {"digits": "3"}}]}]),
                  home=tmp_path / "reg")
    monkeypatch.setitem(STEPS, "drop", Step("drop", "", config="postmix.curate.not_built_yet:X",
                                            local="postmix.curate.not_built_yet:y", ray="x:y"))
    with pytest.raises(PostmixError, match="needs postmix.curate.not_built_yet"):
        mix.build(spec, home=tmp_path / "reg")


def test_an_empty_source_says_it_is_empty_not_that_it_has_the_wrong_kind(tmp_path):
    (tmp_path / "pairs.jsonl").write_text("")  # e.g. a pairs stage whose judge answers all failed
    spec = {"name": "prefs", "kind": "preference", "sources": [{"path": str(tmp_path / "pairs.jsonl")}]}
    with pytest.raises(ConfigError, match="has no rows: check the step or file that wrote it"):
        mix.build(spec, home=tmp_path / "home", progress=False)
