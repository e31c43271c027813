"""The vllm-ray backend on a local Ray: requests go through Ray Data ``map_batches`` to vLLM actors.

vLLM needs a GPU, so a fake ``vllm`` package stands in for it. The actors run in Ray worker
processes, where a module put into this process's ``sys.modules`` is invisible; the fake is
written to disk and the replicas get a runtime_env whose PYTHONPATH puts it on their import
path: inside the workers, ``import vllm`` is the fake.
"""

from __future__ import annotations

import textwrap

import pytest
from pydantic import BaseModel

from postmix.errors import EndpointError
from postmix.llm import ChatRequest, EndpointConfig, PoolConfig, RetryConfig, run_requests

FAKE_VLLM = '''
import json
import os
from dataclasses import dataclass, field

from . import sampling_params


class SamplingParams:
    def __init__(self, **kwargs):
        allowed = {"temperature", "top_p", "max_tokens", "seed", "structured_outputs"}
        unknown = set(kwargs) - allowed
        if unknown:
            raise TypeError(f"unexpected keyword argument {sorted(unknown)[0]!r}")
        self.__dict__.update(kwargs)


@dataclass
class _Out:
    text: str
    token_ids: list = field(default_factory=lambda: [1, 2, 3])
    finish_reason: str = "stop"


@dataclass
class _RequestOutput:
    outputs: list
    prompt_token_ids: list = field(default_factory=lambda: [1] * 10)


class LLM:
    def __init__(self, model, **kwargs):
        self.model, self.kwargs = model, kwargs
        if model == "broken":
            raise RuntimeError("CUDA out of memory")

    def chat(self, messages, sampling_params, use_tqdm=True):
        outputs = []
        for conversation, params in zip(messages, sampling_params, strict=True):
            content = conversation[-1]["content"]
            if getattr(params, "structured_outputs", None) is not None:
                text = json.dumps({"value": len(content)})
            else:
                # what the test checks: the batch this request came in, and which replica ran it
                text = f"{content.upper()}|batch={len(messages)}|replica={os.getpid()}|t={params.temperature}"
                text += f"|args={sorted(self.kwargs.items())}"
            outputs.append(_RequestOutput([_Out(text)]))
        return outputs
'''

FAKE_SAMPLING = '''
from dataclasses import dataclass


@dataclass
class StructuredOutputsParams:
    json: dict
'''


@pytest.fixture(scope="module")
def fake_vllm_dir(tmp_path_factory):
    package = tmp_path_factory.mktemp("fake_vllm") / "vllm"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(FAKE_VLLM))
    (package / "sampling_params.py").write_text(textwrap.dedent(FAKE_SAMPLING))
    return package


class Answer(BaseModel):
    value: int


def endpoint(fake_vllm_dir, **overrides) -> EndpointConfig:
    settings = {"name": "gpus", "model": "org/model", "backend": "vllm-ray", "max_concurrency": 1000,
                "vllm_batch_size": 8, "ray_replicas": 2, "ray_num_gpus": 0,
                "vllm_args": {"tensor_parallel_size": 1}, "sampling": {"temperature": 0.0},
                "ray_runtime_env": {"env_vars": {"PYTHONPATH": str(fake_vllm_dir.parent)}}}
    return EndpointConfig(**{**settings, **overrides})


def test_requests_are_batched_through_ray_data_to_vllm_replicas(ray_local, fake_vllm_dir):
    pool = PoolConfig(endpoints=[endpoint(fake_vllm_dir)], retry=RetryConfig(backoff_base=0.001))
    requests = [ChatRequest([{"role": "user", "content": f"item {i}"}]) for i in range(40)]
    requests.append(ChatRequest([{"role": "user", "content": "four"}], schema=Answer))
    results, ledger = run_requests(pool, requests)
    assert all(r.ok for r in results)
    answers = [r.content.split("|") for r in results[:40]]
    assert [a[0] for a in answers] == [f"ITEM {i}" for i in range(40)]  # input order kept
    assert results[40].parsed == Answer(value=4)  # the json schema reached vLLM as structured output
    batches = [int(a[1].removeprefix("batch=")) for a in answers]
    assert max(batches) <= 8  # vllm_batch_size requests per LLM.chat call at most
    assert len({a[2] for a in answers}) <= 2  # ray_replicas actors
    assert all(a[3] == "t=0.0" for a in answers)  # endpoint sampling defaults mapped to SamplingParams
    assert all(a[4] == "args=[('tensor_parallel_size', 1)]" for a in answers)
    assert ledger.endpoints["gpus"].prompt_tokens == 41 * 10


def test_a_bad_sampling_param_fails_that_request_only(ray_local, fake_vllm_dir):
    pool = PoolConfig(endpoints=[endpoint(fake_vllm_dir)], retry=RetryConfig(backoff_base=0.001))
    requests = [ChatRequest([{"role": "user", "content": "good"}]),
                ChatRequest([{"role": "user", "content": "bad"}], sampling={"logit_bias": {"1": 2}})]
    good, bad = run_requests(pool, requests)[0]
    assert good.ok and good.content.startswith("GOOD|")
    assert not bad.ok and bad.error_kind == "http_error" and "logit_bias" in bad.error


def test_workers_without_vllm_give_a_one_line_error(ray_local, tmp_path):
    pool = PoolConfig(endpoints=[EndpointConfig(name="gpus", model="m", backend="vllm-ray", ray_num_gpus=0,
                                                ray_runtime_env={"env_vars": {"POSTMIX_NO_VLLM": "1"}})])
    with pytest.raises(EndpointError, match="cannot import vllm"):
        run_requests(pool, [ChatRequest([{"role": "user", "content": "x"}])])
