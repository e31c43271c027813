"""The Ray engine gives the local engine's results: dedup (with a planted A~B~C chain), filter,
decontam, the stage files and mix build, run both ways on the same data in one local Ray (2 CPUs).
Partitions and block sizes are set small so every shuffle has several groups to merge."""

from __future__ import annotations

import json
import random
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from postmix.curate.decontam import DecontamConfig, decontaminate
from postmix.curate.dedup import DedupConfig, dedup, dedup_file
from postmix.curate.filters import FilterConfig, apply_filters
from postmix.curate.unionfind import clusters
from postmix.errors import ConfigError
from postmix.io.dataset import save_records
from postmix.schemas import FEATURES

ray = pytest.importorskip("ray")

from postmix.scale.ray_components import connected_components  # noqa: E402
from postmix.scale.ray_session import RayConfig, ray_pipeline  # noqa: E402

SMALL = RayConfig(partitions=3, block_rows=97)  # odd sizes: groups and blocks never line up


# ---------------------------------------------------------------- data built here


VOCAB = [f"v{i}q{random.Random(i).randint(0, 10**6)}" for i in range(4000)]


def words(seed: int, n: int = 100) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(VOCAB) for _ in range(n)]


def replaced(ws: list[str], position: int) -> list[str]:
    """One word of 100 replaced: 5 of 96 five-word shingles change, Jaccard 91/101 = 0.901."""
    return ws[:position] + ["replacedword"] + ws[position + 1 :]


