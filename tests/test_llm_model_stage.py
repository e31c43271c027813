"""What the model-calling stages share: outputs published together or kept as partials, one
refusal / self-identification detector for the quality filters and ``curate respond``, and the
layer rules that keep ``curate`` off ``judge``, ``llm`` off ``scale`` and ``llm`` free of cycles."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import get_args

import datasets
import pytest

import postmix
from postmix.curate import respond as respond_module
from postmix.curate.filters import FilterConfig, apply_filters
from postmix.curate.refusals import REASONS
from postmix.curate.respond import RespondConfig, respond, response_verdicts
from postmix.io.write import rejects_path, report_path
from postmix.llm import EndpointConfig, PoolConfig, RetryConfig
from postmix.llm.backends import BACKENDS
from postmix.llm.model_stage import StageOutputs, failures_path, load_prompts
from postmix.schemas import FEATURES, Reject
from postmix.testing.openai_server import SERVER_ERROR

PACKAGE = Path(postmix.__file__).parent


def _published(out: Path) -> list[Path]:
    return [p for p in (out, rejects_path(out), failures_path(out), report_path(out)) if p.exists()]


def test_outputs_publish_all_files_on_success(tmp_path):
    out = tmp_path / "o.jsonl"
    with StageOutputs(out) as outputs:
        outputs.keep({"id": "a"})
        outputs.reject(Reject(reason="dull", detail="", row={"id": "b"}))
        outputs.fail(Reject(reason="server_error", detail="", row={"id": "c"}))
    result = outputs.report("t", config={}, rows_in=3, inputs=[], details={})
    assert result.report.rejected == {"dull": 1, "server_error": 1}
    assert result.report.outputs == {"data": str(out), "rejects": str(rejects_path(out)),
                                     "failures": str(failures_path(out))}
    assert len(_published(out)) == 4 and not list(tmp_path.glob("*.partial"))


def test_an_exception_mid_run_leaves_no_final_file_and_keeps_the_partials(tmp_path):
    out = tmp_path / "o.jsonl"
    with pytest.raises(RuntimeError), StageOutputs(out, rejects_file=False) as outputs:
        outputs.keep({"id": "a"})
        outputs.fail(Reject(reason="server_error", detail="", row={"id": "b"}))
        raise RuntimeError("the run died")
    assert _published(out) == []
    kept = Path(str(out) + ".partial").read_text().splitlines()
    assert [json.loads(line)["id"] for line in kept] == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.failures.jsonl.partial",
                                                         "o.jsonl.partial"]


def test_a_stage_that_dies_after_answering_publishes_nothing(tmp_path, openai_server,
                                                             monkeypatch):
    openai_server.set_responder(lambda body: SERVER_ERROR if "BROKEN" in body["messages"][-1][
        "content"] else "A fine answer.")
    source = tmp_path / "p.jsonl"
    source.write_text("".join(json.dumps({"id": i, "prompt": text}) + "\n"
                              for i, text in (("a", "Plan A"), ("b", "BROKEN"))))

    def boom(*args, **kwargs):
        raise RuntimeError("verifier crashed")

    monkeypatch.setattr(respond_module, "response_verdicts", boom)
    pool = PoolConfig(endpoints=[EndpointConfig(name="r", model="m",
                                                base_url=openai_server.base_url)],
                      retry=RetryConfig(max_attempts=1, backoff_base=0.001))
    out = tmp_path / "sft.jsonl"
    with pytest.raises(RuntimeError, match="verifier crashed"):
        respond(source, out, pool, RespondConfig(filters=["empty"]), progress=False)
    assert _published(out) == []
    failed = Path(str(failures_path(out)) + ".partial").read_text().splitlines()
    assert [json.loads(line)["reason"] for line in failed] == ["server_error"]


def test_prompt_loader_rejects_a_bad_meta_only_when_asked(tmp_path):
    source = tmp_path / "p.jsonl"
    source.write_text(json.dumps({"id": "a", "prompt": "hi", "meta": 3}) + "\n")
    assert [row.id for row in load_prompts(source).items] == ["a"]

    def meta(data):
        raise ValueError("meta must be a JSON object")

    loaded = load_prompts(source, meta=meta)
    assert loaded.items == [] and [r.reason for r in loaded.rejects] == ["bad_prompt"]


TEXTS = [
    "I'm sorry, but I can't help with that request.",
    "Sorry, I cannot assist with this.",
    "As an AI language model, I do not have a favourite city.",
    "I am ChatGPT, a model trained by OpenAI.",
    "I was trained by Anthropic to be helpful.",
    "I'm Qwen, here to help.",
    "My knowledge cutoff is 2023, so check the date.",
    "I can't recommend this enough: go outside.",
    "The library was built by Google engineers.",
    "Paris is the capital of France.",
]


def _filter_fires(rule: str) -> list[bool]:
    rows = [{"id": f"r{i}", "messages": [{"role": "user", "content": "q"},
                                         {"role": "assistant", "content": text}],
             "source": "s", "meta": "{}"} for i, text in enumerate(TEXTS)]
    ds = datasets.Dataset.from_list(rows, features=FEATURES["sft"])
    return [r == rule for r in apply_filters(ds, FilterConfig(rules=[rule])).reasons]


def _respond_fires(rule: str) -> list[bool]:
    ids = [f"id{i}" for i in range(len(TEXTS))]
    verdicts = response_verdicts(TEXTS, [None] * len(TEXTS), ids, [rule])
    return [v is not None and v[0] == rule for v in verdicts]


@pytest.mark.parametrize("rule", REASONS)
def test_filter_and_respond_detect_the_same_texts_with_the_same_code(rule):
    fires = _filter_fires(rule)
    assert fires == _respond_fires(rule)
    assert any(fires) and not all(fires)


def test_one_reason_code_for_self_identification():
    assert "self_identification" in RespondConfig().filters
    # the spelling respond used before the filters shared the detector still reads
    assert RespondConfig(filters=["self_identity"]).filters == ["self_identification"]


def test_backend_table_names_every_configurable_backend():
    assert set(BACKENDS) == set(get_args(EndpointConfig.model_fields["backend"].annotation))


def _imports(path: Path) -> list[str]:
    """Every postmix module a file imports, at module level or inside a function."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: -node.level] if path.name != "__init__.py" else \
                    module.split(".")[: len(module.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return [n for n in names if n == "postmix" or n.startswith("postmix.")]


