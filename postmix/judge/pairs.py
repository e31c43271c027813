"""``judge pairs``: chosen/rejected pairs from rated completions, ready for TRL's DPOTrainer.

Chosen is the completion with the highest mean rating over the selected aspects; rejected is
picked per strategy. ``best-vs-random-lower`` (the default) is what binarized UltraFeedback and
Tulu 3 use: it keeps the rejected side varied instead of always the worst, which would make the
pairs too easy. Each candidate pair whose margin is zero (``tie``) or below ``min_margin``
(``below_margin``) is dropped with that reason, so the report says how much signal was lost.

Unit of account: one candidate pair (one per prompt, or every pair for ``all-pairs``); a prompt
with a single usable completion and an unreadable row count as one item each.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from postmix.errors import ConfigError
from postmix.io.claims import claim_outputs
from postmix.io.write import RowWriter, rejects_path, report_path
from postmix.judge.inputs import load_completions
from postmix.llm.model_stage import config_dump, reject_counts
from postmix.schemas import (
    FEATURES,
    Completion,
    PreferenceRecord,
    Rating,
    Reject,
    StepReport,
    stable_id,
)

Strategy = Literal["best-vs-random-lower", "best-vs-worst", "all-pairs"]


class PairsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: Strategy = Field("best-vs-random-lower", description="How rejected is chosen; "
                               "the default follows binarized UltraFeedback / Tulu 3.")
    min_margin: float = Field(0.0, ge=0, description="Drop pairs whose mean-score gap is below "
                              "this; 0 keeps any strict preference (ties are always dropped).")
    aspects: list[str] | None = Field(None, description="Aspects averaged into the score; None "
                                      "= every aspect the judge rated.")
    seed: int = Field(0, description="Seeds the random lower-rated pick, per prompt.")
    length_bias_warn: float = Field(0.7, ge=0, le=1, description="Warn when chosen is longer "
                                    "than rejected in more than this fraction of pairs: a judge "
                                    "rewarding length would teach the policy to ramble.")


@dataclass
class PairsResult:
    output: Path
    rejects: Path
    report: StepReport


@dataclass
class _Scored:
    completion: Completion
    rating: Rating
    score: float


def _score(rating: Rating, aspects: list[str] | None) -> float | None:
    names = aspects or list(rating.aspects)
    if any(name not in rating.aspects for name in names):
        return None
    return sum(rating.aspects[n].score for n in names) / len(names)


def _candidates(group: list[_Scored], config: PairsConfig, rng: random.Random):
    """(chosen, rejected) candidates of one prompt; group sorted best first."""
    best = group[0]
    if config.strategy == "all-pairs":
        yield from combinations(group, 2)
    elif config.strategy == "best-vs-worst":
        yield best, group[-1]
    else:
        lower = [s for s in group[1:] if s.score < best.score]
        eligible = [s for s in lower if best.score - s.score >= config.min_margin
                    and s.completion.response.strip() != best.completion.response.strip()]
        if eligible:
            yield best, rng.choice(eligible)
        elif lower:  # all lower ones are too close (or say the same thing): report the nearest
            yield best, lower[0]
        else:
            yield best, group[1]


def _verdict(chosen: _Scored, rejected: _Scored, min_margin: float) -> str | None:
    margin = chosen.score - rejected.score
    if margin <= 0:
        return "tie"
    if chosen.completion.response.strip() == rejected.completion.response.strip():
        return "identical_responses"
    if margin < min_margin:
        return "below_margin"
    return None


def make_pairs(rated: str | Path, output: str | Path,
               config: PairsConfig | None = None) -> PairsResult:
    """Pairs from ``rated``; the outputs are claimed first (never the input, never another
    run's)."""
    with claim_outputs([output, rejects_path(output), report_path(output)], inputs=[rated]):
        return _make_pairs(rated, output, config or PairsConfig())


def _make_pairs(rated: str | Path, output: str | Path, config: PairsConfig) -> PairsResult:
    started = time.perf_counter()
    loaded = load_completions(rated, rated=True)
    output, rejects = Path(output), rejects_path(output)
    reasons = [r.reason for r in loaded.rejects]
    groups: dict[str, list[_Scored]] = defaultdict(list)
    with RowWriter(output, schema=FEATURES["preference"].arrow_schema) as out, \
            RowWriter(rejects) as rejected_out:
        for reject in loaded.rejects:
            rejected_out.write(reject.to_row())
        for completion, rating in loaded.items:
            score = _score(rating, config.aspects)
            if score is None:
                missing = sorted(set(config.aspects or ()) - set(rating.aspects))
                reasons.append("missing_aspect")
                rejected_out.write(Reject(reason="missing_aspect",
                                          detail=f"not rated on {', '.join(missing)}",
                                          id=completion.id, source=completion.source,
                                          row=completion.to_row()).to_row())
                continue
            groups[completion.prompt_id].append(_Scored(completion, rating, score))
        if config.aspects and not groups and loaded.items:
            raise ConfigError(f"no completion was rated on {', '.join(config.aspects)}: check "
                              "--aspect against the rubric used by `judge rate`")

        wins: Counter = Counter()
        appearances: Counter = Counter()
        longer = 0
        margins: list[float] = []
        for prompt_id, group in groups.items():
            if len(group) < 2:
                only = group[0].completion
                reasons.append("single_completion")
                rejected_out.write(Reject(reason="single_completion", detail="prompt has one "
                                          "usable rated completion", id=prompt_id,
                                          source=only.source, row=only.to_row()).to_row())
                continue
            group.sort(key=lambda s: (-s.score, s.completion.id))
            rng = random.Random(f"{config.seed}:{prompt_id}")
            for chosen, rejected in _candidates(group, config, rng):
                reason = _verdict(chosen, rejected, config.min_margin)
                if reason is not None:
                    reasons.append(reason)
                    rejected_out.write(Reject(
                        reason=reason, detail=f"margin={chosen.score - rejected.score:.3f}",
                        id=prompt_id, source=chosen.completion.source,
                        row={"prompt_id": prompt_id, "chosen_id": chosen.completion.id,
                             "rejected_id": rejected.completion.id,
                             "chosen_score": chosen.score, "rejected_score": rejected.score},
                    ).to_row())
                    continue
                out.write(_record(chosen, rejected, config).to_row())
                wins[chosen.completion.model] += 1
                appearances[chosen.completion.model] += 1
                appearances[rejected.completion.model] += 1
                longer += len(chosen.completion.response) > len(rejected.completion.response)
                margins.append(chosen.score - rejected.score)
        rows_out = out.rows
    longer_fraction = longer / rows_out if rows_out else 0.0
    warnings = []
    if rows_out and longer_fraction > config.length_bias_warn:
        warnings.append(f"length bias: chosen is longer than rejected in {longer_fraction:.0%} of "
                        f"pairs (> {config.length_bias_warn:.0%}); check the judge for verbosity "
                        "preference or balance lengths before DPO")
    candidates = rows_out + len(reasons)
    report = StepReport(
        step="judge.pairs", config=config_dump(config), rows_in=candidates, rows_out=rows_out,
        rejected=reject_counts(reasons), timings={"total": round(time.perf_counter() - started, 3)},
        inputs=[str(rated)], outputs={"data": str(output), "rejects": str(rejects)},
        details={
            "unit": "one candidate pair; a single-completion prompt or a bad row counts once",
            "prompts": len(groups),
            "win_rate_by_model": {m: round(wins[m] / appearances[m], 4)
                                  for m in sorted(appearances)},
            "pairs_by_chosen_model": dict(sorted(wins.items())),
            "chosen_longer_fraction": round(longer_fraction, 4),
            "mean_margin": round(sum(margins) / len(margins), 4) if margins else 0.0,
            "warnings": warnings})
    report.write(report_path(output))
    return PairsResult(output, rejects, report)


def _record(chosen: _Scored, rejected: _Scored, config: PairsConfig) -> PreferenceRecord:
    c, r = chosen.completion, rejected.completion
    return PreferenceRecord(
        id=stable_id("preference", [c.prompt_id, c.id, r.id]), prompt=c.prompt,
        chosen=[{"role": "assistant", "content": c.response}],
        rejected=[{"role": "assistant", "content": r.response}],
        chosen_score=round(chosen.score, 4), rejected_score=round(rejected.score, 4),
        chosen_model=c.model, rejected_model=r.model,
        judge={"model": chosen.rating.judge_model, "strategy": config.strategy,
               "aspects": config.aspects or sorted(chosen.rating.aspects)},
        source=c.source,
        meta={"prompt_id": c.prompt_id, "chosen_id": c.id, "rejected_id": r.id,
              "margin": round(chosen.score - rejected.score, 4)})
