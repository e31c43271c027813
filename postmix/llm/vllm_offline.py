"""vLLM offline (``vllm.LLM`` in this process) behind the same transport interface.

Requests from the engine queue up and go to ``LLM.chat`` in batches of up to ``vllm_batch_size``
on a worker thread, so the engine's cache, retries, schema checks and ledger apply unchanged and
vLLM still sees large batches. Give the endpoint a ``max_concurrency`` at least as large as the
batch size, or batches stay small. ``vllm`` is imported only when such an endpoint is used.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from typing import Any

from postmix.errors import ConfigError, EndpointError
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


class VLLMOfflineTransport:
    def __init__(self, endpoint: EndpointConfig):
        self.endpoint = endpoint
        self._llm: Any = None
        self._vllm: Any = None
        self._queue: deque[tuple[dict[str, Any], asyncio.Future[RawReply]]] = deque()
        self._worker: asyncio.Task[None] | None = None

    def _load(self) -> None:
        try:
            import vllm
        except ImportError:
            raise EndpointError("backend 'vllm' needs vLLM on this machine: pip install "
                                "'postmix[vllm]' (GPU node), or serve the model with `vllm serve` "
                                "and use backend 'http'") from None
        self._vllm = vllm
        self._llm = vllm.LLM(model=self.endpoint.model, **self.endpoint.vllm_args)

    async def send(self, body: dict[str, Any]) -> RawReply:
        if self._llm is None:
            self._load()
        future: asyncio.Future[RawReply] = asyncio.get_running_loop().create_future()
        self._queue.append((body, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            await asyncio.sleep(0)  # let the engine enqueue everything it has ready
            batch = [self._queue.popleft()
                     for _ in range(min(len(self._queue), self.endpoint.vllm_batch_size))]
            batch = [(body, fut) for body, fut in batch if not fut.cancelled()]
            if not batch:
                continue
            try:
                params = [to_sampling_params(self._vllm, body) for body, _ in batch]
                call = functools.partial(self._llm.chat, [body["messages"] for body, _ in batch],
                                         params, use_tqdm=False)
                outputs = await loop.run_in_executor(None, call)
            except ConfigError as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(TransportError("http_error", str(exc)))
                continue
            except Exception as exc:  # an engine error fails this batch; the engine retries it
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(TransportError("server_error", f"vLLM: {exc}"))
                continue
            for (_, fut), output in zip(batch, outputs, strict=True):
                if fut.done():
                    continue
                first = output.outputs[0] if output.outputs else None
                if first is None:
                    fut.set_exception(TransportError("bad_response", "vLLM returned no output"))
                    continue
                usage = {"prompt_tokens": len(output.prompt_token_ids or ()),
                         "completion_tokens": len(first.token_ids or ())}
                fut.set_result(RawReply(first.text, first.finish_reason, usage))

    async def close(self) -> None:
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
