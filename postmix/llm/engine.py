"""The one engine behind every model call in postmix.

``Engine.chat(request)`` answers one ``ChatRequest``: from the cache when it was answered before,
otherwise on the least-loaded healthy endpoint serving the request's model, within that
endpoint's concurrency and per-minute budgets, retrying transient failures with exponential
backoff and jitter (honouring Retry-After), and re-asking a bounded number of times when a
structured answer does not validate. With several endpoints per model (one ``vllm serve`` per
node), an endpoint that keeps failing is taken out for a cool-down (``postmix.llm.health``): a
request that failed on it goes at once to another endpoint, and none is lost. It never raises
for one bad item: the result says ``ok=False`` with a machine-readable ``error_kind`` and the
last error. Only a run-wide problem (a rejected API key) raises ``EndpointError``.

``Engine.map(requests)`` streams results in input order, sending each request as soon as a slot
is free (a slow answer holds back no other; finished ones wait in a bounded reorder buffer), so
a stage writes its output incrementally and deterministically; ``run_requests`` is the
synchronous wrapper.

``Engine.embed(texts)`` asks an ``/v1/embeddings`` endpoint (vLLM serves them) for a batch of
vectors through the same machinery: per-text cache entries, the same endpoint choice, budgets,
retries and health, and the same ledger; ``embed_many`` sends a long list batch by batch.

``Engine.reward(messages)`` asks a reward model for its score of one conversation through vLLM's
``/pooling`` endpoint (what ``vllm serve <reward model>`` answers for every kind of reward
model; the server applies the model's chat template), with the same cache, retries, health and
ledger; ``reward_many`` scores a list with every endpoint slot busy.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from postmix.errors import ConfigError, EndpointError
from postmix.llm.backends import make_transport
from postmix.llm.cache import RequestCache
from postmix.llm.config import EndpointConfig, PoolConfig, RetryConfig
from postmix.llm.health import COUNTED, EndpointHealth, PoolLedger
from postmix.llm.ledger import Ledger
from postmix.llm.ratelimit import RateLimiter
from postmix.llm.request import (
    ChatRequest,
    ChatResult,
    EmbeddingResult,
    RewardResult,
    Usage,
    embedding_key,
    request_key,
    reward_key,
    schema_dict,
    schema_name,
)
from postmix.llm.structured import parse_structured
from postmix.llm.transport import RawEmbeddings, RawPooling, RawReply, TransportError
from postmix.progress import progress_bar

log = logging.getLogger("postmix.llm")

DEFAULT_MAX_TOKENS_ESTIMATE = 512  # for tokens_per_minute when a request sets no max_tokens
# answers held for input order: ~2,000 ordinary chat results are a few MB, and it takes one
# request slower than that many others to stall sending
REORDER_WINDOW = 4096


@dataclass
class _Slot:
    """One endpoint's live state."""

    config: EndpointConfig
    transport: Any
    semaphore: asyncio.Semaphore
    rpm: RateLimiter | None
    tpm: RateLimiter | None
    health: EndpointHealth
    waiting: int = 0  # requests assigned here and not finished (in flight or queued)


class _Reroute(Exception):
    """The endpoint was taken out while this request queued for it: choose again, no attempt
    spent."""


class _Failure(Exception):
    def __init__(self, kind: str, message: str, attempts: int, endpoint: str | None):
        super().__init__(message)
        self.kind, self.attempts, self.endpoint = kind, attempts, endpoint


def _parse_error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        return f"{where}: {first['msg']}"
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


