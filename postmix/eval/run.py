"""``postmix eval``: ask a model every item of some benchmarks, score the answers, write results.

Config in, work done, results out:

1. each benchmark is read from the registry decontamination uses, and every row becomes an
   item or is rejected (``bad_item``);
2. every item's request goes through the one engine, in one pass over all benchmarks (a local
   model loads once); answers land in the request cache as they arrive, so a killed eval
   re-sends only what was not answered, and a finished one re-sends nothing;
3. each answer is scored by its benchmark's kind (``postmix.eval.tasks``), or rejected:
   ``generation_failed`` (the engine gave up; its error kind in the details), ``truncated``
   (the answer hit ``max_tokens``), ``bad_item``, ``judge_failed``;
4. per benchmark, ``<output>/<name>.items.jsonl`` holds one ``ItemResult`` per item, and
   ``<output>/results.json`` one ``EvalResult`` with each score, its seeded bootstrap 95%
   interval, the accounting (``items == scored + rejected``) and the prompt format.

The headline score is the mean over scored items; ``metrics["score_all_items"]`` counts every
rejected item as a failure, so neither hides the other.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from postmix.curate.benchmarks import ID_FIELDS, benchmark_rows, parse_benchmark_spec
from postmix.errors import ConfigError
from postmix.eval.bootstrap import bootstrap_interval
from postmix.eval.formats import PromptFormat
from postmix.eval.ifeval_scoring import score_ifeval
from postmix.eval.tasks import (
    SUITES,
    BadItem,
    Item,
    Kind,
    Scored,
    kind_for,
    make_item,
    score_code,
    score_verifier,
)
from postmix.io.write import RowWriter
from postmix.llm import ChatRequest, ChatResult, Engine, PoolConfig
from postmix.schemas.eval import BenchmarkScore, EvalResult, ItemResult, write_result

CACHE_FILE = "cache.sqlite"


class EvalConfig(BaseModel):
    """What to evaluate and how; the model comes separately (``evaluate(pool, ...)``)."""

    model_config = ConfigDict(extra="forbid")

    benchmarks: list[str] = Field(default_factory=list, description="Benchmarks: NAME or "
                                  "NAME=FILE (as for decontamination), e.g. gsm8k-sample.")
    suite: str | None = Field(None, description=f"A named set of benchmarks: "
                              f"{', '.join(SUITES)}.")
    sampling: dict[str, Any] = Field(default_factory=lambda: {"temperature": 0.0},
                                     description="Sampling over the prompt format's max_tokens; "
                                     "greedy by default.")
    prompt_formats: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per benchmark name, fields of its prompt format "
        "over the default (template, system, examples, chat_template, stop, max_tokens).")
    limit: int | None = Field(None, ge=1, description="Only the first N items of each benchmark.")
    allow_code_execution: bool = Field(False, description="Run code benchmarks' tests on the "
                                       "model's code in the sandbox (see docs/eval.md).")
    code_timeout: float = Field(10.0, gt=0, description="Seconds per code item in the sandbox.")
    code_memory_mb: int = Field(1024, ge=64, description="Memory limit per code item (MB).")
    judge_model: str | None = Field(None, description="Judge model of a judged benchmark "
                                    "(in the judge endpoints); None = their first.")
    bootstrap_samples: int = Field(1000, ge=10, description="Bootstrap resamples per interval.")
    seed: int = Field(0, description="Seed of the bootstrap.")
    cache_path: str | None = Field(None, description="Request cache; None = "
                                   "<output>/cache.sqlite (a re-run resumes from it).")
    use_cache: bool = True

    def benchmark_names(self) -> list[str]:
        names = list(self.benchmarks)
        if self.suite is not None:
            if self.suite not in SUITES:
                raise ConfigError(f"unknown suite {self.suite!r}; known: {', '.join(SUITES)}")
            names += [n for n in SUITES[self.suite] if n not in names]
        if not names:
            raise ConfigError("name what to evaluate: --benchmark NAME (e.g. gsm8k-sample) or "
                              f"--suite NAME ({', '.join(SUITES)})")
        return names

    def format_for(self, name: str, kind: Kind) -> PromptFormat:
        overrides = self.prompt_formats.get(name) or self.prompt_formats.get(kind.name) or {}
        try:
            return PromptFormat.model_validate({**kind.format.model_dump(), **overrides})
        except ValueError as exc:
            raise ConfigError(f"prompt format of {name}: {str(exc).splitlines()[-1]}") from None


@dataclass
class ModelInfo:
    """Where the model came from, as the result records it."""

    model: str
    kind: Literal["local", "hub", "run", "endpoint"]
    run_id: str | None = None
    run_dir: str | None = None
    mix: str | None = None


@dataclass
class Benchmark:
    """One benchmark's items, the rows that did not make items, and its answers once asked."""

    name: str
    label: str
    source: str
    kind: Kind
    format: PromptFormat
    items: list[Item] = field(default_factory=list)
    bad: list[ItemResult] = field(default_factory=list)
    answers: dict[str, ChatResult] = field(default_factory=dict)
    skipped: str | None = None
    sampling: dict[str, Any] = field(default_factory=dict)  # as sent: format's, then the eval's


