"""Decontamination: scores on crafted rows whose expected value follows from the construction."""

from __future__ import annotations

import json

import datasets
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from postmix.curate.benchmarks import (
    BUILTIN_BENCHMARKS,
    BenchmarkSpec,
    UnknownBenchmarkError,
    load_instances,
    parse_benchmark_spec,
    resolve_spec,
)
from postmix.curate.decontam import (
    DecontamConfig,
    contamination_report,
    decontaminate,
    decontaminate_file,
)
from postmix.errors import ConfigError, PostmixError
from postmix.schemas import FEATURES


def words(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


# Instance 0: 20 distinct tokens; instance 1: 20 others; instance 2: 5 tokens (shorter than n=8);
# instance 3: 2 tokens (below min_short_tokens, never indexed).
Q0 = words("qa", 20)
Q1 = words("qb", 20)
SHORT = ["alpha", "beta", "gamma", "delta", "epsilon"]
TINY = ["yes", "no"]
FILLER = words("filler", 30)


def bench_file(tmp_path, questions: list[str], name: str = "bench.jsonl", field: str = "question") -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps({field: q, "answer": "42"}) + "\n" for q in questions), encoding="utf-8")
    return str(path)


def sft(texts: list[str], *, sources: list[str] | None = None, assistant: list[str] | None = None) -> datasets.Dataset:
    rows = [
        {"id": f"r{i}", "messages": [{"role": "user", "content": t},
                                     {"role": "assistant", "content": (assistant or ["fine"] * len(texts))[i]}],
         "source": (sources or ["s"] * len(texts))[i], "meta": "{}"}
        for i, t in enumerate(texts)
    ]
    return datasets.Dataset.from_list(rows, features=FEATURES["sft"])


@pytest.fixture
def bench(tmp_path) -> str:
    return bench_file(tmp_path, [" ".join(Q0), " ".join(Q1), " ".join(SHORT), " ".join(TINY)])


def run(bench: str, texts: list[str], **kw) -> tuple[list, list, dict]:
    config = DecontamConfig(benchmarks=[f"toy={bench}:question"], **kw)
    v = decontaminate(sft(texts, sources=kw.pop("sources", None)), config)
    return list(v.reasons), list(v.details), v.stats


def test_half_of_an_instance_as_a_contiguous_span_scores_half(bench):
    # tokens 0..9 of Q0 (10 of 20, >= 8 contiguous): the three shared 8-grams cover exactly 10 tokens
    text = " ".join(FILLER[:5] + Q0[:10] + FILLER[5:10])
    reasons, details, _ = run(bench, [text])
    assert reasons == ["contaminated"]
    assert details[0].startswith("contaminated:toy:0:0.500 ")
    assert 'span="qa0 qa1 qa2 qa3 qa4 qa5 qa6 qa7 qa8 qa9"' in details[0]
    reasons, _, _ = run(bench, [text], threshold=0.51)
    assert reasons == [None]


def test_whole_question_scores_one_and_disjoint_spans_add_up(bench):
    whole = "Please solve this: " + " ".join(Q0) + " thanks"
    # tokens 0..7 and 12..19: two 8-grams, 16 of 20 tokens covered
    two_spans = " ".join(Q0[:8] + FILLER[:3] + Q0[12:])
    reasons, details, _ = run(bench, [whole, two_spans])
    assert reasons == ["contaminated", "contaminated"]
    assert details[0].startswith("contaminated:toy:0:1.000 ")
    assert details[1].startswith("contaminated:toy:0:0.800 ")


def test_paraphrases_and_clean_rows_are_kept(bench):
    nine = " ".join(FILLER[:4] + Q0[:9])  # 9/20 = 0.45 < 0.5
    reordered = " ".join(Q0[::2] + Q0[1::2])  # every token, but no 8 in the original order
    every_fifth_changed = " ".join(w if i % 5 else "other" for i, w in enumerate(Q0))  # no 8-run survives
    clean = " ".join(FILLER)
    reasons, _, stats = run(bench, [nine, reordered, every_fifth_changed, clean, ""])
    assert reasons == [None] * 5
    assert stats["benchmarks"]["toy"]["instances_hit"] == 0


