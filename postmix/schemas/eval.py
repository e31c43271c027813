"""What ``postmix eval`` writes and what the mix registry, the leaderboard and run cards read.

It lives in ``schemas`` (the lowest layer) because both ``eval`` and ``mix`` need it and neither
may import the other. ``results.json`` in an eval's output folder is one :class:`EvalResult`; the
per-item files beside it hold one :class:`ItemResult` per line.

Every benchmark accounts for every item: ``items == scored + sum(rejected.values())``; a result
that does not reconcile cannot be built.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from postmix import __version__

RESULTS_FILE = "results.json"
SCHEMA_VERSION = 1


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ItemResult(BaseModel):
    """One benchmark item: what was asked, what came back, how it was judged."""

    model_config = ConfigDict(extra="forbid")

    id: str
    prompt: str
    response: str | None = None
    extracted: str | None = None
    verdict: bool | None = Field(None, description="None when the item was not scored")
    score: float | None = Field(None, description="in [0, 1]; 1.0/0.0 for a pass/fail verdict")
    reason: str | None = Field(None, description="reject reason code, or the verifier's reason")
    status: Literal["scored", "rejected"] = "scored"
    details: dict[str, Any] = Field(default_factory=dict, description="e.g. IFEval per-instruction")


class BenchmarkScore(BaseModel):
    """One benchmark's headline number with its bootstrap interval and its accounting."""

    model_config = ConfigDict(extra="forbid")

    benchmark: str
    metric: str = Field(description="e.g. accuracy, prompt_level_strict, win_rate")
    score: float | None = Field(description="None when the benchmark was skipped")
    ci_low: float | None = None
    ci_high: float | None = None
    items: int = Field(0, ge=0)
    scored: int = Field(0, ge=0)
    rejected: dict[str, int] = Field(default_factory=dict, description="reason code -> items")
    metrics: dict[str, float] = Field(default_factory=dict, description="secondary metrics")
    prompt_format: dict[str, Any] = Field(
        default_factory=dict, description="shots, chat template, stop sequences: enough to redo it")
    items_file: str | None = Field(None, description="per-item .jsonl, relative to results.json")
    skipped: str | None = Field(None, description="one-line reason when not run at all")

    @model_validator(mode="after")
    def _reconciles(self) -> BenchmarkScore:
        if self.skipped is None and self.items != self.scored + sum(self.rejected.values()):
            raise ValueError(
                f"{self.benchmark}: items={self.items} != scored={self.scored} + rejected="
                f"{sum(self.rejected.values())}")
        return self


class EvalResult(BaseModel):
    """One model evaluated on one or more benchmarks, tied to the run and mix it came from."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    model: str = Field(description="folder, Hub name, run folder or endpoint name as given")
    model_kind: Literal["local", "hub", "run", "endpoint"]
    run_id: str | None = Field(None, description="from the run card when MODEL is a run folder")
    run_dir: str | None = None
    mix: str | None = Field(None, description="'name@version' the run trained on")
    scores: list[BenchmarkScore]
    generation: dict[str, Any] = Field(default_factory=dict, description="backend, sampling")
    config: dict[str, Any] = Field(default_factory=dict)
    postmix_version: str = __version__
    created_at: str = Field(default_factory=_now)

    def score(self, benchmark: str) -> BenchmarkScore | None:
        return next((s for s in self.scores if s.benchmark == benchmark), None)


def write_result(folder: str | Path, result: EvalResult) -> Path:
    """``folder/results.json``, written whole then renamed, so a reader never sees half of it."""
    path = Path(folder) / RESULTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(result.model_dump(mode="json"), indent=2) + "\n",
                       encoding="utf-8")
    partial.replace(path)
    return path


def read_result(path: str | Path) -> EvalResult:
    """An eval result from its ``results.json`` or the folder that holds it."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    return EvalResult.model_validate_json(path.read_text(encoding="utf-8"))
