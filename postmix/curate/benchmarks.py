"""Which benchmark a ``--benchmark`` option names, and loading its instances.

``NAME``                 a built-in: its Hub dataset, split and text fields (network needed), or
                         ``gsm8k-sample``, 30 GSM8K test questions shipped with postmix, and
                         ``ifeval``, its 541 published prompts, also shipped (both offline)
``NAME=PATH``            a local .jsonl/.json/.parquet (or ``hf:owner/name``); text fields are the
                         built-in's for a known NAME, else the first of question/prompt/problem/...
``NAME=PATH:F1,F2``      the same with explicit question fields; each field is scored on its own
                         and the instance score is their mean (as open-instruct does)
``NAME=PATH:Q1|A1,A2``   question fields, then answer fields (a reference solution); either list
                         may be empty (``:|answer``: the usual question fields, answer ``answer``;
                         ``:question|``: no answer fields, even for a built-in)

User turns are scanned against the question fields and assistant turns against the answer
fields, each side scored on its own (``postmix.curate.decontam``). A built-in also names its
``markup``: patterns of text that carries no content (GSM8K's ``<<48/2=24>>`` calculator
annotations and ``#### 72`` answer line), removed from benchmark and training text alike.

The Hub entries follow the evaluation sets open-instruct's decontamination script queries for
Tulu 3 (dataset, config, split, fields); nothing is downloaded unless a name is used without a path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from postmix.errors import ConfigError

SAMPLE_PATH = "pkg://postmix/data/benchmarks/gsm8k_test_sample.jsonl"
# IFEval's 541 published prompts (google-research instruction_following_eval, Apache-2.0): the
# same rows as the Hub's google/IFEval, bundled so it is evaluated and decontaminated offline
IFEVAL_PATH = "pkg://postmix/data/benchmarks/ifeval_input_data.jsonl"
# Tried in order when a local file is given without fields and its name is not built in.
GUESSED_FIELDS = (
    "question",
    "prompt",
    "problem",
    "instruction",
    "input",
    "text",
    "Question",
    "query",
)
ID_FIELDS = ("id", "task_id", "unique_id", "question_id", "key", "idx")

_BBH_TASKS = (
    "boolean_expressions", "causal_judgement", "date_understanding", "disambiguation_qa",
    "dyck_languages", "formal_fallacies", "geometric_shapes", "hyperbaton",
    "logical_deduction_five_objects", "logical_deduction_seven_objects",
    "logical_deduction_three_objects", "movie_recommendation", "multistep_arithmetic_two",
    "navigate", "object_counting", "penguins_in_a_table", "reasoning_about_colored_objects",
    "ruin_names", "salient_translation_error_detection", "snarks", "sports_understanding",
    "temporal_sequences", "tracking_shuffled_objects_five_objects",
    "tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects_three_objects",
    "web_of_lies", "word_sorting",
)
_MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra",
                  "number_theory", "prealgebra", "precalculus")


# GSM8K answers carry calculator annotations ("48/2 = <<48/2=24>>24") and end with "#### 72";
# SFT data that copies a solution usually drops both, so neither is compared.
GSM8K_MARKUP = (r"<<[^<>]*>>", r"####[^\n]*")


@dataclass(frozen=True)
class BuiltinBenchmark:
    """Where a named benchmark lives. ``configs``: Hub configs loaded and concatenated."""

    hub: str | None
    split: str
    fields: tuple[str, ...]
    configs: tuple[str | None, ...] = (None,)
    id_field: str | None = None
    path: str | None = None  # a file shipped with postmix instead of the Hub
    answers: tuple[str, ...] = ()  # reference solutions, scanned against assistant turns
    markup: tuple[str, ...] = ()  # patterns removed before comparing (NormaliseOptions.markup)


BUILTIN_BENCHMARKS: dict[str, BuiltinBenchmark] = {
    "gsm8k": BuiltinBenchmark("openai/gsm8k", "test", ("question",), ("main",),
                              answers=("answer",), markup=GSM8K_MARKUP),
    "gsm8k-sample": BuiltinBenchmark(None, "test", ("question",), path=SAMPLE_PATH,
                                     answers=("answer",), markup=GSM8K_MARKUP),
    "math": BuiltinBenchmark("EleutherAI/hendrycks_math", "test", ("problem",), _MATH_SUBJECTS,
                             answers=("solution",)),
    "math500": BuiltinBenchmark(
        "HuggingFaceH4/MATH-500", "test", ("problem",), id_field="unique_id",
        answers=("solution",),
    ),
    "humaneval": BuiltinBenchmark(
        "openai/openai_humaneval", "test", ("prompt",), id_field="task_id",
        answers=("canonical_solution",),
    ),
    "mbpp": BuiltinBenchmark(
        "google-research-datasets/mbpp", "test", ("text",), ("full",), id_field="task_id",
        answers=("code",),
    ),
    "mmlu": BuiltinBenchmark("cais/mmlu", "test", ("question",), ("all",)),
    "mmlu-pro": BuiltinBenchmark(
        "TIGER-Lab/MMLU-Pro", "test", ("question",), id_field="question_id"
    ),
    "ifeval": BuiltinBenchmark("google/IFEval", "train", ("prompt",), id_field="key",
                               path=IFEVAL_PATH),
    "alpacaeval": BuiltinBenchmark(
        "tatsu-lab/alpaca_eval", "eval", ("instruction",), ("alpaca_eval",)
    ),
    "bbh": BuiltinBenchmark("lukaemon/bbh", "test", ("input",), _BBH_TASKS),
    "truthfulqa": BuiltinBenchmark(
        "truthfulqa/truthful_qa", "validation", ("question",), ("generation",),
        answers=("best_answer",),
    ),
    "popqa": BuiltinBenchmark("akariasai/PopQA", "test", ("question",), id_field="id"),
    "gpqa": BuiltinBenchmark("Idavidrein/gpqa", "train", ("Question",), ("gpqa_extended",)),
    "aime": BuiltinBenchmark("HuggingFaceH4/aime_2024", "train", ("problem",), id_field="id",
                             answers=("solution",)),
    "drop": BuiltinBenchmark(
        "ucinlp/drop", "validation", ("passage", "question"), id_field="query_id"
    ),
    "bigcodebench": BuiltinBenchmark(
        "bigcode/bigcodebench", "v0.1.2", ("instruct_prompt",), id_field="task_id",
        answers=("canonical_solution",),
    ),
}


class UnknownBenchmarkError(ConfigError):
    """A benchmark named without a path that is not built in."""


class BenchmarkSpec(BaseModel):
    """One benchmark to decontaminate against."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Name used in reject details and the report.")
    path: str | None = Field(
        None, description="Local file or hf:owner/name; None = the built-in entry for name."
    )
    fields: tuple[str, ...] = Field(
        (), description="Question fields (scanned against user turns); empty = the built-in's, "
        "or guessed from the first row."
    )
    answer_fields: tuple[str, ...] | None = Field(
        None, description="Answer fields (reference solutions, scanned against assistant turns); "
        "None = the built-in's (those the file has), else none."
    )
    markup: tuple[str, ...] | None = Field(
        None, description="Patterns of text without content removed before comparing "
        "(NormaliseOptions.markup); None = the built-in's, else none."
    )
    split: str | None = Field(
        None, description="Split of a Hub dataset (built-in default, else 'test')."
    )
    id_field: str | None = Field(
        None,
        description="Column holding instance ids; default: the built-in's, 'id', "
        "'task_id', ... if present, else the 0-based row number.",
    )

    def label(self) -> str:
        """The ``--benchmark`` text of this spec (``markup`` has no text form)."""
        fields = ",".join(self.fields)
        if self.answer_fields is not None:
            fields += "|" + ",".join(self.answer_fields)
        fields = f":{fields}" if fields else ""
        return f"{self.name}={self.path}{fields}" if self.path else self.name


