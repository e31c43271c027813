"""Shared fixtures. Heavy imports (torch, transformers, aiohttp) happen inside fixtures so test
modules that use neither fixture don't pay for them at collection time."""

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Directory holding a tiny random Llama chat model + tokenizer (built once per session)."""
    from postmix.testing.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture
def openai_server():
    """A started FakeOpenAIServer (echo responder, no faults); stopped after the test."""
    from postmix.testing.openai_server import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray with 2 CPUs for the whole session (what CI has), started only if needed."""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()
