"""Tokens, cost, attempts and failures per endpoint: the money side of a step report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from postmix.llm.config import EndpointConfig


@dataclass
class EndpointLedger:
    price_input_per_m: float = 0.0
    price_output_per_m: float = 0.0
    requests: int = 0  # HTTP attempts sent
    answered: int = 0  # attempts that came back with an answer
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: Counter = field(default_factory=Counter)  # error kind -> attempts that failed

    @property
    def cost_usd(self) -> float:
        return (self.prompt_tokens * self.price_input_per_m
                + self.completion_tokens * self.price_output_per_m) / 1e6

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "answered": self.answered,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "errors": dict(sorted(self.retries.items())),
        }


class Ledger:
    """Per-endpoint counters plus run-wide cache hits, parse failures and final failures."""

    def __init__(self, endpoints: list[EndpointConfig] = ()):
        self.endpoints: dict[str, EndpointLedger] = {
            e.name: EndpointLedger(e.price_input_per_m, e.price_output_per_m) for e in endpoints
        }
        self.cached = 0
        self.parse_failures = 0  # answers that did not match the schema (re-asked or failed)
        self.structured_answers = 0  # answers checked against a schema
        self.truncated = 0  # structured answers cut off by max_tokens that did not parse
        self.failed: Counter = Counter()  # reason -> requests that ended without an answer

    def endpoint(self, name: str) -> EndpointLedger:
        return self.endpoints.setdefault(name, EndpointLedger())

    def attempt(self, name: str) -> None:
        self.endpoint(name).requests += 1

    def answered(self, name: str, prompt_tokens: int, completion_tokens: int) -> None:
        entry = self.endpoint(name)
        entry.answered += 1
        entry.prompt_tokens += prompt_tokens
        entry.completion_tokens += completion_tokens

    def error(self, name: str, kind: str) -> None:
        self.endpoint(name).retries[kind] += 1

    @property
    def parse_failure_rate(self) -> float:
        return self.parse_failures / self.structured_answers if self.structured_answers else 0.0

    def to_dict(self) -> dict[str, Any]:
        per = {name: e.to_dict() for name, e in self.endpoints.items()}
        return {
            "endpoints": per,
            "prompt_tokens": sum(e.prompt_tokens for e in self.endpoints.values()),
            "completion_tokens": sum(e.completion_tokens for e in self.endpoints.values()),
            "cost_usd": round(sum(e.cost_usd for e in self.endpoints.values()), 6),
            "cached": self.cached,
            "parse_failures": self.parse_failures,
            "parse_failure_rate": round(self.parse_failure_rate, 4),
            "truncated": self.truncated,
            "failed": dict(sorted(self.failed.items())),
        }