_NAME = re.compile(r"^[\w.\-]+$")
_FIELD_LIST = r"[\w\- ]+(,[\w\- ]+)*"
_FIELDS = re.compile(rf"^(?=.)({_FIELD_LIST})?(\|({_FIELD_LIST})?)?$")


def _field_names(text: str) -> tuple[str, ...]:
    return tuple(f.strip() for f in text.split(",") if f.strip())


def parse_benchmark_spec(text: str) -> BenchmarkSpec:
    """``NAME``, ``NAME=PATH``, ``NAME=PATH:Q1,Q2`` or ``NAME=PATH:Q1|A1`` -> a spec.

    The fields suffix is what follows the last ``:`` when it is a comma-separated list of plain
    names (no ``/``, ``\\`` or ``.``), optionally ``|`` and the answer fields, so
    ``hf:owner/name``, ``hf:name`` and ``pkg://...`` keep their colon; a path that exists as
    written is never split.
    """
    name, sep, rest = text.strip().partition("=")
    name = name.strip()
    if not name or not _NAME.match(name):
        raise ConfigError(
            f"bad --benchmark {text!r}: start with a name of letters, digits, '_', '-' or '.', "
            "e.g. gsm8k or gsm8k=test.jsonl:question"
        )
    if not sep:
        return BenchmarkSpec(name=name)
    path, fields, answers = rest, (), None
    head, colon, tail = rest.rpartition(":")
    # "hf:name" (a Hub set without an owner) is a path, not the path "hf" with field "name"
    if colon and head and head != "hf" and _FIELDS.match(tail) and not Path(rest).exists():
        questions, bar, answer_text = tail.partition("|")
        path, fields = head, _field_names(questions)
        answers = _field_names(answer_text) if bar else None
    if not path.strip() or (colon and not head):
        raise ConfigError(
            f"bad --benchmark {text!r}: give a file after '=', e.g. {name}=test.jsonl:question"
        )
    return BenchmarkSpec(name=name, path=path, fields=fields, answer_fields=answers)


