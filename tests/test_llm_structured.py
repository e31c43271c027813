"""Structured answers: JSON objects found in prose, fences and trailing remarks before any
re-ask is spent; answers cut off by max_tokens reported as ``truncated`` and re-asked with more
room."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from postmix.llm import ChatRequest, EndpointConfig, PoolConfig, RetryConfig, run_requests
from postmix.llm.structured import json_objects, parse_structured


class Answer(BaseModel):
    value: int


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)
prose = st.text(max_size=60).filter(lambda t: "{" not in t)


@settings(max_examples=200, deadline=None)
@given(before=prose, obj=objects, after=st.text(max_size=60), indent=st.sampled_from([None, 2]))
def test_the_first_object_is_found_whatever_surrounds_it(before, obj, after, indent):
    """Braces and escaped quotes inside strings, prose before, anything after (more braces
    included): the first JSON object is the one written, exactly."""
    dumped = json.dumps(obj, indent=indent, ensure_ascii=False)
    text = before + dumped + after
    assert next(json_objects(text)) == dumped
    assert parse_structured(text, {"type": "object"}) == obj


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from('{}[]":,\\ ab1'), max_size=80))
def test_every_candidate_is_a_json_object_taken_from_the_text(text):
    for candidate in json_objects(text):
        assert candidate in text and isinstance(json.loads(candidate), dict)


@pytest.mark.parametrize("answer", [
    'Sure! Here is my rating:\n{"value": 4}\nI hope this helps.',
    '```json\n{"value": 4}\n```',
    'Thinking about {braces} first. ```\n{"value": 4}\n``` Done.',
    '{"note": "a } and a \\" inside"} then the answer {"value": 4}',
    '{"value": 4} {"value": 5}',
])
def test_wrapped_answers_validate_against_the_schema(answer):
    assert parse_structured(answer, Answer) == Answer(value=4)


def test_an_answer_with_no_valid_object_raises_the_objects_own_error():
    with pytest.raises(ValidationError) as info:
        parse_structured('My answer: {"value": "four"}.', Answer)
    assert info.value.errors()[0]["loc"] == ("value",)
    with pytest.raises(ValueError):
        parse_structured("no JSON here", Answer)
    with pytest.raises(ValueError):
        parse_structured("[" * 100_000, {"type": "object"})
    with pytest.raises(ValueError):
        parse_structured('{"a": ' * 5_000 + "1" + "}" * 5_000, {"type": "object"})


def pool_for(server, **retry):
    return PoolConfig(endpoints=[EndpointConfig(name="e", model="m", base_url=server.base_url,
                                                timeout=5.0)],
                      retry=RetryConfig(max_attempts=2, backoff_base=0.001, **retry))


def test_prose_wrapped_json_parses_without_a_reask(openai_server):
    openai_server.set_responder(lambda body: 'Here you go:\n```json\n{"value": 9}\n```\nCheers!')
    (result,), ledger = run_requests(pool_for(openai_server),
                                     [ChatRequest([{"role": "user", "content": "n?"}],
                                                  schema=Answer)])
    assert result.ok and result.parsed == Answer(value=9) and result.parse_failures == 0
    assert len(openai_server.requests) == 1 and ledger.parse_failures == 0


def test_a_cut_off_answer_is_reasked_with_more_room(openai_server):
    # the fake server cuts answers at max_tokens words and says finish_reason "length"
    openai_server.set_responder(lambda body: '{"value": 3, "note": "one two three four five"}')

    class Noted(BaseModel):
        value: int
        note: str

    request = ChatRequest([{"role": "user", "content": "n?"}], {"max_tokens": 5}, schema=Noted)
    (result,), ledger = run_requests(pool_for(openai_server, truncated_growth=2.0), [request])
    first, second = openai_server.chat_requests()
    assert first["max_tokens"] == 5 and second["max_tokens"] == 10
    assert second["messages"] == first["messages"]  # the same question, not the cut-off quoted
    assert result.ok and result.parsed.value == 3 and result.parse_failures == 1
    assert ledger.truncated == 1


def test_an_answer_cut_off_every_time_is_reported_as_truncated_with_a_hint(openai_server):
    openai_server.set_responder(lambda body: '{"value": 3, "pad": "' + "word " * 100 + '"}')
    request = ChatRequest([{"role": "user", "content": "n?"}], {"max_tokens": 4}, schema=Answer)
    (result,), ledger = run_requests(pool_for(openai_server, parse_retries=1), [request])
    assert not result.ok and result.error_kind == "truncated"
    assert "max_tokens" in result.error and "finish_reason: length" in result.error
    assert [b["max_tokens"] for b in openai_server.chat_requests()] == [4, 8]
    assert ledger.failed == {"truncated": 1}
