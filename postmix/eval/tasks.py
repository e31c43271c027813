"""What each benchmark asks and how its answers are scored.

A benchmark named in ``postmix eval`` is an entry of the registry decontamination uses
(``postmix.curate.benchmarks``): its name, Hub set or bundled file, fields and ids. This module
adds what evaluation needs beside that: the scoring kind of the name (``gsm8k``: the final
number, ``math``: math-verify equivalence, ``ifeval``: the IFEval instructions strict and loose,
``code``: the item's tests run in the sandbox, ``judged``: pairwise against a reference answer),
its headline metric and its default prompt format. A file given as ``NAME=FILE`` is scored as
the kind of ``NAME`` (or of its first part: ``gsm8k-full=...`` scores as ``gsm8k``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from postmix.errors import ConfigError
from postmix.eval.formats import PromptFormat
from postmix.eval.sandbox import run_program
from postmix.verifiers import gsm8k as gsm8k_verifier
from postmix.verifiers import ifeval_bench
from postmix.verifiers import math as math_verifier
from postmix.verifiers.ifeval import ConstraintSpecError

GSM8K_FORMAT = PromptFormat(
    template="{question}\nSolve the problem step by step. Then give the final answer on its own "
    "line as \"#### <number>\".", max_tokens=512)
MATH_FORMAT = PromptFormat(
    template="{question}\nSolve the problem step by step and put the final answer in "
    "\\boxed{}.", max_tokens=1024)
IFEVAL_FORMAT = PromptFormat(template="{question}", max_tokens=1024)
CODE_FORMAT = PromptFormat(
    template="Complete this Python function. Reply with the whole function, imports included, in "
    "one ```python code block.\n\n```python\n{question}```", max_tokens=512)
JUDGED_FORMAT = PromptFormat(template="{question}", max_tokens=1024)


@dataclass(frozen=True)
class Kind:
    """How a family of benchmarks is scored."""

    name: str
    metric: str
    format: PromptFormat
    question: tuple[str, ...]  # the row field holding the item's text, first present wins
    reference: tuple[str, ...] = ()  # the row field holding the reference answer


KINDS: dict[str, Kind] = {
    "gsm8k": Kind("gsm8k", "accuracy", GSM8K_FORMAT, ("question",), ("answer",)),
    "math": Kind("math", "accuracy", MATH_FORMAT, ("problem", "question"),
                 ("answer", "solution")),
    "ifeval": Kind("ifeval", "prompt_level_strict", IFEVAL_FORMAT, ("prompt",)),
    "code": Kind("code", "pass@1", CODE_FORMAT, ("prompt",)),
    "judged": Kind("judged", "win_rate", JUDGED_FORMAT, ("instruction", "prompt", "question"),
                   ("output", "reference", "answer")),
}

# registry names -> their scoring kind
KIND_OF = {"gsm8k": "gsm8k", "gsm8k-sample": "gsm8k", "math": "math", "math500": "math",
           "aime": "math", "ifeval": "ifeval", "humaneval": "code", "alpacaeval": "judged"}

SUITES: dict[str, tuple[str, ...]] = {
    "quick": ("gsm8k-sample", "ifeval"),
    "tulu3-dev": ("gsm8k", "math500", "ifeval", "humaneval", "alpacaeval"),
}


def kind_for(name: str) -> Kind:
    """The scoring kind of a benchmark name."""
    lowered = name.lower()
    kind = KIND_OF.get(lowered) or KIND_OF.get(re.split(r"[-_.]", lowered)[0])
    if kind is None:
        raise ConfigError(
            f"postmix eval cannot score benchmark {name!r}: name one of "
            f"{', '.join(sorted(KIND_OF))}, or give a file under such a name "
            f"(e.g. gsm8k-full=test.jsonl, scored as gsm8k)")
    return KINDS[kind]


@dataclass
class Item:
    """One benchmark item ready to ask: its id, text, reference answer and whole row."""

    id: str
    question: str
    reference: str | None
    row: dict[str, Any] = field(default_factory=dict)


class BadItem(ValueError):
    """A benchmark row that cannot be asked or scored (the item is rejected with this reason)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def make_item(kind: Kind, row: dict[str, Any], item_id: str) -> Item:
    question = next((row[f] for f in kind.question if isinstance(row.get(f), str)), None)
    if question is None:
        raise BadItem("bad_item", f"no {' / '.join(kind.question)} field")
    reference = next((str(row[f]) for f in kind.reference if row.get(f) not in (None, "")), None)
    if kind.reference and reference is None:
        raise BadItem("bad_item", f"no reference answer ({' / '.join(kind.reference)})")
    if kind.name == "code" and not (row.get("test") and row.get("entry_point")):
        raise BadItem("bad_item", "a code item needs 'test' and 'entry_point'")
    if kind.name == "ifeval":
        try:  # checked before asking: a row no verifier can read is not worth a model call
            ifeval_bench.row_specs(row)
        except ConstraintSpecError as exc:
            raise BadItem("bad_item", str(exc)[:300]) from None
    return Item(item_id, question, reference, row)


@dataclass
class Scored:
    """One answer's verdict. ``verdict=None``: the item could not be scored (``reason``)."""

    verdict: bool | None
    score: float | None
    reason: str | None = None
    extracted: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def score_verifier(kind: Kind, item: Item, response: str) -> Scored:
    """gsm8k and math: the project's verifiers against the reference answer."""
    verifier = gsm8k_verifier if kind.name == "gsm8k" else math_verifier
    verdict = verifier.verify(response, item.reference or "")
    if verdict.correct is None:
        return Scored(None, None, verdict.reason or "bad_item", details={"detail": verdict.detail})
    return Scored(verdict.correct, float(verdict.correct), verdict.reason or None,
                  verdict.extracted)


_CODE_BLOCK = re.compile(r"```[ \t]*(?:python|py|Python)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL)


def extract_code(response: str) -> str:
    """The code of an answer: its first fenced block, else the whole answer."""
    match = _CODE_BLOCK.search(response)
    return match.group(1) if match else response


def code_program(item: Item, response: str) -> str:
    """The file the sandbox runs: the prompt (its imports and signature), the model's code, the
    tests and the call of ``check`` on the entry point."""
    entry = str(item.row["entry_point"])
    code = extract_code(response)
    # a whole function redefines the prompt's stub; a bare body continues the prompt
    whole = re.search(rf"def\s+{re.escape(entry)}\s*\(", code)
    solution = f"{item.question}\n    pass\n\n{code}" if whole else item.question + code
    return f"{solution}\n\n{item.row['test']}\n\ncheck({entry})\n"


def score_code(item: Item, response: str, *, timeout: float, memory_mb: int) -> Scored:
    result = run_program(code_program(item, response), timeout=timeout, memory_mb=memory_mb)
    return Scored(result.passed, float(result.passed), None if result.passed else result.reason,
                  extract_code(response)[:4000], {"sandbox": result.reason,
                                                   "detail": result.detail} if result.detail
                  else {"sandbox": result.reason})
