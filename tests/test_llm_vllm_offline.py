"""The vLLM offline backend, with a fake ``vllm`` module standing in for the real one (which needs
a GPU): request -> SamplingParams mapping, batching, and the engine path on top."""

import json
import sys
import types
from dataclasses import dataclass, field

import pytest
from pydantic import BaseModel

from postmix.errors import EndpointError
from postmix.llm import ChatRequest, EndpointConfig, PoolConfig, RetryConfig, run_requests
from postmix.llm.vllm_offline import to_sampling_params


class FakeSamplingParams:
    def __init__(self, **kwargs):
        allowed = {"temperature", "top_p", "top_k", "max_tokens", "seed", "stop",
                   "presence_penalty", "structured_outputs"}
        unknown = set(kwargs) - allowed
        if unknown:
            raise TypeError(f"unexpected keyword argument {sorted(unknown)[0]!r}")
        self.__dict__.update(kwargs)


@dataclass
class FakeStructured:
    json: dict


@dataclass
class _Out:
    text: str
    token_ids: list = field(default_factory=lambda: [1, 2, 3])
    finish_reason: str = "stop"


@dataclass
class _RequestOutput:
    outputs: list
    prompt_token_ids: list = field(default_factory=lambda: [1] * 10)


class FakeLLM:
    instances: list = []

    def __init__(self, model, **kwargs):
        self.model, self.kwargs, self.calls = model, kwargs, []
        FakeLLM.instances.append(self)

    def chat(self, messages, sampling_params, use_tqdm=True):
        self.calls.append((messages, sampling_params))
        outputs = []
        for conversation, params in zip(messages, sampling_params, strict=True):
            text = conversation[-1]["content"].upper()
            if getattr(params, "structured_outputs", None) is not None:
                text = json.dumps({"value": len(conversation[-1]["content"])})
            outputs.append(_RequestOutput([_Out(text)]))
        return outputs


@pytest.fixture
def fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = FakeLLM, FakeSamplingParams
    sampling = types.ModuleType("vllm.sampling_params")
    sampling.StructuredOutputsParams = FakeStructured
    vllm.sampling_params = sampling
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sampling)
    FakeLLM.instances = []
    return vllm


def test_openai_fields_map_onto_sampling_params(fake_vllm):
    body = {"model": "m", "messages": [], "temperature": 0.3, "top_p": 0.9, "top_k": 20,
            "max_completion_tokens": 128, "seed": 7, "stop": ["</s>"], "n": 1,
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "A", "schema": {"type": "object"}}}}
    params = to_sampling_params(fake_vllm, body)
    assert (params.temperature, params.top_p, params.top_k, params.max_tokens, params.seed,
            params.stop) == (0.3, 0.9, 20, 128, 7, ["</s>"])
    assert params.structured_outputs == FakeStructured(json={"type": "object"})
    assert not hasattr(params, "n") and not hasattr(params, "messages")


def test_unknown_sampling_param_is_a_config_error(fake_vllm):
    from postmix.errors import ConfigError

    with pytest.raises(ConfigError, match="logit_bias"):
        to_sampling_params(fake_vllm, {"logit_bias": {1: 2}})


class Answer(BaseModel):
    value: int


def test_engine_batches_requests_through_vllm_chat(fake_vllm):
    pool = PoolConfig(endpoints=[EndpointConfig(
        name="gpu", model="org/model", backend="vllm", max_concurrency=64, vllm_batch_size=8,
        vllm_args={"tensor_parallel_size": 1}, sampling={"temperature": 0.0})],
        retry=RetryConfig(backoff_base=0.001))
    requests = [ChatRequest([{"role": "user", "content": f"item {i}"}]) for i in range(20)]
    requests.append(ChatRequest([{"role": "user", "content": "four"}], schema=Answer))
    results, ledger = run_requests(pool, requests)
    assert [r.content for r in results[:20]] == [f"ITEM {i}" for i in range(20)]
    assert results[20].parsed == Answer(value=4)
    (llm,) = FakeLLM.instances
    assert llm.model == "org/model" and llm.kwargs == {"tensor_parallel_size": 1}
    sizes = [len(messages) for messages, _ in llm.calls]
    assert sum(sizes) == 21 and max(sizes) <= 8 and len(sizes) >= 3
    assert ledger.endpoints["gpu"].prompt_tokens == 210
    assert all(p.temperature == 0.0 for _, params in llm.calls for p in params)


def test_a_request_vllm_cannot_take_fails_alone(fake_vllm):
    pool = PoolConfig(endpoints=[EndpointConfig(name="gpu", model="m", backend="vllm")],
                      retry=RetryConfig(max_attempts=1, backoff_base=0.001))
    requests = [ChatRequest([{"role": "user", "content": "fine"}]),
                ChatRequest([{"role": "user", "content": "odd"}], {"logit_bias": {1: 2}}),
                ChatRequest([{"role": "user", "content": "also fine"}])]
    results, _ = run_requests(pool, requests)
    assert [r.content for r in results if r.ok] == ["FINE", "ALSO FINE"]
    assert results[1].error_kind == "http_error" and "logit_bias" in results[1].error


def test_without_vllm_installed_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import fails
    pool = PoolConfig(endpoints=[EndpointConfig(name="gpu", model="m", backend="vllm")])
    with pytest.raises(EndpointError, match="postmix\\[vllm\\]"):
        run_requests(pool, [ChatRequest([{"role": "user", "content": "x"}])])
