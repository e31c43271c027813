"""Reading the judge steps' completion rows one by one, each unusable row becoming a reason.

Rows are read with ``iter_raw_rows`` (JSONL, Parquet, Arrow folders, Hub) and validated one at a
time: the model calls that follow cost milliseconds each, so this per-row glue is never the
bottleneck, and a bad row becomes a failure entry instead of aborting the run.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from postmix.io.read import iter_raw_rows
from postmix.llm.model_stage import Loaded, validation_text
from postmix.schemas import Completion, Rating, Reject

COMPLETION_FIELDS = tuple(Completion.model_fields)


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
            detail = validation_text(exc) if isinstance(exc, ValidationError) else (
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
