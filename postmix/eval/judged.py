"""A judged benchmark (AlpacaEval-style): the model's answers against reference answers.

The model's answer to each instruction and the benchmark's reference answer go to the existing
pairwise step (``postmix.judge.compare``), which asks the judge in both orders and counts an
order-dependent verdict as a tie. An item scores 1 (the model's answer won both orders), 0.5
(a tie, a position flip, or the same text as the reference) or 0 (the reference won). The win
rate is the mean; beside it the wins, losses, ties, position flips and both sides' average
answer length in characters, so a judge that prefers long answers shows. Judge calls use the
eval's request cache, so a re-run re-asks the judge nothing it answered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from postmix.eval.tasks import Item, Scored
from postmix.io.read import iter_raw_rows
from postmix.io.write import RowWriter
from postmix.judge.compare import CompareConfig, compare
from postmix.llm import PoolConfig

REFERENCE_MODEL = "reference"
_VERDICT_SCORE = {"a": 1.0, "tie": 0.5, "b": 0.0}


def make_judge(judge_pool: PoolConfig, output: Path, config: Any, model: str,
               cache_path: Path | None):
    """``(benchmark, items) -> {"scored", "failed", "metrics"}``, for ``score_benchmark``."""

    def judge(bench: Any, items: list[Item]) -> dict[str, Any]:
        folder = output / f"{bench.name}.judge"
        folder.mkdir(parents=True, exist_ok=True)
        ours, theirs = folder / "model.jsonl", folder / "reference.jsonl"
        with RowWriter(ours) as a, RowWriter(theirs) as b:
            for item in items:
                prompt = [{"role": "user", "content": item.question}]
                a.write({"id": item.id, "prompt_id": item.id, "prompt": prompt,
                         "response": bench.answers[item.id].content, "model": model})
                b.write({"id": f"{item.id}:reference", "prompt_id": item.id, "prompt": prompt,
                         "response": item.reference or "", "model": REFERENCE_MODEL})
        verdicts = folder / "verdicts.jsonl"
        compare_config = CompareConfig(model=config.judge_model,
                                       cache_path=str(cache_path) if cache_path else None,
                                       use_cache=cache_path is not None)
        result = compare(ours, theirs, verdicts, judge_pool, compare_config, progress=False)
        scored: dict[str, Scored] = {}
        outcomes = {"wins": 0, "losses": 0, "ties": 0, "position_flips": 0}
        for raw in iter_raw_rows(verdicts):
            row = raw.data
            verdict = row["verdict"]
            outcomes[{"a": "wins", "b": "losses", "tie": "ties"}[verdict]] += 1
            outcomes["position_flips"] += bool(row["flipped"])
            scored[row["prompt_id"]] = Scored(
                verdict == "a", _VERDICT_SCORE[verdict], None if verdict == "a" else
                {"b": "reference_won", "tie": "tie"}[verdict], verdict,
                {"winner_ab": row["winner_ab"], "winner_ba": row["winner_ba"],
                 "flipped": row["flipped"], "rationale_ab": row["rationale_ab"][:500],
                 "rationale_ba": row["rationale_ba"][:500]})
        judged = len(scored)  # pairs the judge saw, in both orders
        failed: dict[str, dict[str, Any]] = {}
        identical = 0
        for raw in iter_raw_rows(result.failures):
            row = raw.data
            if row["reason"] == "identical_responses":  # the model said what the reference says
                identical += 1
                outcomes["ties"] += 1
                scored[row["id"]] = Scored(False, 0.5, "tie", "tie",
                                           {"identical_to_reference": True})
            else:
                failed[row["id"]] = {"judge_error": row["reason"],
                                     "detail": str(row.get("detail") or "")[:300]}
        outcomes["identical"] = identical
        model_lengths = [len(bench.answers[i.id].content) for i in items]
        reference_lengths = [len(i.reference or "") for i in items]
        metrics = {**{k: float(v) for k, v in outcomes.items()},
                   "position_flip_rate": round(outcomes["position_flips"] / judged, 4)
                   if judged else 0.0,
                   "avg_length_model": _mean(model_lengths),
                   "avg_length_reference": _mean(reference_lengths)}
        return {"scored": scored, "failed": failed, "metrics": metrics}

    return judge


def _mean(values: list[int]) -> float:
    return round(sum(values) / len(values), 1) if values else 0.0
