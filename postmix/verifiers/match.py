"""String verifiers: exact match and regular-expression match of the whole response."""

from __future__ import annotations

import re

from postmix.verifiers.base import Verdict, unscorable


def _squash(text: str) -> str:
    return " ".join(text.split())


def verify_exact(response: str, ground_truth: str, constraints: object = None) -> Verdict:
    """Correct when the response equals the reference,
    ignoring surrounding and repeated whitespace."""
    if ground_truth is None:
        return unscorable("bad_ground_truth", "no ground truth")
    answer = _squash(response or "")
    return Verdict(answer == _squash(ground_truth), extracted=answer[:200])


def verify_regex(response: str, ground_truth: str, constraints: object = None) -> Verdict:
    """Correct when the reference pattern matches the whole (stripped) response.

    Whole-response matching, not search: a pattern such as ``(yes|no)`` must not reward a response
    that happens to contain "yes" among other words. Write ``.*yes.*`` to allow that explicitly.
    """
    try:
        pattern = re.compile(ground_truth or "", re.DOTALL)
    except re.error as exc:
        return unscorable("bad_ground_truth", f"invalid regular expression: {exc}")
    return Verdict(pattern.fullmatch((response or "").strip()) is not None)
