"""Verifiers: does a response earn the verifiable reward? One function per ``verifier`` name.

Every verifier is ``verify(response, ground_truth, constraints) -> Verdict``. Rows pick theirs by
their ``verifier`` column; names are matched case-insensitively, so Tulu 3's ``MATH`` and
``IFEval`` work as they are.

==========  ==========================================================================
gsm8k       final number (``#### 18``, ``\\boxed{18}``, "The answer is 18", ``$1,234``)
math        symbolic equivalence via math-verify (``\\frac{1}{2}`` == ``0.5``)
ifeval      every constraint of the row holds, as official IFEval decides (``verifiers.ifeval``)
exact       whitespace-normalised string equality
regex       the ground truth, as a regular expression, matches the whole response
==========  ==========================================================================
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from postmix.verifiers import gsm8k, ifeval, match
from postmix.verifiers import math as math_verifier
from postmix.verifiers.base import Verdict, unscorable

VerifyFn = Callable[[str, str, Any], Verdict]

VERIFIERS: dict[str, VerifyFn] = {
    "gsm8k": gsm8k.verify,
    "math": math_verifier.verify,
    "ifeval": ifeval.verify,
    "exact": match.verify_exact,
    "regex": match.verify_regex,
}


def get_verifier(name: str) -> VerifyFn | None:
    return VERIFIERS.get((name or "").strip().lower())


def verify(response: str | None, ground_truth: str | None, verifier: str,
           constraints: Any = None) -> Verdict:
    """Score one response with the named verifier; never raises on bad rows."""
    fn = get_verifier(verifier)
    if fn is None:
        return unscorable("unknown_verifier", f"{verifier!r}; known: {', '.join(VERIFIERS)}")
    if response is None:
        return unscorable("no_response", "the row has no response")
    # Ground truths arrive as JSON values too (18, 0.5, a list of constraint specs):
    # compare their text
    if ground_truth is not None and not isinstance(ground_truth, str):
        ground_truth = (
            json.dumps(ground_truth)
            if isinstance(ground_truth, (list, dict))
            else str(ground_truth)
        )
    if not isinstance(response, str):
        return unscorable("no_response", f"the response is a {type(response).__name__}, not text")
    return fn(response, ground_truth, constraints)


__all__ = ["VERIFIERS", "Verdict", "VerifyFn", "get_verifier", "ifeval", "unscorable", "verify"]
