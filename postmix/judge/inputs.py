"""Reading the judge steps' completion rows one by one, each unusable row becoming a reason.

Rows are read with ``iter_raw_rows`` (JSONL, Parquet, Arrow folders, Hub) and validated one at a
time: the model calls that follow cost milliseconds each, so this per-row glue is never the
bottleneck, and a bad row becomes a failure entry instead of aborting the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from postmix.llm.model_stage import BadRow, Loaded, load_rows, validation_text
from postmix.schemas import Completion, Rating

COMPLETION_FIELDS = tuple(Completion.model_fields)
TRUNCATED_DETAIL = ("cut off by max_tokens (finish_reason: length): raise --max-tokens in `judge "
                    "generate`, or pass --keep-truncated to use it anyway")


def is_truncated(completion: Completion) -> bool:
    """Cut off by max_tokens: marked so by `judge generate`, or a finish_reason of ``length``
    (completions made elsewhere)."""
    meta = completion.meta or {}
    return meta.get("truncated") is True or meta.get("finish_reason") == "length"


def load_completions(source: str | Path, *, rated: bool = False) -> Loaded:
    """Completion rows (with their ``Rating`` when ``rated``), ids unique."""

    def parse(data: dict[str, Any], line: int) -> tuple[str, Any]:
        try:
            completion = Completion.model_validate({k: data[k] for k in COMPLETION_FIELDS
                                                    if k in data})
            rating = Rating.model_validate_json(data["rating"]) if rated and isinstance(
                data.get("rating"), str) else (Rating.model_validate(data["rating"]) if rated
                                               else None)
        except (ValidationError, KeyError, TypeError) as exc:
            raise BadRow("bad_row", validation_text(exc) if isinstance(exc, ValidationError) else (
                f"missing {exc}" if isinstance(exc, KeyError) else str(exc))) from None
        return completion.id, (completion, rating) if rated else completion

    return load_rows(source, parse, "duplicate_completion")
