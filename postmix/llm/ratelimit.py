"""Per-minute budgets (requests or tokens) as a token bucket refilled continuously.

The bucket holds at most one second of budget, so a fresh run does not fire a minute's worth of
requests in its first instant and trip the provider's own limiter; a request larger than the
bucket may overdraw it and the next caller waits for the debt to refill.
"""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self, cost: float = 1.0) -> None:
        async with self._lock:  # FIFO: waiters are served in arrival order
            self._refill()
            need = min(cost, self.capacity)
            if self._tokens < need:
                await asyncio.sleep((need - self._tokens) / self.rate)
                self._refill()
            self._tokens -= cost