def sft(rows: list[tuple[str, str, str, str]]) -> datasets.Dataset:
    return datasets.Dataset.from_list(
        [{"id": rid, "source": source, "meta": "{}",
          "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}
         for rid, user, source, answer in rows], features=FEATURES["sft"])


# A~B (0.901) and B~C (0.901) but A, C differ in two words: Jaccard 86/106 = 0.811 < 0.85.
CHAIN_A = words(7)
CHAIN_B = replaced(CHAIN_A, 30)
CHAIN_C = replaced(CHAIN_B, 70)


def corpus(n: int = 1200, seed: int = 0) -> datasets.Dataset:
    """Random rows from n/3 bases: exact copies (after normalising), one-word edits, truncations,
    texts that normalise to nothing; the chain planted at fixed places (A first)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        base = words(1000 + rng.randint(0, n // 3))
        r = rng.random()
        if r < 0.3:
            base = replaced(base, rng.randint(0, 99))
        elif r < 0.4:
            base = base[: rng.randint(60, 100)]
        text = " ".join(base)
        if rng.random() < 0.05:
            text = "  " + text.upper() + " !"
        if rng.random() < 0.02:
            text = "?!"
        rows.append((f"r{i}", text, rng.choice(["web", "human", "synth"]), "x" * rng.randint(1, 60)))
    for position, (rid, ws, source) in zip((5, 600, 1100), (("A", CHAIN_A, "web"), ("B", CHAIN_B, "human"),
                                                            ("C", CHAIN_C, "web")), strict=True):
        rows.insert(position, (rid, " ".join(ws), source, "answer"))
    return sft(rows)


@pytest.fixture(scope="module")
def planted() -> datasets.Dataset:
    return corpus()


def by_id(ds, verdicts) -> dict[str, tuple]:
    return {row_id: (r, d) for row_id, r, d in zip(ds["id"], verdicts.reasons, verdicts.details, strict=True)}


def without_timings(stats: dict) -> dict:
    return {k: v for k, v in stats.items() if k not in ("timings", "engine")}


def assert_same(local, distributed) -> None:
    assert list(distributed.reasons) == list(local.reasons)
    assert list(distributed.details) == list(local.details)
    assert without_timings(distributed.stats) == without_timings(local.stats)


# ---------------------------------------------------------------- connected components


def test_components_over_ray_data_equal_union_find(ray_local):
    rng = np.random.default_rng(3)
    lo, hi = rng.integers(0, 4000, 3000), rng.integers(0, 4000, 3000)
    chain = np.arange(5000, 5300)  # a path of 300 nodes, listed from its far end
    lo = np.r_[lo, chain[::-1][1:]]
    hi = np.r_[hi, chain[::-1][:-1]]
    keep = lo != hi
    lo, hi = np.minimum(lo[keep], hi[keep]), np.maximum(lo[keep], hi[keep])
    with ray_pipeline(SMALL) as run:
        edges = ray.data.from_arrow([pa.table({"lo": lo[k::4], "hi": hi[k::4]}) for k in range(4)])
        labels, _ = connected_components(edges, run.partitions)
        got = pa.concat_tables(list(labels.iter_batches(batch_size=None, batch_format="pyarrow")))
    node, label = got["node"].to_numpy(), got["label"].to_numpy()
    assert sorted(node.tolist()) == np.unique(np.r_[lo, hi]).tolist()  # every node once
    assert (label == clusters(6000, np.stack([lo, hi], axis=1))[node]).all()
    assert set(label[np.isin(node, chain)].tolist()) == {5000}  # the path is one cluster


# ---------------------------------------------------------------- dedup


CONFIGS = {
    "clusters-first": DedupConfig(threshold=0.85, verify=False),
    "verified-first": DedupConfig(threshold=0.85),
    "verified-near-only": DedupConfig(threshold=0.7, mode="near"),
    "longest": DedupConfig(threshold=0.85, keep="longest"),
    "clusters-longest": DedupConfig(threshold=0.85, keep="longest", verify=False),
    "source-priority": DedupConfig(threshold=0.85, mode="near", keep="source-priority",
                                   source_priority=["human", "web"]),
    "exact-only": DedupConfig(mode="exact"),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_dedup_on_ray_returns_the_local_verdicts(ray_local, planted, name):
    from postmix.scale.ray_dedup import dedup_ray

    config = CONFIGS[name]
    local = dedup(planted, config)
    distributed = dedup_ray(planted, config, ray_config=SMALL)
    assert_same(local, distributed)
    assert distributed.stats["engine"]["name"] == "ray"
    got = by_id(planted, distributed)
    if name == "clusters-first":  # the chain is one cluster: B and C both go, as duplicates of A
        assert got["A"] == (None, "")
        assert got["B"][1].startswith("duplicate_of=A ") and got["C"][1].startswith("duplicate_of=A ")
    if name == "verified-first":  # C matches only B, which is removed: C stays
        assert got["B"][1] == "duplicate_of=A similarity=0.901 method=jaccard"
        assert got["C"] == (None, "") and distributed.stats["near"]["chained_rows_kept"] >= 1
    if name == "source-priority":  # B is the human row: the chain keeps it
        assert got["B"] == (None, "")
        assert got["A"][1].startswith("duplicate_of=B ") and got["C"][1].startswith("duplicate_of=B ")
    if name.startswith("verified"):  # every removed row names a row that stays
        named = [d.split()[0].removeprefix("duplicate_of=") for d in distributed.details if d]
        kept = {row_id for row_id, r in zip(planted["id"], distributed.reasons, strict=True) if r is None}
        assert named and set(named) <= kept
    if name == "exact-only":
        assert distributed.counts() == local.counts() and set(distributed.counts()) == {"exact_duplicate"}


def on_ray(step: str, source, output, config, **options):
    """A step file run by the Ray executor (the workers write the shards)."""
    from postmix.curate.steps import get_step
    from postmix.scale.executor import RayExecutor

    return RayExecutor(SMALL).run_file(get_step(step), source, output, config, **options)


def assert_shards_equal_file(folder: Path, local: Path) -> None:
    """A Ray output folder: part-NNNNN.parquet shards in row order, read as one dataset by
    pyarrow and by every postmix reader, with the local engine's rows in the local order."""
    from postmix.io.dataset import load_records
    from postmix.io.read import iter_raw_rows

    shards = sorted(p.name for p in folder.iterdir())
    assert folder.is_dir() and shards == [f"part-{i:05d}.parquet" for i in range(len(shards))]
    assert len(shards) > 1
    assert pq.read_table(folder).equals(pq.read_table(local))
    ours, _, rejects = load_records(folder)
    theirs, _, _ = load_records(local)
    assert not rejects and ours["id"] == theirs["id"] and ours.to_list() == theirs.to_list()
    assert [r.data["id"] for r in iter_raw_rows(folder)] == theirs["id"]


def test_dedup_stage_file_on_ray_writes_the_same_files(ray_local, planted, tmp_path):
    source = save_records(planted, tmp_path / "in.parquet")
    config = DedupConfig(threshold=0.85)
    local = dedup_file(source, tmp_path / "local.parquet", config)
    distributed = on_ray("dedup", source, tmp_path / "ray.parquet", config)
    assert_shards_equal_file(distributed.output, local.output)
    assert distributed.kept["id"] == local.kept["id"]
    assert distributed.report.rows_in == distributed.report.rows_out + sum(distributed.report.rejected.values())
    rejects = [[json.loads(line) for line in path.read_text().splitlines()] for path in (local.rejects, distributed.rejects)]
    assert rejects[0] == rejects[1] and len(rejects[0]) == local.report.rows_in - local.report.rows_out
    assert distributed.report.rejected == local.report.rejected


def test_dedup_against_a_reference_is_refused_on_ray(ray_local, planted):
    from postmix.curate.executor import make_executor
    from postmix.scale.ray_dedup import dedup_ray

    with pytest.raises(ConfigError, match="local engine"):
        dedup_ray(planted, DedupConfig(), against=planted)
    with pytest.raises(ConfigError, match="unknown engine"):
        make_executor("spark")


# ---------------------------------------------------------------- filter and decontam


def messy_rows(n: int = 500, seed: int = 1) -> datasets.Dataset:
    rng = random.Random(seed)
    answers = ["As an AI language model, I cannot", "", "I am ChatGPT, trained by OpenAI", "loop again " * 40,
               "the same line here\n" * 8, "mojibake: cafÃ©", "a fine answer"]
    rows = []
    for i in range(n):
        messages = [{"role": "user", "content": f"question {i}"},
                    {"role": "assistant", "content": rng.choice(answers + [f"answer {i}"] * 6)}]
        if rng.random() < 0.05:
            messages.reverse()
        rows.append({"id": f"r{i}", "source": rng.choice(["a", "b"]), "meta": "{}", "messages": messages})
    return datasets.Dataset.from_list(rows, features=FEATURES["sft"])


def test_filter_on_ray_returns_the_local_verdicts(ray_local):
    from postmix.scale.ray_filter import filter_ray

    ds = messy_rows()
    config = FilterConfig(examples=2, custom=[{"name": "q7", "pattern": r"question \d*7$", "roles": ["user"]}])
    local = apply_filters(ds, config)
    distributed = filter_ray(ds, config, ray_config=SMALL)
    assert_same(local, distributed)
    # every rule fired somewhere, so the merge of block reports is exercised for each
    assert set(local.counts()) == {"empty_turn", "role_order", "mojibake", "refusal", "self_identification",
                                   "repeated_lines", "repeated_ngrams", "q7"}


def test_hygiene_filters_on_ray_return_the_local_verdicts(ray_local):
    from postmix.scale.ray_filter import filter_ray

    rng = random.Random(4)
    answers = ["As of my last update in 2023, the museum opens at nine.", "Paris.<|im_end|>",
               "Use `<|im_end|>` to end a ChatML turn.", "Check the cable first, please. " * 5,
               "Paris est la capitale de la France et sa plus grande ville.",
               "巴黎是法国的首都，也是法国最大的城市，那里有很多著名的博物馆。",
               "I'm just an AI, it's not within my programming to say.",
               "Paris is the capital of France and its largest city."]
    rows = [{"id": f"r{i}", "source": rng.choice(["a", "b"]), "meta": "{}",
             "messages": [{"role": "user", "content": f"question number {i} about the city"},
                          {"role": "assistant", "content": rng.choice(answers)}]} for i in range(400)]
    ds = datasets.Dataset.from_list(rows, features=FEATURES["sft"])
    config = FilterConfig(examples=2, keep_languages=["en"], script_limits=[{"script": "cjk", "max_share": 0.1}])
    local = apply_filters(ds, config)
    assert_same(local, filter_ray(ds, config, ray_config=SMALL))
    assert set(local.counts()) == {"knowledge_cutoff", "leaked_tokens", "repeated_sentences", "language",
                                   "script_share", "refusal"}


def test_decontam_on_ray_returns_the_local_verdicts(ray_local, tmp_path):
    from postmix.scale.ray_decontam import decontaminate_ray

    questions = [" ".join(f"b{j}t{k}" for k in range(20)) for j in range(30)]
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps({"question": q}) + "\n" for q in questions), encoding="utf-8")
    rng = random.Random(2)
    rows = []
    for i in range(400):
        text = " ".join(f"f{rng.randint(0, 999)}" for _ in range(30))
        if i % 5 == 0:  # a leaked question, whole or in part
            text += " " + " ".join(questions[i % 30].split()[: rng.randint(6, 20)])
        rows.append({"id": f"r{i}", "source": rng.choice(["a", "b"]), "meta": "{}",
                     "messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "x"}]})
    ds = datasets.Dataset.from_list(rows, features=FEATURES["sft"])
    config = DecontamConfig(benchmarks=[f"leaky={bench}:question"])
    local = decontaminate(ds, config)
    distributed = decontaminate_ray(ds, config, ray_config=SMALL)
    assert_same(local, distributed)
    assert 0 < local.counts()["contaminated"] <= 80



def flagged_sides(ds, verdicts) -> dict[str, list[str]]:
    """Row id -> the sides named in its detail, best first."""
    return {row_id: [part.split(" side=")[1].split(" ")[0] for part in detail.split("; ")]
            for row_id, detail in zip(ds["id"], verdicts.details, strict=True) if detail}


def test_decontam_answer_side_on_ray_gives_the_local_ids_sides_and_matrix(ray_local, tmp_path):
    """Reference solutions (with GSM8K-style markup) copied under generic prompts, questions
    copied into user turns, and rows with both, spread over blocks and sources."""
    from postmix.scale.ray_decontam import decontaminate_ray

    rng = random.Random(5)
    questions = [" ".join(f"q{j}w{k}" for k in range(16)) for j in range(20)]
    answers = [" ".join(f"a{j}s{k}" for k in range(24)) for j in range(20)]
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps({"question": q, "solution": a, "id": f"t{j}"}) + "\n"
                             for j, (q, a) in enumerate(zip(questions, answers, strict=True))),
                     encoding="utf-8")
    rows, planted = [], {}
    for i in range(300):
        user = "please help: " + " ".join(f"f{rng.randint(0, 999)}" for _ in range(12))
        answer = " ".join(f"g{rng.randint(0, 999)}" for _ in range(20))
        j = i % 20
        if i % 7 == 0:  # the solution, with calculator markup spliced in
            words = answers[j].split()
            answer = " ".join(words[:10]) + " <<3*4=12>>" + " ".join(words[10:]) + "\n#### 12"
            planted[f"r{i}"] = ["answer"]
        if i % 11 == 0:
            user = questions[j]
            planted[f"r{i}"] = ["question"] + planted.get(f"r{i}", [])
        rows.append({"id": f"r{i}", "source": rng.choice(["a", "b", "c"]), "meta": "{}",
                     "messages": [{"role": "user", "content": user},
                                  {"role": "assistant", "content": answer}]})
    ds = datasets.Dataset.from_list(rows, features=FEATURES["sft"])
    config = DecontamConfig(benchmarks=[{"name": "leaky", "path": str(bench),
                                         "fields": ["question"], "answer_fields": ["solution"],
                                         "markup": [r"<<[^<>]*>>", r"####[^\n]*"]}],
                            batch_size=64)
    local = decontaminate(ds, config)
    distributed = decontaminate_ray(ds, config, ray_config=SMALL)
    assert_same(local, distributed)
    assert flagged_sides(ds, distributed) == flagged_sides(ds, local)
    assert {k: sorted(v) for k, v in flagged_sides(ds, local).items()} == {
        k: sorted(v) for k, v in planted.items()}
    assert distributed.sidecar.to_json() == local.sidecar.to_json()
    cells = {(c["source"], c["side"]): c["rows_flagged"] for c in local.sidecar.rows()}
    assert sum(v for (_, side), v in cells.items() if side == "answer") == sum(
        "answer" in v for v in planted.values())


