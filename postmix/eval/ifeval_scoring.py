"""IFEval in ``postmix eval``: each answer's strict and loose verdict per instruction from the
verifiers' IFEval scoring (``postmix.verifiers.ifeval_bench``, which decides as the official
implementation), and the four accuracies IFEval reports.

The headline is prompt-level strict accuracy (an item scores 1 when every instruction holds);
``metrics`` carries prompt-level loose and instruction-level strict and loose. A row the
verifier cannot read (an unknown instruction id) is rejected as ``bad_item``.
"""

from __future__ import annotations

from typing import Any

from postmix.eval.tasks import Item, Scored
from postmix.verifiers.ifeval import ConstraintSpecError
from postmix.verifiers.ifeval_bench import IFEvalResult, evaluate_ifeval, score_rows


def score_ifeval(items: list[Item], answers: dict[str, Any]
                 ) -> tuple[list[Scored], dict[str, float]]:
    scored: list[Scored] = []
    results: list[IFEvalResult] = []
    for item in items:
        try:
            result = evaluate_ifeval(item.row, answers[item.id].content or "")
        except ConstraintSpecError as exc:
            scored.append(Scored(None, None, "bad_item", details={"detail": str(exc)[:300]}))
            continue
        results.append(result)
        failed = [i for i, ok in zip(result.instruction_ids, result.strict, strict=True)
                  if not ok]
        scored.append(Scored(result.prompt_strict, float(result.prompt_strict),
                             None if result.prompt_strict else "instruction_failed", None,
                             {"instructions": list(result.instruction_ids),
                              "strict": result.strict, "loose": result.loose,
                              "prompt_loose": result.prompt_loose, "failed": failed}))
    accuracies = score_rows(results)
    metrics = {"prompt_level_loose": round(accuracies["prompt_loose"], 6),
               "instruction_level_strict": round(accuracies["instruction_strict"], 6),
               "instruction_level_loose": round(accuracies["instruction_loose"], 6),
               "instructions": float(accuracies["instructions"])}
    return scored, metrics
