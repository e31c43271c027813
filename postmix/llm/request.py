"""What a caller asks the engine for and what it gets back.

The cache key is a hash of what determines the answer — model, messages, sampling parameters,
JSON schema, and a caller's salt (e.g. the sample index when drawing several completions) — and
of nothing else: not the endpoint, its URL or its key, so replicas of one model share answers and
no credential can reach the cache.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import xxhash
from pydantic import BaseModel

Schema = type[BaseModel] | dict[str, Any] | None


def schema_dict(schema: Schema) -> dict[str, Any] | None:
    if schema is None:
        return None
    if isinstance(schema, dict):
        return schema
    return schema.model_json_schema()


def schema_name(schema: Schema) -> str:
    if schema is None:
        return ""
    if isinstance(schema, dict):
        return str(schema.get("title") or "response")
    return schema.__name__


def request_key(model: str, messages: list[dict[str, Any]], sampling: dict[str, Any],
                schema: dict[str, Any] | None, salt: str = "") -> str:
    canonical = json.dumps([model, messages, sampling, schema, salt], sort_keys=True,
                           ensure_ascii=False, separators=(",", ":"), default=str)
    return xxhash.xxh3_128_hexdigest(canonical.encode("utf-8"))


@dataclass
class ChatRequest:
    """One chat call. ``model=None`` means the pool's first model; ``schema`` asks for JSON."""

    messages: list[dict[str, Any]]
    sampling: dict[str, Any] = field(default_factory=dict)
    schema: Schema = None
    model: str | None = None
    salt: str = ""
    tag: Any = None  # the caller's own handle (row index, ids); never sent, never hashed


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Usage:
        data = data or {}
        return cls(int(data.get("prompt_tokens") or 0), int(data.get("completion_tokens") or 0))

    def to_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}


@dataclass
class ChatResult:
    """The answer, or why there is none. ``error_kind`` is the machine-readable failure reason."""

    ok: bool
    content: str | None = None
    parsed: Any = None
    error: str | None = None
    error_kind: str | None = None
    usage: Usage = field(default_factory=Usage)
    endpoint: str | None = None
    model: str | None = None
    attempts: int = 0
    cached: bool = False
    finish_reason: str | None = None
    parse_failures: int = 0
    key: str = ""
    sampling: dict[str, Any] = field(default_factory=dict)  # as sent: endpoint defaults + request
    request: ChatRequest | None = None


def embedding_key(model: str, text: str) -> str:
    """Cache key of one text's embedding (texts are cached one by one, so a batch cut another way
    on a re-run still finds them)."""
    return request_key(model, [{"role": "embedding", "content": text}], {}, None, "embeddings")


@dataclass
class EmbeddingResult:
    """Vectors for a batch of texts, in order, or why there are none."""

    ok: bool
    vectors: list[list[float]] | None = None
    error: str | None = None
    error_kind: str | None = None
    model: str | None = None
    attempts: int = 0
    cached: int = 0  # texts answered from the cache
    usage: Usage = field(default_factory=Usage)


def reward_key(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """Cache key of one conversation's reward (``params``: what else decides the number)."""
    return request_key(model, messages, params, None, "reward")


@dataclass
class RewardResult:
    """A reward model's score of one conversation, or why there is none."""

    ok: bool
    score: float | None = None
    error: str | None = None
    error_kind: str | None = None
    model: str | None = None
    attempts: int = 0
    cached: bool = False
