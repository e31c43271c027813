"""Build a tiny random-weight Llama chat model + tokenizer on disk, with no network access.

The result loads with ``AutoModelForCausalLM`` / ``AutoTokenizer.from_pretrained`` like any hub
checkpoint, so trainers, generation and chat templating can be exercised end to end in tests,
benchmarks and the offline quickstart. The weights are random: outputs are gibberish by design.

Token conventions follow Qwen/Phi-3 style chat models: ``eos_token`` *is* the end-of-turn token
``<|end|>``, so ``generate()`` and TRL stop at the end of an assistant turn, and the chat template
puts ``<|end|>`` inside ``{% generation %}`` so assistant-only loss trains the model to stop.
"""

from __future__ import annotations

from pathlib import Path

PAD_TOKEN = "<|pad|>"
BOS_TOKEN = "<|begin_of_text|>"
EOS_TOKEN = "<|end|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|tool|>")
# Order fixes the ids: pad=0, bos=1, eos=2, matching the usual Llama-ish defaults.
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, *ROLE_TOKENS)

# Rendering notes, because the assistant mask is computed from character offsets:
# - the generation span starts right after "<|assistant|>\n" and ends right after "<|end|>", and
#   both neighbours are special tokens or a lone newline, so no BPE token straddles the boundary
#   and the mask covers exactly content + "<|end|>";
# - "<|end|>" is inside the span so assistant-only loss teaches the model to stop (TRL warns
#   otherwise), and nothing is appended after the final message, which keeps the template
#   prefix-preserving (TRL checks that for tool-calling templates).
CHAT_TEMPLATE = """\
{%- macro render_content(content) -%}
    {%- if content is none -%}
    {%- elif content is string -%}{{- content -}}
    {%- else -%}
        {%- for part in content -%}
            {%- if part is string -%}{{- part -}}
            {%- elif part.type == 'text' -%}{{- part.text -}}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro -%}
{{- bos_token -}}
{%- if tools -%}
    {{- '<|system|>\\nYou can call these tools:\\n' -}}
    {%- for tool in tools -%}{{- tool | tojson -}}{{- '\\n' -}}{%- endfor -%}
    {{- '<|end|>\\n' -}}
{%- endif -%}
{%- for message in messages -%}
    {%- if message.role == 'assistant' -%}
        {{- '<|assistant|>\\n' -}}
        {%- generation -%}
            {{- render_content(message.content) -}}
            {%- if message.tool_calls -%}
                {%- for call in message.tool_calls -%}
                    {%- set fn = call.function if call.function is defined else call -%}
                    {{- '<tool_call>' -}}
                    {{- {'name': fn.name, 'arguments': fn.arguments} | tojson -}}
                    {{- '</tool_call>' -}}
                {%- endfor -%}
            {%- endif -%}
            {{- '<|end|>' -}}
        {%- endgeneration -%}
        {{- '\\n' -}}
    {%- elif message.role in ['system', 'user', 'tool'] -%}
        {{- '<|' + message.role + '|>\\n' + render_content(message.content) + '<|end|>\\n' -}}
    {%- else -%}
        {{- raise_exception('Unsupported chat role: ' + message.role) -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|assistant|>\\n' -}}
{%- endif -%}
"""

# Enough varied English for a few hundred BPE merges; byte-level BPE still encodes any text.
_CORPUS = """\
The quick brown fox jumps over the lazy dog. A small model learns to answer questions about
data, training and evaluation. Post-training turns a pretrained language model into a helpful
assistant: supervised fine-tuning on conversations, preference optimisation with chosen and
rejected answers, and reinforcement learning with verifiable rewards.
What is the capital of France? The capital of France is Paris. How many legs does a spider
have? A spider has eight legs. Please summarise the following text in one sentence.
Write a short poem about the sea. The sea is wide and blue, the waves are calm tonight.
Explain why the sky is blue. Sunlight is scattered by the air, and blue light scatters most.
Translate "good morning" into German. Guten Morgen. Thank you for your help, have a nice day!
The user asked the assistant to solve a math problem: if x + 3 = 7, then x = 4. Twelve times
twelve is one hundred and forty four. Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 2024 3.14.
Data curation removes duplicates, filters low quality samples, and balances the mixture of
sources. A judge model scores each response from one to five, with a short rationale.
def add(a, b):
    return a + b
{"score": 4, "reason": "The answer is correct and concise."}
System: you are a helpful, honest and harmless assistant. User: hello there! Assistant: hi,
how can I help you today? Tool: the weather in London is cloudy with light rain.
Every example should be checked, every mixture should be versioned, and every run should be
reproducible from its configuration, its seed and its data.
"""


def _train_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        # Seeding the full byte alphabet is what makes every string encodable without <unk>.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS.splitlines(keepends=True), trainer=trainer)
    return tok


def build_tiny_model(
    path: str | Path,
    *,
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    seed: int = 0,
) -> Path:
    """Write a random-initialised tiny ``LlamaForCausalLM`` and its chat tokenizer to ``path``.

    ``vocab_size`` is an upper bound: the byte alphabet plus special tokens need ~263 entries, and
    the built-in corpus supports a few hundred merges, so the model's vocabulary is the trained
    tokenizer's length. Same arguments give byte-identical weights and tokenizer.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    min_vocab = 256 + len(SPECIAL_TOKENS)
    if vocab_size < min_vocab:
        raise ValueError(f"vocab_size must be >= {min_vocab} (byte alphabet + special tokens)")
    if hidden_size % 16:
        raise ValueError("hidden_size must be a multiple of 16 (head_dim is 16)")

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(vocab_size),
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=2048,
    )
    tokenizer.chat_template = CHAT_TEMPLATE

    num_heads = hidden_size // 16
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        # Grouped-query attention when possible, so the KV-head code path is exercised too.
        num_key_value_heads=max(1, num_heads // 2),
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    # fork_rng keeps the caller's global RNG stream untouched by our seeding.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id

    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
