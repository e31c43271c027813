"""A row that left a stage without reaching its output, and why.

``reason`` is a short machine-readable code that reports count by (``malformed_json``,
``schema``, ``near_duplicate``, ``contaminated``...); ``detail`` carries the specifics
(``duplicate_of=<id> similarity=0.91``, ``contaminated:gsm8k:<instance>:0.62``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Reject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step: str | None = None  # the stage or step that rejected it (``load``: unreadable input)
    reason: str
    detail: str = ""
    line: int | None = None
    id: str | None = None
    source: str | None = None
    row: Any = None

    def to_row(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