@pytest.mark.parametrize(("package", "forbidden"), [("curate", "judge"), ("llm", "scale")])
def test_lower_packages_do_not_import_upper_ones(package, forbidden):
    offenders = {str(path.relative_to(PACKAGE)): name
                 for path in (PACKAGE / package).rglob("*.py") for name in _imports(path)
                 if name.split(".")[1:2] == [forbidden]}
    assert offenders == {}


def test_llm_modules_import_each_other_without_a_cycle():
    graph = {path.stem: {name.split(".")[2] for name in _imports(path)
                         if name.startswith("postmix.llm.") and name.split(".")[2] != path.stem}
             for path in (PACKAGE / "llm").glob("*.py") if path.stem != "__init__"}
    modules = set(graph)
    graph = {m: deps & modules for m, deps in graph.items()}
    done: set[str] = set()

    def visit(node: str, trail: tuple[str, ...]) -> None:
        assert node not in trail, " -> ".join((*trail, node))
        if node not in done:
            for dep in graph[node]:
                visit(dep, (*trail, node))
            done.add(node)

    for module in sorted(graph):
        visit(module, ())


def test_respond_takes_the_filters_phrase_settings():
    texts = ["I'm Qwen, here to help.", "Thanks for asking. I'm just an AI, it's not within my programming to do that.",
             "I am Tulu, a helpful model.", "As of my last update, the museum opens at nine."]
    ids = [f"id{i}" for i in range(len(texts))]
    settings = {"model_families": ["openai"], "self_identification_phrases": ["I am Tulu"]}
    rules = ["self_identification", "refusal", "knowledge_cutoff"]
    said = [v and v[0] for v in response_verdicts(texts, [None] * len(texts), ids, rules,
                                                   settings=RespondConfig(**settings))]
    rows = [{"id": i, "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": t}],
             "source": "s", "meta": "{}"} for i, t in zip(ids, texts, strict=True)]
    ds = datasets.Dataset.from_list(rows, features=FEATURES["sft"])
    filtered = apply_filters(ds, FilterConfig(rules=rules, **settings)).reasons
    assert said == list(filtered) == [None, None, "self_identification", "knowledge_cutoff"]
    # with every family (the default) Qwen's name and Llama's refusal are found, by both
    assert [v and v[0] for v in response_verdicts(texts, [None] * len(texts), ids, rules)][:2] == [
        "self_identification", "refusal"]
