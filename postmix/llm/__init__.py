"""One engine for every model call: OpenAI-compatible endpoints (vLLM serve, OpenAI, any
compatible server) or vLLM offline (in process or on Ray; ``backends`` names them all), with
bounded concurrency, retries, a persistent request cache and a token/cost ledger; and, in
``model_stage``, the kit every model-calling stage is built from (config, prompts, outputs)."""

from postmix.llm.cache import RequestCache
from postmix.llm.config import EndpointConfig, PoolConfig, RetryConfig, load_endpoints, redact_url
from postmix.llm.engine import Engine, run_requests, run_requests_into
from postmix.llm.ledger import Ledger
from postmix.llm.request import ChatRequest, ChatResult, Usage, request_key
from postmix.llm.structured import json_objects, parse_structured
from postmix.llm.transport import HttpTransport, OpenAITransport, RawReply, TransportError

__all__ = [
    "ChatRequest",
    "ChatResult",
    "EndpointConfig",
    "Engine",
    "HttpTransport",
    "Ledger",
    "OpenAITransport",
    "PoolConfig",
    "RawReply",
    "RequestCache",
    "RetryConfig",
    "TransportError",
    "Usage",
    "json_objects",
    "load_endpoints",
    "parse_structured",
    "redact_url",
    "request_key",
    "run_requests",
    "run_requests_into",
]