def load_benchmark(text: str, config: EvalConfig) -> Benchmark:
    spec = parse_benchmark_spec(text)
    kind = kind_for(spec.name)
    spec, source, rows = benchmark_rows(spec)
    prompt_format = config.format_for(spec.name, kind)
    bench = Benchmark(spec.name, text, source, kind, prompt_format,
                      sampling=prompt_format.sampling(config.sampling))
    seen: set[str] = set()
    for position, row in enumerate(rows):
        if config.limit is not None and position >= config.limit:
            break
        id_field = spec.id_field if spec.id_field in row else next(
            (f for f in ID_FIELDS if f in row), None)
        item_id = str(row[id_field]) if id_field else str(position)
        if item_id in seen:
            item_id = f"{item_id}#{position}"
        seen.add(item_id)
        try:
            bench.items.append(make_item(kind, row, item_id))
        except BadItem as exc:
            bench.bad.append(ItemResult(id=item_id, prompt=json.dumps(row)[:2000],
                                        status="rejected", reason=exc.reason,
                                        details={"detail": str(exc)}))
    return bench


def _request(bench: Benchmark, item: Item, model: str) -> ChatRequest:
    return ChatRequest(bench.format.messages(item.question), dict(bench.sampling), model=model,
                       tag=(bench.name, item.id))


async def _ask(pool: PoolConfig, model: str, benches: list[Benchmark], config: EvalConfig,
               cache_path: Path | None) -> dict[str, Any]:
    requests = [_request(b, item, model)
                for b in benches if b.skipped is None for item in b.items]
    by_name = {b.name: b for b in benches}
    async with Engine(pool, cache_path=cache_path) as engine:
        async for result in engine.map(requests):
            name, item_id = result.request.tag
            by_name[name].answers[item_id] = result
        return engine.ledger.to_dict()


def _check_plain_prompts(pool: PoolConfig, model: str, benches: list[Benchmark]) -> None:
    plain = [b.name for b in benches if not b.format.chat_template]
    backends = {e.backend for e in pool.for_model(model)}
    if plain and backends - {"transformers"}:
        raise ConfigError(f"plain-text prompt formats ({', '.join(plain)}) need the local "
                          "transformers backend; endpoints take chat messages only")


def _prompt_text(item: Item, bench: Benchmark) -> str:
    return bench.format.messages(item.question)[-1]["content"]


