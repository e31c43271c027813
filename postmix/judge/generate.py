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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import xxhash
from pydantic import BaseModel, ConfigDict, Field

from postmix.errors import ConfigError
from postmix.io.write import RowWriter, report_path
from postmix.judge.inputs import PromptRow, failures_path, load_prompts
from postmix.judge.runner import config_dump, reject_counts, resolve_cache, run_requests_into
from postmix.llm import ChatRequest, ChatResult, PoolConfig
from postmix.schemas import FEATURES, Completion, Reject, StepReport, stable_id


class GenerateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
    cache_path: str | None = Field(None, description="Request cache; None = <output>.cache.sqlite.")
    use_cache: bool = True


@dataclass
class GenerateResult:
    output: Path
    failures: Path
    report: StepReport


def assign_models(prompt_id: str, index: int, models: list[str], config: GenerateConfig) -> list[str]:
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


def sample_seed(seed: int, prompt_id: str, k: int) -> int:
    return xxhash.xxh32_intdigest(f"{seed}:{prompt_id}:{k}".encode()) & 0x7FFFFFFF


def generate(prompts: str | Path, output: str | Path, pool: PoolConfig,
             config: GenerateConfig | None = None, *, progress: bool | None = None) -> GenerateResult:
    config = config or GenerateConfig()
    started = time.perf_counter()
    models = config.models or pool.models
    unknown = sorted(set(models + ([config.policy] if config.policy else [])) - set(pool.models))
    if unknown:
        raise ConfigError(f"model(s) {', '.join(unknown)} not in the pool; the pool has: "
                          f"{', '.join(pool.models)}")
    loaded = load_prompts(prompts)
    plan = [(row, k, model) for index, row in enumerate(loaded.items)
            for k, model in enumerate(assign_models(row.id, index, models, config))]
    requests = (ChatRequest(row.prompt, {**config.sampling, "seed": sample_seed(config.seed, row.id, k)},
                            model=model, salt=f"sample={k}", tag=(row, k))
                for row, k, model in plan)

    output, failures = Path(output), failures_path(output)
    reasons: list[str] = [r.reason for r in loaded.rejects]
    per_model: Counter = Counter()
    finish: Counter = Counter()
    schema = FEATURES["completion"].arrow_schema
    with RowWriter(output, schema=schema) as out, RowWriter(failures) as failed:
        for reject in loaded.rejects:
            failed.write(reject.to_row())

        def handle(result: ChatResult) -> None:
            row, k = result.request.tag
            if result.ok and not (result.content or "").strip():
                result.ok, result.error_kind, result.error = False, "empty_response", "blank answer"
            if not result.ok:
                reasons.append(result.error_kind or "error")
                failed.write(_failure(row, k, result).to_row())
                return
            per_model[result.model] += 1
            finish[result.finish_reason or "unknown"] += 1
            out.write(Completion(
                id=stable_id("completion", [row.id, k, result.model]), prompt_id=row.id,
                prompt=row.prompt, response=result.content, model=result.model,
                sampling=result.sampling, source=row.source,
                meta={"sample_index": k, "finish_reason": result.finish_reason},
            ).to_row())

        ledger = run_requests_into(pool, requests, handle, total=len(plan),
                                   description="judge generate",
                                   cache_path=resolve_cache(output, config.cache_path,
                                                            config.use_cache), progress=progress)
        rows_out = out.rows
    report = StepReport(
        step="judge.generate", config=config_dump(config, pool),
        rows_in=len(plan) + len(loaded.rejects), rows_out=rows_out, rejected=reject_counts(reasons),
        timings={"total": round(time.perf_counter() - started, 3)}, inputs=[str(prompts)],
        outputs={"data": str(output), "failures": str(failures)},
        details={"unit": "one (prompt, sample) request; an unusable prompt row counts once",
                 "prompts": len(loaded.items), "n": config.n,
                 "completions_per_model": dict(sorted(per_model.items())),
                 "finish_reasons": dict(sorted(finish.items())), "ledger": ledger.to_dict()})
    report.write(report_path(output))
    return GenerateResult(output, failures, report)


def _failure(row: PromptRow, k: int, result: ChatResult) -> Reject:
    return Reject(reason=result.error_kind or "error", detail=result.error or "", line=row.line,
                  id=stable_id("completion", [row.id, k, result.model]), source=row.source,
                  row={"prompt_id": row.id, "sample_index": k, "model": result.model,
                       "prompt": row.prompt, "attempts": result.attempts})
