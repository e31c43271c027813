"""The ``vllm-ray`` backend: offline batch generation with ``vllm.LLM`` replicas on a Ray cluster.

Requests the engine has queued go out as one *wave*: a Ray Dataset of request bodies mapped
by ``VLLMChat`` actors (``map_batches`` with an actor pool: ``ray_replicas`` actors, each holding
one ``vllm.LLM`` on ``ray_num_gpus`` GPUs, fed ``vllm_batch_size`` requests per ``LLM.chat``
call). The engine's cache, retries, schema checks and ledger apply unchanged, as for the
in-process ``vllm`` backend. Each wave loads the model once per actor, so give the endpoint a
``max_concurrency`` as large as the job (e.g. 100000): the engine then queues everything and
the whole job is one wave, which is how Ray Data batch inference is meant to run.

vLLM is imported only on the Ray workers: the driver (a CPU head node) needs Ray, not vLLM.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from postmix.errors import EndpointError
from postmix.llm.batching import BatchingTransport
from postmix.llm.config import EndpointConfig
from postmix.llm.transport import RawReply, TransportError
from postmix.ray_connect import connect_ray

_NO_VLLM = "vllm-ray: the Ray workers cannot import vllm"


class VLLMChat:
    """The Ray Data actor: one ``vllm.LLM`` per actor, one ``LLM.chat`` call per batch."""

    def __init__(self, model: str, vllm_args: dict[str, Any]):
        try:
            import vllm
        except ImportError as exc:
            raise RuntimeError(f"{_NO_VLLM} ({exc})") from None
        self.vllm = vllm
        self.llm = vllm.LLM(model=model, **vllm_args)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        from postmix.llm.vllm_offline import chat_batch

        bodies = [json.loads(body) for body in batch["body"]]
        try:
            replies = chat_batch(self.vllm, self.llm, bodies)
        except Exception as exc:  # an engine error fails the batch; the engine retries it
            replies = [TransportError("server_error", f"vLLM: {exc}")] * len(bodies)
        ok = [r if isinstance(r, RawReply) else None for r in replies]
        return {"index": list(batch["index"]),
                "text": [r and r.content for r in ok],
                "finish_reason": [r and r.finish_reason for r in ok],
                "prompt_tokens": [r.usage["prompt_tokens"] if r else 0 for r in ok],
                "completion_tokens": [r.usage["completion_tokens"] if r else 0 for r in ok],
                "error": [None if r else str(e) for r, e in zip(ok, replies, strict=True)],
                "error_kind": [None if r else e.kind for r, e in zip(ok, replies, strict=True)]}


def gpus_per_replica(endpoint: EndpointConfig) -> float:
    if endpoint.ray_num_gpus is not None:
        return endpoint.ray_num_gpus
    args = endpoint.vllm_args
    return float(int(args.get("tensor_parallel_size", 1))
                 * int(args.get("pipeline_parallel_size", 1)))


def run_wave(endpoint: EndpointConfig, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Answer ``bodies`` with one Ray Data pipeline; rows come back in input order."""
    import ray.data

    connect_ray(endpoint.ray_address)
    items = [{"index": i, "body": json.dumps(body, ensure_ascii=False)}
             for i, body in enumerate(bodies)]
    mapped = ray.data.from_items(items).map_batches(
        VLLMChat, batch_format="numpy", batch_size=endpoint.vllm_batch_size,
        fn_constructor_kwargs={"model": endpoint.model, "vllm_args": endpoint.vllm_args},
        concurrency=endpoint.ray_replicas, num_gpus=gpus_per_replica(endpoint),
        **({"runtime_env": endpoint.ray_runtime_env} if endpoint.ray_runtime_env else {}))
    try:
        rows = mapped.take_all()
    except Exception as exc:
        if _NO_VLLM in str(exc):
            raise EndpointError(f"{_NO_VLLM}: install 'postmix[vllm]' on the GPU nodes, or give "
                                "the endpoint a ray_runtime_env that provides it") from None
        raise
    return sorted(rows, key=lambda row: int(row["index"]))


class VLLMRayTransport(BatchingTransport):
    """Answers everything the engine has queued as one wave on Ray."""

    def answer(self, bodies: list[dict[str, Any]]) -> list[RawReply | TransportError]:
        replies: list[RawReply | TransportError] = []
        for row in run_wave(self.endpoint, bodies):
            if row["error_kind"]:
                replies.append(TransportError(str(row["error_kind"]), str(row["error"])))
            else:
                usage = {"prompt_tokens": int(row["prompt_tokens"]),
                         "completion_tokens": int(row["completion_tokens"])}
                replies.append(RawReply(str(row["text"]), row["finish_reason"], usage))
        return replies

    def describe_failure(self, exc: Exception) -> str:  # the cluster lost the job
        return f"Ray: {str(exc).splitlines()[0]}"
