"""The tiny-model fixture behaves like a real hub chat checkpoint: loads, generates, trains and
masks assistant tokens correctly, deterministically."""

import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from postmix.testing.tiny_model import build_tiny_model  # noqa: E402

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris, of course."},
    {"role": "user", "content": "And a word with an accent?"},
    {"role": "assistant", "content": " Café 🙂\nDone."},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()


def test_loads_as_tiny_tied_llama_with_chat_special_tokens(model, tokenizer):
    assert isinstance(model, transformers.LlamaForCausalLM)
    cfg = model.config
    assert cfg.vocab_size == len(tokenizer) <= 512
    assert cfg.hidden_size == 64 and cfg.num_hidden_layers == 2
    assert cfg.max_position_embeddings == 2048
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert (tokenizer.pad_token, tokenizer.bos_token, tokenizer.eos_token) == (
        "<|pad|>",
        "<|begin_of_text|>",
        "<|end|>",
    )
    assert len({tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id}) == 3
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    for role in ("<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"):
        assert tokenizer.convert_tokens_to_ids(role) != tokenizer.unk_token_id
        assert len(tokenizer(role)["input_ids"]) == 1


def test_byte_level_tokenizer_round_trips_any_text(tokenizer):
    text = 'naïve façade — 日本語 🙂 {"k": [1, 2]}\ttab'
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text


def test_generates_new_tokens(model, tokenizer):
    enc = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hello!"}], add_generation_prompt=True, return_tensors="pt"
    )
    prompt = enc["input_ids"]
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=6, min_new_tokens=6, do_sample=False)
    assert out.shape == (1, prompt.shape[1] + 6)
    assert torch.equal(out[0, : prompt.shape[1]], prompt[0])
    assert isinstance(tokenizer.decode(out[0, prompt.shape[1] :]), str)


def test_loss_with_labels_is_finite_near_uniform_and_backpropagates(tiny_model_dir, tokenizer):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    batch = tokenizer(["The quick brown fox.", "Hi"], padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    out = model(**batch, labels=labels)
    assert torch.isfinite(out.loss)
    # Small random init => near-uniform next-token distribution.
    assert abs(out.loss.item() - math.log(model.config.vocab_size)) < 1.0
    out.loss.backward()
    grad = model.model.embed_tokens.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def _runs(ids, mask):
    """Contiguous runs of ids where mask == 1."""
    runs, current = [], []
    for token_id, m in zip(ids, mask, strict=True):
        if m:
            current.append(token_id)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def test_assistant_mask_covers_exactly_assistant_content_and_end_token(tokenizer):
    out = tokenizer.apply_chat_template(
        CONVERSATION, return_assistant_tokens_mask=True, return_dict=True, tokenize=True
    )
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert len(ids) == len(mask) and set(mask) == {0, 1}

    assistant = [m["content"] for m in CONVERSATION if m["role"] == "assistant"]
    assert [tokenizer.decode(run) for run in _runs(ids, mask)] == [a + "<|end|>" for a in assistant]

    # Everything unmasked is exactly the rendered chat minus the assistant spans: no system or
    # user token leaks into the mask, and no assistant token is left out of it.
    rendered = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    for a in assistant:
        rendered = rendered.replace(a + "<|end|>", "", 1)
    unmasked = [t for t, m in zip(ids, mask, strict=True) if not m]
    assert tokenizer.decode(unmasked) == rendered
    assert "You are terse." in rendered and "capital of France" in rendered


def test_chat_template_roles_tools_and_generation_prompt(tokenizer):
    msgs = [
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Oslo"}},
                }
            ],
        },
        {"role": "tool", "name": "get_weather", "content": "rain"},
    ]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    text = tokenizer.apply_chat_template(
        msgs, tools=tools, tokenize=False, add_generation_prompt=True
    )
    assert text.startswith("<|begin_of_text|><|system|>\n")
    assert '"get_weather"' in text and '"city": "Oslo"' in text
    assert "<|user|>\nWeather?<|end|>\n" in text and "<|tool|>\nrain<|end|>\n" in text
    assert text.endswith("<|assistant|>\n")
    with pytest.raises(Exception, match="Unsupported chat role"):
        tokenizer.apply_chat_template([{"role": "robot", "content": "x"}], tokenize=False)


def test_trl_accepts_template_for_assistant_only_loss(tokenizer):
    chat_utils = pytest.importorskip("trl.chat_template_utils")
    # None means TRL keeps our template instead of swapping in a patched training template.
    assert chat_utils.get_training_chat_template(tokenizer) is None
    assert chat_utils.is_chat_template_stop_token_trained(tokenizer)
    assert chat_utils.supports_tool_calling(tokenizer)


def test_same_seed_same_files_different_seed_different_weights(tmp_path, tiny_model_dir):
    again = build_tiny_model(tmp_path / "again")
    other = build_tiny_model(tmp_path / "other", seed=1)
    first = load_file(tiny_model_dir / "model.safetensors")
    second = load_file(again / "model.safetensors")
    third = load_file(other / "model.safetensors")
    assert first.keys() == second.keys() == third.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], third[k]) for k in first)
    assert (again / "tokenizer.json").read_bytes() == (
        tiny_model_dir / "tokenizer.json"
    ).read_bytes()


def test_building_does_not_disturb_global_torch_rng(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_model(tmp_path / "m")
    assert torch.equal(torch.rand(3), expected)


def test_rejects_vocab_smaller_than_byte_alphabet(tmp_path):
    with pytest.raises(ValueError, match="vocab_size"):
        build_tiny_model(tmp_path / "m", vocab_size=100)