# ---------------------------------------------------------------- mix build


def test_mix_build_with_steps_on_ray_gives_the_local_mix(ray_local, planted, tmp_path):
    from postmix.mix import build as build_local
    from postmix.mix import build as build_with_engine

    web = save_records(planted.select(range(0, 700)), tmp_path / "web.parquet")
    other = save_records(planted.select(range(700, len(planted))), tmp_path / "other.parquet")
    spec = {"name": "scaled", "kind": "sft", "seed": 3,
            "sources": [{"name": "web", "path": str(web), "steps": [{"step": "filter", "config": {}}]},
                        {"name": "other", "path": str(other), "count": 50}],
            "global_steps": [{"step": "dedup", "config": {"threshold": 0.85}}]}
    local = build_local(spec, home=tmp_path / "local-home", progress=False)
    distributed = build_with_engine(spec, engine="ray", home=tmp_path / "ray-home", progress=False)
    assert distributed.mix.content_hash == local.mix.content_hash
    assert distributed.mix.dataset["id"] == local.mix.dataset["id"]
    reports = [[(r["step"], r["rows_in"], r["rows_out"], r["rejected"]) for s in m.manifest["sources"] for r in s["steps"]]
               for m in (local, distributed)]
    assert reports[0] == reports[1]
    assert any(step == "global:dedup" and rejected for step, _, _, rejected in reports[0])


