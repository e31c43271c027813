"""Endpoint and pool configs: YAML loading, key handling, credential redaction, cache keys."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postmix.errors import ConfigError, EndpointError
from postmix.llm import EndpointConfig, PoolConfig, load_endpoints, redact_url, request_key


def test_pool_yaml_groups_replicas_by_model(tmp_path):
    path = tmp_path / "pool.yaml"
    path.write_text(
        "endpoints:\n"
        "  - {name: a1, model: llama, base_url: 'http://h1:8000/v1', max_concurrency: 8}\n"
        "  - {name: a2, model: llama, base_url: 'http://h2:8000/v1'}\n"
        "  - {name: b, model: qwen, price_input_per_m: 0.5, sampling: {temperature: 0.2}}\n"
        "retry: {max_attempts: 3, backoff_base: 0.01}\n")
    pool = load_endpoints(path)
    assert pool.models == ["llama", "qwen"]
    assert [e.name for e in pool.for_model("llama")] == ["a1", "a2"]
    assert pool.retry.max_attempts == 3 and pool.endpoints[0].max_concurrency == 8
    assert pool.endpoints[2].sampling == {"temperature": 0.2}


def test_single_endpoint_file_is_a_pool_of_one(tmp_path):
    path = tmp_path / "judge.yaml"
    path.write_text("name: judge\nmodel: gpt-4o\nbase_url: https://api.openai.com/v1\n"
                    "api_key_env: OPENAI_API_KEY\n")
    pool = load_endpoints(path)
    assert [e.model for e in pool.endpoints] == ["gpt-4o"]


@pytest.mark.parametrize("text, fragment", [
    ("endpoints: [{name: a}]", "model"),
    ("endpoints: [{name: a, model: m, max_concurrency: 0}]", "max_concurrency"),
    ("endpoints: [{name: a, model: m}, {name: a, model: n}]", "unique"),
    ("endpoints: [{name: a, model: m, api_key: sk-x}]", "api_key"),
    ("[unclosed", "not valid YAML"),
])
def test_bad_pool_files_give_one_line_config_errors(tmp_path, text, fragment):
    path = tmp_path / "pool.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_endpoints(path)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_missing_file_and_unset_key_variable_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="no such endpoints file"):
        load_endpoints(tmp_path / "nope.yaml")
    monkeypatch.delenv("POSTMIX_TEST_UNSET_KEY", raising=False)
    endpoint = EndpointConfig(name="a", model="m", api_key_env="POSTMIX_TEST_UNSET_KEY")
    with pytest.raises(EndpointError, match="POSTMIX_TEST_UNSET_KEY"):
        endpoint.api_key()


def test_url_credentials_never_reach_reports():
    assert redact_url("http://user:pa55@host:8000/v1") == "http://host:8000/v1"
    assert redact_url("https://api.openai.com/v1") == "https://api.openai.com/v1"
    pool = PoolConfig(endpoints=[EndpointConfig(name="a", model="m",
                                                base_url="http://u:topsecret@h/v1")])
    assert "topsecret" not in str(pool.public_dict())


messages = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]),
                                           "content": st.text(max_size=20)}), max_size=3)
params = st.dictionaries(st.sampled_from(["temperature", "top_p", "max_tokens", "seed"]),
                         st.integers(0, 5), max_size=4)


@given(messages, params)
def test_cache_key_ignores_param_order_but_not_values(msgs, sampling):
    reordered = dict(reversed(list(sampling.items())))
    assert request_key("m", msgs, sampling, None) == request_key("m", msgs, reordered, None)
    assert request_key("m", msgs, sampling, None) != request_key("m2", msgs, sampling, None)
    assert request_key("m", msgs, sampling, None) != request_key("m", msgs, sampling, None, "s=1")
    changed = {**sampling, "temperature": sampling.get("temperature", 0) + 1}
    assert request_key("m", msgs, sampling, None) != request_key("m", msgs, changed, None)


def test_shipped_example_configs_load():
    from pathlib import Path

    from postmix.judge import load_rubric

    folder = Path(__file__).resolve().parents[1] / "recipes" / "endpoints"
    pools = [load_endpoints(p) for p in sorted(folder.glob("*.yaml")) if "rubric" not in p.name]
    assert len(pools) >= 4 and all(pool.endpoints for pool in pools)
    assert load_rubric(folder / "rubric-concise.yaml").aspect_names == ["correctness", "brevity"]


@pytest.mark.parametrize("pasted", ["sk-live-4f9a8b7c6d5e4f3a2b1c", "hf_AbCdEfGhIjKlMnOpQrStUvWx12", "AbC123dEf456GhI789jKl0",
                                    "AKIAIOSFODNN7EXAMPLE", "github_pat_11ABCDEFG0abcdefghijklmnop",
                                    "gho_abcdEFGH1234ijklMNOP5678"])
def test_a_key_pasted_where_the_variable_name_goes_is_refused_without_echoing_it(tmp_path, pasted):
    """Issue 14: ``api_key_env: sk-live-...`` was printed back in the error."""
    from postmix.errors import ConfigError
    from postmix.llm import load_endpoints
    from postmix.llm.config import EndpointConfig, looks_like_a_key

    path = tmp_path / "pool.yaml"
    path.write_text(f"endpoints:\n  - {{name: a, model: m, api_key_env: '{pasted}'}}\n")
    with pytest.raises(ConfigError) as caught:
        load_endpoints(path)
    assert pasted not in str(caught.value) and "looks like a key itself" in str(caught.value)
    with pytest.raises(ValueError) as raw:  # not even the raw pydantic error shows it
        EndpointConfig(name="a", model="m", api_key_env=pasted)
    assert pasted not in str(raw.value)
    assert looks_like_a_key(pasted)
    for name in ("OPENAI_API_KEY", "POSTMIX_API_KEY", "HF_TOKEN", "my_key", "AZURE_OPENAI_API_KEY_2"):
        assert not looks_like_a_key(name)
