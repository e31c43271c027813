"""Reading a structured (JSON) answer out of what a model actually wrote.

Asked for only a JSON object, models still wrap it: a sentence before it, a Markdown fence, a
closing remark after it. A re-ask costs a whole judge call, so before spending one the answer
is searched for JSON objects: the whole text first (strict), then each balanced object in the
order it appears — found by the JSON decoder itself (``raw_decode``), so braces inside strings
and escaped quotes are handled as JSON defines them — and the first that validates wins. A
schema-less request only needs a JSON object.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ValidationError

# An answer with more opening braces than this is not an answer wrapped in prose; the cap keeps
# a hostile or degenerate answer from costing a decode attempt per brace.
MAX_CANDIDATES = 32
_DECODER = json.JSONDecoder()


def json_objects(text: str, limit: int = MAX_CANDIDATES) -> Iterator[str]:
    """The balanced JSON objects in ``text``, as substrings, in order of their opening brace;
    an object nested in an earlier one is not listed again."""
    start, tried = text.find("{"), 0
    while start != -1 and tried < limit:
        tried += 1
        try:
            value, end = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            yield text[start:end]
            start = text.find("{", end)
        else:  # cannot happen for text starting with "{", kept for safety
            start = text.find("{", start + 1)


def _validate(text: str, schema: Any) -> Any:
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema.model_validate_json(text)
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


def parse_structured(content: str, schema: Any) -> Any:
    """Validate an answer against a pydantic model (or, for a dict schema, require a JSON
    object): the whole answer, else the first JSON object in it that validates. Raises the
    whole answer's error (``ValidationError`` or ``ValueError``) when none does, or the first
    object's when the answer is not JSON at all but holds one."""
    try:
        return _validate(content, schema)
    except (ValidationError, ValueError) as exc:
        first_error: Exception = exc
    whole_is_json = _is_json(content)
    for index, candidate in enumerate(json_objects(content)):
        try:
            return _validate(candidate, schema)
        except (ValidationError, ValueError) as exc:
            if index == 0 and not whole_is_json:
                first_error = exc
    raise first_error


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True