# ---------------------------------------------------------------- the switches a user turns: CLI, recipe, spec


def test_cli_engine_ray_writes_the_files_the_local_engine_writes(ray_local, planted, tmp_path):
    from typer.testing import CliRunner

    from postmix.cli import app

    source = str(save_records(planted, tmp_path / "in.parquet"))
    messy = save_records(messy_rows(), tmp_path / "messy.parquet")
    runner = CliRunner()
    bench = leaked_benchmark(planted, tmp_path)
    for step, data, args in (("dedup", source, ["--threshold", "0.85"]), ("filter", messy, []),
                             ("decontam", source, ["--benchmark", bench])):
        for engine in ("local", "ray"):
            result = runner.invoke(app, ["curate", step, str(data), "-o", str(tmp_path / f"{step}-{engine}.parquet"),
                                         "--engine", engine, *args])
            assert result.exit_code == 0, result.output
        outputs = [pq.read_table(tmp_path / f"{step}-{engine}.parquet") for engine in ("local", "ray")]
        assert outputs[0].equals(outputs[1]), step
        rejects = [(tmp_path / f"{step}-{engine}.rejects.jsonl").read_text() for engine in ("local", "ray")]
        assert rejects[0] == rejects[1], step
        assert rejects[1].count("\n") > 0, step  # each step had something to remove


