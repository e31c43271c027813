"""A local ``transformers`` model behind the engine's transport interface.

For small models on CPU (the tests' tiny random model, the quickstart) and anywhere vLLM is not
installed. Requests queue up as for vLLM offline (``postmix.llm.batching``) and go to
``model.generate`` ``transformers_batch_size`` at a time, left-padded so every prompt ends where
its answer starts. Requests of one batch that ask for different sampling are generated in
separate calls, so each gets exactly what it asked for. Greedy unless ``temperature > 0``.

OpenAI semantics are kept: ``stop`` strings end the answer and are not part of it,
``finish_reason`` is ``length`` when ``max_tokens`` ran out and ``stop`` otherwise, and usage
counts prompt and completion tokens. ``raw_prompt: true`` in the sampling renders the messages
without the chat template (the contents joined by blank lines): a plain-text prompt format.
``torch`` and ``transformers`` are imported when such an endpoint is first used.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from postmix.errors import EndpointError
from postmix.llm.batching import BatchingTransport
from postmix.llm.config import EndpointConfig
from postmix.llm.transport import RawReply, TransportError

DEFAULT_MAX_TOKENS = 256  # an OpenAI server's default is model-dependent; a local one needs one
# sampling keys that change nothing about the answer of a local greedy/sampled generate
_IGNORED = {"model", "messages", "n", "stream", "user", "response_format", "seed"}


def render_prompt(tokenizer: Any, messages: list[dict[str, Any]], raw: bool) -> str:
    """The text the model continues: its chat template with the generation prompt, or the
    messages' contents joined by blank lines (``raw``, or a tokenizer without a template)."""
    if not raw and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(str(m.get("content") or "") for m in messages)


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """``text`` up to the first stop string (excluded), and whether one was found."""
    cuts = [text.find(s) for s in stops if s and s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


def _stops(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else [s for s in stop if isinstance(s, str)]


def _generation_key(body: dict[str, Any]) -> str:
    """Bodies with the same key can share one ``generate`` call."""
    params = {k: v for k, v in body.items() if k not in _IGNORED}
    return json.dumps(params, sort_keys=True, default=str)


class TransformersTransport(BatchingTransport):
    """``AutoModelForCausalLM`` in this process, loaded on the first request."""

    def __init__(self, endpoint: EndpointConfig):
        super().__init__(endpoint)
        self._model: Any = None
        self._tokenizer: Any = None
        self._torch: Any = None
        self._lock = threading.Lock()

    def batch_limit(self) -> int:
        return self.endpoint.transformers_batch_size

    def prepare(self) -> None:
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            try:
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer
            except ImportError:
                raise EndpointError("backend 'transformers' needs torch and transformers: pip "
                                    "install 'postmix[train]'") from None
            args = dict(self.endpoint.transformers_args)
            trust = bool(args.get("trust_remote_code", False))
            try:
                tokenizer = AutoTokenizer.from_pretrained(self.endpoint.model,
                                                          trust_remote_code=trust)
                model = AutoModelForCausalLM.from_pretrained(self.endpoint.model, **args)
            except (OSError, ValueError) as exc:
                raise EndpointError(f"backend 'transformers' could not load model "
                                    f"{self.endpoint.model!r}: {str(exc).splitlines()[0]}"
                                    ) from None
            tokenizer.padding_side = "left"  # answers start where every prompt ends
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            if "device_map" not in args and torch.cuda.is_available():
                model.to("cuda")  # a GPU when there is one, unless the endpoint placed it
            model.eval()
            self._torch, self._tokenizer, self._model = torch, tokenizer, model

    def answer(self, bodies: list[dict[str, Any]]) -> list[RawReply | TransportError]:
        replies: list[RawReply | TransportError] = [
            TransportError("bad_response", "no output")] * len(bodies)
        groups: dict[str, list[int]] = {}
        for i, body in enumerate(bodies):
            groups.setdefault(_generation_key(body), []).append(i)
        for indices in groups.values():
            for i, reply in zip(indices, self._generate([bodies[i] for i in indices]),
                                strict=True):
                replies[i] = reply
        return replies

    def _generate(self, bodies: list[dict[str, Any]]) -> list[RawReply]:
        torch, tokenizer, model = self._torch, self._tokenizer, self._model
        first = bodies[0]
        raw = bool(first.get("raw_prompt"))
        texts = [render_prompt(tokenizer, b["messages"], raw) for b in bodies]
        # the chat template already holds the BOS token; plain text gets the tokenizer's own
        inputs = tokenizer(texts, return_tensors="pt", padding=True,
                           add_special_tokens=raw or not tokenizer.chat_template)
        inputs = {k: v.to(model.device) for k, v in inputs.items()}
        max_new = int(first.get("max_tokens") or first.get("max_completion_tokens")
                      or DEFAULT_MAX_TOKENS)
        temperature = float(first.get("temperature") or 0.0)
        stops = _stops(first)
        kwargs: dict[str, Any] = {"max_new_tokens": max_new, "pad_token_id":
                                  tokenizer.pad_token_id}
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature,
                          top_p=float(first.get("top_p") or 1.0))
            if first.get("seed") is not None:
                torch.manual_seed(int(first["seed"]))
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if stops:
            kwargs.update(stop_strings=stops, tokenizer=tokenizer)
        with torch.no_grad():
            output = model.generate(**inputs, **kwargs)
        prompt_width = inputs["input_ids"].shape[1]
        eos = _eos_ids(model, tokenizer)
        replies = []
        for row, mask in zip(output, inputs["attention_mask"], strict=True):
            new = row[prompt_width:].tolist()
            ended = next((j for j, t in enumerate(new) if t in eos), None)
            kept = new if ended is None else new[:ended]
            text, stopped = cut_at_stop(tokenizer.decode(kept, skip_special_tokens=True), stops)
            finish = "stop" if ended is not None or stopped or len(kept) < max_new else "length"
            replies.append(RawReply(text, finish, {
                "prompt_tokens": int(mask.sum()),
                "completion_tokens": len(kept) + (ended is not None)}))
        return replies

    def describe_failure(self, exc: Exception) -> str:
        return f"transformers: {type(exc).__name__}: {exc}"


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    if tokenizer.pad_token_id is not None:
        ids.add(tokenizer.pad_token_id)  # generate pads finished rows
    return ids
