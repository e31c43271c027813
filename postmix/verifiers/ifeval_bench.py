"""The IFEval benchmark's scoring: strict and loose verdicts per instruction, as the official
``evaluation_lib`` reports them, over postmix's IFEval-faithful checkers.

API (for ``postmix eval`` and anyone scoring IFEval responses)::

    from postmix.verifiers.ifeval_bench import evaluate_ifeval, load_ifeval_prompts

    rows = load_ifeval_prompts()                 # the 541 published prompts, bundled
    result = evaluate_ifeval(rows[0], response)  # one row, one response
    result.strict, result.loose                  # list[bool], one per instruction, in order
    result.prompt_strict, result.prompt_loose    # all() of each: prompt-level accuracy

``prompt_row`` is an IFEval row: ``instruction_id_list`` and ``kwargs`` (``None`` values are
"not given", as on the Hub) and ``prompt``. Strict: the response as it is; a blank response
follows nothing. Loose: an instruction is followed when any of eight variants follows it, the
response and the response without its first line, its last line or both, each also with every
``*`` removed. A bad row (unknown instruction, kwargs its type rejects) raises
``ConstraintSpecError``; an answer is never an error.

Accuracy over many rows is ``score_rows``: prompt-level and instruction-level, strict and loose.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from postmix.verifiers import ifeval, ifeval_formats

PROMPTS_FILE = "ifeval_input_data.jsonl"


@dataclass(frozen=True)
class IFEvalResult:
    instruction_ids: tuple[str, ...]
    strict: list[bool]
    loose: list[bool]

    @property
    def prompt_strict(self) -> bool:
        return all(self.strict)

    @property
    def prompt_loose(self) -> bool:
        return all(self.loose)


def loose_variants(response: str) -> list[str]:
    """The eight responses IFEval's loose score tries, in its order."""
    lines = response.split("\n")
    first = "\n".join(lines[1:]).strip()
    last = "\n".join(lines[:-1]).strip()
    both = "\n".join(lines[1:-1]).strip()
    return [response, response.replace("*", ""), first, last, both,
            first.replace("*", ""), last.replace("*", ""), both.replace("*", "")]


def row_specs(prompt_row: Mapping[str, Any]) -> list[tuple[ifeval.ConstraintType, Any]]:
    """The parsed specs of an IFEval row, one per instruction."""
    try:
        specs = ifeval_formats.native_specs(list(prompt_row["instruction_id_list"]),
                                            list(prompt_row["kwargs"]))
    except (ifeval_formats.FormatError, KeyError, TypeError) as exc:
        raise ifeval.ConstraintSpecError(f"not an IFEval row: {exc}") from None
    return [ifeval.parse_spec(s) for s in specs]


def evaluate_ifeval(prompt_row: Mapping[str, Any], response: str) -> IFEvalResult:
    """Strict and loose verdicts of ``response`` for each instruction of ``prompt_row``."""
    parsed = row_specs(prompt_row)
    others = loose_variants(response)[1:]
    strict = [ifeval.holds(kind, params, response) for kind, params in parsed]
    loose = [ok or any(ifeval.holds(kind, params, v) for v in others)
             for ok, (kind, params) in zip(strict, parsed, strict=True)]
    return IFEvalResult(tuple(prompt_row["instruction_id_list"]), strict, loose)


def score_rows(results: Iterable[IFEvalResult]) -> dict[str, float | int]:
    """IFEval's four accuracies over many results (and the counts behind them)."""
    results = list(results)
    instructions = sum(len(r.strict) for r in results)

    def share(hits: int, total: int) -> float:
        return hits / total if total else 0.0

    return {
        "prompts": len(results),
        "instructions": instructions,
        "prompt_strict": share(sum(r.prompt_strict for r in results), len(results)),
        "prompt_loose": share(sum(r.prompt_loose for r in results), len(results)),
        "instruction_strict": share(sum(sum(r.strict) for r in results), instructions),
        "instruction_loose": share(sum(sum(r.loose) for r in results), instructions),
    }


def load_ifeval_prompts() -> list[dict[str, Any]]:
    """The 541 IFEval prompts (key, prompt, instruction_id_list, kwargs), bundled with postmix."""
    path = resources.files("postmix").joinpath("data", "benchmarks", PROMPTS_FILE)
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
