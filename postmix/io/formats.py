"""Public dataset formats and their conversion into postmix records.

Each converter takes one raw row (a dict) and returns a validated record, or raises ``ValueError``
(pydantic's ``ValidationError`` is one) with a message fit for a rejects file. Keys a converter
does not consume are kept in ``meta`` so ingest loses nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from postmix.errors import UnsupportedFormatError
from postmix.schemas import PreferenceRecord, RLVRRecord, SFTRecord, jsontext, stable_id
from postmix.schemas.records import _Record

FORMAT_KIND: dict[str, str] = {
    "messages": "sft",
    "sharegpt": "sft",
    "alpaca": "sft",
    "prompt_completion": "sft",
    "trl_preference": "preference",
    "ultrafeedback": "preference",
    "rlvr": "rlvr",
}
FORMATS = tuple(FORMAT_KIND)

SHAREGPT_ROLES = {
    "human": "user", "user": "user", "prompter": "user",
    "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant", "bard": "assistant",
    "bing": "assistant", "model": "assistant", "bot": "assistant",
    "system": "system",
    "tool": "tool", "function": "tool", "observation": "tool", "function_response": "tool",
}


def detect_format(row: dict[str, Any]) -> str | None:
    """The format a raw row looks like, by its keys; None when nothing fits."""
    keys = set(row)
    if {"chosen", "rejected"} <= keys:
        scored = {"score_chosen", "score_rejected"} & keys
        return (
            "ultrafeedback" if scored and isinstance(row.get("chosen"), list) else "trl_preference"
        )
    if "ground_truth" in keys and ({"messages", "prompt"} & keys):
        return "rlvr"
    if "messages" in keys:
        return "messages"
    if "conversations" in keys:
        return "sharegpt"
    if {"instruction", "output"} <= keys:
        return "alpaca"
    if {"prompt", "completion"} <= keys:
        return "prompt_completion"
    return None


def check_format(name: str) -> str:
    if name not in FORMAT_KIND:
        raise UnsupportedFormatError(f"unknown format {name!r}: choose one of {', '.join(FORMATS)}")
    return name


def _text(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # OpenAI content parts: [{"type": "text", "text": ...}, ...]
        parts = [
            p.get("text", "")
            for p in value
            if isinstance(p, dict) and p.get("type", "text") == "text"
        ]
        if parts:
            return "".join(parts)
    raise ValueError(f"{what} must be text, got {type(value).__name__}")


class ToolCallsError(ValueError):
    """A turn carries tool calls, which postmix records (role/content turns) cannot hold."""


_TOOL_FIELDS = ("tool_calls", "function_call", "tool_call_id")


def _messages(value: Any, what: str, *, default_role: str) -> list[dict[str, str]]:
    """A string becomes one turn of ``default_role``; a list of {role, content} is kept."""
    if isinstance(value, str):
        return [{"role": default_role, "content": value}]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a string or a list of messages")
    turns = []
    for i, item in enumerate(value):
        if isinstance(item, dict) and any(item.get(k) for k in _TOOL_FIELDS):
            # keeping the text and dropping the calls would leave tool replies to calls that are
            # gone
            raise ToolCallsError(
                f"{what}[{i}] has {'/'.join(k for k in _TOOL_FIELDS if item.get(k))}: postmix "
                "records hold role/content turns only, so the row cannot be kept whole"
            )
        if not isinstance(item, dict) or "role" not in item or "content" not in item:
            raise ValueError(f"{what}[{i}] must be an object with role and content")
        turns.append(
            {"role": str(item["role"]), "content": _text(item["content"], f"{what}[{i}].content")}
        )
    return turns


def _meta(row: dict[str, Any], consumed: set[str]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    existing = row.get("meta")
    if isinstance(existing, str) and existing.strip():
        try:
            existing = jsontext.loads(existing)
        except jsontext.JsonTextError:
            existing = {"meta": existing}
    if isinstance(existing, dict):
        meta.update(existing)
    for key, value in row.items():
        if key in consumed or key == "meta" or value is None:
            continue
        meta[key] = value if isinstance(value, (str, int, float, bool, list, dict)) else str(value)
    return meta


def _row_id(row: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = row.get(key)
        if value is not None and str(value).strip():
            return str(value)
    return None


def _common_prefix(a: list[dict[str, str]], b: list[dict[str, str]]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _sft(
    row: dict[str, Any], messages: list[dict[str, str]], consumed: set[str], source: str
) -> SFTRecord:
    source = str(row.get("source") or source)
    rid = _row_id(row, "id") or stable_id("sft", {"messages": messages, "source": source})
    return SFTRecord(id=rid, messages=messages, source=source,
                     meta=_meta(row, consumed | {"id", "source"}))


def from_messages(row: dict[str, Any], source: str) -> SFTRecord:
    return _sft(
        row, _messages(row["messages"], "messages", default_role="user"), {"messages"}, source
    )


def from_sharegpt(row: dict[str, Any], source: str) -> SFTRecord:
    turns = row["conversations"]
    if not isinstance(turns, list):
        raise ValueError("conversations must be a list")
    messages = []
    if isinstance(row.get("system"), str) and row["system"].strip():
        messages.append({"role": "system", "content": row["system"]})
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            raise ValueError(f"conversations[{i}] must be an object with from and value")
        speaker = str(turn["from"]).lower()
        if speaker not in SHAREGPT_ROLES:
            raise ValueError(f"conversations[{i}] has unknown speaker {turn['from']!r}")
        messages.append(
            {
                "role": SHAREGPT_ROLES[speaker],
                "content": _text(turn["value"], f"conversations[{i}].value"),
            }
        )
    return _sft(row, messages, {"conversations", "system"}, source)


def from_alpaca(row: dict[str, Any], source: str) -> SFTRecord:
    instruction = _text(row["instruction"], "instruction")
    extra = row.get("input")
    user = f"{instruction}\n\n{extra}" if isinstance(extra, str) and extra.strip() else instruction
    messages = []
    if isinstance(row.get("system"), str) and row["system"].strip():
        messages.append({"role": "system", "content": row["system"]})
    messages += [{"role": "user", "content": user},
                 {"role": "assistant", "content": _text(row["output"], "output")}]
    return _sft(row, messages, {"instruction", "input", "output", "system"}, source)


def from_prompt_completion(row: dict[str, Any], source: str) -> SFTRecord:
    messages = _messages(row["prompt"], "prompt", default_role="user")
    messages += _messages(row["completion"], "completion", default_role="assistant")
    return _sft(row, messages, {"prompt", "completion"}, source)


def _preference(
    row: dict[str, Any], source: str, *, score_keys: tuple[str, str]
) -> PreferenceRecord:
    chosen = _messages(row["chosen"], "chosen", default_role="assistant")
    rejected = _messages(row["rejected"], "rejected", default_role="assistant")
    if row.get("prompt") is not None:
        prompt = _messages(row["prompt"], "prompt", default_role="user")
        # UltraFeedback-binarized and some TRL sets repeat the prompt inside chosen/rejected
        if chosen[: len(prompt)] == prompt and rejected[: len(prompt)] == prompt:
            chosen, rejected = chosen[len(prompt):], rejected[len(prompt):]
    else:  # TRL "implicit prompt": the shared prefix of both conversations is the prompt
        shared = _common_prefix(chosen, rejected)
        while shared and chosen[shared - 1]["role"] != "user":
            shared -= 1
        prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
    record_source = str(row.get("source") or source)
    scores = {
        name: row.get(key)
        for name, key in zip(("chosen_score", "rejected_score"), score_keys, strict=True)
    }
    rid = _row_id(row, "id", "prompt_id") or stable_id(
        "pref", {"prompt": prompt, "chosen": chosen, "rejected": rejected, "source": record_source}
    )
    consumed = {"id", "prompt_id", "prompt", "chosen", "rejected", "source", *score_keys,
                "chosen_model", "rejected_model"}
    return PreferenceRecord(
        id=rid, prompt=prompt, chosen=chosen, rejected=rejected,
        chosen_score=scores["chosen_score"], rejected_score=scores["rejected_score"],
        chosen_model=row.get("chosen_model"), rejected_model=row.get("rejected_model"),
        source=record_source, meta=_meta(row, consumed),
    )


def from_trl_preference(row: dict[str, Any], source: str) -> PreferenceRecord:
    return _preference(row, source, score_keys=("chosen_score", "rejected_score"))


def from_ultrafeedback(row: dict[str, Any], source: str) -> PreferenceRecord:
    return _preference(row, source, score_keys=("score_chosen", "score_rejected"))


def from_rlvr(row: dict[str, Any], source: str) -> RLVRRecord:
    """Tulu 3 RLVR rows: ``messages`` (the prompt), ``ground_truth``, ``dataset`` (= verifier)."""
    key = "prompt" if "prompt" in row else "messages"
    prompt = _messages(row[key], key, default_role="user")
    verifier = row.get("verifier") or row.get("dataset")
    if not verifier:
        raise ValueError("RLVR row needs a verifier (or Tulu's dataset) field")
    if isinstance(verifier, list):  # Tulu stores ["gsm8k"]
        verifier = verifier[0]
    truth = row["ground_truth"]
    if isinstance(truth, list) and len(truth) == 1:
        truth = truth[0]
    truth = truth if isinstance(truth, str) else json.dumps(truth, ensure_ascii=False)
    record_source = str(row.get("source") or source)
    rid = _row_id(row, "id") or stable_id(
        "rlvr",
        {"prompt": prompt, "ground_truth": truth, "verifier": verifier, "source": record_source},
    )
    return RLVRRecord(
        id=rid,
        prompt=prompt,
        ground_truth=truth,
        verifier=str(verifier),
        constraints=row.get("constraints"),
        source=record_source,
        meta=_meta(
            row, {"id", key, "ground_truth", "verifier", "dataset", "constraints", "source"}
        ),
    )


CONVERTERS: dict[str, Callable[[dict[str, Any], str], _Record]] = {
    "messages": from_messages,
    "sharegpt": from_sharegpt,
    "alpaca": from_alpaca,
    "prompt_completion": from_prompt_completion,
    "trl_preference": from_trl_preference,
    "ultrafeedback": from_ultrafeedback,
    "rlvr": from_rlvr,
}


def convert(row: dict[str, Any], fmt: str, *, source: str) -> _Record:
    return CONVERTERS[fmt](row, source)
