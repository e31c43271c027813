"""Endpoint health for a pool of replicas: a circuit breaker per endpoint.

``healthy`` --(K consecutive connection errors / timeouts / 5xx)--> ``ejected`` for ``cooldown``
seconds, during which the engine sends its requests to the other endpoints of the model;
then one real request goes through as a probe (``probing``): an answer makes it ``healthy``
again, a failure ejects it for another cool-down. Any reply that proves the server is up (a 429,
a 4xx, a malformed body) resets the count, since retries and the schema logic handle those.

An endpoint is not ejected while it is the last healthy one for its model: there would be
nowhere to send its requests, and the engine's retries with backoff are the right behaviour.
Every transition is recorded, and ``PoolLedger`` puts the record into the ledger, so a stage
report shows which endpoint was out, when and why.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from postmix.llm.config import EndpointConfig, HealthConfig
from postmix.llm.ledger import Ledger

log = logging.getLogger("postmix.llm")

COUNTED = frozenset({"connection", "timeout", "server_error"})  # what a dead or dying server gives


@dataclass
class EndpointHealth:
    name: str
    config: HealthConfig
    started: float = field(default_factory=time.monotonic)
    state: str = "healthy"  # healthy | ejected | probing
    consecutive: int = 0
    until: float = 0.0  # end of the current cool-down (monotonic)
    ejections: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)

    def _event(self, event: str, now: float, **detail: Any) -> None:
        self.events.append({"at": round(now - self.started, 3), "event": event, **detail})

    @property
    def healthy(self) -> bool:
        return self.state == "healthy"

    def probe_ready(self, now: float) -> bool:
        return self.state == "ejected" and now >= self.until

    def start_probe(self, now: float) -> None:
        self.state = "probing"
        self._event("probe", now)

    def succeeded(self, now: float) -> None:
        self.consecutive = 0
        if self.state == "probing":
            self.state = "healthy"
            self._event("recovered", now)
            log.info("endpoint %s answered its probe: back in the pool", self.name)

    def answered_with_error(self, now: float | None = None) -> None:
        """A reply that is not a success but shows the server is up (429, 4xx, bad body): a probe
        that gets one has found the server back, so the endpoint rejoins the pool."""
        self.consecutive = 0
        if self.state == "probing":
            self.state = "healthy"
            self._event("recovered", time.monotonic() if now is None else now, after="reply")
            log.info("endpoint %s answered its probe: back in the pool", self.name)

    def failed(self, kind: str, now: float, *, can_eject: bool) -> None:
        """A counted failure; ejects after ``failures_to_eject`` of them in a row (or a failed
        probe)."""
        self.consecutive += 1
        if self.state == "probing" or (self.state == "healthy" and can_eject
                                        and self.consecutive >= self.config.failures_to_eject):
            self.state = "ejected"
            self.until = now + self.config.cooldown
            self.ejections += 1
            self._event("ejected", now, after=kind, consecutive_failures=self.consecutive)
            log.warning(
                "endpoint %s: %d %s failure(s) in a row; out for %.0fs, its requests go to the "
                "other endpoints", self.name, self.consecutive, kind, self.config.cooldown)

    def probe_abandoned(self, now: float) -> None:
        """The probe request was cancelled before an outcome: let the next request probe."""
        if self.state == "probing":
            self.state = "ejected"
            self.until = now

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "ejections": self.ejections,
                "consecutive_failures": self.consecutive, "events": list(self.events)}


class PoolLedger(Ledger):
    """The engine's ledger plus each endpoint's health record under ``"health"``."""

    def __init__(self, endpoints: list[EndpointConfig], health: dict[str, EndpointHealth]):
        super().__init__(endpoints)
        self.health = health

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["health"] = {name: h.to_dict() for name, h in self.health.items()}
        return data
