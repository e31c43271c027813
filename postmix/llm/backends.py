"""The backend table: an endpoint's ``backend`` name -> the transport class that serves it.

Classes are named by import path and loaded on first use, so an ``http`` run never imports the
offline backends (vLLM, Ray) and no backend module imports this table back: the engine asks
here, the transports know nothing of each other beyond ``transport.RawReply``/``TransportError``.
``EndpointConfig.backend`` lists the same names (a test keeps the two equal).
"""

from __future__ import annotations

import importlib
from typing import Any

BACKENDS: dict[str, str] = {
    "http": "postmix.llm.transport:HttpTransport",
    "openai": "postmix.llm.transport:OpenAITransport",
    "vllm": "postmix.llm.vllm_offline:VLLMOfflineTransport",
    "vllm-ray": "postmix.llm.vllm_ray:VLLMRayTransport",
    "transformers": "postmix.llm.transformers_local:TransformersTransport",
}


def make_transport(endpoint: Any) -> Any:
    """A transport for ``endpoint`` (an ``EndpointConfig``), from the class its backend names."""
    module, name = BACKENDS[endpoint.backend].split(":")
    return getattr(importlib.import_module(module), name)(endpoint)
