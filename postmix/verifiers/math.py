"""MATH-style verifier: symbolic equivalence of the final answer through math-verify.

math-verify extracts the answer (``\\boxed{}`` first, then LaTeX or plain expressions) and
compares with sympy, so ``\\frac{1}{2}``, ``0.5``, ``1/2`` and ``\\dfrac12`` all match. It is
imported on first use: it pulls in sympy and ANTLR, which the rest of postmix never needs.
"""

from __future__ import annotations

import threading
from typing import Any

from postmix.verifiers.base import Verdict, unscorable

TIMEOUT_S = 5  # per parse / comparison; sympy can take forever on adversarial expressions


def _math_verify() -> Any:
    try:
        import math_verify
    except ImportError:  # pragma: no cover - an install problem, not a test path
        from postmix.errors import PostmixError

        raise PostmixError(
            "the math verifier needs math-verify: pip install 'postmix[train]'"
        ) from None
    return math_verify


def _timeout() -> int | None:
    # math-verify times out with signal.alarm, which only works on the main thread; elsewhere
    # (a dataloader or reward thread) it would raise, so run without its timeout there.
    return TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def _as_gold(text: str) -> str:
    text = text.strip()
    # A bare reference such as "\frac{1}{2}" has no math delimiters for the LaTeX extractor.
    if "$" in text or "\\boxed" in text or "\\(" in text or "\\[" in text:
        return text
    return f"${text}$"


def verify(response: str, ground_truth: str, constraints: object = None) -> Verdict:
    """Correct when the response's final answer equals the reference symbolically."""
    mv = _math_verify()
    timeout = _timeout()
    if not (ground_truth or "").strip():
        return unscorable("bad_ground_truth", "empty ground truth")
    try:
        gold = mv.parse(_as_gold(ground_truth), parsing_timeout=timeout)
    except Exception as exc:  # math-verify raises on pathological input; the row is at fault
        return unscorable("bad_ground_truth", f"{type(exc).__name__}: {exc}"[:200])
    if not gold:
        return unscorable(
            "bad_ground_truth", f"math-verify found no answer in {ground_truth!r:.80}"
        )
    try:
        answer = mv.parse(response or "", parsing_timeout=timeout)
        if not answer:
            return Verdict(False, "no_answer")
        correct = bool(mv.verify(gold, answer, timeout_seconds=timeout))
    except Exception as exc:  # a response that crashes the parser earns no reward
        return Verdict(False, "verify_error", detail=f"{type(exc).__name__}: {exc}"[:200])
    return Verdict(correct, extracted=str(answer[-1]))