def _item_result(bench: Benchmark, item: Item, scored: Scored | None, reason: str | None = None,
                 details: dict[str, Any] | None = None) -> ItemResult:
    answer = bench.answers.get(item.id)
    response = answer.content if answer is not None else None
    if scored is None or scored.verdict is None:
        why = reason or (scored.reason if scored is not None else None) or "bad_item"
        return ItemResult(id=item.id, prompt=_prompt_text(item, bench), response=response,
                          status="rejected", reason=why,
                          details={**(details or {}), **(scored.details if scored else {})})
    return ItemResult(id=item.id, prompt=_prompt_text(item, bench), response=response,
                      extracted=scored.extracted, verdict=scored.verdict, score=scored.score,
                      reason=scored.reason, details=scored.details)


def _unanswered(bench: Benchmark, item: Item) -> ItemResult | None:
    """The reject of an item whose answer cannot be scored, or None when it can."""
    answer = bench.answers.get(item.id)
    if answer is None or not answer.ok:
        return _item_result(bench, item, None, "generation_failed", {
            "error_kind": getattr(answer, "error_kind", None),
            "error": (getattr(answer, "error", None) or "")[:300]})
    if answer.finish_reason == "length":
        return _item_result(bench, item, None, "truncated",
                            {"max_tokens": bench.sampling.get("max_tokens")})
    return None


def score_benchmark(bench: Benchmark, config: EvalConfig,
                    judge: Callable[[Benchmark, list[Item]], dict[str, Any]] | None = None,
                    ) -> tuple[list[ItemResult], dict[str, float]]:
    """Every item's result, in benchmark order, and the benchmark's secondary metrics."""
    results: dict[str, ItemResult] = {}
    ready: list[Item] = []
    for item in bench.items:
        reject = _unanswered(bench, item)
        if reject is not None:
            results[item.id] = reject
        else:
            ready.append(item)
    metrics: dict[str, float] = {}
    kind = bench.kind.name
    if kind in ("gsm8k", "math"):
        for item in ready:
            results[item.id] = _item_result(
                bench, item, score_verifier(bench.kind, item, bench.answers[item.id].content))
    elif kind == "code":
        def run(item: Item) -> Scored:
            return score_code(item, bench.answers[item.id].content,
                              timeout=config.code_timeout, memory_mb=config.code_memory_mb)

        with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            for item, scored in zip(ready, pool.map(run, ready), strict=True):
                results[item.id] = _item_result(bench, item, scored)
    elif kind == "ifeval":
        scored_items, metrics = score_ifeval(ready, bench.answers)
        for item, scored in zip(ready, scored_items, strict=True):
            results[item.id] = _item_result(bench, item, scored)
    elif kind == "judged":
        assert judge is not None
        outcome = judge(bench, ready)
        metrics = outcome["metrics"]
        for item in ready:
            scored = outcome["scored"].get(item.id)
            results[item.id] = _item_result(bench, item, scored, reason="judge_failed",
                                            details=outcome["failed"].get(item.id))
    ordered = [results[item.id] for item in bench.items] + bench.bad
    return ordered, metrics


def _benchmark_score(bench: Benchmark, items: list[ItemResult], metrics: dict[str, float],
                     config: EvalConfig, items_file: str) -> BenchmarkScore:
    scores = [r.score for r in items if r.status == "scored" and r.score is not None]
    rejected = Counter(r.reason or "rejected" for r in items if r.status == "rejected")
    mean = sum(scores) / len(scores) if scores else None
    low, high = bootstrap_interval(scores, samples=config.bootstrap_samples, seed=config.seed)
    lengths = [len(r.response) for r in items if r.response is not None]
    metrics = {**metrics, "score_all_items": round(sum(scores) / len(items), 6) if items else 0.0,
               "mean_response_chars": round(sum(lengths) / len(lengths), 1) if lengths else 0.0}
    return BenchmarkScore(
        benchmark=bench.name, metric=bench.kind.metric,
        score=round(mean, 6) if mean is not None else None, ci_low=low, ci_high=high,
        items=len(items), scored=len(scores), rejected=dict(sorted(rejected.items())),
        metrics=metrics, prompt_format={**bench.format.record(), "sampling": bench.sampling,
                       "source": bench.source},
        items_file=items_file)


