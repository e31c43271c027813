"""What every verifier returns: a verdict that says correct, wrong, or why it could not tell."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one response.

    ``correct`` is None when the row cannot be scored at all (unknown verifier, unusable ground
    truth or constraint spec); ``reason`` then says why, as a machine-readable code. A response
    that simply has no answer in it is scored (``correct=False``, ``reason="no_answer"``): the
    model is at fault, not the row.
    """

    correct: bool | None
    reason: str = ""
    extracted: str | None = None
    detail: str = ""

    @property
    def scorable(self) -> bool:
        return self.correct is not None


def unscorable(reason: str, detail: str = "") -> Verdict:
    return Verdict(None, reason, detail=detail)
