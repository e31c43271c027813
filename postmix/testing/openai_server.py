"""A real HTTP server that speaks enough of the OpenAI chat API to test clients offline.

``/v1/embeddings`` answers with deterministic vectors (``hashed_embedding``: a hashed bag of
words, L2-normalised), so texts sharing most of their words - paraphrases - are close in cosine
and unrelated texts are near orthogonal, as with a real embedding model. ``/pooling`` (at the
root, as vLLM serves it) answers as a reward model does, with a deterministic score per
conversation (``word_reward`` unless a ``rewarder`` is set).

It listens on 127.0.0.1 (an ephemeral port by default) with aiohttp on its own event loop in a
daemon thread, so synchronous tests, ``AsyncOpenAI`` clients and benchmarks with 1000+ concurrent
connections can all talk to it over real sockets. Answers come from a scriptable ``responder``;
faults (429, 500, dropped connections, slow answers, malformed JSON, empty choices) can be
injected on demand or drawn at random from a seeded RNG, and every request is logged.

Standalone, for benchmarks::

    python -m postmix.testing.openai_server --port 8000 --latency 0.1
    python -m postmix.testing.openai_server --latency 0.15 --latency-sigma 1.5   # heavy tail
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import inspect
import json
import logging
import math
import random
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)


class FaultKind(str, Enum):
    """A failure the server can produce instead of a normal answer.

    A distinct type rather than plain strings so a responder can return the text "drop" as
    ordinary assistant content; members still compare equal to their string values.
    """

    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    DROP = "drop"
    SLOW = "slow"
    MALFORMED_JSON = "malformed_json"
    EMPTY_CHOICES = "empty_choices"

    def __str__(self) -> str:
        return self.value


RATE_LIMIT = FaultKind.RATE_LIMIT
SERVER_ERROR = FaultKind.SERVER_ERROR
DROP = FaultKind.DROP
SLOW = FaultKind.SLOW
MALFORMED_JSON = FaultKind.MALFORMED_JSON
EMPTY_CHOICES = FaultKind.EMPTY_CHOICES
ALL_FAULTS: tuple[FaultKind, ...] = tuple(FaultKind)

# Deliberately truncated mid-object, the shape a model cut off by max_tokens produces.
MALFORMED_CONTENT = '{"score": 4,'

Responder = Callable[
    [dict], "str | dict | FaultKind | None | Awaitable[str | dict | FaultKind | None]"
]

_FAULT_STATUS = {
    RATE_LIMIT: 429,
    SERVER_ERROR: 500,
    DROP: 0,  # no HTTP response at all
    SLOW: 200,
    MALFORMED_JSON: 200,
    EMPTY_CHOICES: 200,
}


@dataclass
class RequestLogEntry:
    """One request as the server saw it.

    ``outcome`` is "ok", a fault kind's value, or one of "unauthorized", "bad_request",
    "not_found", "responder_error"; ``status`` is the HTTP status sent (0 for a dropped
    connection). Both are filled in before any byte of the response is sent, so a client that
    has seen its response can rely on its log entry being complete.
    """

    index: int
    time: float
    method: str
    path: str
    headers: dict[str, str]
    body: Any = None
    outcome: str | None = None
    status: int | None = None


def message_text(content: Any) -> str:
    """Text of an OpenAI message ``content`` (a string or a list of typed parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
    return str(content)


def echo_responder(body: dict) -> str:
    """Default responder: ``"echo: <last user message>"``, or that text as a JSON object when
    the request asks for JSON output, so structured-output callers at least get parseable JSON."""
    last_user = ""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            last_user = message_text(message.get("content"))
            break
    response_format = body.get("response_format") or {}
    if isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    ):
        return json.dumps({"echo": last_user})
    return "echo: " + last_user


def request_latency(body: dict, median: float, sigma: float, seed: int = 0) -> float:
    """Seconds one chat request waits: ``median`` when ``sigma`` is 0, else log-normal with that
    median and shape, drawn from a hash of (seed, messages, the request's sampling seed).

    Real generation latency is heavy-tailed (a long answer takes many times the median). Tying
    the draw to the request, not to arrival order, gives the same request the same wait whichever
    client sends it and in whatever order, so two clients can be compared on identical work and
    a benchmark can compute the ideal from the requests alone.
    """
    if sigma <= 0 or median <= 0:
        return max(0.0, median)
    canonical = json.dumps([body.get("messages"), body.get("seed")], sort_keys=True,
                           ensure_ascii=False, default=str)
    return random.Random(f"{seed}:{canonical}").lognormvariate(math.log(median), sigma)


