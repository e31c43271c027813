"""The report every step writes next to its output: what went in, what came out, why the rest left.

A report whose counts do not reconcile (``rows_in != rows_out + sum(rejected)``) cannot be built:
that would mean a stage lost rows without a trace, which is a bug, not a user error.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from postmix import __version__


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class StepReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step: str
    config: dict[str, Any] = Field(default_factory=dict)
    rows_in: int = Field(ge=0)
    rows_out: int = Field(ge=0)
    rejected: dict[str, int] = Field(default_factory=dict, description="reason code -> rows")
    timings: dict[str, float] = Field(default_factory=dict, description="phase -> seconds")
    inputs: list[str] = Field(default_factory=list)
    outputs: dict[str, str] = Field(default_factory=dict, description="role -> path")
    details: dict[str, Any] = Field(default_factory=dict, description="step-specific statistics")
    postmix_version: str = __version__
    started_at: str = Field(default_factory=_now)
    finished_at: str = Field(default_factory=_now)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @model_validator(mode="after")
    def _reconciles(self) -> StepReport:
        if self.rows_in != self.rows_out + self.rejected_total:
            raise ValueError(
                f"step {self.step!r} does not reconcile: in={self.rows_in} "
                f"out={self.rows_out} rejected={self.rejected_total} {self.rejected}"
            )
        return self

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _warn_if_replacing_another_outputs_report(path, self.outputs.get("data"))
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=False) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, path: str | Path) -> StepReport:
        return cls.model_validate_json(Path(path).read_text())

    def summary(self) -> str:
        parts = [f"{self.step}: in={self.rows_in} out={self.rows_out}"]
        if self.rejected:
            reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.rejected.items()))
            parts.append(f"rejected={self.rejected_total} ({reasons})")
        return " ".join(parts)


def _warn_if_replacing_another_outputs_report(path: Path, data: str | None) -> None:
    """Reports (and rejects) are named after the output's stem, so ``x.jsonl`` then ``x.parquet``
    in one folder share ``x.report.json``: say so rather than lose the first audit trail quietly."""
    if data is None or not path.exists():
        return
    try:
        previous = json.loads(path.read_text()).get("outputs", {}).get("data")
    except (OSError, ValueError, AttributeError):
        return
    if previous and Path(previous).resolve() != Path(data).resolve():
        logging.getLogger("postmix").warning(
            "%s held the report (and its .rejects file the rejects) of %s; they now describe %s. "
            "Give outputs distinct names to keep both.", path, previous, data)