def leaked_benchmark(ds, tmp_path) -> str:
    """A benchmark file whose questions are ten of the corpus's user turns (so decontam has work)."""
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps({"question": m[0]["content"]}) + "\n" for m in ds["messages"][100:110]),
                     encoding="utf-8")
    return f"leaky={bench}:question"


def test_cli_refuses_against_on_ray_and_an_unknown_engine(planted, tmp_path):
    from typer.testing import CliRunner

    from postmix.cli import app

    source = str(save_records(planted.select(range(20)), tmp_path / "in.parquet"))
    runner = CliRunner()
    result = runner.invoke(app, ["curate", "dedup", source, "-o", str(tmp_path / "o.parquet"), "--engine", "ray",
                                 "--against", source])
    assert isinstance(result.exception, ConfigError) and "local engine only" in str(result.exception)
    result = runner.invoke(app, ["curate", "filter", source, "-o", str(tmp_path / "o.parquet"), "--engine", "spark"])
    assert isinstance(result.exception, ConfigError) and "unknown engine 'spark'" in str(result.exception)
    assert not (tmp_path / "o.parquet").exists()


def test_recipe_and_mix_spec_engine_keys_give_the_local_results(ray_local, planted, tmp_path):
    import yaml

    from postmix.pipeline import load_recipe, plan, run_recipe

    save_records(planted, tmp_path / "in.parquet")
    bench = leaked_benchmark(planted, tmp_path)

    def recipe(engine: str | None, name: str):
        extra = {"engine": engine} if engine else {}
        stages = [
            {"name": "dedup", "run": "dedup", "input": "in.parquet", "config": {"threshold": 0.85, **extra}},
            {"name": "filtered", "run": "filter", "input": "dedup", "config": dict(extra)},
            {"name": "mix", "run": "mix_build", "input": ["filtered"],
             "config": {"name": "m", "kind": "sft", "seed": 1, **extra,
                        "sources": [{"path": "filtered", "steps": [{"step": "decontam",
                                                                    "config": {"benchmarks": [bench]}}]}]}},
        ]
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"name": name, "stages": stages}))
        return load_recipe(path)

    quiet = {"echo": lambda _: None, "recipe_dir": tmp_path}
    local = run_recipe(recipe(None, "local"), tmp_path / "w-local", **quiet)
    on_ray = run_recipe(recipe("ray", "ray"), tmp_path / "w-ray", **quiet)
    for stage in ("dedup", "filtered"):
        outputs = [pq.read_table(r.stages[stage]["outputs"]["data"]) for r in (local, on_ray)]
        assert outputs[0].equals(outputs[1]), stage
    hashes = [r.stages["mix"]["outputs"]["content_hash"] for r in (local, on_ray)]
    assert hashes[0] == hashes[1]
    manifest = json.loads((Path(on_ray.stages["mix"]["outputs"]["version_dir"]) / "manifest.json").read_text())
    assert manifest["spec"]["engine"] == "ray"  # the manifest records how the mix was built
    # the run-wide default (`postmix run --engine ray`) reaches stages that do not set one
    by_option = run_recipe(recipe(None, "option"), tmp_path / "w-option", options={"engine": "ray"}, **quiet)
    assert by_option.stages["mix"]["outputs"]["content_hash"] == hashes[0]
    # a bad engine fails at plan time, before anything runs
    bad = recipe(None, "bad")
    bad.stages[0].config["engine"] = "spark"
    with pytest.raises(ConfigError, match="unknown engine 'spark'"):
        plan(bad, tmp_path / "w-bad", tmp_path)


