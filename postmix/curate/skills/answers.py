"""Final answers out of sampled math solutions, normalised so that equal answers vote together.

``gsm8k``: the RLVR verifier's own extraction (``postmix.verifiers.gsm8k``: after ``####``,
``\\boxed{}`` or "the answer is", else the last number), rendered as a plain decimal, so
``1,200.00`` and ``$1200`` agree and the voted ground truth is what the verifier will compare.
``boxed``: the content of the last ``\\boxed{...}`` (balanced braces), with spacing, ``\\left``/
``\\right``, ``\\dfrac``/``\\tfrac`` and a trailing period normalised away; then, where
math-verify is installed, answers it finds symbolically equal are merged (``merge_equivalent``),
so ``\\frac{1}{2}`` and ``0.5`` vote together, exactly as the RLVR math verifier will score them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from postmix.verifiers.gsm8k import extract_number

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


def normalise_number(text: str) -> str | None:
    cleaned = text.replace(",", "").replace("$", "").strip().rstrip(".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def gsm8k_answer(solution: str) -> str | None:
    value = extract_number(solution)
    return None if value is None else normalise_number(str(value))


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``, braces balanced; None without one."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return None
    start = starts[-1]
    depth = 1
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return text[start:index]
    return None


def normalise_latex(answer: str) -> str:
    text = answer.replace("\\left", "").replace("\\right", "").replace("\\!", "")
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("$", "")
    text = re.sub(r"\s+", "", text).rstrip(".")
    number = normalise_number(text) if _NUMBER.fullmatch(text) else None
    return number if number is not None else text


def boxed_answer(solution: str) -> str | None:
    content = last_boxed(solution)
    if content is None or not content.strip():
        return None
    return normalise_latex(content)


def extract_answer(solution: str, answer_format: str) -> str | None:
    if answer_format == "gsm8k":
        return gsm8k_answer(solution)
    if answer_format == "boxed":
        return boxed_answer(solution)
    raise ValueError(f"unknown answer format {answer_format!r}")


def merge_equivalent(
    answers: list[str | None], same: Callable[[str, str], bool]
) -> list[str | None]:
    """Each answer replaced by the first distinct earlier answer ``same`` calls equal to it."""
    representatives: list[str] = []
    mapped: dict[str, str] = {}
    merged: list[str | None] = []
    for answer in answers:
        if answer is not None and answer not in mapped:
            mapped[answer] = next((r for r in representatives if same(r, answer)), answer)
            if mapped[answer] == answer:
                representatives.append(answer)
        merged.append(None if answer is None else mapped[answer])
    return merged


def math_equivalence() -> Callable[[str, str], bool] | None:
    """``same(a, b)`` by the RLVR math verifier (math-verify), or None when it is not installed."""
    try:
        import math_verify  # noqa: F401
    except ImportError:
        return None
    from postmix.verifiers.math import verify

    def same(reference: str, answer: str) -> bool:
        return verify(f"\\boxed{{{answer}}}", reference).correct is True

    return same


def majority_vote(answers: list[str | None], min_agreement: float) -> tuple[str | None, float]:
    """(winning answer or None, its share of all samples).

    The most common answer wins if it is the only one with that count and holds at least
    ``min_agreement`` of all samples; samples with no answer count against it.
    """
    counts: dict[str, int] = {}
    for answer in answers:
        if answer is not None:
            counts[answer] = counts.get(answer, 0) + 1
    if not counts:
        return None, 0.0
    ranked = sorted(counts.values(), reverse=True)
    best = max(counts, key=counts.__getitem__)
    share = ranked[0] / len(answers)
    tied = len(ranked) > 1 and ranked[1] == ranked[0]
    if tied or ranked[0] < min_agreement * len(answers) - 1e-9:
        return None, share
    return best, share