EMBEDDING_DIM = 256
_WORD = re.compile(r"\w+")


def hashed_embedding(text: str, dim: int = EMBEDDING_DIM) -> list[float]:
    """A bag of lowercased words, each hashed (BLAKE2b) to a bucket and a sign, L2-normalised;
    an empty text gets a fixed unit vector."""
    vector = [0.0] * dim
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        vector[value % dim] += 1.0 if (value >> 32) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0:
        vector[0], norm = 1.0, 1.0
    return [v / norm for v in vector]


def word_reward(body: dict) -> float:
    """Default reward of a ``/pooling`` request: ``log(1 + words)`` of its last assistant turn
    (of its text input without one), so longer answers score higher, deterministically."""
    messages = body.get("messages")
    if isinstance(messages, list):
        answers = [message_text(m.get("content")) for m in messages
                   if isinstance(m, dict) and m.get("role") == "assistant"]
        text = answers[-1] if answers else ""
    else:
        text = str(body.get("input") or "")
    return round(math.log1p(len(text.split())), 6)


Rewarder = Callable[[dict], "float | list | FaultKind"]


def _count_words(text: str | None) -> int:
    return len(text.split()) if text else 0


def _error_body(message: str, type_: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


class FakeOpenAIServer:
    """OpenAI-compatible ``/v1/chat/completions`` + ``/v1/models`` server for tests.

    Fault precedence for each chat request: a fault queued with :meth:`inject`, else a random
    fault (probability ``fault_rate``, kind drawn from ``fault_kinds`` with a ``seed``-ed RNG),
    else whatever the responder returns (which may itself be a :class:`FaultKind`). With
    ``n > 1`` the responder is called once per choice. ``latency`` delays every chat response,
    faults included, and may be changed while the server runs; with ``latency_sigma > 0`` it is
    the median of a log-normal delay drawn per request (``request_latency``, seeded by ``seed``).

    Responders run on the server's event loop: they may be ``async``, but a blocking sync
    responder stalls every connection. Usage in responses counts whitespace-separated words
    (prompt: words in message contents; completion: words in returned contents).

    Other keyword arguments: ``slow_seconds`` is how long a SLOW fault waits before answering;
    ``retry_after`` (seconds) goes into the 429's ``Retry-After`` and ``retry-after-ms`` headers
    -- the openai client ignores values <= 0 and falls back to its own 0.375-0.5 s (then
    doubling) backoff; ``api_key`` makes every endpoint demand ``Authorization: Bearer <api_key>``
    (else 401); ``port`` 0 picks a free port; ``shutdown_timeout`` bounds how long :meth:`stop`
    waits for in-flight requests before cancelling them; ``rewarder`` answers ``/pooling``
    requests (a body -> a score, a list per label or per token, or a ``FaultKind``).
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        latency: float = 0.0,
        latency_sigma: float = 0.0,
        model: str = "fake-model",
        fault_rate: float = 0.0,
        fault_kinds: Iterable[str] = ALL_FAULTS,
        seed: int = 0,
        slow_seconds: float = 5.0,
        api_key: str | None = None,
        retry_after: float = 0.05,
        host: str = "127.0.0.1",
        port: int = 0,
        shutdown_timeout: float = 0.5,
        rewarder: Rewarder | None = None,
    ) -> None:
        self.responder: Responder = responder or echo_responder
        self.rewarder: Rewarder = rewarder or word_reward
        self.latency = latency
        self.latency_sigma = latency_sigma
        self._seed = seed
        self.model = model
        self.fault_rate = fault_rate
        self.fault_kinds = tuple(FaultKind(k) for k in fault_kinds)
        self.slow_seconds = slow_seconds
        self.api_key = api_key
        self.retry_after = retry_after
        self.host = host
        self._requested_port = port
        self._shutdown_timeout = shutdown_timeout

        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._injected: deque[FaultKind] = deque()
        self._log: list[RequestLogEntry] = []

        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.AbstractServer | None = None
        self._port: int | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeOpenAIServer is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> FakeOpenAIServer:
        if self._loop is not None:
            raise RuntimeError("FakeOpenAIServer is already started")
        _raise_fd_limit()
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="FakeOpenAIServer", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self._astart(), loop).result(timeout=30)
        except BaseException:
            self._close_loop()
            raise
        return self

    def stop(self) -> None:
        """Graceful stop: in-flight requests get ``shutdown_timeout`` seconds to finish."""
        if self._loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._astop(), self._loop).result(timeout=30)
        finally:
            self._close_loop()

    def kill(self) -> None:
        """Die abruptly: stop listening and reset every open connection, mid-request or not.

        Later calls fail with connection errors; :meth:`stop` is still safe to call afterwards.
        """
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._akill(), self._loop).result(timeout=30)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _astart(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle_chat)
        app.router.add_post("/v1/embeddings", self._handle_embeddings)
        app.router.add_post("/pooling", self._handle_pooling)
        app.router.add_get("/v1/models", self._handle_models)
        app.router.add_get("/v1/models/{model_id}", self._handle_model)
        # Logged 404s for anything else make "client called the wrong endpoint" easy to spot.
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown)
        # handler_cancellation: a client that times out or disconnects cancels its handler, as
        # on real servers, so a SLOW request's sleep never outlives its connection.
        runner = web.AppRunner(
            app,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=self._shutdown_timeout,
        )
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._requested_port))
            # Owning the asyncio.Server (instead of an aiohttp Site) gives kill() a public
            # handle to stop listening, and a deep backlog absorbs 1000+ simultaneous connects.
            self._listener = await asyncio.get_running_loop().create_server(
                runner.server, sock=sock, backlog=4096
            )
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = sock.getsockname()[1]

    async def _akill(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._runner is not None and self._runner.server is not None:
            for conn in self._runner.server.connections:
                if conn.transport is not None:
                    conn.transport.abort()

    async def _astop(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._runner is not None:
            await self._runner.cleanup()
        current = asyncio.current_task()
        leftovers = [t for t in asyncio.all_tasks() if t is not current]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    def _close_loop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=30)
        if not loop.is_running():
            loop.close()
        self._loop = self._thread = None
        self._runner = self._listener = None
        self._port = None

    # -- scripting & inspection ------------------------------------------------------------

    def set_responder(self, fn: Responder | None) -> None:
        """Replace the responder (``None`` restores the echo default) while running."""
        self.responder = fn or echo_responder

    def set_rewarder(self, fn: Rewarder | None) -> None:
        """Replace the ``/pooling`` scorer (``None`` restores ``word_reward``) while running."""
        self.rewarder = fn or word_reward

    def inject(self, kind: str, times: int = 1) -> None:
        """Make the next ``times`` chat, embeddings or pooling requests fail with ``kind`` (queued
        after earlier ones)."""
        fault = FaultKind(kind)
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._injected.extend([fault] * times)

    @property
    def requests(self) -> list[RequestLogEntry]:
        """Snapshot of the request log, in arrival order."""
        with self._lock:
            return list(self._log)

    def embedding_requests(self) -> list[dict]:
        """JSON bodies of the embeddings requests received so far."""
        return [e.body for e in self.requests
                if e.path == "/v1/embeddings" and isinstance(e.body, dict)]

    def pooling_requests(self) -> list[dict]:
        """JSON bodies of the ``/pooling`` requests received so far."""
        return [e.body for e in self.requests
                if e.path == "/pooling" and isinstance(e.body, dict)]

    def chat_requests(self) -> list[dict]:
        """JSON bodies of the chat-completion requests received so far."""
        return [
            e.body
            for e in self.requests
            if e.path == "/v1/chat/completions" and isinstance(e.body, dict)
        ]

    # -- request handling ------------------------------------------------------------------

    def _new_entry(self, request: web.Request) -> RequestLogEntry:
        with self._lock:
            entry = RequestLogEntry(
                index=len(self._log),
                time=time.time(),
                method=request.method,
                path=request.path,
                headers=dict(request.headers),
            )
            self._log.append(entry)
        return entry

    def _next_fault(self) -> FaultKind | None:
        with self._lock:
            if self._injected:
                return self._injected.popleft()
            if self.fault_rate > 0 and self._rng.random() < self.fault_rate:
                # Canonical order, so a set passed as fault_kinds still draws reproducibly.
                chosen = set(FaultKind(k) for k in self.fault_kinds)
                kinds = [k for k in ALL_FAULTS if k in chosen]
                if kinds:
                    return self._rng.choice(kinds)
        return None

    def _authorized(self, request: web.Request) -> bool:
        if self.api_key is None:
            return True
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    @staticmethod
    def _finish(entry: RequestLogEntry, outcome: str, status: int) -> None:
        entry.outcome = outcome
        entry.status = status

    def _reject_unauthorized(self, entry: RequestLogEntry) -> web.Response:
        self._finish(entry, "unauthorized", 401)
        return web.json_response(
            _error_body("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
            status=401,
        )

    @staticmethod
    def _bad_request(entry: RequestLogEntry, message: str) -> web.Response:
        FakeOpenAIServer._finish(entry, "bad_request", 400)
        return web.json_response(_error_body(message, "invalid_request_error"), status=400)

    async def _handle_models(self, request: web.Request) -> web.Response:
        entry = self._new_entry(request)
        if not self._authorized(request):
            return self._reject_unauthorized(entry)
        self._finish(entry, "ok", 200)
        return web.json_response({"object": "list", "data": [self._model_card()]})

    async def _handle_model(self, request: web.Request) -> web.Response:
        entry = self._new_entry(request)
        if not self._authorized(request):
            return self._reject_unauthorized(entry)
        if request.match_info["model_id"] != self.model:
            self._finish(entry, "not_found", 404)
            return web.json_response(
                _error_body(
                    "The model does not exist.", "invalid_request_error", "model_not_found"
                ),
                status=404,
            )
        self._finish(entry, "ok", 200)
        return web.json_response(self._model_card())

    async def _handle_unknown(self, request: web.Request) -> web.Response:
        entry = self._new_entry(request)
        self._finish(entry, "not_found", 404)
        return web.json_response(
            _error_body(
                f"Unknown endpoint {request.method} {request.path}", "invalid_request_error"
            ),
            status=404,
        )

    def _model_card(self) -> dict:
        return {"id": self.model, "object": "model", "created": 0, "owned_by": "postmix"}

    async def _handle_embeddings(self, request: web.Request) -> web.StreamResponse:
        """``{"model", "input": str | [str]}`` -> ``hashed_embedding`` of each input. Queued and
        random faults apply as to chat requests (SLOW waits, then answers; MALFORMED_JSON and
        EMPTY_CHOICES send a body without usable embeddings)."""
        entry = self._new_entry(request)
        if not self._authorized(request):
            return self._reject_unauthorized(entry)
        try:
            body = await request.json()
        except ValueError:
            return self._bad_request(entry, "Request body is not valid JSON.")
        entry.body = body
        texts = body.get("input") if isinstance(body, dict) else None
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return self._bad_request(entry, "'input' must be a string or a list of strings.")
        fault = self._next_fault()
        self._finish(entry, fault.value if fault else "ok", _FAULT_STATUS.get(fault, 200))
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        if fault is RATE_LIMIT:
            return web.json_response(
                _error_body("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
                status=429, headers={"Retry-After": f"{self.retry_after:g}",
                                     "retry-after-ms": str(int(self.retry_after * 1000))})
        if fault is SERVER_ERROR:
            return web.json_response(_error_body("The server had an error.", "server_error"),
                                     status=500)
        if fault is DROP:
            return await self._drop(request)
        if fault is SLOW:
            await asyncio.sleep(self.slow_seconds)
        words = sum(_count_words(t) for t in texts)
        usage = {"prompt_tokens": words, "total_tokens": words}
        if fault in (MALFORMED_JSON, EMPTY_CHOICES):
            return web.json_response({"object": "list", "data": [], "usage": usage})
        data = [{"object": "embedding", "index": i, "embedding": hashed_embedding(t)}
                for i, t in enumerate(texts)]
        return web.json_response({"object": "list", "data": data,
                                  "model": body.get("model") or self.model, "usage": usage})

    async def _handle_pooling(self, request: web.Request) -> web.StreamResponse:
        """vLLM's Pooling API as a reward model answers it: ``{"model", "messages"}`` (one
        conversation) or ``{"model", "input": str | [str]}`` -> ``data[i].data``, the rewarder's
        value as a list (one value per label; a list per token where the rewarder gives one).
        Queued and random faults apply as to chat requests."""
        entry = self._new_entry(request)
        if not self._authorized(request):
            return self._reject_unauthorized(entry)
        try:
            body = await request.json()
        except ValueError:
            return self._bad_request(entry, "Request body is not valid JSON.")
        entry.body = body
        if not isinstance(body, dict):
            return self._bad_request(entry, "The body is a JSON object.")
        if isinstance(body.get("messages"), list):
            inputs = [body]
        elif isinstance(body.get("input"), (str, list)) and body["input"]:
            texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
            inputs = [{**body, "input": t} for t in texts]
        else:
            return self._bad_request(entry, "Give 'messages' (a list) or 'input'.")
        fault = self._next_fault()
        outputs = []
        if fault is None:
            for one in inputs:
                value = self.rewarder(one)
                if isinstance(value, FaultKind):
                    fault = value
                    break
                outputs.append(value if isinstance(value, list) else [float(value)])
        self._finish(entry, fault.value if fault else "ok", _FAULT_STATUS.get(fault, 200))
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        if fault is RATE_LIMIT:
            return web.json_response(
                _error_body("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
                status=429, headers={"Retry-After": f"{self.retry_after:g}",
                                     "retry-after-ms": str(int(self.retry_after * 1000))})
        if fault is SERVER_ERROR:
            return web.json_response(_error_body("The server had an error.", "server_error"),
                                     status=500)
        if fault is DROP:
            return await self._drop(request)
        if fault is SLOW:
            await asyncio.sleep(self.slow_seconds)
            outputs = [[word_reward(one)] for one in inputs]
        words = sum(_count_words(message_text(m.get("content"))) for m in body.get("messages", [])
                    if isinstance(m, dict)) + sum(_count_words(str(one.get("input") or ""))
                                                  for one in inputs)
        usage = {"prompt_tokens": words, "total_tokens": words, "completion_tokens": 0}
        if fault in (MALFORMED_JSON, EMPTY_CHOICES):
            return web.json_response({"object": "list", "data": [], "usage": usage})
        data = [{"index": i, "object": "pooling", "data": value}
                for i, value in enumerate(outputs)]
        return web.json_response({"id": f"pool-fake-{entry.index}", "object": "list",
                                  "created": int(entry.time),
                                  "model": body.get("model") or self.model, "data": data,
                                  "usage": usage})

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        entry = self._new_entry(request)
        if not self._authorized(request):
            return self._reject_unauthorized(entry)
        try:
            body = await request.json()
        except ValueError:
            return self._bad_request(entry, "Request body is not valid JSON.")
        entry.body = body
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return self._bad_request(entry, "'messages' is a required list.")
        if body.get("stream"):
            return self._bad_request(entry, "FakeOpenAIServer does not support stream=true.")
        try:
            n = max(1, int(body.get("n") or 1))
        except (TypeError, ValueError):
            return self._bad_request(entry, "'n' must be an integer.")

        fault = self._next_fault()
        results: list[dict] = []
        if fault is None:
            try:
                for _ in range(n):
                    result = await self._respond(body)
                    if isinstance(result, FaultKind):
                        fault = result
                        break
                    results.append(result)
            except Exception as exc:
                logger.exception("FakeOpenAIServer responder failed")
                self._finish(entry, "responder_error", 500)
                return web.json_response(
                    _error_body(f"responder raised {exc!r}", "server_error"), status=500
                )
        self._finish(entry, fault.value if fault else "ok", _FAULT_STATUS.get(fault, 200))

        delay = request_latency(body, self.latency, self.latency_sigma, self._seed)
        if delay > 0:
            await asyncio.sleep(delay)

        if fault is None:
            return web.json_response(self._completion(entry, body, results))
        if fault is RATE_LIMIT:
            return web.json_response(
                _error_body(
                    "Rate limit reached for requests. Please try again later.",
                    "requests",
                    "rate_limit_exceeded",
                ),
                status=429,
                headers={
                    "Retry-After": f"{self.retry_after:g}",
                    "retry-after-ms": str(int(self.retry_after * 1000)),
                },
            )
        if fault is SERVER_ERROR:
            return web.json_response(
                _error_body(
                    "The server had an error while processing your request.", "server_error"
                ),
                status=500,
            )
        if fault is DROP:
            return await self._drop(request)
        if fault is SLOW:
            await asyncio.sleep(self.slow_seconds)
            try:
                results = [await self._respond(body) for _ in range(n)]
            except Exception as exc:
                logger.exception("FakeOpenAIServer responder failed")
                return web.json_response(
                    _error_body(f"responder raised {exc!r}", "server_error"), status=500
                )
            results = [r for r in results if not isinstance(r, FaultKind)] or [{"content": ""}]
            return web.json_response(self._completion(entry, body, results))
        if fault is MALFORMED_JSON:
            return web.json_response(
                self._completion(entry, body, [{"content": MALFORMED_CONTENT}] * n)
            )
        # EMPTY_CHOICES
        return web.json_response(self._completion(entry, body, []))

    async def _respond(self, body: dict) -> dict | FaultKind:
        result = self.responder(body)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, FaultKind):
            return result
        if result is None or isinstance(result, str):
            return {"content": result or ""}
        if isinstance(result, dict):
            return result
        raise TypeError(
            f"responder returned {type(result).__name__}; expected str, dict or FaultKind"
        )

    @staticmethod
    async def _drop(request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.abort()
        # The abort makes aiohttp cancel this handler (handler_cancellation=True); waiting here
        # instead of returning keeps aiohttp from trying to write a response to a dead socket.
        await asyncio.sleep(3600)
        raise AssertionError("unreachable: handler should have been cancelled")

    def _completion(self, entry: RequestLogEntry, body: dict, results: list[dict]) -> dict:
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        choices = []
        for i, result in enumerate(results):
            content = result.get("content")
            finish_reason = result.get("finish_reason")
            # Word-level truncation: "tokens" here are whitespace-separated words.
            if isinstance(content, str) and isinstance(limit, int) and finish_reason is None:
                words = content.split()
                if len(words) > limit:
                    content = " ".join(words[:limit])
                    finish_reason = "length"
            message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
            if result.get("tool_calls"):
                message["tool_calls"] = result["tool_calls"]
                finish_reason = finish_reason or "tool_calls"
            choices.append(
                {
                    "index": i,
                    "message": message,
                    "finish_reason": finish_reason or "stop",
                    "logprobs": None,
                }
            )
        usage = next((r["usage"] for r in results if r.get("usage")), None)
        if usage is None:
            prompt_tokens = sum(
                _count_words(message_text(m.get("content")))
                for m in body.get("messages", [])
                if isinstance(m, dict)
            )
            completion_tokens = sum(_count_words(c["message"]["content"]) for c in choices)
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
        return {
            "id": f"chatcmpl-fake-{entry.index}",
            "object": "chat.completion",
            "created": int(entry.time),
            "model": body.get("model") or self.model,
            "choices": choices,
            "usage": usage,
            "system_fingerprint": "fp_fake",
        }


def _raise_fd_limit(target: int = 8192) -> None:
    # A client and this server in one process need two descriptors per connection; the common
    # soft limit of 1024 would cap a 1000-connection benchmark, so lift it towards the hard limit.
    try:
        import resource
    except ImportError:  # Windows
        return
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = target if hard == resource.RLIM_INFINITY else min(target, hard)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a fake OpenAI-compatible chat server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds (the median with "
                        "--latency-sigma)")
    parser.add_argument("--latency-sigma", type=float, default=0.0,
                        help="log-normal shape of the latency; 0 = fixed")
    parser.add_argument("--model", default="fake-model")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument(
        "--fault-kinds",
        default=",".join(k.value for k in ALL_FAULTS),
        help="comma-separated subset of: " + ", ".join(k.value for k in ALL_FAULTS),
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slow-seconds", type=float, default=5.0)
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args(argv)

    server = FakeOpenAIServer(
        latency=args.latency,
        latency_sigma=args.latency_sigma,
        model=args.model,
        fault_rate=args.fault_rate,
        fault_kinds=[k for k in args.fault_kinds.split(",") if k],
        seed=args.seed,
        slow_seconds=args.slow_seconds,
        api_key=args.api_key,
        host=args.host,
        port=args.port,
    ).start()
    print(server.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