def test_workers_read_a_parquet_input_by_row_groups_with_the_local_results(ray_local, planted, tmp_path):
    """A Parquet file with a row group per CPU or more is read by the Ray workers themselves (the
    report says so); one with a single group goes through the driver; the files are the local ones."""
    from postmix.curate.decontam import decontaminate_file
    from postmix.curate.filters import filter_file

    table = pa.Table.from_pylist(planted.to_list(), schema=FEATURES["sft"].arrow_schema)
    grouped = tmp_path / "grouped.parquet"
    pq.write_table(table, grouped, row_group_size=150)  # 9 row groups, uneven last one
    assert pq.ParquetFile(grouped).metadata.num_row_groups == 9
    single = tmp_path / "single.parquet"
    pq.write_table(table, single)
    bench = leaked_benchmark(planted, tmp_path)
    local_runs = {"dedup": (dedup_file, DedupConfig(threshold=0.85)), "filter": (filter_file, FilterConfig()),
                  "decontam": (decontaminate_file, DecontamConfig(benchmarks=[bench]))}
    for step, (run_local, config) in local_runs.items():
        local = run_local(grouped, tmp_path / f"{step}-local.parquet", config)
        on_workers = on_ray(step, grouped, tmp_path / f"{step}-ray.parquet", config)
        via_driver = on_ray(step, single, tmp_path / f"{step}-driver.parquet", config)
        assert on_workers.report.details["engine"]["input"].startswith("workers (9 row groups"), step
        assert via_driver.report.details["engine"]["input"] == "driver", step
        for result in (on_workers, via_driver):
            assert_shards_equal_file(result.output, local.output)
            assert result.rejects.read_text() == local.rejects.read_text(), step
            assert result.report.rejected == local.report.rejected, step


def test_workers_read_only_what_every_node_sees(ray_local, tmp_path, monkeypatch):
    """On a cluster each alive node is asked for the file's size; one that sees no file (or another
    file) sends the input through the driver. Two entries for this one node stand in for two nodes."""
    from postmix.scale import ray_session

    here = ray_local.nodes()[0]
    monkeypatch.setattr(ray_local, "nodes", lambda: [here, dict(here), {**here, "Alive": False}])
    path = tmp_path / "x.parquet"
    path.write_bytes(b"0123456789")
    assert ray_session._visible_on_every_node([(str(path), 10)])
    assert not ray_session._visible_on_every_node([(str(path), 11)])
    assert not ray_session._visible_on_every_node([(str(tmp_path / "missing.parquet"), 10)])


