"""``judge compare``: pairwise judging of two sets of responses to the same prompts.

Each pair is judged twice, once in each order. LLM judges favour a position; a verdict that
changes when the order changes is not a preference, so it counts as a tie, and the share of such
flips (the position-flip rate) is reported as a measure of how much to trust the judge.
A row of A is matched with the row of B at the same position among the rows of the same
``prompt_id``: the first with the first, the second with the second (two models' samples of one
prompt), so no row of B is silently ignored; those that no row of A matches are counted in the
report, and rows of A without a counterpart go to the failures as ``unmatched_prompt``.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from postmix.judge.inputs import load_completions
from postmix.judge.prompts import compare_messages
from postmix.judge.rubrics import load_rubric
from postmix.llm import ChatRequest, ChatResult, PoolConfig, run_requests_into
from postmix.llm.model_stage import (
    OneModelConfig,
    StageOutputs,
    StageResult,
    config_dump,
)
from postmix.schemas import Completion, Reject, stable_id

CompareResult = StageResult


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rationale: str
    winner: Literal["1", "2", "tie"]


class CompareConfig(OneModelConfig):
    model: str | None = Field(None, description="Judge model in the pool; None = the first.")
    sampling: dict[str, Any] = Field(default_factory=lambda: {"temperature": 0.0},
                                     description="Greedy by default so verdicts are reproducible.")
    rubric: str | None = Field(None, description="Built-in rubric name or a rubric YAML path "
                               "(as `judge rate --rubric`) whose aspects the judge weighs; "
                               "None = overall quality.")


def combine(first_order: str, second_order: str) -> tuple[str, bool]:
    """Verdicts from the (A, B) and (B, A) orders, each "1"/"2"/"tie" -> ("a"|"b"|"tie",
    flipped)."""
    ab = {"1": "a", "2": "b", "tie": "tie"}[first_order]
    ba = {"1": "b", "2": "a", "tie": "tie"}[second_order]
    return (ab, False) if ab == ba else ("tie", True)


def compare(a: str | Path, b: str | Path, output: str | Path, pool: PoolConfig,
            config: CompareConfig | None = None, *, progress: bool | None = None) -> StageResult:
    config = config or CompareConfig()
    started = time.perf_counter()
    judge_model = config.pick_model(pool)
    rubric = load_rubric(config.rubric) if config.rubric else None
    left, right = load_completions(a), load_completions(b)
    by_sample = dict(zip(_sample_keys(right.items), right.items, strict=True))
    per_prompt_b = Counter(c.prompt_id for c in right.items)
    # B's unreadable rows are accounted too (as b_<reason>): a prompt they held is otherwise
    # reported as missing from B, and they would vanish from every count
    b_rejects = [r.model_copy(update={"reason": f"b_{r.reason}",
                                      "detail": f"in B ({b}): {r.detail}"})
                 for r in right.rejects]
    missing_hint = (f" ({len(b_rejects)} row(s) of B could not be read: see b_* in the "
                    "failures)") if b_rejects else ""
    pairs: list[tuple[Completion, Completion]] = []
    unmatched: list[Reject] = []
    matched_b: set[tuple[str, int]] = set()
    for key, c in zip(_sample_keys(left.items), left.items, strict=True):
        other = by_sample.get(key)
        if other is None:
            held = per_prompt_b[c.prompt_id]
            what = (f"no row of {b} has prompt_id {c.prompt_id}" if not held else
                    f"{b} has only {held} row(s) for prompt_id {c.prompt_id}; this is A's row "
                    f"{key[1] + 1} for it")
            unmatched.append(Reject(reason="unmatched_prompt", detail=what + missing_hint, id=c.id,
                                    source=c.source, row=c.to_row()))
            continue
        matched_b.add(key)
        if c.response.strip() == other.response.strip():
            unmatched.append(Reject(reason="identical_responses", detail="A and B say the same",
                                    id=c.id, source=c.source, row=c.to_row()))
        else:
            pairs.append((c, other))

    def requests():
        for index, (x, y) in enumerate(pairs):
            prompt = [m.model_dump() for m in x.prompt]
            for first, second in ((x, y), (y, x)):
                messages = compare_messages(prompt, first.response, second.response, rubric)
                yield ChatRequest(messages, dict(config.sampling), schema=Verdict,
                                  model=judge_model, tag=index)

    outcomes: Counter = Counter()
    flips = hard_flips = 0
    answers: list[ChatResult] = []
    with StageOutputs(output, inputs=[a, b], rejects_file=False,
                      started=started) as outputs:
        for reject in [*left.rejects, *b_rejects, *unmatched]:
            outputs.reject(reject)

        def handle(result: ChatResult) -> None:
            nonlocal flips, hard_flips
            answers.append(result)
            if len(answers) < 2:
                return
            ab, ba = answers  # map() keeps input order: the (A, B) then the (B, A) request
            answers.clear()
            x, y = pairs[ab.request.tag]
            if not (ab.ok and ba.ok):
                bad = ab if not ab.ok else ba
                outputs.fail(Reject(reason=bad.error_kind or "error", detail=bad.error or "",
                                    id=x.id, source=x.source, row=x.to_row()))
                return
            verdict, flipped = combine(ab.parsed.winner, ba.parsed.winner)
            outcomes[verdict] += 1
            flips += flipped
            hard_flips += ab.parsed.winner == ba.parsed.winner != "tie"  # same position won twice
            outputs.keep({"id": stable_id("comparison", [x.id, y.id, judge_model]),
                           "prompt_id": x.prompt_id, "prompt": [m.model_dump() for m in x.prompt],
                           "response_a": x.response, "response_b": y.response,
                           "model_a": x.model, "model_b": y.model, "verdict": verdict,
                           "flipped": flipped, "winner_ab": ab.parsed.winner,
                           "winner_ba": ba.parsed.winner, "rationale_ab": ab.parsed.rationale,
                           "rationale_ba": ba.parsed.rationale, "judge": judge_model})

        ledger = run_requests_into(pool, requests(), handle, total=2 * len(pairs),
                                   description="judge compare",
                                   cache_path=config.cache_file(output), progress=progress)
    judged = outputs.out.rows
    return outputs.report(
        "judge.compare", config=config_dump(config, pool)
        | ({"rubric_aspects": rubric.aspect_names} if rubric else {}),
        rows_in=len(left.items) + len(left.rejects) + len(b_rejects), inputs=[str(a), str(b)],
        details={
            "judge_model": judge_model,
            "a_wins": outcomes["a"], "b_wins": outcomes["b"], "ties": outcomes["tie"],
            "win_rate_a": round((outcomes["a"] + outcomes["tie"] / 2) / judged, 4)
            if judged else 0.0,
            "position_flip_rate": round(flips / judged, 4) if judged else 0.0,
            "position_flip_rate_strict": round(hard_flips / judged, 4) if judged else 0.0,
            "b_unreadable_rows": len(b_rejects),
            "b_rows_not_compared": len(right.items) - len(matched_b),
            "parse_failure_rate": round(ledger.parse_failure_rate, 4),
            "ledger": ledger.to_dict()})


def _sample_keys(rows: list[Completion]) -> list[tuple[str, int]]:
    """``(prompt_id, k)`` per row: the row is its prompt's k-th in the file. (Not
    ``meta.sample_index``: two models' files each hold their own samples, numbered apart.)"""
    seen: Counter = Counter()
    keys = []
    for c in rows:
        keys.append((c.prompt_id, seen[c.prompt_id]))
        seen[c.prompt_id] += 1
    return keys
