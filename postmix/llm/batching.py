"""Offline backends (``vllm``, ``vllm-ray``) behind the engine's transport interface.

The engine sends one request at a time; an offline backend wants them in batches. A
``BatchingTransport`` queues each request with a future, and one worker task takes what is
queued (up to ``batch_limit``), answers it with ``answer(bodies)`` on a thread (the call blocks
for the whole batch), and settles each future with its reply or its ``TransportError``. So the
engine's cache, retries, schema checks and ledger apply unchanged.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from postmix.errors import EndpointError
from postmix.llm.config import EndpointConfig
from postmix.llm.transport import RawReply, TransportError


class BatchingTransport:
    def __init__(self, endpoint: EndpointConfig):
        self.endpoint = endpoint
        self._queue: deque[tuple[dict[str, Any], asyncio.Future[RawReply]]] = deque()
        self._worker: asyncio.Task[None] | None = None
        self.batches: list[int] = []  # requests per batch, for reports and tests

    # what a backend provides

    def batch_limit(self) -> int | None:
        """Most requests per ``answer`` call; None takes everything queued."""
        return None

    def prepare(self) -> None:
        """Called before a request is queued (load the model on first use); may raise
        EndpointError."""

    def answer(self, bodies: list[dict[str, Any]]) -> list[RawReply | TransportError]:
        """One reply or error per body, in order. Raising fails the whole batch: a
        ``TransportError`` or ``EndpointError`` as it is, anything else as a retryable
        ``server_error`` described by ``describe_failure``."""
        raise NotImplementedError

    def describe_failure(self, exc: Exception) -> str:
        return str(exc)

    # the transport interface

    async def send(self, body: dict[str, Any]) -> RawReply:
        self.prepare()
        future: asyncio.Future[RawReply] = asyncio.get_running_loop().create_future()
        self._queue.append((body, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            await asyncio.sleep(0)  # let the engine enqueue everything it has ready
            limit = self.batch_limit()
            count = len(self._queue) if limit is None else min(len(self._queue), limit)
            batch = [self._queue.popleft() for _ in range(count)]
            batch = [(body, fut) for body, fut in batch if not fut.cancelled()]
            if not batch:
                continue
            self.batches.append(len(batch))
            try:
                replies = await loop.run_in_executor(None, self.answer, [body for body, _ in batch])
            except (TransportError, EndpointError) as exc:
                replies = [exc] * len(batch)
            except Exception as exc:
                # the backend lost the batch: the engine retries these requests
                replies = [TransportError("server_error", self.describe_failure(exc))] * len(batch)
            for (_, fut), reply in zip(batch, replies, strict=True):
                if fut.done():
                    continue
                if isinstance(reply, BaseException):
                    fut.set_exception(reply)
                else:
                    fut.set_result(reply)

    async def close(self) -> None:
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
