"""``judge pairs``: chosen/rejected pairs from rated completions, ready for TRL's DPOTrainer.

Chosen is the completion with the highest mean rating over the selected aspects; rejected is
picked per strategy. ``best-vs-random-lower`` (the default) is what binarized UltraFeedback and
Tulu 3 use: it keeps the rejected side varied instead of always the worst, which would make the
pairs too easy. Each candidate pair whose margin is zero (``tie``) or below ``min_margin``
(``below_margin``) is dropped with that reason, so the report says how much signal was lost.

A completion cut off by ``max_tokens`` (marked by ``judge generate``) never becomes chosen: it is
rejected as ``truncated``, or with ``keep_truncated`` kept as a candidate for the rejected side
only. With ``policy`` every pair holds the policy's own completion on one side, as Tulu 3's
on-policy pairs do (``no_on_policy`` where a prompt has none). ``balance_length`` drops the
lowest-margin pairs whose chosen side is longer (``length_balance``) until chosen is longer in at
most half of them: a judge that rewards length would otherwise teach the policy to ramble.

The report's ``quality`` block holds what to check before training: the margin histogram, the
chosen/rejected length ratio, the share of pairs with an on-policy side, and each model's wins
and losses.

Unit of account: one candidate pair (one per prompt, or every pair for ``all-pairs``); a prompt
with a single usable completion (or none complete, or none on-policy), a truncated or unrated
completion and an unreadable row count as one item each.
"""

from __future__ import annotations

import random
import statistics
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
from postmix.judge.inputs import TRUNCATED_DETAIL, is_truncated, load_completions
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
    balance_length: bool = Field(False, description="Drop the lowest-margin pairs whose chosen "
                                 "side is longer (reason length_balance) until chosen is longer "
                                 "in at most half of the pairs.")
    keep_truncated: bool = Field(False, description="Keep completions cut off by max_tokens as "
                                 "candidates for the rejected side (never chosen); by default "
                                 "each is rejected as `truncated`.")
    policy: str | None = Field(None, description="On-policy model: every pair holds its "
                               "completion on one side (Tulu 3); a prompt without one is "
                               "rejected as no_on_policy. None = no such rule.")


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
    truncated: bool = False
    on_policy: bool = False


MARGIN_BINS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)  # mean scores are 1-5: margins fall in (0, 4]


def _on_policy(completion: Completion, policy: str | None) -> bool:
    if policy is not None:
        return completion.model == policy
    return (completion.meta or {}).get("on_policy") is True  # as `judge generate --policy` marks


def _score(rating: Rating, aspects: list[str] | None) -> float | None:
    names = aspects or list(rating.aspects)
    if any(name not in rating.aspects for name in names):
        return None
    return sum(rating.aspects[n].score for n in names) / len(names)


def _candidates(group: list[_Scored], config: PairsConfig, rng: random.Random):
    """(chosen, rejected) candidates of one prompt; group sorted best first, holding at least
    one complete completion (and, with a policy, one of the policy's)."""
    if config.strategy == "all-pairs":
        for high, low in combinations(group, 2):
            if config.policy is None or high.on_policy or low.on_policy:
                yield high, low
        return
    best = next(s for s in group if not s.truncated)
    others = [s for s in group if s is not best]
    if config.policy is not None and not best.on_policy:
        others = [s for s in others if s.on_policy]
    if config.strategy == "best-vs-worst":
        yield best, others[-1]
        return
    lower = [s for s in others if s.score < best.score]
    eligible = [s for s in lower if best.score - s.score >= config.min_margin
                and s.completion.response.strip() != best.completion.response.strip()]
    if eligible:
        yield best, rng.choice(eligible)
    elif lower:  # all lower ones are too close (or say the same thing): report the nearest
        yield best, lower[0]
    else:
        yield best, others[0]


def _verdict(chosen: _Scored, rejected: _Scored, min_margin: float) -> str | None:
    if chosen.truncated:
        return "truncated"
    margin = chosen.score - rejected.score
    if margin <= 0:
        return "tie"
    if chosen.completion.response.strip() == rejected.completion.response.strip():
        return "identical_responses"
    if margin < min_margin:
        return "below_margin"
    return None


def _prompt_reject(group: list[_Scored], config: PairsConfig) -> tuple[str, str] | None:
    """Why a prompt yields no candidate pair at all, or None."""
    if len(group) < 2:
        return "single_completion", "prompt has one usable rated completion"
    if all(s.truncated for s in group):
        return "truncated", "every completion of the prompt was cut off by max_tokens"
    if config.policy is not None and not any(s.on_policy for s in group):
        return "no_on_policy", f"no completion of the prompt is by the policy {config.policy}"
    return None


def _length_balance(pairs: list[tuple[_Scored, _Scored]]) -> set[int]:
    """Indices of the chosen-longer pairs to drop, lowest margin first, so that chosen is
    longer in at most half of what is left: d drops satisfy (L - d) <= (N - d) / 2."""
    longer = [i for i, (c, r) in enumerate(pairs)
              if len(c.completion.response) > len(r.completion.response)]
    excess = max(0, 2 * len(longer) - len(pairs))
    longer.sort(key=lambda i: (pairs[i][0].score - pairs[i][1].score, pairs[i][0].completion.id))
    return set(longer[:excess])


def _margin_histogram(margins: list[float]) -> dict[str, int]:
    edges = zip(MARGIN_BINS[:-1], MARGIN_BINS[1:], strict=True)
    counts = {f"({lo:g}, {hi:g}]": 0 for lo, hi in edges}
    labels = list(counts)
    for margin in margins:
        index = next((i for i, hi in enumerate(MARGIN_BINS[1:]) if margin <= hi + 1e-9),
                     len(labels) - 1)
        counts[labels[index]] += 1
    return counts