def test_workers_do_not_read_a_file_the_driver_had_to_convert(ray_local, planted, tmp_path):
    """Rows with a null source are filled in while loading: the workers must use the driver's rows."""

    rows = planted.select(range(300)).to_list()
    for row in rows[::2]:
        row["source"] = None
    path = tmp_path / "nulls.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=FEATURES["sft"].arrow_schema), path, row_group_size=20)
    config = DedupConfig(threshold=0.85, keep="source-priority", source_priority=["nulls"])
    local = dedup_file(path, tmp_path / "local.parquet", config)
    result = on_ray("dedup", path, tmp_path / "ray.parquet", config)
    assert result.report.details["engine"]["input"] == "driver"
    assert pq.read_table(result.output).equals(pq.read_table(local.output))


def test_jsonl_input_and_outputs_on_ray_are_the_local_files(ray_local, planted, tmp_path):
    """A JSONL input (with a line the conversion rejects) goes through the driver; a .jsonl and a
    .jsonl.gz output are single files joined from the workers' shards, equal to the local ones;
    rejects keep their input lines, the conversion's rejects first."""
    import gzip

    from postmix.curate.filters import filter_file

    source = tmp_path / "in.jsonl"
    lines = [json.dumps(row) for row in messy_rows(300).to_list()]
    lines.insert(40, "{not json")
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = FilterConfig()
    for suffix in (".jsonl", ".jsonl.gz"):
        stem = suffix.replace(".", "_")  # one stem per output: reports are named by stem
        local = filter_file(source, tmp_path / f"local{stem}{suffix}", config)
        result = on_ray("filter", source, tmp_path / f"ray{stem}{suffix}", config)
        assert result.output.is_file() and result.report.details["engine"]["input"] == "driver"
        read = gzip.open if suffix.endswith(".gz") else open
        with read(local.output, "rt") as a, read(result.output, "rt") as b:
            assert a.read() == b.read()
        assert result.rejects.read_text() == local.rejects.read_text()
        rejects = [json.loads(x) for x in result.rejects.read_text().splitlines()]
        converted = [r for r in rejects if r["reason"] in ("malformed_json", "schema")]
        assert rejects[: len(converted)] == converted  # the conversion's rejects come first
        assert {"reason": "malformed_json", "line": 41} in [
            {k: r[k] for k in ("reason", "line")} for r in converted]
        judged = rejects[len(converted):]
        assert judged and all(r["line"] and r["row"]["id"] for r in judged)
        assert (result.report.rows_in, result.report.rows_out, result.report.rejected) == (
            local.report.rows_in, local.report.rows_out, local.report.rejected)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no work folders left


def test_a_ray_output_replaces_an_older_one_and_the_next_stage_reads_it(ray_local, planted, tmp_path):
    """A rerun replaces the shard folder (or a local run's file); a folder holding anything else
    is refused; the shard folder is an input like any Parquet file, read by the workers."""
    table = pa.Table.from_pylist(planted.to_list(), schema=FEATURES["sft"].arrow_schema)
    grouped = tmp_path / "grouped.parquet"
    pq.write_table(table, grouped, row_group_size=150)
    out = tmp_path / "out.parquet"
    save_records(planted.select(range(3)), out)  # a local run's file is replaced
    first = on_ray("filter", grouped, out, FilterConfig())
    second = on_ray("filter", grouped, out, FilterConfig())
    assert out.is_dir() and pq.read_table(out).num_rows == first.report.rows_out == second.report.rows_out
    again = on_ray("dedup", out, tmp_path / "dedup.parquet", DedupConfig(threshold=0.85))
    assert again.report.details["engine"]["input"].startswith("workers (")
    local = dedup_file(out, tmp_path / "local.parquet", DedupConfig(threshold=0.85))
    assert_shards_equal_file(again.output, local.output)
    assert again.rejects.read_text() == local.rejects.read_text()  # no lines: a folder has none
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="other files than Parquet shards"):
        on_ray("filter", grouped, out, FilterConfig())
    assert (out / "notes.txt").exists()
