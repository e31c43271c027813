"""Sending one chat-completions request to one endpoint (or an embeddings or pooling request),
and classifying what went wrong.

Every backend raises ``TransportError`` with a ``kind`` the engine's retry policy understands:
``rate_limit`` (429, with the server's Retry-After), ``server_error`` (5xx, 408), ``timeout``,
``connection`` (refused, reset, dropped mid-reply), ``bad_response`` (200 but not a usable
chat completion) — all retried — and ``http_error`` (other 4xx: the request itself is wrong) or
``auth`` (401/403: fatal for the whole run). Messages never include headers or URL credentials.

``HttpTransport`` is the default: one pooled aiohttp session per endpoint with as many keep-alive
sockets as the endpoint's ``max_concurrency`` and nothing else per request. It costs about 0.2 ms of
CPU per request against ~1.4 ms for ``openai.AsyncOpenAI`` even on its aiohttp transport
(benchmarks/bench_judge.py), which is what lets one core keep hundreds of requests in flight.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from postmix.llm.config import EndpointConfig, redact_url

RETRYABLE = frozenset({"rate_limit", "server_error", "timeout", "connection", "bad_response"})


class TransportError(Exception):
    def __init__(self, kind: str, message: str, *, status: int | None = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


@dataclass
class RawReply:
    content: str
    finish_reason: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)


@dataclass
class RawEmbeddings:
    vectors: list[list[float]]
    usage: dict[str, Any] = field(default_factory=dict)


@dataclass
class RawPooling:
    """A pooling model's output for one input: the sequence's values (one per label), or, for
    a token-wise (``token_classify``) model, the last token's, where an outcome reward sits."""

    values: list[float]
    usage: dict[str, Any] = field(default_factory=dict)


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return None if parsed is None else max(0.0, parsed.timestamp() - time.time())


def _short(text: str | bytes, limit: int = 200) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def status_error(status: int, body: bytes | str, retry_after: float | None) -> TransportError:
    detail = _short(body)
    if status == 429:
        return TransportError("rate_limit", f"HTTP 429: {detail}", status=status,
                              retry_after=retry_after)
    if status >= 500 or status == 408:
        return TransportError("server_error", f"HTTP {status}: {detail}", status=status,
                              retry_after=retry_after)
    if status in (401, 403):
        return TransportError("auth", f"HTTP {status}: {detail}", status=status)
    return TransportError("http_error", f"HTTP {status}: {detail}", status=status)


def reply_from_bytes(raw: bytes) -> RawReply:
    """A chat completion's body as a reply, or ``bad_response``."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TransportError("bad_response", f"reply is not JSON: {_short(raw, 80)}") from None
    return reply_from_json(data)


def reply_from_json(data: Any) -> RawReply:
    """The first choice of a chat completion, or ``bad_response``."""
    if not isinstance(data, dict):
        raise TransportError("bad_response", "reply is not a JSON object")
    choices = data.get("choices")
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise TransportError("bad_response", "reply has no choices")
    message = choices[0].get("message") or {}
    content = message.get("content")
    if content is None:
        raise TransportError("bad_response", "reply has no message content")
    return RawReply(str(content), choices[0].get("finish_reason"), data.get("usage") or {})


def embeddings_from_bytes(raw: bytes, expected: int) -> RawEmbeddings:
    """An embeddings reply (``data[i].embedding``, ordered by ``index``), or ``bad_response``."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TransportError("bad_response", f"reply is not JSON: {_short(raw, 80)}") from None
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list) or len(items) != expected:
        raise TransportError("bad_response", f"reply has no {expected} embeddings")
    try:
        items = sorted(items, key=lambda item: int(item.get("index", 0)))
        vectors = [[float(x) for x in item["embedding"]] for item in items]
    except (AttributeError, KeyError, TypeError, ValueError):
        raise TransportError("bad_response", "reply has a malformed embedding") from None
    if len({len(v) for v in vectors}) > 1 or any(not v for v in vectors):
        raise TransportError("bad_response", "reply's embeddings differ in size")
    return RawEmbeddings(vectors, data.get("usage") or {})


def _numbers(value: Any) -> list[float] | None:
    if isinstance(value, list) and value and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
        return [float(x) for x in value]
    return None


def pooling_from_bytes(raw: bytes) -> RawPooling:
    """A vLLM ``/pooling`` reply for one input (``data[0].data``: a list of floats, or a list of
    them per token), or ``bad_response``."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TransportError("bad_response", f"reply is not JSON: {_short(raw, 80)}") from None
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], dict):
        raise TransportError("bad_response", "pooling reply has no output for the input")
    output = items[0].get("data")
    values = _numbers(output)
    if values is None and isinstance(output, list) and output:
        values = _numbers(output[-1])  # token-wise: one row per token, the last one scores
    if values is None:
        raise TransportError("bad_response", "pooling reply's data is not a list of numbers")
    return RawPooling(values, data.get("usage") or {})


def pooling_url(base_url: str) -> str:
    """vLLM serves ``/pooling`` at the server's root, not under ``/v1``."""
    root = redact_url(base_url).rstrip("/")
    return (root.removesuffix("/v1") or root) + "/pooling"


