"""``judge rate``: score every completion on a rubric's aspects with an LLM judge.

Output rows are the completion rows plus ``rating`` (a ``postmix.schemas.Rating`` as JSON text,
like every dict column on disk) and ``score`` (the mean over aspects). One call per completion is
the default: it keeps a response's rating independent of its neighbours and a failed call costs
one rating; ``per_prompt`` rates all completions of a prompt in one call, which is cheaper and
lets the judge calibrate across them.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from postmix.judge.inputs import TRUNCATED_DETAIL, is_truncated, load_completions
from postmix.judge.prompts import batch_rating_messages, rating_messages
from postmix.judge.rubrics import Rubric, batch_rating_schema, load_rubric, rating_schema
from postmix.llm import ChatRequest, ChatResult, PoolConfig, run_requests_into
from postmix.llm.model_stage import (
    OneModelConfig,
    StageOutputs,
    StageResult,
    config_dump,
)
from postmix.schemas import AspectRating, Completion, Rating, Reject

RateResult = StageResult


class RateConfig(OneModelConfig):
    rubric: str = Field("ultrafeedback", description="Built-in rubric name or a rubric YAML path.")
    mode: Literal["per_completion", "per_prompt"] = Field(
        "per_completion", description="One judge call per completion (independent ratings), or "
        "one per prompt rating all its completions together (cheaper).")
    model: str | None = Field(None, description="Judge model in the pool; None = the first.")
    sampling: dict[str, Any] = Field(default_factory=lambda: {"temperature": 0.0},
                                     description="Greedy by default so ratings are reproducible.")
    keep_truncated: bool = Field(False, description="Rate completions cut off by max_tokens "
                                 "too; by default each goes to the failures as `truncated`.")


def histogram(scores: Iterable[int]) -> dict[str, int]:
    counts = dict.fromkeys(("1", "2", "3", "4", "5"), 0)
    for score in scores:
        counts[str(score)] += 1
    return counts


def _rating(completion: Completion, judge_model: str, answer: Any) -> Rating:
    return Rating(completion_id=completion.id, prompt_id=completion.prompt_id,
                  judge_model=judge_model,
                  aspects={name: AspectRating(score=value.score, rationale=value.rationale)
                           for name, value in answer})


def _requests(completions: list[Completion], rubric: Rubric, config: RateConfig):
    if config.mode == "per_completion":
        schema = rating_schema(rubric)
        for c in completions:
            messages = rating_messages(rubric, [m.model_dump() for m in c.prompt], c.response)
            yield ChatRequest(messages, dict(config.sampling), schema=schema, model=config.model,
                              tag=[c])
        return
    groups: dict[str, list[Completion]] = defaultdict(list)
    for c in completions:
        groups[c.prompt_id].append(c)
    for group in groups.values():
        prompt = [m.model_dump() for m in group[0].prompt]
        yield ChatRequest(batch_rating_messages(rubric, prompt, [c.response for c in group]),
                          dict(config.sampling), schema=batch_rating_schema(rubric, len(group)),
                          model=config.model, tag=group)


def rate(completions: str | Path, output: str | Path, pool: PoolConfig,
         config: RateConfig | None = None, *, progress: bool | None = None) -> StageResult:
    config = config or RateConfig()
    started = time.perf_counter()
    rubric = load_rubric(config.rubric)
    judge_model = config.pick_model(pool)
    loaded = load_completions(completions)
    cut_off = [] if config.keep_truncated else [c for c in loaded.items if is_truncated(c)]
    dropped = {c.id for c in cut_off}
    items: list[Completion] = [c for c in loaded.items if c.id not in dropped]
    scores: dict[str, list[int]] = defaultdict(list)
    by_model: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    means: dict[str, list[float]] = defaultdict(list)
    with StageOutputs(output, inputs=[completions], rejects_file=False,
                      started=started) as outputs:
        for reject in loaded.rejects:
            outputs.reject(reject)
        for c in cut_off:
            outputs.reject(Reject(reason="truncated", detail=TRUNCATED_DETAIL, id=c.id,
                                  source=c.source, row=c.to_row()))

        def handle(result: ChatResult) -> None:
            group: list[Completion] = result.request.tag
            if not result.ok:
                for c in group:
                    outputs.fail(Reject(reason=result.error_kind or "error",
                                        detail=result.error or "", id=c.id, source=c.source,
                                        row=c.to_row()))
                return
            answers = [result.parsed] if config.mode == "per_completion" else result.parsed.ratings
            for c, answer in zip(group, answers, strict=True):
                rating = _rating(c, judge_model, answer)
                for name, value in rating.aspects.items():
                    scores[name].append(value.score)
                    by_model[c.model][name].append(value.score)
                means[c.model].append(rating.mean)
                text = json.dumps(rating.model_dump(mode="json"), ensure_ascii=False,
                                  sort_keys=True)
                outputs.keep({**c.to_row(), "rating": text, "score": round(rating.mean, 4)})

        requests = list(_requests(items, rubric, config))
        ledger = run_requests_into(pool, requests, handle, total=len(requests),
                                   description="judge rate",
                                   cache_path=config.cache_file(output), progress=progress)
    return outputs.report(
        "judge.rate", config=config_dump(config, pool) | {"rubric_aspects": rubric.aspect_names},
        rows_in=len(loaded.items) + len(loaded.rejects), inputs=[str(completions)],
        details={
            "judge_model": judge_model, "judge_calls": len(requests),
            "truncated_dropped": len(cut_off),
            "parse_failure_rate": round(ledger.parse_failure_rate, 4),
            "histogram": {name: histogram(v) for name, v in scores.items()},
            "histogram_by_model": {m: {name: histogram(v) for name, v in per.items()}
                                   for m, per in sorted(by_model.items())},
            "mean_score_by_model": {m: round(sum(v) / len(v), 4) for m, v in sorted(means.items())},
            "rating_counts": dict(Counter({m: len(v) for m, v in means.items()})),
            "ledger": ledger.to_dict()})
