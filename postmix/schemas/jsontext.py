"""Parse JSON text from untrusted rows without letting one row take the process down.

``json.loads`` is fine for well-behaved text, but a hostile row can make it raise things no
caller expects: ``RecursionError`` for ``[[[[...]]]]`` 100,000 deep, a plain ``ValueError`` for an
integer of more than 4,300 digits, and a lone surrogate (``"\\ud800"``) parses into a ``str`` that
cannot be written back as UTF-8. ``loads`` turns each into a ``JsonTextError`` (a ``ValueError``,
so pydantic validators pass it on as a validation error) that carries the reject reason, and
refuses nesting deeper than ``MAX_DEPTH``: a value that deep parses, but every later recursive walk
of it (validators, ``json.dumps``, hashing) would hit Python's recursion limit one at a time.

The checks cost nothing for ordinary rows: the depth walk only runs when the text holds more
brackets than ``MAX_DEPTH``, the surrogate check only when it holds a ``\\uD800``-``\\uDFFF``
escape.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Real data rarely nests past 20; Python's own parser gives up near 1,000 levels, and each later
# recursive walk of the value needs the same depth again on top of whatever called it.
MAX_DEPTH = 128

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class JsonTextError(ValueError):
    """Text that is not a JSON value postmix can keep; ``reason`` is the reject code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests lists/dicts more than ``limit`` levels (iterative: any depth)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def lone_surrogate(value: Any) -> bool:
    """Whether some string in ``value`` holds a surrogate that UTF-8 cannot encode."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_value(value: Any, text: str | None = None) -> None:
    """Raise ``JsonTextError`` when a parsed ``value`` nests too deep or holds a lone surrogate.
    ``text`` (what it was parsed from) lets both checks be skipped when they cannot apply."""
    deep = text is None or (len(text) > MAX_DEPTH and text.count("[") + text.count("{") > MAX_DEPTH)
    if deep and too_deep(value):
        raise JsonTextError("too_deep", f"nested more than {MAX_DEPTH} levels deep")
    escaped = text is None or ("\\u" in text and _SURROGATE_ESCAPE.search(text))
    if escaped and lone_surrogate(value):
        raise JsonTextError(
            "not_utf8", "a \\uD800-\\uDFFF escape without its pair (not valid Unicode)"
        )


def loads(text: str) -> Any:
    """``json.loads`` for untrusted text: any failure is a ``JsonTextError`` with a reason."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JsonTextError("malformed_json", f"{exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise JsonTextError("too_deep", f"nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:  # an integer past Python's 4,300-digit conversion limit
        raise JsonTextError("malformed_json", str(exc).split(";")[0].strip()) from None
    check_value(value, text)
    return value