def test_normalisation_matches_case_and_punctuation_variants(bench):
    shouted = ", ".join(w.upper() for w in Q0) + "!!!"
    reasons, details, _ = run(bench, [shouted])
    assert reasons == ["contaminated"] and ":1.000 " in details[0]


def test_short_instance_matches_only_when_contained_whole(bench):
    contained = " ".join(FILLER[:3] + SHORT + FILLER[3:6])
    partial = " ".join(FILLER[:3] + SHORT[:4] + FILLER[3:6])
    tiny = "yes no yes no"
    reasons, details, stats = run(bench, [contained, partial, tiny])
    assert reasons == ["contaminated", None, None]
    assert details[0].startswith("contaminated:toy:2:1.000 ")
    assert 'span="alpha beta gamma delta epsilon"' in details[0]
    assert stats["benchmarks"]["toy"]["instances_not_indexable"] == 1  # the two-token instance


def test_best_instance_is_named_and_report_fraction(bench):
    texts = [
        " ".join(Q0[:10] + FILLER[:5] + Q1),  # Q0: 0.5, Q1: 1.0 -> named Q1
        " ".join(Q0),
        " ".join(FILLER),
    ]
    config = DecontamConfig(benchmarks=[f"toy={bench}:question"])
    v = decontaminate(sft(texts, sources=["web", "web", "books"]), config)
    assert v.details[0].startswith("contaminated:toy:1:1.000 ")
    toy = v.stats["benchmarks"]["toy"]
    assert toy["instances"] == 4
    assert toy["instances_hit"] == 2  # Q0 (rows 0 and 1) and Q1 (row 0)
    assert toy["contaminated_fraction"] == pytest.approx(0.5)
    assert toy["rows_removed"] == 2 and toy["rows_removed_per_source"] == {"web": 2}
    assert toy["rows_matching"] == 2
    assert {e["instance_id"] for e in toy["examples"]} == {"0", "1"}


def test_multi_field_instance_scores_the_mean_of_its_fields(tmp_path):
    path = tmp_path / "drop.jsonl"
    path.write_text(json.dumps({"id": "d1", "passage": " ".join(Q0), "question": " ".join(Q1)}) + "\n")
    config = DecontamConfig(benchmarks=[f"drop={path}:passage,question"])
    v = decontaminate(sft([" ".join(Q0), " ".join(Q0 + Q1[:10])]), config)
    assert v.details[0].startswith("contaminated:drop:d1:0.500 ")  # (1.0 + 0.0) / 2
    assert v.details[1].startswith("contaminated:drop:d1:0.750 ")  # (1.0 + 0.5) / 2


def test_several_benchmarks_are_reported_separately(tmp_path):
    a = bench_file(tmp_path, [" ".join(Q0)], "a.jsonl")
    b = bench_file(tmp_path, [" ".join(Q1), " ".join(SHORT)], "b.jsonl", field="prompt")
    config = DecontamConfig(benchmarks=[f"a={a}", f"b={b}"])  # fields guessed: question, prompt
    v = decontaminate(sft([" ".join(Q0), " ".join(Q1), "nothing here at all"]), config)
    assert v.details[0].startswith("contaminated:a:0:") and v.details[1].startswith("contaminated:b:0:")
    assert v.stats["benchmarks"]["a"]["contaminated_fraction"] == 1.0
    assert v.stats["benchmarks"]["b"]["contaminated_fraction"] == 0.5
    assert v.stats["benchmarks"]["b"]["fields"] == ["prompt"]


def test_text_view_selects_where_to_look(bench):
    ds = sft(["what is this", "clean"], assistant=[" ".join(Q0), "fine"])
    user = decontaminate(ds, DecontamConfig(benchmarks=[f"toy={bench}"]))
    answer = decontaminate(ds, DecontamConfig(benchmarks=[f"toy={bench}"], on="assistant"))
    assert list(user.reasons) == [None, None]
    assert list(answer.reasons) == ["contaminated", None]


