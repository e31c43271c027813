"""The local ``transformers`` backend: left-padded batches answer as single prompts do, stop
strings end answers (and are not part of them), finish reasons and usage as an OpenAI server."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from postmix.llm import ChatRequest, EndpointConfig, PoolConfig, run_requests
from postmix.llm.transformers_local import cut_at_stop


def _pool(model_dir, batch: int) -> PoolConfig:
    return PoolConfig(endpoints=[EndpointConfig(
        name="local", model=str(model_dir), backend="transformers", max_concurrency=32,
        transformers_batch_size=batch)])


def _ask(texts, sampling):
    return [ChatRequest([{"role": "user", "content": t}], dict(sampling)) for t in texts]


def test_batched_answers_equal_single_answers(tiny_model_dir):
    texts = ["hi", "a much longer question about data curation and evaluation " * 3, "2 + 2?"]
    sampling = {"max_tokens": 6, "temperature": 0.0}
    batched, _ = run_requests(_pool(tiny_model_dir, 8), _ask(texts, sampling))
    single, _ = run_requests(_pool(tiny_model_dir, 1), _ask(texts, sampling))
    assert [r.content for r in batched] == [r.content for r in single]
    assert all(r.ok and r.usage.completion_tokens <= 6 for r in batched)
    assert batched[1].usage.prompt_tokens > batched[0].usage.prompt_tokens  # padding not counted
    assert {r.finish_reason for r in batched} <= {"stop", "length"}


def test_stop_strings_and_finish_reason(tiny_model_dir):
    free, _ = run_requests(_pool(tiny_model_dir, 4), _ask(["hello"], {"max_tokens": 12}))
    text = free[0].content
    if free[0].usage.completion_tokens == 12:
        assert free[0].finish_reason == "length"
    stop = text[len(text) // 2:][:1] or "\n"
    stopped, _ = run_requests(_pool(tiny_model_dir, 4),
                              _ask(["hello"], {"max_tokens": 12, "stop": [stop]}))
    assert stopped[0].finish_reason == "stop" and stop not in stopped[0].content
    assert text.startswith(stopped[0].content)


@given(st.text(max_size=40), st.lists(st.text(min_size=1, max_size=3), max_size=3))
def test_cut_at_stop_keeps_the_text_before_the_first_stop(text, stops):
    kept, found = cut_at_stop(text, stops)
    assert text.startswith(kept)
    assert found == any(s in text for s in stops)
    assert not any(s in kept for s in stops)
