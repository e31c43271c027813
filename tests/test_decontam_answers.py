"""Decontamination of answers (reference solutions copied into assistant turns), the markup
normalisation that survives light edits, the contamination matrix (stage files, mix version,
HTML report) and the paraphrase pass against the test server's embeddings."""

from __future__ import annotations

import json
import re

import datasets
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postmix.curate.benchmarks import (
    GSM8K_MARKUP,
    BenchmarkSpec,
    load_instances,
    parse_benchmark_spec,
)
from postmix.curate.decontam import DecontamConfig, decontaminate, decontaminate_file
from postmix.curate.normalise import NormaliseOptions, decode_rows, normalise_text, normalise_texts
from postmix.errors import ConfigError
from postmix.schemas import FEATURES

SAMPLE = load_instances(BenchmarkSpec(name="gsm8k-sample"))  # 30 GSM8K test items, packaged
GENERIC = "Please solve the following math problem step by step."


def sft(pairs: list[tuple[str, str]], sources: list[str] | None = None) -> datasets.Dataset:
    rows = [{"id": f"r{i}", "source": (sources or ["s"] * len(pairs))[i], "meta": "{}",
             "messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]}
            for i, (u, a) in enumerate(pairs)]
    return datasets.Dataset.from_list(rows, features=FEATURES["sft"])


def edited(answer: str, every: int = 15) -> str:
    """What SFT data does to a copied GSM8K solution: calculator annotations and the '####'
    line dropped (the result restated), and every ``every``-th word changed."""
    body, _, final = answer.rpartition("####")
    body = re.sub(r"<<[^<>]*>>", "", body)
    words = body.split()
    words = [("quite" if i % every == every // 2 else w) for i, w in enumerate(words)]
    return " ".join(words) + f" The final answer is {final.strip()}."


# ---------------------------------------------------------------- answer side


def score(detail: str) -> float:
    return float(detail.split(" ")[0].split(":")[3]) if detail else 0.0


def test_answer_leaks_verbatim_and_edited_are_caught_under_a_generic_prompt():
    answers = [t[0] for t in SAMPLE.answers[:6]]
    pairs = [(GENERIC, answers[0]), (GENERIC, answers[1]), (GENERIC, edited(answers[2])),
             (GENERIC, edited(answers[3])), ("What is 2+2?", "4"), (GENERIC, "Nothing to see.")]
    verdicts = decontaminate(sft(pairs), DecontamConfig(benchmarks=["gsm8k-sample"]))
    assert list(verdicts.reasons) == ["contaminated"] * 4 + [None, None]
    for row, instance in zip(range(4), ("0", "1", "2", "3"), strict=True):
        assert verdicts.details[row].startswith(f"contaminated:gsm8k-sample:{instance}:")
        assert " side=answer field=answer span=" in verdicts.details[row]
    # the user-turn scan alone (today's default) misses every one of them
    questions_only = decontaminate(sft(pairs), DecontamConfig(benchmarks=["gsm8k-sample"],
                                                              answer_on=None))
    assert list(questions_only.reasons) == [None] * 6
    # without the markup removal the edited copies lose coverage at every annotation
    plain = decontaminate(sft(pairs[2:4]), DecontamConfig(benchmarks=[
        BenchmarkSpec(name="gsm8k-sample", markup=())], threshold=0.01))
    for row in (0, 1):
        assert score(plain.details[row]) < score(verdicts.details[row + 2]) - 0.1


def test_genuine_gsm8k_style_rows_are_not_flagged():
    """Word problems and solutions in GSM8K's own format (annotations, '####'), none of them a
    benchmark item: neither side may flag them."""
    genuine = [
        ("Tom has 12 marbles and buys 3 bags of 5 marbles each. How many marbles does he have now?",
         "The bags hold 3 * 5 = <<3*5=15>>15 marbles.\nSo Tom has 12 + 15 = <<12+15=27>>27 "
         "marbles.\n#### 27"),
        ("A baker makes 48 rolls and sells half of them in the morning. How many are left?",
         "She sells 48 / 2 = <<48/2=24>>24 rolls.\nSo 48 - 24 = <<48-24=24>>24 rolls are "
         "left.\n#### 24"),
        ("Mia reads 20 pages a day for 7 days. How many pages does she read in total?",
         "She reads 20 * 7 = <<20*7=140>>140 pages in total.\n#### 140"),
        ("A farmer has 5 cows that each give 8 liters of milk a day. How much milk does he get "
         "in a week?", "Each day he gets 5 * 8 = <<5*8=40>>40 liters.\nIn a week that is "
         "40 * 7 = <<40*7=280>>280 liters.\n#### 280"),
        ("John runs 3 miles every morning and 2 miles every evening. How far does he run in "
         "5 days?", "He runs 3 + 2 = <<3+2=5>>5 miles a day.\nIn 5 days he runs 5 * 5 = "
         "<<5*5=25>>25 miles.\n#### 25"),
    ]
    verdicts = decontaminate(sft(genuine), DecontamConfig(benchmarks=["gsm8k-sample"]))
    assert list(verdicts.reasons) == [None] * len(genuine)


def test_both_sides_and_several_benchmarks_are_named_in_the_detail(tmp_path):
    q0, a0 = SAMPLE.texts[0][0], SAMPLE.answers[0][0]
    other = tmp_path / "other.jsonl"
    words = " ".join(f"w{i}" for i in range(30))
    other.write_text(json.dumps({"prompt": words, "solution": "a b"}) + "\n", encoding="utf-8")
    config = DecontamConfig(benchmarks=["gsm8k-sample", f"other={other}:prompt|solution"])
    verdicts = decontaminate(sft([(q0 + " " + words, a0)]), config)
    parts = verdicts.details[0].split("; ")
    assert [p.split(" span=")[0] for p in parts] == [
        "contaminated:gsm8k-sample:0:1.000 side=question field=question",
        "contaminated:other:0:1.000 side=question field=prompt",
        "contaminated:gsm8k-sample:0:1.000 side=answer field=answer",
    ]
    stats = verdicts.stats["benchmarks"]["gsm8k-sample"]
    assert stats["sides"]["question"]["instances_hit"] == 1
    assert stats["sides"]["answer"]["instances_hit"] == 1
    assert stats["rows_removed"] == 1 and verdicts.stats["benchmarks"]["other"]["rows_removed"] == 0
    # "a b" is below min_short_tokens: the other benchmark's answer side has nothing indexable
    assert verdicts.stats["benchmarks"]["other"]["sides"]["answer"]["instances_not_indexable"] == 1


def test_multi_field_answer_names_the_field_that_matched(tmp_path):
    bench = tmp_path / "b.jsonl"
    sol = " ".join(f"s{i}" for i in range(20))
    expl = " ".join(f"e{i}" for i in range(20))
    bench.write_text(json.dumps({"q": "some question here", "sol": sol, "expl": expl}) + "\n")
    config = DecontamConfig(benchmarks=[f"b={bench}:q|sol,expl"])
    verdicts = decontaminate(sft([("hi", expl + " " + sol[:11])]), config)
    # expl fully covered, sol 0: mean 0.5 -> flagged; the field named is the covered one
    assert verdicts.details[0].startswith("contaminated:b:0:0.500 side=answer field=expl ")


def test_rlvr_rows_have_no_answer_side():
    row = {"id": "x", "prompt": [{"role": "user", "content": SAMPLE.texts[0][0]}],
           "ground_truth": "18", "verifier": "gsm8k", "constraints": [], "source": "s",
           "meta": "{}"}
    ds = datasets.Dataset.from_list([row], features=FEATURES["rlvr"])
    verdicts = decontaminate(ds, DecontamConfig(benchmarks=["gsm8k-sample"]))
    assert list(verdicts.reasons) == ["contaminated"]
    assert verdicts.stats["answer_view"] is None
    assert {c["side"] for c in verdicts.sidecar.to_json()["cells"]} == {"question"}


def test_answer_field_specs(tmp_path):
    assert parse_benchmark_spec("g=t.jsonl:question|answer") == BenchmarkSpec(
        name="g", path="t.jsonl", fields=("question",), answer_fields=("answer",))
    assert parse_benchmark_spec("g=t.jsonl:|answer").fields == ()
    assert parse_benchmark_spec("g=t.jsonl:question|").answer_fields == ()
    assert parse_benchmark_spec("g=t.jsonl:question").answer_fields is None
    local = tmp_path / "gsm8k.jsonl"
    local.write_text(json.dumps({"question": "a b c d", "answer": "x <<1+1=2>>2 y"}) + "\n")
    loaded = load_instances(parse_benchmark_spec(f"gsm8k={local}"))  # the built-in's fields
    assert loaded.answer_fields == ("answer",) and loaded.markup == GSM8K_MARKUP
    no_answers = tmp_path / "q.jsonl"
    no_answers.write_text(json.dumps({"question": "a b c d"}) + "\n")
    assert load_instances(parse_benchmark_spec(f"gsm8k={no_answers}")).answer_fields == ()
    with pytest.raises(ConfigError, match="no answer field 'solution'"):
        load_instances(parse_benchmark_spec(f"x={no_answers}:question|solution"))


_ident = st.from_regex(r"[A-Za-z][A-Za-z0-9_\-]{0,8}", fullmatch=True)


@given(name=_ident, stem=_ident, questions=st.lists(_ident, max_size=3),
       answers=st.none() | st.lists(_ident, max_size=3))
def test_answer_specs_round_trip(name, stem, questions, answers):
    spec = BenchmarkSpec(name=name, path=f"data/{stem}.jsonl", fields=tuple(questions),
                         answer_fields=None if answers is None else tuple(answers))
    assert parse_benchmark_spec(spec.label()) == spec


# ---------------------------------------------------------------- markup normalisation

GSM = NormaliseOptions(markup=GSM8K_MARKUP)
_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
_annotation = st.builds(lambda a, b: f"<<{a}={b}>>", st.from_regex(r"[0-9+*/\-. ]{0,8}",
                                                                      fullmatch=True),
                        st.integers(0, 10**6))


@settings(max_examples=300, deadline=None)  # the first non-ASCII text builds Unicode tables
@given(text=_text, options=st.builds(NormaliseOptions, nfkc=st.booleans(),
                                     lowercase=st.booleans(), strip_punctuation=st.booleans(),
                                     markup=st.sampled_from([(), GSM8K_MARKUP])))
def test_normalise_with_markup_is_idempotent_and_the_batch_path_agrees(text, options):
    once = normalise_text(text, options)
    assert normalise_text(once, options) == once
    assert decode_rows(*normalise_texts([text], options)) == [once]


@settings(max_examples=300, deadline=None)
@given(words=st.lists(st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True), min_size=1, max_size=12),
       annotations=st.lists(_annotation, min_size=1, max_size=4), data=st.data(),
       final=st.integers(-10**6, 10**6))
def test_markup_removal_makes_annotated_and_stripped_text_equal(words, annotations, data, final):
    annotated = list(words)
    for annotation in annotations:  # GSM8K puts annotations right before a result
        at = data.draw(st.integers(0, len(annotated) - 1))
        annotated[at] = annotation + annotated[at]
    text = " ".join(annotated) + f"\n#### {final}"
    assert normalise_text(text, GSM) == normalise_text(" ".join(words), GSM)
    assert "<" not in normalise_text(text, GSM.model_copy(update={"strip_punctuation": False}))


def test_bad_markup_patterns_are_refused():
    for bad in ("a*", "(", "(?<=a)b"):
        with pytest.raises(ValueError):
            NormaliseOptions(markup=(bad,))


# ---------------------------------------------------------------- the matrix


def leaky_rows() -> tuple[datasets.Dataset, list[str]]:
    q, a = [t[0] for t in SAMPLE.texts], [t[0] for t in SAMPLE.answers]
    pairs = [(q[0], "I do not know."), (GENERIC, a[1]), (q[2], a[2]), (GENERIC, edited(a[3])),
             (GENERIC, "clean"), (q[0] + " thanks", "fine"), (GENERIC, a[1]), ("hello", "clean")]
    sources = ["web", "web", "synth", "synth", "synth", "books", "books", "quiet"]
    return sft(pairs, sources), sources


def test_matrix_is_written_beside_the_output_and_reconciles_with_the_rejects(tmp_path):
    ds, _ = leaky_rows()
    source = tmp_path / "train.jsonl"
    ds.to_json(str(source))
    result = decontaminate_file(source, tmp_path / "clean.parquet",
                                DecontamConfig(benchmarks=["gsm8k-sample"]))
    matrix = json.loads((tmp_path / "clean.contamination.json").read_text())
    tsv = (tmp_path / "clean.contamination.tsv").read_text().splitlines()
    assert result.report.outputs["contamination.json"] == str(tmp_path / "clean.contamination.json")
    assert matrix["benchmarks"] == [{"name": "gsm8k-sample", "instances": 30}]
    rejects = [json.loads(line) for line in result.rejects.read_text().splitlines()]
    cells = {(c["source"], c["side"]): c for c in matrix["cells"]}
    # every source scanned has a cell per side, "quiet" with zeros
    assert set(cells) == {(s, side) for s in ("web", "synth", "books", "quiet")
                          for side in ("question", "answer")}
    for (src, side), cell in cells.items():
        mine = [r for r in rejects if r["source"] == src
                and any(f"side={side} " in part for part in r["detail"].split("; "))]
        assert cell["rows_flagged"] == len(mine), (src, side)
        hit = {part.split(":")[2] for r in mine for part in r["detail"].split("; ")
               if f"side={side} " in part}
        assert cell["instances_hit"] == len(hit)
        assert cell["share"] == pytest.approx(len(hit) / 30, abs=1e-6)
    assert cells[("books", "answer")]["rows_flagged"] == 1  # a[1] again, from another source
    assert cells[("quiet", "question")]["rows_flagged"] == 0
    assert {r["source"] for r in rejects} == {"web", "synth", "books"}
    assert len(tsv) == 1 + len(matrix["cells"])
    assert tsv[0].split("\t") == ["source", "benchmark", "side", "rows_flagged", "instances_hit",
                                  "benchmark_instances", "share"]


def test_mix_build_writes_the_matrix_and_the_html_report_shows_it(tmp_path):
    pytest.importorskip("matplotlib")
    from postmix import mix
    from postmix.mix.html_report import write_report

    ds, _ = leaky_rows()
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    ds.select(range(4)).to_json(str(first))
    ds.select(range(4, 8)).to_json(str(second))
    spec = {"name": "m", "kind": "sft", "seed": 0,
            "sources": [{"name": "a", "path": str(first),
                         "steps": [{"step": "decontam", "config": {"benchmarks": ["gsm8k-sample"],
                                                                   "answer_on": None}}]},
                        {"name": "b", "path": str(second)}],
            "global_steps": [{"step": "decontam", "config": {"benchmarks": ["gsm8k-sample"]}}]}
    built = mix.build(spec, home=tmp_path / "home", progress=False)
    entry = built.manifest["contamination"]
    assert entry == {"json": "contamination.json", "tsv": "contamination.tsv"}
    matrix = json.loads((built.mix.path / entry["json"]).read_text())
    assert (built.mix.path / entry["tsv"]).is_file()
    cells = {(c["source"], c["side"]): c["rows_flagged"] for c in matrix["cells"]}
    # per-source step (questions only) took web's row 0 and synth's row 2; the global step the
    # answer copies that were left, in every source
    assert cells[("web", "question")] == 1 and cells[("synth", "question")] == 1
    assert cells[("web", "answer")] == 1 and cells[("synth", "answer")] == 1
    assert cells[("books", "question")] == 1 and cells[("books", "answer")] == 1
    rejects = built.manifest["rejects"]["rows"]
    assert rejects == 6
    page = write_report(built.mix.ref, tmp_path / "report.html", home=tmp_path / "home").read_text()
    section = page[page.index("<h2>Contamination</h2>"):]
    assert "gsm8k-sample (30 instances)" in section
    assert "<td>books</td><td>gsm8k-sample</td><td>answer</td><td>1</td><td>1 / 30</td>" in section


def test_html_report_of_a_mix_without_decontam_says_so(tmp_path):
    pytest.importorskip("matplotlib")
    from postmix import mix
    from postmix.mix.html_report import write_report

    ds, _ = leaky_rows()
    path = tmp_path / "a.jsonl"
    ds.to_json(str(path))
    built = mix.build({"name": "m", "kind": "sft", "seed": 0,
                       "sources": [{"name": "a", "path": str(path)}]},
                      home=tmp_path / "home", progress=False)
    assert built.manifest["contamination"] is None
    page = write_report(built.mix.ref, tmp_path / "r.html", home=tmp_path / "home").read_text()
    assert "no decontam step in this build" in page


# ---------------------------------------------------------------- paraphrase pass


@pytest.fixture
def embedding_server():
    from postmix.testing.openai_server import FakeOpenAIServer

    with FakeOpenAIServer(model="embedder") as server:
        yield server


def paraphrase_config(server, tmp_path, **extra) -> dict:
    pool = {"endpoints": [{"name": "emb", "model": "embedder", "base_url": server.base_url}],
            "retry": {"backoff_base": 0.01}}
    return {"endpoints": pool, "threshold": 0.8, "cache_path": str(tmp_path / "emb.sqlite"),
            **extra}


def reworded(question: str) -> str:
    """The question's words swapped pairwise, one word replaced: not one 8-gram (not even a
    bigram of the original order) is left, while the words are (what a bag-of-words embedding
    sees; a real model sees the meaning)."""
    words = question.split()
    for i in range(0, len(words) - 1, 2):
        words[i], words[i + 1] = words[i + 1], words[i]
    words[len(words) // 2] = "roughly"
    return " ".join(words)


def test_paraphrase_pass_flags_reworded_questions_against_the_test_server(embedding_server,
                                                                          tmp_path):
    q = [t[0] for t in SAMPLE.texts]
    pairs = [(reworded(q[0]), "ok"), (reworded(q[4]), "ok"), ("Write a poem about autumn.", "ok"),
             ("How many legs does a spider have?", "eight")]
    ds = sft(pairs, ["web", "web", "chat", "chat"])
    plain = decontaminate(ds, DecontamConfig(benchmarks=["gsm8k-sample"]))
    assert list(plain.reasons) == [None] * 4  # the n-gram scan misses the rewording
    config = DecontamConfig(benchmarks=["gsm8k-sample"],
                            paraphrase=paraphrase_config(embedding_server, tmp_path))
    verdicts = decontaminate(ds, config)
    assert list(verdicts.reasons) == ["contaminated", "contaminated", None, None]
    assert verdicts.details[0].startswith("contaminated:gsm8k-sample:0:")
    assert " side=paraphrase field=question " in verdicts.details[0]
    assert verdicts.details[1].startswith("contaminated:gsm8k-sample:4:")
    cells = {(c["source"], c["side"]): c for c in verdicts.sidecar.to_json()["cells"]}
    assert cells[("web", "paraphrase")]["rows_flagged"] == 2
    assert cells[("web", "paraphrase")]["instances_hit"] == 2
    assert cells[("chat", "paraphrase")]["rows_flagged"] == 0
    ledger = verdicts.stats["paraphrase"]["ledger"]
    assert ledger["endpoints"]["emb"]["answered"] == len(embedding_server.embedding_requests())
    assert ledger["prompt_tokens"] > 0 and ledger["cached"] == 0
    # the second run is answered from the cache: no request reaches the server
    sent = len(embedding_server.requests)
    again = decontaminate(ds, config)
    assert list(again.reasons) == list(verdicts.reasons)
    assert len(embedding_server.requests) == sent
    assert again.stats["paraphrase"]["ledger"]["cached"] == 30 + 4


def test_paraphrase_pass_retries_faults_and_stops_on_what_it_cannot_embed(embedding_server,
                                                                          tmp_path):
    q0 = SAMPLE.texts[0][0]
    ds = sft([(reworded(q0), "ok"), ("unrelated words entirely", "ok")])
    embedding_server.inject("server_error", 2)
    embedding_server.inject("rate_limit", 1)
    config = DecontamConfig(benchmarks=["gsm8k-sample"],
                            paraphrase=paraphrase_config(embedding_server, tmp_path, batch_size=8))
    verdicts = decontaminate(ds, config)
    assert list(verdicts.reasons) == ["contaminated", None]
    errors = verdicts.stats["paraphrase"]["ledger"]["endpoints"]["emb"]["errors"]
    assert errors == {"rate_limit": 1, "server_error": 2}
    from postmix.curate.paraphrase import EmbeddingFailedError

    embedding_server.inject("server_error", 50)
    failing = paraphrase_config(embedding_server, tmp_path, use_cache=False,
                                threshold=0.5)
    failing["endpoints"]["retry"] = {"max_attempts": 2, "backoff_base": 0.0}
    with pytest.raises(EmbeddingFailedError, match="could not be embedded"):
        decontaminate(ds, DecontamConfig(benchmarks=["gsm8k-sample"], paraphrase=failing))


def test_test_server_embeddings_are_deterministic_and_close_for_paraphrases():
    from postmix.testing.openai_server import hashed_embedding

    def cosine(a, b):
        return sum(x * y for x, y in zip(hashed_embedding(a), hashed_embedding(b), strict=True))

    q = SAMPLE.texts[0][0]
    assert hashed_embedding(q) == hashed_embedding(q)
    assert cosine(q, q) == pytest.approx(1.0)
    assert cosine(q, reworded(q)) > 0.9
    assert cosine(q, "Write a poem about autumn leaves falling.") < 0.3
