"""``judge generate``: K completions per prompt, each from a model drawn from a pool.

Tulu 3 built its preference data this way: several off-policy models answer every prompt, and
optionally the policy being trained answers too (on-policy), so the judge later compares
responses of varied quality. Model choice per prompt is seeded by (seed, prompt id), so it does
not change when the input is reordered or resumed; every sample also gets its own seed, which
makes vLLM's sampling reproducible and gives each sample its own cache entry.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from postmix.errors import ConfigError
from postmix.llm import ChatRequest, ChatResult, PoolConfig, run_requests_into
from postmix.llm.model_stage import (
    ModelStageConfig,
    PromptRow,
    StageOutputs,
    StageResult,
    check_models,
    config_dump,
    load_prompts,
    request_seed,
)
from postmix.schemas import FEATURES, Completion, Reject, stable_id

GenerateResult = StageResult


class GenerateConfig(ModelStageConfig):
    n: int = Field(4, ge=1, description="Completions per prompt; 4 as in UltraFeedback and "
                   "Tulu 3, enough for a best and a clearly worse one.")
    assignment: Literal["random", "round_robin"] = Field(
        "random", description="random: models drawn per prompt without replacement (seeded); "
        "round_robin: models rotate across prompts so each answers an equal share.")
    models: list[str] | None = Field(None, description="Models of the pool to draw from; "
                                     "None = all.")
    policy: str | None = Field(None, description="On-policy model: answers every prompt once, "
                               "the other n-1 samples come from the rest of the pool.")
    sampling: dict[str, Any] = Field(default_factory=lambda: {"temperature": 0.7},
                                     description="Overrides the endpoints' defaults; 0.7 gives "
                                     "varied but coherent samples.")
    seed: int = Field(0, description="Seeds model choice and each sample's sampling seed.")


def assign_models(prompt_id: str, index: int, models: list[str],
                  config: GenerateConfig) -> list[str]:
    """The n models that answer one prompt (the policy first when there is one)."""
    others = [m for m in models if m != config.policy]
    slots = config.n - (1 if config.policy else 0)
    if slots and not others:
        raise ConfigError("the pool has no model besides the policy to draw the other samples from")
    if config.assignment == "round_robin":
        drawn = [others[(index * slots + k) % len(others)] for k in range(slots)]
    else:
        rng = random.Random(f"{config.seed}:{prompt_id}")
        drawn = rng.sample(others, min(slots, len(others)))
        drawn += rng.choices(others, k=slots - len(drawn))
    return ([config.policy] if config.policy else []) + drawn


def generate(prompts: str | Path, output: str | Path, pool: PoolConfig,
             config: GenerateConfig | None = None, *, progress: bool | None = None) -> StageResult:
    config = config or GenerateConfig()
    started = time.perf_counter()
    models = config.models or pool.models
    check_models(pool, *models, config.policy)
    loaded = load_prompts(prompts)
    plan = [(row, k, model) for index, row in enumerate(loaded.items)
            for k, model in enumerate(assign_models(row.id, index, models, config))]
    requests = (ChatRequest(row.prompt, {**config.sampling,
                                         "seed": request_seed(config.seed, row.id, k)},
                            model=model, salt=f"sample={k}", tag=(row, k))
                for row, k, model in plan)
    per_model: Counter = Counter()
    finish: Counter = Counter()
    truncated: Counter = Counter()
    schema = FEATURES["completion"].arrow_schema
    with StageOutputs(output, inputs=[prompts], schema=schema, rejects_file=False,
                      started=started) as outputs:
        for reject in loaded.rejects:
            outputs.reject(reject)

        def handle(result: ChatResult) -> None:
            row, k = result.request.tag
            if result.ok and not (result.content or "").strip():
                result.ok, result.error_kind, result.error = False, "empty_response", "blank answer"
            if not result.ok:
                outputs.fail(_failure(row, k, result))
                return
            per_model[result.model] += 1
            finish[result.finish_reason or "unknown"] += 1
            # kept, but marked: `rate` and `pairs` drop a cut-off answer unless told otherwise,
            # so it can never become a chosen response
            cut_off = result.finish_reason == "length"
            truncated[result.model] += cut_off
            outputs.keep(Completion(
                id=stable_id("completion", [row.id, k, result.model]), prompt_id=row.id,
                prompt=row.prompt, response=result.content, model=result.model,
                sampling=result.sampling, source=row.source,
                meta={"sample_index": k, "finish_reason": result.finish_reason,
                      "truncated": cut_off,
                      "on_policy": config.policy is not None and result.model == config.policy},
            ).to_row())

        ledger = run_requests_into(pool, requests, handle, total=len(plan),
                                   description="judge generate",
                                   cache_path=config.cache_file(output), progress=progress)
    cut = sum(truncated.values())
    warnings = [f"{cut} of {outputs.out.rows} completions were cut off by max_tokens (marked "
                "meta.truncated; `judge rate` and `judge pairs` drop them unless "
                "--keep-truncated): raise --max-tokens"] if cut else []
    return outputs.report(
        "judge.generate", config=config_dump(config, pool),
        rows_in=len(plan) + len(loaded.rejects), inputs=[str(prompts)],
        details={"unit": "one (prompt, sample) request; an unusable prompt row counts once",
                 "prompts": len(loaded.items), "n": config.n,
                 "completions_per_model": dict(sorted(per_model.items())),
                 "finish_reasons": dict(sorted(finish.items())),
                 "truncated": cut, "warnings": warnings,
                 "truncated_by_model": {m: n for m, n in sorted(truncated.items()) if n},
                 "ledger": ledger.to_dict()})


def _failure(row: PromptRow, k: int, result: ChatResult) -> Reject:
    return Reject(reason=result.error_kind or "error", detail=result.error or "", line=row.line,
                  id=stable_id("completion", [row.id, k, result.model]), source=row.source,
                  row={"prompt_id": row.id, "sample_index": k, "model": result.model,
                       "prompt": row.prompt, "attempts": result.attempts})