def test_results_do_not_depend_on_workers_or_batches(bench):
    texts = [" ".join(FILLER[: i % 7] + Q0[i % 5 : i % 5 + 12] + SHORT[: 3 + i % 3]) for i in range(40)]
    base = run(bench, texts, workers=1)
    assert run(bench, texts, workers=2, batch_size=3)[:2] == base[:2]
    assert run(bench, texts, batch_size=1)[:2] == base[:2]


def test_preference_rows_are_scanned_by_prompt(bench):
    row = {"id": "p1", "prompt": [{"role": "user", "content": " ".join(Q1)}],
           "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}],
           "chosen_score": None, "rejected_score": None, "chosen_model": None, "rejected_model": None,
           "judge": "{}", "source": "s", "meta": "{}"}
    ds = datasets.Dataset.from_list([row], features=FEATURES["preference"])
    v = decontaminate(ds, DecontamConfig(benchmarks=[f"toy={bench}"]))
    assert v.details[0].startswith("contaminated:toy:1:1.000 ")


# ---------------------------------------------------------------- benchmark specs and registry


def test_spec_parsing_forms(tmp_path):
    assert parse_benchmark_spec("gsm8k") == BenchmarkSpec(name="gsm8k")
    assert parse_benchmark_spec("gsm8k=data/test.jsonl:question,answer") == BenchmarkSpec(
        name="gsm8k", path="data/test.jsonl", fields=("question", "answer"))
    assert parse_benchmark_spec("g=data/test.jsonl").fields == ()
    assert parse_benchmark_spec("g=hf:owner/name") == BenchmarkSpec(name="g", path="hf:owner/name")
    assert parse_benchmark_spec("g=hf:gsm8k") == BenchmarkSpec(name="g", path="hf:gsm8k")
    assert parse_benchmark_spec("g=hf:gsm8k:question").fields == ("question",)
    assert parse_benchmark_spec("g=hf:owner/name:prompt") == BenchmarkSpec(name="g", path="hf:owner/name", fields=("prompt",))
    assert parse_benchmark_spec("g=pkg://postmix/data/x.jsonl").path == "pkg://postmix/data/x.jsonl"
    odd = tmp_path / "odd:name"  # an existing path is never split at its colon
    odd.write_text("")
    assert parse_benchmark_spec(f"g={odd}").path == str(odd)
    for bad in ("", "=x.jsonl", "g=", "g=:question", "bad name"):
        with pytest.raises(ConfigError):
            parse_benchmark_spec(bad)


_ident = st.from_regex(r"[A-Za-z][A-Za-z0-9_\-]{0,10}", fullmatch=True)


@given(name=_ident, folders=st.lists(_ident, min_size=0, max_size=3), stem=_ident,
       suffix=st.sampled_from([".jsonl", ".json", ".parquet"]), fields=st.lists(_ident, min_size=0, max_size=3),
       hub=st.booleans())
def test_spec_parsing_round_trips(name, folders, stem, suffix, fields, hub):
    path = ("hf:" + "/".join([*folders, stem])) if hub else "/".join([*folders, stem + suffix])
    spec = BenchmarkSpec(name=name, path=path, fields=tuple(fields))
    assert parse_benchmark_spec(spec.label()) == spec


def test_registry_resolves_without_loading(monkeypatch):
    import postmix.io.read as read

    monkeypatch.setattr(read, "load_hub", lambda *a, **k: pytest.fail("must not load"))
    gsm8k = resolve_spec(BenchmarkSpec(name="gsm8k"))
    assert (gsm8k.path, gsm8k.fields, gsm8k.split) == ("hf:openai/gsm8k", ("question",), "test")
    humaneval = resolve_spec(BenchmarkSpec(name="HumanEval"))
    assert (humaneval.path, humaneval.fields, humaneval.id_field) == ("hf:openai/openai_humaneval", ("prompt",), "task_id")
    # a known name with a local file keeps the built-in's fields
    assert resolve_spec(BenchmarkSpec(name="gsm8k", path="x.jsonl")).fields == ("question",)
    assert {"gsm8k", "math", "humaneval", "mbpp", "mmlu", "ifeval", "alpacaeval", "bbh", "truthfulqa",
            "popqa", "gpqa", "aime"} <= set(BUILTIN_BENCHMARKS)