class HttpTransport:
    """POST /chat/completions (and /embeddings, /pooling) over a pooled aiohttp session (opened
    inside the running loop)."""

    def __init__(self, endpoint: EndpointConfig):
        self.endpoint = endpoint
        parts = urlsplit(endpoint.base_url)
        self._root = redact_url(endpoint.base_url).rstrip("/")
        self._url = self._root + "/chat/completions"
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = endpoint.api_key()
        self._auth = None
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        elif parts.username is not None:
            import aiohttp

            self._auth = aiohttp.BasicAuth(parts.username, parts.password or "")
        self._session: Any = None

    def _open(self) -> Any:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=self.endpoint.max_concurrency, limit_per_host=0,
                                         keepalive_timeout=30, enable_cleanup_closed=True)
        # No session-wide timeout: each attempt gets its own, started once it holds a slot.
        self._session = aiohttp.ClientSession(connector=connector, headers=self._headers,
                                              auth=self._auth, raise_for_status=False,
                                              timeout=aiohttp.ClientTimeout(total=None))
        return self._session

    async def send(self, body: dict[str, Any]) -> RawReply:
        return reply_from_bytes(await self._post(self._url, body))

    async def embed(self, body: dict[str, Any]) -> RawEmbeddings:
        """POST /embeddings (``body["input"]``: a list of texts)."""
        raw = await self._post(self._root + "/embeddings", body)
        return embeddings_from_bytes(raw, len(body["input"]))

    async def pool(self, body: dict[str, Any]) -> RawPooling:
        """POST /pooling (``body["messages"]``: one conversation, templated by the server)."""
        return pooling_from_bytes(await self._post(pooling_url(self.endpoint.base_url), body))

    async def _post(self, url: str, body: dict[str, Any]) -> bytes:
        import aiohttp

        session = self._session or self._open()
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        timeout = aiohttp.ClientTimeout(total=self.endpoint.timeout)
        try:
            async with session.post(url, data=payload, timeout=timeout) as response:
                raw = await response.read()
                status = response.status
                retry_after = parse_retry_after(response.headers) if status >= 400 else None
        except asyncio.TimeoutError:
            raise TransportError("timeout", f"no reply within {self.endpoint.timeout}s") from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise TransportError("connection",
                                 f"{type(exc).__name__}: {_short(str(exc))}") from None
        if status >= 400:
            raise status_error(status, raw, retry_after)
        return raw

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class OpenAITransport:
    """The official ``openai.AsyncOpenAI`` client on its aiohttp transport, SDK retries off."""

    _CORE = ("model", "messages")

    def __init__(self, endpoint: EndpointConfig):
        self.endpoint = endpoint
        self._key = endpoint.api_key() or "EMPTY"  # the SDK insists on a key; vLLM ignores it
        self._client: Any = None

    def _open(self) -> Any:
        import openai

        limits = openai._constants.DEFAULT_CONNECTION_LIMITS.__class__(
            max_connections=self.endpoint.max_concurrency,
            max_keepalive_connections=self.endpoint.max_concurrency)
        self._client = openai.AsyncOpenAI(
            # credentials in the URL are not sent here: the SDK authenticates with the key only
            base_url=redact_url(self.endpoint.base_url), api_key=self._key, max_retries=0,
            timeout=self.endpoint.timeout,
            http_client=openai.DefaultAioHttpClient(limits=limits))
        return self._client

    async def send(self, body: dict[str, Any]) -> RawReply:
        client = self._client or self._open()
        extra = {k: v for k, v in body.items() if k not in self._CORE}
        raw = await self._raw(client.chat.completions.with_raw_response.create(
            model=body["model"], messages=body["messages"], extra_body=extra))
        return reply_from_bytes(raw)

    async def embed(self, body: dict[str, Any]) -> RawEmbeddings:
        client = self._client or self._open()
        raw = await self._raw(client.embeddings.with_raw_response.create(
            model=body["model"], input=body["input"], encoding_format="float"))
        return embeddings_from_bytes(raw, len(body["input"]))

    async def _raw(self, call: Any) -> bytes:
        """The reply's bytes, the SDK's errors mapped to the transport's (one mapping for all)."""
        import openai

        try:
            return (await call).http_response.content
        except openai.APITimeoutError:
            raise TransportError("timeout", f"no reply within {self.endpoint.timeout}s") from None
        except openai.APIConnectionError as exc:
            raise TransportError("connection",
                                 f"{type(exc).__name__}: {_short(str(exc))}") from None
        except openai.APIStatusError as exc:
            raise status_error(exc.status_code, exc.response.content,
                               parse_retry_after(exc.response.headers)) from None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

