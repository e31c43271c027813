"""GSM8K-style verifier: the final number of a response against the reference number.

Where the final answer is, in order of trust: after the last ``####`` (GSM8K's own format), in
the last ``\\boxed{...}``, after the last "answer is" / "Answer:" / "A:", and otherwise the last
number in the text (Tulu 3's rule). A ``####`` or ``\\boxed{}`` with no number after it (or a
fraction such as ``3/4``) means no answer: nothing else in the text is taken for one. Numbers
may carry thousands separators (``1,234``), a currency sign (``$18``), trailing zeros (``18.00``)
or units (``18 dollars``); they compare as exact decimals, so ``1,234`` == ``1234.0`` and
``0.1 + 0.2`` rounding never matters.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from postmix.verifiers.base import Verdict, unscorable

# A number as people write one: optional sign and currency, thousands groups or plain digits,
# an optional decimal part. The look-arounds stop a match starting or ending inside a longer
# number ("1,2345" is not "1,234").
NUMBER = re.compile(
    r"(?<![\d.])(?P<sign>-)?\s?\$?\s?(?P<int>\d{1,3}(?:,\d{3})+(?![\d,])|\d+)(?P<frac>\.\d+)?"
    r"|(?<![\d.])(?P<sign2>-)?\$?(?P<frac_only>\.\d+)"
)

# Markers that introduce the final answer, most explicit first; the number must follow on the
# same line, within a few characters of markdown or currency noise.
_MARKERS = (
    re.compile(r"####"),
    re.compile(r"\\boxed\s*\{"),
    re.compile(r"\b(?:final\s+)?answer\b(?:\s+is)?\s*[:=]?", re.IGNORECASE),
    re.compile(r"(?:^|(?<=\s))A\s*:", re.MULTILINE),
)
_LEAD = re.compile(r"[\s:=*_$\\({\[]*(?:\\text\{|\\\$)?[\s$]*")


def _decimal(match: re.Match[str]) -> Decimal | None:
    if match.group("frac_only"):
        text = ("-" if match.group("sign2") else "") + "0" + match.group("frac_only")
    else:
        text = ("-" if match.group("sign") else "") + match.group("int").replace(",", "")
        text += match.group("frac") or ""
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern only admits valid decimals
        return None


_NO_ANSWER = object()  # an explicit marker with no number after it


def _braced(text: str) -> str:
    """What follows an opening brace, up to its matching closing brace (all of it if unclosed)."""
    depth = 1
    for index, char in enumerate(text):
        depth += (char == "{") - (char == "}")
        if depth == 0:
            return text[:index]
    return text


_NOT_A_NUMBER = re.compile(r"\\[dt]?frac|\^|/")  # \frac{1}{2}, 2^{10}, 3/4


def _after_marker(text: str, marker: re.Pattern[str]) -> Decimal | None | object:
    hits = list(marker.finditer(text))
    if not hits:
        return None
    rest = text[hits[-1].end():].split("\n", 1)[0]
    if marker is _MARKERS[1]:
        rest = _braced(rest)  # only what is inside \boxed{...}
        if _NOT_A_NUMBER.search(rest):
            return _NO_ANSWER
    lead = _LEAD.match(rest)
    match = NUMBER.match(rest, lead.end() if lead else 0)
    if match is None:
        # "The answer is: Tom has 18 apples" -> the first number after the marker on that line.
        match = NUMBER.search(rest)
    if match is not None and rest[match.end():match.end() + 2].lstrip().startswith("/"):
        return _NO_ANSWER  # "The answer is 3/4": a fraction, not a number to compare
    if match is None:
        # "#### no idea": the response committed to a final answer that is not a number;
        # falling back to any number in the text would make one up ("Step 1" -> 1)
        return _NO_ANSWER if marker in _EXPLICIT else None
    return _decimal(match)


_EXPLICIT = _MARKERS[:2]  # #### and \boxed{}: what follows them is the answer, or there is none


def extract_number(text: str) -> Decimal | None:
    """The final numeric answer in ``text``, or None when it holds no number."""
    for marker in _MARKERS:
        value = _after_marker(text, marker)
        if value is _NO_ANSWER:
            return None
        if value is not None:
            return value
    numbers = list(NUMBER.finditer(text))
    return _decimal(numbers[-1]) if numbers else None


def _render(value: Decimal) -> str:
    return format(value.normalize(), "f")


def verify(response: str, ground_truth: str, constraints: object = None) -> Verdict:
    """Correct when the response's final number equals the reference number exactly."""
    reference = extract_number(ground_truth or "")
    if reference is None:
        return unscorable("bad_ground_truth", f"no number in ground truth {ground_truth!r:.80}")
    answer = extract_number(response or "")
    if answer is None:
        return Verdict(False, "no_answer")
    return Verdict(answer == reference, extracted=_render(answer))
