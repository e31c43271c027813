"""``train verify``: score a file of responses with the verifiers, standalone.

Input rows carry ``response``, ``ground_truth``, ``verifier`` and optionally ``constraints``
(and ``id``); any format ``iter_raw_rows`` reads. Every row ends in exactly one place: the
scores file (correct or not) or the rejects file (unreadable, or unscorable with a reason such
as ``unknown_verifier``, ``bad_ground_truth``, ``bad_constraint``, ``no_response``). The report
gives accuracy per verifier over the scored rows and reconciles ``in == scored + rejected``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postmix.io.read import iter_raw_rows
from postmix.io.write import RowWriter, rejects_path, report_path
from postmix.progress import progress_bar
from postmix.schemas import Reject, StepReport
from postmix.verifiers import verify


@dataclass
class VerifyResult:
    scores: Path
    rejects: Path
    report: StepReport


def default_scores_path(source: str | Path) -> Path:
    """``answers.jsonl`` -> ``answers.scores.jsonl`` beside it."""
    source = Path(source)
    stem = source.name
    for suffix in (".jsonl.gz", ".jsonl", ".ndjson", ".parquet", ".json"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return source.with_name(stem + ".scores.jsonl")


def verify_file(source: str | Path, output: str | Path | None = None, *,
                progress: bool | None = None) -> VerifyResult:
    """Score every row of ``source``;
    write scores, rejects and a report with per-verifier accuracy."""
    output = Path(output) if output is not None else default_scores_path(source)
    rows_in = 0
    rejected: Counter[str] = Counter()
    correct: dict[str, int] = defaultdict(int)
    scored: dict[str, int] = defaultdict(int)
    failures: dict[str, Counter[str]] = defaultdict(Counter)
    with RowWriter(output) as scores, RowWriter(rejects_path(output)) as rejects, \
            progress_bar("verify", None, enabled=progress) as bar:
        for raw in iter_raw_rows(source):
            rows_in += 1
            bar.advance(1)
            if raw.data is None:
                rejected[raw.error or "unreadable"] += 1
                rejects.write(Reject(reason=raw.error or "unreadable", detail=raw.detail,
                                     line=raw.line, row=raw.raw).to_row())
                continue
            row: dict[str, Any] = raw.data
            name = str(row.get("verifier") or "")
            verdict = verify(
                row.get("response"), row.get("ground_truth"), name, row.get("constraints")
            )
            if not verdict.scorable:
                rejected[verdict.reason] += 1
                rejects.write(Reject(reason=verdict.reason, detail=verdict.detail, line=raw.line,
                                     id=_id(row), row=row).to_row())
                continue
            key = name.lower()
            scored[key] += 1
            correct[key] += bool(verdict.correct)
            if verdict.reason:
                failures[key][verdict.reason] += 1
            scores.write({"line": raw.line, "id": _id(row), "verifier": key,
                          "correct": bool(verdict.correct), "reason": verdict.reason,
                          "extracted": verdict.extracted, "detail": verdict.detail})
    per_verifier = {name: {"rows": scored[name], "correct": correct[name],
                           "accuracy": correct[name] / scored[name],
                           "wrong_reasons": dict(failures[name])}
                    for name in sorted(scored)}
    total = sum(scored.values())
    report = StepReport(
        step="train.verify",
        rows_in=rows_in,
        rows_out=total,
        rejected=dict(sorted(rejected.items())),
        inputs=[str(source)],
        outputs={"scores": str(output), "rejects": str(rejects_path(output))},
        details={
            "accuracy": sum(correct.values()) / total if total else None,
            "per_verifier": per_verifier,
        },
    )
    report.write(report_path(output))
    return VerifyResult(output, rejects_path(output), report)


def _id(row: dict[str, Any]) -> str | None:
    value = row.get("id")
    return None if value is None else str(value)