def quality(pairs: list[tuple[_Scored, _Scored]]) -> dict[str, object]:
    """What to check in a pair set before training on it."""
    ratios = [len(c.completion.response) / max(1, len(r.completion.response)) for c, r in pairs]
    wins: Counter = Counter(c.completion.model for c, _ in pairs)
    losses: Counter = Counter(r.completion.model for _, r in pairs)
    on_policy = sum(c.on_policy or r.on_policy for c, r in pairs)
    return {
        "pairs": len(pairs),
        "margin_histogram": _margin_histogram([c.score - r.score for c, r in pairs]),
        "length_ratio_mean": round(statistics.fmean(ratios), 4) if ratios else 0.0,
        "length_ratio_median": round(statistics.median(ratios), 4) if ratios else 0.0,
        "chosen_longer_fraction": round(sum(x > 1 for x in ratios) / len(ratios), 4)
        if ratios else 0.0,
        "on_policy_pairs": on_policy,
        "on_policy_share": round(on_policy / len(pairs), 4) if pairs else 0.0,
        "wins_by_model": dict(sorted(wins.items())),
        "losses_by_model": dict(sorted(losses.items())),
        "truncated_rejected_side": sum(r.truncated for _, r in pairs),
    }


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

        def reject(reason: str, detail: str, row_id: str, source: str, row: dict) -> None:
            reasons.append(reason)
            rejected_out.write(Reject(reason=reason, detail=detail, id=row_id, source=source,
                                      row=row).to_row())

        for bad in loaded.rejects:
            rejected_out.write(bad.to_row())
        for completion, rating in loaded.items:
            score = _score(rating, config.aspects)
            if score is None:
                missing = sorted(set(config.aspects or ()) - set(rating.aspects))
                reject("missing_aspect", f"not rated on {', '.join(missing)}", completion.id,
                       completion.source, completion.to_row())
                continue
            truncated = is_truncated(completion)
            if truncated and not config.keep_truncated:
                reject("truncated", TRUNCATED_DETAIL, completion.id, completion.source,
                       completion.to_row())
                continue
            groups[completion.prompt_id].append(_Scored(
                completion, rating, score, truncated, _on_policy(completion, config.policy)))
        if config.aspects and not groups and loaded.items and "missing_aspect" in reasons:
            raise ConfigError(f"no completion was rated on {', '.join(config.aspects)}: check "
                              "--aspect against the rubric used by `judge rate`")

        accepted: list[tuple[_Scored, _Scored]] = []
        for prompt_id, group in groups.items():
            group.sort(key=lambda s: (-s.score, s.completion.id))
            why = _prompt_reject(group, config)
            if why is not None:
                first = group[0].completion
                reject(why[0], why[1], prompt_id, first.source, first.to_row())
                continue
            rng = random.Random(f"{config.seed}:{prompt_id}")
            for chosen, rejected in _candidates(group, config, rng):
                reason = _verdict(chosen, rejected, config.min_margin)
                if reason is not None:
                    reject(reason, f"margin={chosen.score - rejected.score:.3f}", prompt_id,
                           chosen.completion.source, _pair_row(prompt_id, chosen, rejected))
                    continue
                accepted.append((chosen, rejected))
        dropped = _length_balance(accepted) if config.balance_length else set()
        kept = []
        for index, (chosen, rejected) in enumerate(accepted):
            if index in dropped:
                reject("length_balance", f"chosen {len(chosen.completion.response)} chars vs "
                       f"rejected {len(rejected.completion.response)}; dropped to balance "
                       "length", chosen.completion.prompt_id, chosen.completion.source,
                       _pair_row(chosen.completion.prompt_id, chosen, rejected))
                continue
            out.write(_record(chosen, rejected, config).to_row())
            kept.append((chosen, rejected))
        rows_out = out.rows
    wins: Counter = Counter(c.completion.model for c, _ in kept)
    appearances: Counter = Counter()
    for chosen, rejected in kept:
        appearances[chosen.completion.model] += 1
        appearances[rejected.completion.model] += 1
    pair_quality = quality(kept)
    longer_fraction = pair_quality["chosen_longer_fraction"]
    warnings = []
    if rows_out and longer_fraction > config.length_bias_warn:
        warnings.append(f"length bias: chosen is longer than rejected in {longer_fraction:.0%} of "
                        f"pairs (> {config.length_bias_warn:.0%}); check the judge for verbosity "
                        "preference or pass --balance-length")
    candidates = rows_out + len(reasons)
    margins = [c.score - r.score for c, r in kept]
    report = StepReport(
        step="judge.pairs", config=config_dump(config), rows_in=candidates, rows_out=rows_out,
        rejected=reject_counts(reasons), timings={"total": round(time.perf_counter() - started, 3)},
        inputs=[str(rated)], outputs={"data": str(output), "rejects": str(rejects)},
        details={
            "unit": "one candidate pair; a prompt without a pair, a dropped completion or a bad "
                    "row counts once",
            "prompts": len(groups),
            "win_rate_by_model": {m: round(wins[m] / appearances[m], 4)
                                  for m in sorted(appearances)},
            "pairs_by_chosen_model": dict(sorted(wins.items())),
            "chosen_longer_fraction": longer_fraction,
            "mean_margin": round(sum(margins) / len(margins), 4) if margins else 0.0,
            "quality": pair_quality,
            "warnings": warnings})
    report.write(report_path(output))
    return PairsResult(output, rejects, report)


def _pair_row(prompt_id: str, chosen: _Scored, rejected: _Scored) -> dict:
    return {"prompt_id": prompt_id, "chosen_id": chosen.completion.id,
            "rejected_id": rejected.completion.id, "chosen_score": chosen.score,
            "rejected_score": rejected.score}


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