def test_unknown_benchmark_is_a_one_line_error_listing_names():
    with pytest.raises(UnknownBenchmarkError) as err:
        load_instances(BenchmarkSpec(name="nosuchbench"))
    message = str(err.value)
    assert "\n" not in message and "gsm8k" in message and "humaneval" in message and "nosuchbench=PATH" in message


def test_packaged_sample_loads_offline():
    sample = load_instances(BenchmarkSpec(name="gsm8k-sample"))
    assert len(sample.ids) == 30 and sample.fields == ("question",)
    assert sample.ids[:2] == ["0", "1"]


def test_bad_benchmark_files(tmp_path):
    no_field = bench_file(tmp_path, ["a b c"], field="body")
    with pytest.raises(ConfigError, match="no text field"):
        load_instances(parse_benchmark_spec(f"x={no_field}"))
    with pytest.raises(ConfigError, match="no field 'question'"):
        load_instances(parse_benchmark_spec(f"x={no_field}:question"))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "a b c"}\n{not json\n')
    with pytest.raises(ConfigError, match="line 2"):
        load_instances(parse_benchmark_spec(f"x={broken}:question"))
    with pytest.raises(PostmixError, match="no such file"):
        load_instances(parse_benchmark_spec(f"x={tmp_path / 'missing.jsonl'}:question"))


# ---------------------------------------------------------------- stage and CLI


def test_decontaminate_file_reconciles(tmp_path, bench):
    source = tmp_path / "train.jsonl"
    sft([" ".join(Q0), "clean row", " ".join(SHORT)]).to_json(str(source))
    result = decontaminate_file(source, tmp_path / "out.jsonl", DecontamConfig(benchmarks=[f"toy={bench}"]))
    report = result.report
    assert (report.rows_in, report.rows_out, report.rejected) == (3, 1, {"contaminated": 2})
    rejects = [json.loads(line) for line in result.rejects.read_text().splitlines()]
    assert [r["id"] for r in rejects] == ["r0", "r2"]
    assert rejects[0]["detail"].startswith("contaminated:toy:0:1.000")


def test_cli_end_to_end(tmp_path, bench):
    from postmix.cli import app

    source = tmp_path / "train.jsonl"
    sft([" ".join(Q0), "clean row"]).to_json(str(source))
    out = tmp_path / "clean.jsonl"
    result = CliRunner().invoke(app, ["curate", "decontam", str(source), "-o", str(out), "--benchmark", f"gsm8k={bench}:question"])
    assert result.exit_code == 0, result.output
    assert "gsm8k: 1/4 instances" in result.output
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["r1"]
    report = json.loads((tmp_path / "clean.report.json").read_text())
    assert report["rejected"] == {"contaminated": 1}
    assert report["details"]["benchmarks"]["gsm8k"]["instances_hit"] == 1
    rejected = json.loads((tmp_path / "clean.rejects.jsonl").read_text())
    assert rejected["id"] == "r0" and rejected["detail"].startswith("contaminated:gsm8k:0:1.000 side=question field=question span=")

    bad = CliRunner().invoke(app, ["curate", "decontam", str(source), "-o", str(out), "--benchmark", "nosuchbench"])
    assert bad.exit_code != 0 and isinstance(bad.exception, UnknownBenchmarkError)


def test_contamination_report_of_plain_texts(bench):
    report = contamination_report(["a", "b", "c"], [" ".join(Q1), "clean", " ".join(SHORT)], [f"toy={bench}"])
    assert report["rows_flagged"] == 2 and report["flagged_ids"] == ["a", "c"]
    assert report["benchmarks"]["toy"]["instances_hit"] == 2
    assert report["benchmarks"]["toy"]["contaminated_fraction"] == 0.5
