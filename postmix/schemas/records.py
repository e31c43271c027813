"""The records every stage reads and writes.

On disk (JSONL, Parquet, Arrow) free-form dictionaries (``meta``, ``judge``, ``sampling``,
``constraints``) are stored as canonical JSON strings: a dict column whose keys vary per row has no
stable Arrow type, and a string column does. ``model_dump(mode="json")`` produces that row form and
``model_validate`` accepts either a JSON string or a dict.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from postmix.schemas import jsontext

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")


def _json_object(value: Any) -> Any:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = jsontext.loads(value)
        except jsontext.JsonTextError as exc:
            raise ValueError(f"not a JSON object: {exc.detail}") from None
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object")
    return value


def _json_text(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


JsonDict = Annotated[
    dict[str, Any],
    BeforeValidator(_json_object),
    PlainSerializer(_json_text, return_type=str, when_used="json"),
]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, validate_assignment=False)

    def to_row(self) -> dict[str, Any]:
        """The flat on-disk form (dicts as JSON strings)."""
        return self.model_dump(mode="json")


class Message(_Record):
    role: Role
    content: str

    @field_validator("content")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message content is empty")
        return value


def _check_prompt(prompt: list[Message], what: str) -> None:
    if not prompt:
        raise ValueError(f"{what} has no messages")
    if prompt[-1].role != "user":
        raise ValueError(f"{what} must end with a user turn, ends with {prompt[-1].role}")


def _check_response(turns: list[Message], what: str) -> None:
    if not turns:
        raise ValueError(f"{what} has no messages")
    if turns[-1].role != "assistant":
        raise ValueError(f"{what} must end with an assistant turn, ends with {turns[-1].role}")


class SFTRecord(_Record):
    id: str = Field(min_length=1)
    messages: list[Message]
    source: str = "unknown"
    meta: JsonDict = Field(default_factory=dict)

    @model_validator(mode="after")
    def _conversation_shape(self) -> SFTRecord:
        _check_response(self.messages, "conversation")
        if not any(m.role == "user" for m in self.messages):
            raise ValueError("conversation has no user turn")
        return self


class PreferenceRecord(_Record):
    id: str = Field(min_length=1)
    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]
    chosen_score: float | None = None
    rejected_score: float | None = None
    chosen_model: str | None = None
    rejected_model: str | None = None
    judge: JsonDict = Field(default_factory=dict)
    source: str = "unknown"
    meta: JsonDict = Field(default_factory=dict)

    @model_validator(mode="after")
    def _pair_shape(self) -> PreferenceRecord:
        _check_prompt(self.prompt, "preference prompt")
        _check_response(self.chosen, "chosen")
        _check_response(self.rejected, "rejected")
        if [m.content.strip() for m in self.chosen] == [m.content.strip() for m in self.rejected]:
            raise ValueError("chosen and rejected are identical")
        return self


class RLVRRecord(_Record):
    id: str = Field(min_length=1)
    prompt: list[Message]
    ground_truth: str
    verifier: str = Field(min_length=1)
    constraints: list[JsonDict] | None = None
    source: str = "unknown"
    meta: JsonDict = Field(default_factory=dict)

    @field_validator("constraints", mode="before")
    @classmethod
    def _constraints_from_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            return jsontext.loads(value) if value.strip() else None
        return value

    @model_validator(mode="after")
    def _prompt_shape(self) -> RLVRRecord:
        _check_prompt(self.prompt, "RLVR prompt")
        return self


class Completion(_Record):
    """One sampled response to one prompt, by one model."""

    id: str = Field(min_length=1)
    prompt_id: str = Field(min_length=1)
    prompt: list[Message]
    response: str
    model: str
    sampling: JsonDict = Field(default_factory=dict)
    source: str = "unknown"
    meta: JsonDict = Field(default_factory=dict)

    @model_validator(mode="after")
    def _prompt_shape(self) -> Completion:
        _check_prompt(self.prompt, "completion prompt")
        return self


class AspectRating(_Record):
    score: int = Field(ge=1, le=5)
    rationale: str = ""


class Rating(_Record):
    """A judge's ratings of one completion, per aspect (UltraFeedback: 1-5 each)."""

    completion_id: str = Field(min_length=1)
    prompt_id: str = Field(min_length=1)
    judge_model: str
    aspects: dict[str, AspectRating]

    @property
    def mean(self) -> float:
        return sum(a.score for a in self.aspects.values()) / len(self.aspects)

    @field_validator("aspects")
    @classmethod
    def _some_aspect(cls, value: dict[str, AspectRating]) -> dict[str, AspectRating]:
        if not value:
            raise ValueError("a rating needs at least one aspect")
        return value


RECORD_KINDS: dict[str, type[_Record]] = {
    "sft": SFTRecord,
    "preference": PreferenceRecord,
    "rlvr": RLVRRecord,
    "completion": Completion,
}
