"""A row that left a stage without reaching its output, and why.

``reason`` is a short machine-readable code that reports count by (``malformed_json``,
``schema``, ``near_duplicate``, ``contaminated``...); ``detail`` carries the specifics
(``duplicate_of=<id> similarity=0.91``, ``contaminated:gsm8k:<instance>:0.62``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


class Reject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step: str | None = None  # the stage or step that rejected it (``load``: unreadable input)
    reason: str
    detail: str = ""
    line: int | None = None
    id: str | None = None
    source: str | None = None
    row: Any = None

    @field_validator("id", "source", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        # the id a bad row gave may be anything (5, a list): its reject must still be written
        return value if value is None or isinstance(value, str) else str(value)

    def to_row(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