class Engine:
    """Async engine over a pool of endpoints. Use ``async with Engine(pool, ...) as engine``."""

    def __init__(self, pool: PoolConfig, *, cache_path: str | Path | None = None,
                 cache: RequestCache | None = None, retry: RetryConfig | None = None,
                 seed: int | None = None,
                 transport_factory: Callable[[EndpointConfig], Any] | None = None):
        self.pool = pool
        self.retry = retry or pool.retry
        transport_factory = transport_factory or make_transport
        self.health = {e.name: EndpointHealth(e.name, pool.health) for e in pool.endpoints}
        self.ledger = PoolLedger(pool.endpoints, self.health)
        self._jitter = random.Random(seed)
        self._slots: dict[str, list[_Slot]] = {}
        for endpoint in pool.endpoints:
            slot = _Slot(
                endpoint, transport_factory(endpoint), asyncio.Semaphore(endpoint.max_concurrency),
                RateLimiter(endpoint.requests_per_minute) if endpoint.requests_per_minute else None,
                RateLimiter(endpoint.tokens_per_minute) if endpoint.tokens_per_minute else None,
                self.health[endpoint.name])
            self._slots.setdefault(endpoint.model, []).append(slot)
        # opened after the transports, which check the API keys: a missing key leaves no cache file
        self.cache = cache if cache is not None else (
            RequestCache(cache_path) if cache_path else None)
        self._owns_cache = cache is None and self.cache is not None
        # default sampling per model: the first endpoint's, so replicas share cache keys
        self._defaults = {m: slots[0].config.sampling for m, slots in self._slots.items()}

    @property
    def concurrency(self) -> int:
        return sum(e.max_concurrency for e in self.pool.endpoints)

    # -- one request -----------------------------------------------------------------------

    def resolve(self, request: ChatRequest) -> tuple[str, dict[str, Any], str]:
        """(model, merged sampling, cache key) for a request."""
        model = request.model or self.pool.models[0]
        if model not in self._slots:
            raise ConfigError(f"no endpoint serves model {model!r}; the pool has: "
                              f"{', '.join(self.pool.models)}")
        sampling = {**self._defaults[model], **request.sampling}
        key = request_key(model, request.messages, sampling, schema_dict(request.schema),
                          request.salt)
        return model, sampling, key

    async def chat(self, request: ChatRequest) -> ChatResult:
        model, sampling, key = self.resolve(request)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                result = self._from_cache(hit, request, model, key, sampling)
                if result is not None:
                    self.ledger.cached += 1
                    return result
        body: dict[str, Any] = {"model": model, "messages": request.messages, **sampling}
        if request.schema is not None:
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": schema_name(request.schema), "schema": schema_dict(request.schema),
                "strict": True}}
        attempts, parse_failures, messages = 0, 0, request.messages
        last_parse_error, truncated = "", False
        for _ in range(self.retry.parse_retries + 1):
            try:
                reply, endpoint, used = await self._send(model, body)
            except _Failure as failure:
                self.ledger.failed[failure.kind] += 1
                return ChatResult(False, error=str(failure), error_kind=failure.kind,
                                  endpoint=failure.endpoint, model=model,
                                  attempts=attempts + failure.attempts,
                                  parse_failures=parse_failures, key=key, request=request,
                                  sampling=sampling)
            attempts += used
            parsed = None
            if request.schema is not None:
                self.ledger.structured_answers += 1
                try:
                    parsed = parse_structured(reply.content, request.schema)
                except (ValidationError, ValueError) as exc:
                    parse_failures += 1
                    self.ledger.parse_failures += 1
                    last_parse_error = _parse_error_text(exc)
                    limit = _max_tokens(body)
                    truncated = reply.finish_reason == "length"
                    if truncated:
                        self.ledger.truncated += 1
                        last_parse_error = (f"answer cut off at max_tokens={limit or '?'} "
                                            f"(finish_reason: length): {last_parse_error}")
                    log.debug("model %s: answer failed the schema (%s); re-asking", model,
                              last_parse_error)
                    if truncated and limit:
                        # the same question with more room: quoting a cut-off answer back
                        # would only spend the larger budget on repeating it
                        grown = max(limit + 1, round(limit * self.retry.truncated_growth))
                        body = {**_without_max_tokens(body), "messages": request.messages,
                                "max_tokens": grown}
                        continue
                    messages = [*request.messages,
                                {"role": "assistant", "content": reply.content[:8000]},
                                {"role": "user", "content": "That reply could not be used ("
                                 f"{last_parse_error}). Answer again with only a JSON object "
                                 "that matches the requested schema."}]
                    body = {**body, "messages": messages}
                    continue
            # A blank answer is returned but not cached: every caller treats it as unusable (a
            # failure or an `empty` reject), and a re-run should ask again rather than replay it.
            if self.cache is not None and (reply.content or "").strip():
                self.cache.put(key, model, {"content": reply.content, "finish_reason":
                                            reply.finish_reason, "usage": reply.usage})
            return ChatResult(True, content=reply.content, parsed=parsed,
                              usage=Usage.from_dict(reply.usage), endpoint=endpoint, model=model,
                              attempts=attempts, finish_reason=reply.finish_reason,
                              parse_failures=parse_failures, key=key, request=request,
                              sampling=sampling)
        kind = "truncated" if truncated else "parse_error"
        self.ledger.failed[kind] += 1
        hint = (f"; raise max_tokens (--max-tokens, now {_max_tokens(body) or 'unset'}) or "
                "retry.truncated_growth" if truncated else "")
        return ChatResult(False, error=f"no valid answer after {parse_failures} tries: "
                          f"{last_parse_error}{hint}", error_kind=kind, model=model,
                          attempts=attempts, parse_failures=parse_failures, key=key,
                          request=request, sampling=sampling, finish_reason=reply.finish_reason)

    async def embed(self, texts: list[str], *, model: str | None = None) -> EmbeddingResult:
        """Vectors of ``texts`` in order: cached ones from the cache, the rest in one request."""
        model = model or self.pool.models[0]
        if model not in self._slots:
            raise ConfigError(f"no endpoint serves model {model!r}; the pool has: "
                              f"{', '.join(self.pool.models)}")
        vectors: list[list[float] | None] = [None] * len(texts)
        keys = [embedding_key(model, text) for text in texts]
        if self.cache is not None:
            for i, key in enumerate(keys):
                hit = self.cache.get(key)
                if hit is not None:
                    vectors[i] = hit["embedding"]
        missing = [i for i, v in enumerate(vectors) if v is None]
        cached = len(texts) - len(missing)
        self.ledger.cached += cached
        if not missing:
            return EmbeddingResult(True, vectors=vectors, model=model, cached=cached)
        body = {"model": model, "input": [texts[i] for i in missing]}
        try:
            reply, _, attempts = await self._send(model, body, method="embed")
        except _Failure as failure:
            self.ledger.failed[failure.kind] += 1
            return EmbeddingResult(False, error=str(failure), error_kind=failure.kind,
                                   model=model, attempts=failure.attempts, cached=cached)
        for i, vector in zip(missing, reply.vectors, strict=True):
            vectors[i] = vector
            if self.cache is not None:
                self.cache.put(keys[i], model, {"embedding": vector})
        return EmbeddingResult(True, vectors=vectors, model=model, attempts=attempts,
                               cached=cached, usage=Usage.from_dict(reply.usage))

    async def embed_many(self, texts: list[str], *, model: str | None = None,
                         batch_size: int = 64) -> tuple[list[list[float] | None], list[str]]:
        """``(vectors, errors)``: every text's vector in order (None where its batch failed after
        the retries) and the failed batches' errors; batches go out concurrently, within the
        endpoints' concurrency."""
        vectors: list[list[float] | None] = [None] * len(texts)
        errors: list[str] = []

        async def one(start: int) -> None:
            result = await self.embed(texts[start : start + batch_size], model=model)
            if result.ok:
                vectors[start : start + batch_size] = result.vectors
            else:
                errors.append(f"{result.error_kind}: {result.error}")

        await asyncio.gather(*(one(s) for s in range(0, len(texts), batch_size)))
        return vectors, errors

    async def reward(self, messages: list[dict[str, Any]], *, model: str | None = None,
                     label: int = 0, use_activation: bool = False) -> RewardResult:
        """A reward model's score of the conversation ``messages`` (its last assistant turn, in
        context): value ``label`` of what the model returns (one value for the usual
        single-head reward model). ``use_activation=False`` asks for the raw head output, the
        scale reward models are trained and compared on; True lets the server apply its
        classifier activation (sigmoid/softmax)."""
        model = model or self.pool.models[0]
        if model not in self._slots:
            raise ConfigError(f"no endpoint serves model {model!r}; the pool has: "
                              f"{', '.join(self.pool.models)}")
        key = reward_key(model, messages, {"label": label, "use_activation": use_activation})
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.ledger.cached += 1
                return RewardResult(True, score=float(hit["score"]), model=model, cached=True)
        body = {"model": model, "messages": messages, "use_activation": use_activation}
        try:
            reply, _, attempts = await self._send(model, body, method="pool")
        except _Failure as failure:
            self.ledger.failed[failure.kind] += 1
            return RewardResult(False, error=str(failure), error_kind=failure.kind, model=model,
                                attempts=failure.attempts)
        if not 0 <= label < len(reply.values):
            self.ledger.failed["no_label"] += 1
            return RewardResult(False, error=f"model {model!r} returns {len(reply.values)} "
                                f"value(s) per conversation; label {label} is not one of them",
                                error_kind="no_label", model=model, attempts=attempts)
        score = reply.values[label]
        if self.cache is not None:
            self.cache.put(key, model, {"score": score})
        return RewardResult(True, score=score, model=model, attempts=attempts)

    async def reward_many(self, conversations: Iterable[list[dict[str, Any]]], *,
                          model: str | None = None, label: int = 0, use_activation: bool = False,
                          on_result: Callable[[RewardResult], None] | None = None
                          ) -> list[RewardResult]:
        """Every conversation's ``RewardResult``, in order; windows of ``REORDER_WINDOW``
        conversations go out at once (within the endpoints' concurrency), which bounds memory."""
        results: list[RewardResult] = []
        batch: list[list[dict[str, Any]]] = []

        async def flush() -> None:
            done = await asyncio.gather(*(self.reward(m, model=model, label=label,
                                                      use_activation=use_activation)
                                          for m in batch))
            for result in done:
                results.append(result)
                if on_result is not None:
                    on_result(result)
            batch.clear()

        for messages in conversations:
            batch.append(messages)
            if len(batch) >= REORDER_WINDOW:
                await flush()
        if batch:
            await flush()
        return results

    def _from_cache(self, hit: dict[str, Any], request: ChatRequest, model: str, key: str,
                    sampling: dict[str, Any]) -> ChatResult | None:
        parsed = None
        if request.schema is not None:
            try:
                parsed = parse_structured(hit["content"], request.schema)
            except (ValidationError, ValueError):
                return None  # cannot happen for answers this engine stored; ask again
        return ChatResult(True, content=hit["content"], parsed=parsed,
                          usage=Usage.from_dict(hit.get("usage")), model=model, cached=True,
                          finish_reason=hit.get("finish_reason"), key=key, request=request,
                          sampling=sampling)

    def _pick(self, model: str, avoid: set[str] = frozenset()) -> tuple[_Slot, bool]:
        """``(slot, is_probe)``: an ejected endpoint whose cool-down is over gets this request as
        its probe; otherwise the least-loaded healthy endpoint, preferring ones this request has
        not failed on. A model always has a healthy endpoint (the last one is never ejected)."""
        slots = self._slots[model]
        now = time.monotonic()
        for slot in slots:
            if slot.config.name not in avoid and slot.health.probe_ready(now):
                slot.health.start_probe(now)
                return slot, True
        healthy = [s for s in slots if s.health.healthy] or slots
        fresh = [s for s in healthy if s.config.name not in avoid] or healthy
        if len(fresh) == 1:
            return fresh[0], False
        return min(fresh, key=lambda s: s.waiting / s.config.max_concurrency), False

    def _others_healthy(self, model: str, slot: _Slot) -> bool:
        return any(s is not slot and s.health.healthy for s in self._slots[model])

    def _backoff(self, attempt: int, error: TransportError) -> float:
        wait = min(self.retry.backoff_max, self.retry.backoff_base * 2 ** (attempt - 1))
        wait *= self._jitter.uniform(0.5, 1.5)
        if error.retry_after is not None:
            wait = max(wait, min(error.retry_after, self.retry.retry_after_max))
        return wait

    def _note_failure(self, model: str, slot: _Slot, kind: str) -> None:
        if kind in COUNTED:
            slot.health.failed(kind, time.monotonic(), can_eject=self._others_healthy(model, slot))
        else:
            slot.health.answered_with_error()

    async def _send(self, model: str, body: dict[str, Any], *, method: str = "send"
                    ) -> tuple[Any, str, int]:
        """One answer within ``max_attempts`` HTTP attempts: (reply, endpoint name, attempts).
        ``method``: the transport's ``send`` (a chat completion), ``embed`` or ``pool``."""
        last: TransportError | None = None
        slot = None
        avoid: set[str] = set()  # endpoints this request failed on with a dead-server error
        attempt = 0
        while attempt < self.retry.max_attempts:
            if self.cache is not None:
                self.cache.check()  # an answer that could not be kept is not worth paying for
            slot, probe = self._pick(model, avoid)
            name = slot.config.name
            slot.waiting += 1
            try:
                async with slot.semaphore:
                    if not probe and not slot.health.healthy and self._others_healthy(model, slot):
                        raise _Reroute
                    attempt += 1
                    if slot.rpm is not None:
                        await slot.rpm.acquire(1)
                    if slot.tpm is not None:
                        await slot.tpm.acquire(_token_estimate(body, method))
                    self.ledger.attempt(name)
                    reply = await _call(slot.transport, method, body)
            except _Reroute:
                continue
            except TransportError as exc:
                last = exc
                self.ledger.error(name, exc.kind)
                self._note_failure(model, slot, exc.kind)
                if exc.kind == "auth":
                    raise EndpointError(f"endpoint {name!r} refused the API key ({exc}); check "
                                        f"the variable named by api_key_env") from None
                if not exc.retryable:
                    raise _Failure(exc.kind, str(exc), attempt, name) from None
                if exc.kind in COUNTED:
                    avoid.add(name)
                failover = exc.kind in COUNTED and any(
                    s.config.name not in avoid and s.health.healthy for s in self._slots[model])
                if attempt < self.retry.max_attempts and not failover:
                    wait = self._backoff(attempt, exc)
                    log.debug("endpoint %s: %s (attempt %d), retrying in %.2fs", name, exc.kind,
                              attempt, wait)
                    await asyncio.sleep(wait)
                continue
            except BaseException:  # cancelled mid-probe: the next request probes instead
                if probe:
                    slot.health.probe_abandoned(time.monotonic())
                raise
            finally:
                slot.waiting -= 1
            slot.health.succeeded(time.monotonic())
            usage = reply.usage or {}
            self.ledger.answered(name, int(usage.get("prompt_tokens") or 0),
                                 int(usage.get("completion_tokens") or 0))
            return reply, name, attempt
        assert last is not None
        log.info("endpoint %s: giving up after %d attempts: %s", slot.config.name if slot else "?",
                 self.retry.max_attempts, last.kind)
        raise _Failure(last.kind, f"{last} (after {self.retry.max_attempts} attempts)",
                       self.retry.max_attempts, slot.config.name if slot else None)

    # -- many requests ---------------------------------------------------------------------

    async def map(self, requests: Iterable[ChatRequest], *,
                  window: int | None = None) -> AsyncIterator[ChatResult]:
        """Results in input order; requests are sent as slots free up.

        A slow answer at the head never holds the others back: up to the pool's concurrency
        (plus a margin for cache hits) run at once, and answers that finish ahead of an earlier
        one wait in a reorder buffer. ``window`` caps requests started but not yet yielded
        (default ``max(4096, 64 x concurrency)``): only a request slower than that many others
        stalls sending, which bounds memory. Every answer is in the cache the moment it
        arrives, so a killed run loses none of the buffered ones. An error that stops the run
        (a refused key, an unwritable cache) is raised as soon as it happens.
        """
        window = window or max(REORDER_WINDOW, 64 * self.concurrency)
        ahead = self.concurrency + max(16, self.concurrency // 4)  # keep every slot fed
        source = iter(requests)
        running: dict[asyncio.Task[ChatResult], int] = {}
        finished: dict[int, ChatResult] = {}
        done: deque[asyncio.Task[ChatResult]] = deque()
        wake = asyncio.Event()
        sent = yielded = 0
        exhausted = False

        def on_done(task: asyncio.Task[ChatResult]) -> None:
            done.append(task)
            wake.set()

        try:
            while True:
                while not exhausted and len(running) < ahead and sent - yielded < window:
                    request = next(source, None)
                    if request is None:
                        exhausted = True
                        break
                    task = asyncio.ensure_future(self.chat(request))
                    running[task] = sent
                    task.add_done_callback(on_done)
                    sent += 1
                while done:
                    task = done.popleft()
                    finished[running.pop(task)] = task.result()  # re-raises a run-wide error
                if yielded in finished:
                    result = finished.pop(yielded)
                    yielded += 1
                    yield result
                    continue
                if not running:
                    return
                wake.clear()
                if not done:
                    await wake.wait()
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    async def close(self) -> None:
        for slots in self._slots.values():
            for slot in slots:
                await slot.transport.close()
        if self._owns_cache and self.cache is not None:
            self.cache.close()

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


def _max_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_tokens") or body.get("max_completion_tokens")
    return int(value) if isinstance(value, (int, float)) and value > 0 else None


def _without_max_tokens(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("max_tokens", "max_completion_tokens")}


_SERVED_BY = {"send": "chat", "embed": "embeddings (an http or openai endpoint)",
              "pool": "pooling (an http endpoint)"}


async def _call(transport: Any, method: str, body: dict[str, Any]
                ) -> RawReply | RawEmbeddings | RawPooling:
    call = getattr(transport, method, None)
    if call is None:  # an offline backend (vLLM in process) serves chat only
        raise EndpointError(f"backend {type(transport).__name__} does not serve "
                            f"{_SERVED_BY[method]} requests: use an endpoint that does")
    return await call(body)


def _token_estimate(body: dict[str, Any], method: str = "send") -> float:
    if method == "embed":  # no completion
        return sum(len(t) for t in body["input"]) / 4
    chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", ()))
    if method == "pool":
        return chars / 4
    return chars / 4 + float(body.get("max_tokens") or body.get("max_completion_tokens")
                             or DEFAULT_MAX_TOKENS_ESTIMATE)


def run_requests_into(pool: PoolConfig, requests: Iterable[ChatRequest],
                      handle: Callable[[ChatResult], None], *, total: int | None = None,
                      description: str = "model calls", progress: bool | None = False,
                      **engine_kwargs: Any) -> Ledger:
    """Synchronous driver: answer ``requests`` in input order through ``handle`` (with a
    progress bar over ``total`` when asked), and return the engine's ledger."""

    async def _drive() -> Ledger:
        async with Engine(pool, **engine_kwargs) as engine:
            with progress_bar(description, total, enabled=progress) as bar:
                async for result in engine.map(requests):
                    handle(result)
                    bar.advance(1)
            return engine.ledger

    return asyncio.run(_drive())


def run_rewards(pool: PoolConfig, conversations: list[list[dict[str, Any]]], *,
                model: str | None = None, label: int = 0, use_activation: bool = False,
                description: str = "reward scores", progress: bool | None = False,
                **engine_kwargs: Any) -> tuple[list[RewardResult], Ledger]:
    """Synchronous driver of ``Engine.reward_many``: the results in order and the ledger."""

    async def _drive() -> tuple[list[RewardResult], Ledger]:
        async with Engine(pool, **engine_kwargs) as engine:
            with progress_bar(description, len(conversations), enabled=progress) as bar:
                results = await engine.reward_many(
                    conversations, model=model, label=label, use_activation=use_activation,
                    on_result=lambda _: bar.advance(1))
            return results, engine.ledger

    return asyncio.run(_drive())


def run_requests(pool: PoolConfig, requests: Iterable[ChatRequest], *,
                 on_result: Callable[[ChatResult], None] | None = None,
                 **engine_kwargs: Any) -> tuple[list[ChatResult], Ledger]:
    """Answer every request, in input order, and return the results and the ledger."""
    results: list[ChatResult] = []

    def handle(result: ChatResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    return results, run_requests_into(pool, requests, handle, **engine_kwargs)
