"""``postmix ingest``: read any supported file, convert each row to a postmix record, write the
good rows and account for every bad one.

Ids must be unique within an output, because later stages point at them (``duplicate_of=<id>``).
A derived id that repeats (the same conversation twice in one source) gets a ``~N`` suffix in
order of appearance, which keeps re-runs identical; a repeated id the *input* supplied is a
reject, since silently renaming a user's id would break their own references.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from postmix.errors import BadRowError, UnsupportedFormatError
from postmix.io.claims import claim_outputs
from postmix.io.errors_text import one_line
from postmix.io.formats import FORMAT_KIND, ToolCallsError, check_format, convert, detect_format
from postmix.io.read import RawRow, iter_raw_rows
from postmix.io.write import RowWriter, rejects_path, report_path
from postmix.pausepoints import pause
from postmix.progress import progress_bar
from postmix.schemas import FEATURES, Reject, StepReport


@dataclass
class IngestResult:
    report: StepReport
    output: Path
    rejects: Path
    kind: str


def _source_name(path: str | Path) -> str:
    text = str(path)
    if text.startswith("hf:"):
        return text[3:].partition("@")[0]
    name = Path(text).name
    return name.split(".")[0] or name


class _Ids:
    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def claim(self, record_id: str, derived: bool, line: int) -> str:
        if record_id not in self.seen:
            self.seen[record_id] = line
            return record_id
        if not derived:
            raise ValueError(f"id {record_id!r} already used at line {self.seen[record_id]}")
        n = 1
        while f"{record_id}~{n}" in self.seen:
            n += 1
        unique = f"{record_id}~{n}"
        self.seen[unique] = line
        return unique


def ingest(
    source: str | Path,
    output: str | Path,
    *,
    format: str | None = None,
    strict: bool = False,
    source_name: str | None = None,
    split: str = "train",
    progress: bool | None = None,
) -> IngestResult:
    """Convert ``source`` into postmix records at ``output`` (+ rejects + report beside it).
    The outputs are claimed first (never the input, never another run's); the output is renamed
    into place last, after its rejects and report, so a stopped run leaves it absent or whole."""
    output = Path(output)
    with claim_outputs([output, rejects_path(output), report_path(output)], inputs=[source]):
        return _ingest(source, output, format=format, strict=strict, source_name=source_name,
                       split=split, progress=progress)


def _ingest(source: str | Path, output: Path, *, format: str | None, strict: bool,
            source_name: str | None, split: str, progress: bool | None) -> IngestResult:
    started = time.perf_counter()
    published: list[Path] = []
    fmt = check_format(format) if format else None
    kind = FORMAT_KIND[fmt] if fmt else None
    default_source = source_name or _source_name(source)
    output = Path(output)
    rejected: dict[str, int] = {}
    rows_in = 0
    writer: RowWriter | None = None
    detected: str | None = fmt
    ids = _Ids()
    bad = RowWriter(rejects_path(output))

    def reject(raw: RawRow, reason: str, detail: str, rid: str | None = None) -> None:
        if strict:
            raise BadRowError(
                f"{source} line {raw.line}: {reason}: {detail} (drop --strict to collect bad rows "
                "instead)"
            )
        rejected[reason] = rejected.get(reason, 0) + 1
        given_source = raw.data.get("source") if isinstance(raw.data, dict) else None
        bad.write(Reject(reason=reason, detail=detail, line=raw.line, id=rid,
                         source=str(given_source) if given_source is not None else None,
                         row=raw.data if raw.data is not None else raw.raw).to_row())

    try:
        with progress_bar(f"ingest {Path(str(source)).name}", None, enabled=progress) as bar:
            for raw in iter_raw_rows(source, split=split):
                rows_in += 1
                bar.advance()
                if raw.error:
                    reject(raw, raw.error, raw.detail)
                    continue
                row_fmt = fmt or detect_format(raw.data)
                if row_fmt is None:
                    keys = ", ".join(sorted(raw.data)[:8])
                    reject(
                        raw, "unknown_format", f"no known format has keys [{keys}]; pass --format"
                    )
                    continue
                if kind is None:
                    kind, detected = FORMAT_KIND[row_fmt], row_fmt
                elif FORMAT_KIND[row_fmt] != kind:
                    reject(raw, "mixed_kinds", f"a {FORMAT_KIND[row_fmt]} row in a {kind} file")
                    continue
                try:
                    record = convert(raw.data, row_fmt, source=default_source)
                    # an id taken from prompt_id (UltraFeedback) is not the row's own: several pairs
                    # per prompt are normal, so repeats get a ~N suffix like content-derived ids
                    derived = raw.data.get("id") is None
                    record.id = ids.claim(record.id, derived, raw.line)
                except (ValidationError, ValueError, KeyError, TypeError) as exc:
                    reason = ("tool_calls" if isinstance(exc, ToolCallsError)
                              else "duplicate_id" if "already used" in str(exc) else "schema")
                    detail = (
                        one_line(exc) if not isinstance(exc, KeyError) else f"missing field {exc}"
                    )
                    given = (
                        raw.data.get("id")
                        if raw.data.get("id") is not None
                        else raw.data.get("prompt_id")
                    )
                    reject(raw, reason, detail, None if given is None else str(given))
                    continue
                if writer is None:
                    writer = RowWriter(output, schema=FEATURES[kind].arrow_schema)
                writer.write(record.to_row())
        if writer is None:  # no good rows at all: still publish an empty, correctly typed output
            writer = RowWriter(output, schema=FEATURES[kind or "sft"].arrow_schema)
        pause("ingest:rows_written")
        published.append(bad.close())
        report = StepReport(
            step="ingest",
            config={
                "format": fmt or "auto",
                "strict": strict,
                "source_name": default_source,
                "split": split,
            },
            rows_in=rows_in,
            rows_out=writer.rows,
            rejected=rejected,
            timings={"total": round(time.perf_counter() - started, 3)},
            inputs=[str(source)],
            outputs={"data": str(output), "rejects": str(bad.path)},
            details={"kind": kind or "sft", "format": detected},
        )
        published.append(report.write(report_path(output)))
        writer.close()  # last: the output appears only beside its rejects and report
    except BaseException:
        if writer is not None:
            writer.abort()
        bad.abort()
        for path in published:  # the output was not published: nothing may describe it
            path.unlink(missing_ok=True)
        raise
    if kind is None and rows_in and not rejected:
        raise UnsupportedFormatError(f"could not tell the format of {source}: pass --format")
    return IngestResult(report=report, output=output, rejects=bad.path, kind=kind or "sft")
