"""What every dataset-to-dataset stage (filter, dedup, decontam, ...) shares: load the input,
split rows into kept and rejected by the stage's verdicts, write output + rejects + report.

A stage function decides; it never writes. It returns a ``Verdicts`` with one entry per input
row (``None`` = keep), so the accounting ``in == out + rejected`` holds by construction.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa

from postmix.io.dataset import dataset_table, load_records, write_table
from postmix.io.write import RowWriter, rejects_path, report_path
from postmix.schemas import StepReport

REJECTS_BATCH = 2048


@dataclass
class Verdicts:
    """Per-row outcome of a stage. ``reasons[i] is None`` keeps row ``i``."""

    reasons: Sequence[str | None]
    details: Sequence[str]
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.reasons) != len(self.details):
            raise ValueError("reasons and details must have one entry per row")

    @classmethod
    def keep_all(cls, n: int) -> Verdicts:
        return cls([None] * n, [""] * n)

    def kept_indices(self) -> np.ndarray:
        return np.fromiter((i for i, r in enumerate(self.reasons) if r is None), dtype=np.int64)

    def rejected_indices(self) -> np.ndarray:
        return np.fromiter((i for i, r in enumerate(self.reasons) if r is not None), dtype=np.int64)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(r for r in self.reasons if r is not None).items()))


@dataclass
class StageOutput:
    kept: datasets.Dataset
    report: StepReport
    output: Path
    rejects: Path


def write_rejects(
    writer: RowWriter, table: pa.Table, verdicts: Verdicts, indices: np.ndarray,
    lines: np.ndarray | None = None,
) -> None:
    """Rejected rows, whole, with reason and detail, so any of them can be restored; with
    ``lines`` (row -> line of the input file) each also says where it came from."""
    for start in range(0, len(indices), REJECTS_BATCH):
        chunk = indices[start : start + REJECTS_BATCH]
        rows = table.take(pa.array(chunk)).to_pylist()
        for index, row in zip(chunk.tolist(), rows, strict=True):
            writer.write({"reason": verdicts.reasons[index], "detail": verdicts.details[index],
                          "line": None if lines is None else int(lines[index]),
                          "id": row.get("id"), "source": row.get("source"), "row": row})


_BLANK_LINE = re.compile(rb"\n[ \t\r]*\n")  # a blank (or whitespace-only) line after a newline


def source_lines(source: str | Path, rows: int, load_rejects: Sequence[Any]) -> np.ndarray | None:
    """Each loaded row's line in ``source`` (its row number for Parquet), or None when that
    cannot be told cheaply and exactly: a JSONL file with blank lines (readers skip them, so the
    counts no longer match), a compressed file, a folder or a Hub dataset."""
    from postmix.io.paths import resolve_path

    if str(source).startswith("hf:"):
        return None
    path = Path(resolve_path(source))
    name = path.name.lower()
    if not path.is_file():
        return None
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        total = pq.ParquetFile(path).metadata.num_rows
    elif name.endswith((".jsonl", ".ndjson")):
        total, last, tail = 0, b"\n", b"\n"  # the file's start counts as after a newline
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 24):
                # A blank line anywhere: give up. With none, a count that matches the rows can
                # only mean one row per line (a line the reader split in two would need a blank
                # line elsewhere to even out the count).
                if _BLANK_LINE.search(tail + chunk):
                    return None
                total += chunk.count(b"\n")
                last, tail = chunk[-1:], chunk[-64:]
        total += last != b"\n"  # a last line without its newline
    else:
        return None
    rejected = {r.line for r in load_rejects if r.line is not None}
    if len(rejected) != len(load_rejects):
        return None
    lines = np.setdiff1d(np.arange(1, total + 1, dtype=np.int64), np.fromiter(rejected, np.int64, len(rejected)))
    return lines if len(lines) == rows else None


def run_stage(
    step: str,
    source: str | Path,
    output: str | Path,
    decide: Callable[[datasets.Dataset, str], Verdicts],
    config: Any,
    *,
    format: str | None = None,
    extra_inputs: Sequence[str] = (),
) -> StageOutput:
    """Load ``source``, let ``decide`` judge each row, write kept rows, rejects and the report."""
    started = time.perf_counter()
    ds, kind, load_rejects = load_records(source, format=format)
    loaded = time.perf_counter()
    verdicts = decide(ds, kind)
    if len(verdicts.reasons) != len(ds):
        raise RuntimeError(f"{step} returned {len(verdicts.reasons)} verdicts for {len(ds)} rows")
    decided = time.perf_counter()
    table = dataset_table(ds)
    kept_indices = verdicts.kept_indices()
    write_table(table.take(pa.array(kept_indices)), output)
    kept = ds.select(kept_indices)
    rejected = verdicts.counts()
    with RowWriter(rejects_path(output)) as writer:
        for reject in load_rejects:  # rows the input conversion could not read at all
            writer.write(reject.to_row())
            rejected[reject.reason] = rejected.get(reject.reason, 0) + 1
        write_rejects(writer, table, verdicts, verdicts.rejected_indices(),
                      source_lines(source, len(ds), load_rejects))
    config_dump = config.model_dump(mode="json") if hasattr(config, "model_dump") else dict(config or {})
    report = StepReport(
        step=step,
        config=config_dump,
        rows_in=len(ds) + len(load_rejects),
        rows_out=len(kept),
        rejected=dict(sorted(rejected.items())),
        timings={
            "load": round(loaded - started, 3),
            "decide": round(decided - loaded, 3),
            "write": round(time.perf_counter() - decided, 3),
        },
        inputs=[str(source), *extra_inputs],
        outputs={"data": str(output), "rejects": str(rejects_path(output))},
        details={"kind": kind, **verdicts.stats},
    )
    report.write(report_path(output))
    return StageOutput(kept=kept, report=report, output=Path(output), rejects=rejects_path(output))