def evaluate(pool: PoolConfig, output: str | Path, config: EvalConfig | None = None, *,
             model: str | None = None, info: ModelInfo | None = None,
             judge_pool: PoolConfig | None = None, echo: Callable[[str], None] | None = None,
             ) -> EvalResult:
    """Evaluate ``model`` of ``pool`` (its first by default) and write ``output/results.json``."""
    config = config or EvalConfig()
    started = time.perf_counter()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    model = model or pool.models[0]
    if model not in pool.models:
        raise ConfigError(f"model {model!r} not in the endpoints; they serve: "
                          f"{', '.join(pool.models)}")
    info = info or ModelInfo(model, "endpoint")
    benches = [load_benchmark(text, config) for text in config.benchmark_names()]
    names = [b.name for b in benches]
    if len(set(names)) != len(names):
        raise ConfigError(f"a benchmark is named twice: {', '.join(names)}")
    for bench in benches:
        if bench.kind.name == "code" and not config.allow_code_execution:
            bench.skipped = ("runs model-written code: pass --allow-code-execution to run it in "
                             "the sandbox (docs/eval.md says what it guards)")
        elif bench.kind.name == "judged" and judge_pool is None:
            bench.skipped = "needs a judge: pass --judge-endpoints FILE"
    _check_plain_prompts(pool, model, benches)
    cache_path = None
    if config.use_cache:
        cache_path = Path(config.cache_path) if config.cache_path else output / CACHE_FILE
    ledger = asyncio.run(_ask(pool, model, benches, config, cache_path))

    judge = None
    if judge_pool is not None:
        from postmix.eval.judged import make_judge

        judge = make_judge(judge_pool, output, config, model, cache_path)
    scores = []
    for bench in benches:
        if bench.skipped is not None:
            scores.append(BenchmarkScore(benchmark=bench.name, metric=bench.kind.metric,
                                         score=None, items=len(bench.items) + len(bench.bad),
                                         prompt_format=bench.format.record(),
                                         skipped=bench.skipped))
            if echo:
                echo(f"{bench.name}: skipped ({bench.skipped})")
            continue
        items, metrics = score_benchmark(bench, config, judge)
        items_file = f"{bench.name}.items.jsonl"
        with RowWriter(output / items_file) as writer:
            for item in items:
                writer.write(item.model_dump(mode="json"))
        scores.append(_benchmark_score(bench, items, metrics, config, items_file))
    result = EvalResult(
        model=info.model, model_kind=info.kind, run_id=info.run_id, run_dir=info.run_dir,
        mix=info.mix, scores=scores,
        generation={"model": model, "backends": sorted({e.backend for e in
                                                        pool.for_model(model)}),
                    "sampling": dict(config.sampling), "ledger": ledger,
                    "seconds": round(time.perf_counter() - started, 3)},
        config={**config.model_dump(mode="json"), "pool": pool.public_dict()})
    write_result(output, result)
    return result


def local_pool(model: str, *, backend: str = "transformers", batch_size: int = 8,
               args: dict[str, Any] | None = None) -> PoolConfig:
    """A one-endpoint pool serving a local folder or Hub model in this process."""
    from postmix.llm import EndpointConfig

    if backend == "transformers":
        endpoint = EndpointConfig(name="local", model=model, backend="transformers",
                                  transformers_batch_size=batch_size,
                                  max_concurrency=max(64, 4 * batch_size),
                                  transformers_args=dict(args or {}))
    elif backend == "vllm":
        endpoint = EndpointConfig(name="local", model=model, backend="vllm",
                                  vllm_batch_size=batch_size, max_concurrency=max(256, batch_size),
                                  vllm_args=dict(args or {}))
    else:
        raise ConfigError(f"backend {backend!r} cannot serve a local model: use transformers "
                          "(CPU or GPU) or vllm (GPU), or give an endpoints file")
    return PoolConfig(endpoints=[endpoint])
