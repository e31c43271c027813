"""Stable ids: a row without an id gets one derived from its normalised content.

Re-running ingest on the same file must give the same ids, so the id is a hash of content,
never of time or position. NFKC + collapsed whitespace means cosmetic re-encodings of the same
text (non-breaking spaces, full-width digits) do not produce a new id.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import xxhash

_WHITESPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def _normalise(value: Any) -> Any:
    if isinstance(value, str):
        return normalise_text(value)
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return value


def content_hash(payload: Any, *, length: int = 24) -> str:
    """Hex digest (xxh3-128, truncated) of the canonical JSON of the normalised payload."""
    canonical = json.dumps(
        _normalise(payload), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return xxhash.xxh3_128_hexdigest(canonical.encode("utf-8"))[:length]


def stable_id(kind: str, payload: Any) -> str:
    """An id like ``sft-3f2a...`` that depends only on the record kind and its content."""
    return f"{kind}-{content_hash(payload)}"
