"""vLLM offline (``vllm.LLM`` in this process) behind the same transport interface.

Requests from the engine queue up and go to ``LLM.chat`` in batches of up to ``vllm_batch_size``
on a worker thread (``postmix.llm.batching``), so the engine's cache, retries, schema checks and
ledger apply unchanged and vLLM still sees large batches. Give the endpoint a ``max_concurrency``
at least as large as the batch size, or batches stay small. ``vllm`` is imported only when such an
endpoint is used.
"""

from __future__ import annotations

from typing import Any

from postmix.errors import ConfigError, EndpointError
from postmix.llm.batching import BatchingTransport
from postmix.llm.config import EndpointConfig
from postmix.llm.transport import RawReply, TransportError

# OpenAI request fields -> vllm.SamplingParams fields (vLLM extras like top_k pass through as is)
_RENAMED = {"max_completion_tokens": "max_tokens"}
_IGNORED = {"n", "stream", "response_format", "model", "messages", "user"}


def to_sampling_params(vllm: Any, body: dict[str, Any]) -> Any:
    """An OpenAI-style request body's sampling fields as a ``vllm.SamplingParams``."""
    kwargs: dict[str, Any] = {}
    for key, value in body.items():
        if key in _IGNORED or value is None:
            continue
        kwargs[_RENAMED.get(key, key)] = value
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        schema = response_format["json_schema"]["schema"]
        try:  # vLLM >= 0.11
            from vllm.sampling_params import StructuredOutputsParams

            kwargs["structured_outputs"] = StructuredOutputsParams(json=schema)
        except ImportError:  # older vLLM
            from vllm.sampling_params import GuidedDecodingParams

            kwargs["guided_decoding"] = GuidedDecodingParams(json=schema)
    try:
        return vllm.SamplingParams(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"vLLM does not accept these sampling params: {exc}") from None


def reply_of(output: Any) -> RawReply | TransportError:
    """A ``vllm.RequestOutput`` as the engine's reply (its first sample), with token usage."""
    first = output.outputs[0] if output.outputs else None
    if first is None:
        return TransportError("bad_response", "vLLM returned no output")
    usage = {"prompt_tokens": len(output.prompt_token_ids or ()),
             "completion_tokens": len(first.token_ids or ())}
    return RawReply(first.text, first.finish_reason, usage)


def chat_batch(vllm: Any, llm: Any, bodies: list[dict[str, Any]],
               ) -> list[RawReply | TransportError]:
    """One ``LLM.chat`` call for ``bodies``: a reply or an error for each, in order. A body vLLM
    cannot take fails alone (``http_error``); the others still run."""
    replies: list[RawReply | TransportError] = []
    params, good = [], []
    for i, body in enumerate(bodies):
        try:
            params.append(to_sampling_params(vllm, body))
            good.append(i)
            replies.append(TransportError("bad_response", "vLLM returned no output"))
        except ConfigError as exc:
            replies.append(TransportError("http_error", str(exc)))
    if good:
        outputs = llm.chat([bodies[i]["messages"] for i in good], params, use_tqdm=False)
        for i, output in zip(good, outputs, strict=False):
            replies[i] = reply_of(output)
    return replies


class VLLMOfflineTransport(BatchingTransport):
    """``vllm.LLM`` in this process, loaded on the first request, fed ``vllm_batch_size``
    at a time."""

    def __init__(self, endpoint: EndpointConfig):
        super().__init__(endpoint)
        self._llm: Any = None
        self._vllm: Any = None

    def batch_limit(self) -> int:
        return self.endpoint.vllm_batch_size

    def prepare(self) -> None:
        if self._llm is not None:
            return
        try:
            import vllm
        except ImportError:
            raise EndpointError("backend 'vllm' needs vLLM on this machine: pip install "
                                "'postmix[vllm]' (GPU node), or serve the model with `vllm serve` "
                                "and use backend 'http'") from None
        self._vllm = vllm
        self._llm = vllm.LLM(model=self.endpoint.model, **self.endpoint.vllm_args)

    def answer(self, bodies: list[dict[str, Any]]) -> list[RawReply | TransportError]:
        return chat_batch(self._vllm, self._llm, bodies)

    def describe_failure(self, exc: Exception) -> str:
        return f"vLLM: {exc}"
