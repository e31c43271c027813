"""Reading the judge steps' inputs row by row, turning each unusable row into a reason.

Rows are read with ``iter_raw_rows`` (JSONL, Parquet, Arrow folders, Hub) and validated one at a
time: the model calls that follow cost milliseconds each, so this per-row glue is never the
bottleneck, and a bad row becomes a failure entry instead of aborting the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from postmix.io.read import iter_raw_rows
from postmix.io.write import rejects_path
from postmix.schemas import Completion, Message, Rating, Reject, jsontext, stable_id

COMPLETION_FIELDS = tuple(Completion.model_fields)


def failures_path(output: str | Path) -> Path:
    """``out/rated.jsonl`` -> ``out/rated.failures.jsonl``."""
    rejects = rejects_path(output)
    return rejects.with_name(rejects.name.removesuffix(".rejects.jsonl") + ".failures.jsonl")


def default_cache_path(output: str | Path) -> Path:
    """``out/rated.jsonl`` -> ``out/rated.cache.sqlite``: re-running the command resumes it."""
    rejects = rejects_path(output)
    return rejects.with_name(rejects.name.removesuffix(".rejects.jsonl") + ".cache.sqlite")


def _validation_text(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(row)"
    return f"{where}: {first['msg']}"


@dataclass
class PromptRow:
    id: str
    prompt: list[dict[str, str]]
    source: str
    line: int


@dataclass
class Loaded:
    """Usable items plus rejects for the rest, in input order."""

    items: list[Any] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def prompt_messages(data: dict[str, Any]) -> list[dict[str, str]] | None:
    """The conversation up to and including the last user turn, from SFT or prompt-only rows."""
    value = data.get("messages")
    if value is None:
        value = data.get("prompt")
    if isinstance(value, str):
        value = jsontext.loads(value) if value.lstrip().startswith("[") else [
            {"role": "user", "content": value}]
    if not isinstance(value, list):
        return None
    messages = [Message.model_validate(m).model_dump() for m in value]
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    return messages[: last_user + 1] if last_user >= 0 else None


def load_prompts(source: str | Path) -> Loaded:
    loaded = Loaded()
    seen: set[str] = set()
    default_source = Path(str(source)).name.split(".")[0]
    for raw in iter_raw_rows(source):
        if raw.data is None:
            loaded.rejects.append(Reject(reason=raw.error or "unreadable", detail=raw.detail,
                                         line=raw.line, row=raw.raw))
            continue
        try:
            prompt = prompt_messages(raw.data)
        except (ValidationError, ValueError) as exc:
            detail = _validation_text(exc) if isinstance(exc, ValidationError) else str(exc)
            loaded.rejects.append(Reject(reason="bad_prompt", detail=detail, line=raw.line,
                                         id=raw.data.get("id"), row=raw.data))
            continue
        if not prompt:
            loaded.rejects.append(Reject(reason="no_prompt", detail="row has no 'messages' or "
                                         "'prompt' with a user turn", line=raw.line,
                                         id=raw.data.get("id"), row=raw.data))
            continue
        prompt_id = str(raw.data.get("id") or stable_id("prompt", prompt))
        if prompt_id in seen:
            loaded.rejects.append(Reject(reason="duplicate_prompt", detail=f"id {prompt_id} "
                                         "appeared earlier", line=raw.line, id=prompt_id,
                                         row=raw.data))
            continue
        seen.add(prompt_id)
        loaded.items.append(PromptRow(prompt_id, prompt, str(raw.data.get("source") or
                                                              default_source), raw.line))
    return loaded


def load_completions(source: str | Path, *, rated: bool = False) -> Loaded:
    """Completion rows (with their ``Rating`` when ``rated``), ids unique."""
    loaded = Loaded()
    seen: set[str] = set()
    for raw in iter_raw_rows(source):
        if raw.data is None:
            loaded.rejects.append(Reject(reason=raw.error or "unreadable", detail=raw.detail,
                                         line=raw.line, row=raw.raw))
            continue
        data = raw.data
        try:
            completion = Completion.model_validate({k: data[k] for k in COMPLETION_FIELDS
                                                    if k in data})
            rating = Rating.model_validate_json(data["rating"]) if rated and isinstance(
                data.get("rating"), str) else (Rating.model_validate(data["rating"]) if rated
                                               else None)
        except (ValidationError, KeyError, TypeError) as exc:
            detail = _validation_text(exc) if isinstance(exc, ValidationError) else (
                f"missing {exc}" if isinstance(exc, KeyError) else str(exc))
            loaded.rejects.append(Reject(reason="bad_row", detail=detail, line=raw.line,
                                         id=data.get("id"), row=data))
            continue
        if completion.id in seen:
            loaded.rejects.append(Reject(reason="duplicate_completion", detail=f"id "
                                         f"{completion.id} appeared earlier", line=raw.line,
                                         id=completion.id, row=data))
            continue
        seen.add(completion.id)
        loaded.items.append((completion, rating) if rated else completion)
    return loaded