def anchored(benchmarks: list[Any], base: str | Path) -> list[Any]:
    """``benchmarks`` with every relative local file resolved against ``base`` (the folder of the
    spec or recipe that names it), so a run from another folder finds the same files. Entries
    are strings (``gsm8k=test.jsonl:question``) or ``BenchmarkSpec`` mappings; anything else is
    left for the config model to refuse."""
    out: list[Any] = []
    for text in benchmarks:
        if isinstance(text, dict) and isinstance(text.get("path"), str):
            path = Path(text["path"]).expanduser()
            if not text["path"].startswith(("hf:", "pkg://")) and not path.is_absolute():
                text = {**text, "path": str((Path(base) / path).resolve())}
            out.append(text)
            continue
        if not isinstance(text, str):
            out.append(text)
            continue
        spec = parse_benchmark_spec(text)
        if spec.path and not spec.path.startswith(("hf:", "pkg://")):
            anchored_path = Path(spec.path).expanduser()
            if not anchored_path.is_absolute():
                anchored_path = (Path(base) / anchored_path).resolve()
            if str(anchored_path) != spec.path:
                spec = spec.model_copy(update={"path": str(anchored_path)})
                text = spec.label()
        out.append(text)
    return out


def benchmark_files(benchmarks: list[Any], base: str | Path) -> list[Path]:
    """The local files among ``benchmarks`` (what a cached result depends on)."""
    files = []
    for entry in anchored(benchmarks, base):
        if isinstance(entry, dict):
            path = entry.get("path") if isinstance(entry.get("path"), str) else None
        elif isinstance(entry, str):
            path = parse_benchmark_spec(entry).path
        else:
            continue
        if path and not path.startswith(("hf:", "pkg://")) and Path(path).exists():
            files.append(Path(path))
    return files


def anchor_config(config: dict[str, Any], base: str | Path) -> dict[str, Any]:
    """A decontam config mapping with its benchmark files resolved against ``base``."""
    if not isinstance(config.get("benchmarks"), list) or not config["benchmarks"]:
        return config  # missing or of the wrong type: the config model says so in one line
    return {**config, "benchmarks": anchored(list(config["benchmarks"]), base)}


def config_files(config: dict[str, Any], base: str | Path) -> list[Path]:
    """The local benchmark files a decontam config mapping names."""
    benchmarks = config.get("benchmarks")
    return benchmark_files(benchmarks, base) if isinstance(benchmarks, list) else []


def builtin_for(spec: BenchmarkSpec) -> BuiltinBenchmark | None:
    return BUILTIN_BENCHMARKS.get(spec.name.lower())


def resolve_spec(spec: BenchmarkSpec) -> BenchmarkSpec:
    """Fill path (built-in), fields, split and id field from the registry; no data is read.

    Raises ``UnknownBenchmarkError`` for a name without a path that is not built in.
    """
    builtin = builtin_for(spec)
    if spec.path is None and builtin is None:
        raise UnknownBenchmarkError(
            f"unknown benchmark {spec.name!r}: use one of {', '.join(sorted(BUILTIN_BENCHMARKS))}, "
            f"or give a file: {spec.name}=PATH.jsonl:FIELD"
        )
    updates: dict[str, Any] = {}
    if spec.path is None:
        updates["path"] = builtin.path or f"hf:{builtin.hub}"
    if not spec.fields and builtin is not None:
        updates["fields"] = builtin.fields
    if spec.split is None:
        updates["split"] = builtin.split if builtin is not None else "test"
    if spec.id_field is None and builtin is not None:
        updates["id_field"] = builtin.id_field
    if spec.answer_fields is None:
        updates["answer_fields"] = builtin.answers if builtin is not None else ()
    if spec.markup is None:
        updates["markup"] = builtin.markup if builtin is not None else ()
    return spec.model_copy(update=updates)


@dataclass
class BenchmarkInstances:
    """The text of a benchmark: ``texts[i][f]`` is instance ``i``'s question field ``f``,
    ``answers[i][f]`` its answer field ``f`` ("" where the row has none)."""

    name: str
    source: str
    fields: tuple[str, ...]
    ids: list[str]
    texts: list[tuple[str, ...]]
    skipped: int  # rows missing a question field (open-instruct skips them too)
    answer_fields: tuple[str, ...] = ()
    answers: list[tuple[str, ...]] = dc_field(default_factory=list)
    markup: tuple[str, ...] = ()

    def side(self, side: str) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
        """``(fields, texts)`` of the ``question`` or ``answer`` side."""
        if side == "question":
            return self.fields, self.texts
        return self.answer_fields, self.answers


def _hub_rows(spec: BenchmarkSpec, builtin: BuiltinBenchmark | None) -> Iterator[dict[str, Any]]:
    from postmix.io.read import load_hub

    configs = (
        builtin.configs if builtin is not None and spec.path == f"hf:{builtin.hub}" else (None,)
    )
    for config in configs:
        yield from load_hub(spec.path, spec.split, streaming=False, config=config)


def _file_rows(path: str) -> Iterator[dict[str, Any]]:
    from postmix.io.read import iter_raw_rows

    for raw in iter_raw_rows(path):
        if raw.error is not None:
            raise ConfigError(
                f"benchmark file {path} line {raw.line}: {raw.error} ({raw.detail}); "
                "fix or remove that line"
            )
        yield raw.data


def load_instances(spec: BenchmarkSpec) -> BenchmarkInstances:
    """Read a benchmark's instances
    (from its file, or the Hub for a built-in named without a path)."""
    from postmix.io.paths import resolve_path

    spec = resolve_spec(spec)
    builtin = builtin_for(spec)
    source = str(resolve_path(spec.path))
    rows = _hub_rows(spec, builtin) if source.startswith("hf:") else _file_rows(source)
    fields = spec.fields
    answer_fields = spec.answer_fields or ()
    id_field = spec.id_field
    ids: list[str] = []
    texts: list[tuple[str, ...]] = []
    answers: list[tuple[str, ...]] = []
    skipped = 0
    for position, row in enumerate(rows):
        if not fields:
            fields = tuple(f for f in GUESSED_FIELDS if isinstance(row.get(f), str))[:1]
            if not fields:
                raise ConfigError(
                    f"benchmark {spec.name}: no text field found in {source} (columns: "
                    f"{', '.join(map(str, row))}); name them: {spec.name}={spec.path}:FIELD"
                )
        if position == 0:
            missing = [f for f in fields if f not in row]
            if missing:
                raise ConfigError(
                    f"benchmark {spec.name}: {source} has no field {missing[0]!r} (columns: "
                    f"{', '.join(map(str, row))}); name the text fields: "
                    f"{spec.name}={spec.path}:FIELD"
                )
            if id_field not in row:  # none given, or the built-in's is absent from a local copy
                id_field = next((f for f in ID_FIELDS if f in row), None)
            answer_fields = _present_answer_fields(spec, answer_fields, row, source)
        values = [row.get(f) for f in fields]
        if any(v is None for v in values):
            skipped += 1
            continue
        ids.append(str(row.get(id_field, position)) if id_field else str(position))
        texts.append(tuple(v if isinstance(v, str) else str(v) for v in values))
        answers.append(tuple(_text(row.get(f)) for f in answer_fields))
    if not texts:
        raise ConfigError(
            f"benchmark {spec.name}: {source} holds no instances with fields "
            f"{', '.join(fields) or '?'}"
        )
    return BenchmarkInstances(spec.name, source, tuple(fields), ids, texts, skipped,
                              tuple(answer_fields), answers, tuple(spec.markup or ()))


def _text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


def _present_answer_fields(spec: BenchmarkSpec, answer_fields: tuple[str, ...],
                           row: dict[str, Any], source: str) -> tuple[str, ...]:
    """Answer fields of the first row: a built-in's that a local copy lacks are dropped (the
    answer side is then not scanned for it); one named explicitly must be there."""
    missing = [f for f in answer_fields if f not in row]
    if not missing:
        return answer_fields
    builtin = builtin_for(spec)
    if builtin is not None and answer_fields == builtin.answers:
        return tuple(f for f in answer_fields if f in row)
    raise ConfigError(
        f"benchmark {spec.name}: {source} has no answer field {missing[0]!r} (columns: "
        f"{', '.join(map(str, row))}); name the fields: {spec.name}={spec.path}:QUESTION|ANSWER"
    )


def benchmark_rows(spec: BenchmarkSpec) -> tuple[BenchmarkSpec, str, Iterator[dict[str, Any]]]:
    """The resolved spec, the source it reads and its whole rows (every column, not just the
    text fields): what ``postmix eval`` scores against, from the same entry decontamination
    scans, so "decontaminated against X" and "evaluated on X" mean one data set."""
    from postmix.io.paths import resolve_path

    spec = resolve_spec(spec)
    source = str(resolve_path(spec.path))
    rows = _hub_rows(spec, builtin_for(spec)) if source.startswith("hf:") else _file_rows(source)
    return spec, source, rows
