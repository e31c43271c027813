"""The one runner: a step's verdicts become kept rows, rejects and a reconciled report, for
files (``run_stage``: output + rejects file + report file) and for mixes (``apply_step``: the kept
rows and a rejects table for the mix's ``rejects.parquet``) alike.

A step decides; it never writes. It returns a ``Verdicts`` with one entry per input row
(``None`` = keep), so the accounting ``in == out + rejected`` holds by construction.

Every reject, of a file stage or of a mix build, is one row of one layout (``REJECT_FIELDS``):
the step, the reason and detail, the input line where it can be told, the row's id, its source
(the mix source in a build, the row's own ``source`` otherwise) and the whole row, so any reject
can be restored. JSONL rejects keep ``row`` as an object; Parquet ones as JSON text, because a
row that could not even be read has no record columns.
"""

from __future__ import annotations

import inspect
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets
import numpy as np
import pyarrow as pa

from postmix.io.claims import check_own_report, claim_outputs
from postmix.io.dataset import (
    dataset_table,
    load_records,
    replace_output,
    stale_partials,
    write_table,
)
from postmix.io.write import RowWriter, rejects_path, report_path, sidecar_path
from postmix.pausepoints import pause
from postmix.schemas import StepReport

if TYPE_CHECKING:
    from postmix.curate.executor import Executor
    from postmix.curate.steps import Step

REJECTS_BATCH = 2048
REJECT_FIELDS = ("step", "reason", "detail", "line", "id", "source", "row")
REJECT_SCHEMA = pa.schema([("step", pa.string()), ("reason", pa.string()), ("detail", pa.string()),
                          ("line", pa.int64()), ("id", pa.string()), ("source", pa.string()),
                          ("row", pa.string())])


@dataclass
class Verdicts:
    """Per-row outcome of a stage. ``reasons[i] is None`` keeps row ``i``."""

    reasons: Sequence[str | None]
    details: Sequence[str]
    stats: dict[str, Any] = field(default_factory=dict)
    # a result beside the verdicts (decontam's contamination matrix) with ``files() -> {name:
    # text}``: a file stage writes each as ``<stem>.<name>`` (names declared by the step, so
    # they are claimed before any work), a mix build gathers them
    sidecar: Any = None

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


def reject_rows(
    table: pa.Table,
    verdicts: Verdicts,
    indices: np.ndarray,
    *,
    step: str,
    source: str | None = None,
    lines: np.ndarray | None = None,
) -> Iterator[dict[str, Any]]:
    """Rejected rows, whole, in the one reject layout; ``source`` names the mix source (None: each
    row's own), ``lines`` maps row -> line of the input file."""
    for start in range(0, len(indices), REJECTS_BATCH):
        chunk = indices[start : start + REJECTS_BATCH]
        rows = table.take(pa.array(chunk, pa.int64())).to_pylist()
        for index, row in zip(chunk.tolist(), rows, strict=True):
            yield {
                "step": step,
                "reason": verdicts.reasons[index],
                "detail": verdicts.details[index],
                "line": None if lines is None else int(lines[index]),
                "id": row.get("id"),
                "source": row.get("source") if source is None else source,
                "row": row,
            }


def reject_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    """Reject rows (``reject_rows``, ``Reject.to_row``) as an Arrow table of ``REJECT_SCHEMA``."""
    columns: dict[str, list[Any]] = {name: [] for name in REJECT_FIELDS}
    for row in rows:
        for name in REJECT_FIELDS:
            value = row.get(name)
            if name == "row":
                value = json.dumps(value, ensure_ascii=False, default=str)
            columns[name].append(value)
    return pa.table(
        {name: pa.array(columns[name], REJECT_SCHEMA.field(name).type) for name in REJECT_FIELDS},
        schema=REJECT_SCHEMA,
    )


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
    lines = np.setdiff1d(
        np.arange(1, total + 1, dtype=np.int64), np.fromiter(rejected, np.int64, len(rejected))
    )
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
    sidecars: Sequence[str] = (),
) -> StageOutput:
    """Load ``source``, let ``decide`` judge each row, write kept rows, rejects, the step's
    ``sidecars`` (``Verdicts.sidecar`` files) and the report. The outputs are claimed first: none
    may be an input, and no other run may be writing them."""
    outputs = [Path(output), rejects_path(output), report_path(output),
               *(sidecar_path(output, name) for name in sidecars)]
    check_own_report(output, report_path(output))
    with claim_outputs(outputs, inputs=[source, *extra_inputs]):
        for stale in stale_partials(output):  # a killed run's; ours now that we hold the lock
            stale.unlink(missing_ok=True)
        published: list[Path] = []
        try:
            return _run_stage(
                step,
                source,
                output,
                decide,
                config,
                format=format,
                extra_inputs=extra_inputs,
                published=published,
                sidecars=sidecars,
            )
        except BaseException:  # a full disk, an interrupt: no output without its rejects and report
            for path in published:
                path.unlink(missing_ok=True)
            if rejects_path(output) in published:  # an earlier run's output lost its rejects
                Path(output).unlink(missing_ok=True)
            raise


def _run_stage(
    step: str,
    source: str | Path,
    output: str | Path,
    decide: Callable[[datasets.Dataset, str], Verdicts],
    config: Any,
    *,
    format: str | None,
    extra_inputs: Sequence[str],
    published: list[Path],
    sidecars: Sequence[str] = (),
) -> StageOutput:
    """The output is renamed into place last, after its rejects and report: killed at any point,
    the output is either absent or complete with both beside it."""
    started = time.perf_counter()
    ds, kind, load_rejects = load_records(source, format=format)
    loaded = time.perf_counter()
    pause("stage:loaded")
    verdicts = decide(ds, kind)
    if len(verdicts.reasons) != len(ds):
        raise RuntimeError(f"{step} returned {len(verdicts.reasons)} verdicts for {len(ds)} rows")
    decided = time.perf_counter()
    pause("stage:decided")
    table = dataset_table(ds)
    kept_indices = verdicts.kept_indices()
    staged = write_table(table.take(pa.array(kept_indices)), output, publish=False)
    published.append(staged)
    kept = ds.select(kept_indices)
    rejected = verdicts.counts()
    with RowWriter(rejects_path(output)) as writer:
        for reject in load_rejects:  # rows the input conversion could not read at all
            writer.write(reject.model_copy(update={"step": "load"}).to_row())
            rejected[reject.reason] = rejected.get(reject.reason, 0) + 1
        lines = source_lines(source, len(ds), load_rejects)
        for row in reject_rows(
            table, verdicts, verdicts.rejected_indices(), step=step, lines=lines
        ):
            writer.write(row)
    published.append(rejects_path(output))
    written = write_sidecars(verdicts, output, sidecars, published)
    pause("stage:rejects_written")
    config_dump = (
        config.model_dump(mode="json") if hasattr(config, "model_dump") else dict(config or {})
    )
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
        outputs={"data": str(output), "rejects": str(rejects_path(output)), **written},
        details={"kind": kind, **verdicts.stats},
    )
    published.append(report.write(report_path(output)))
    pause("stage:report_written")
    replace_output(Path(output), staged)  # a file, or an earlier Ray run's shard folder
    return StageOutput(kept=kept, report=report, output=Path(output), rejects=rejects_path(output))


def write_sidecars(verdicts: Verdicts, output: str | Path, names: Sequence[str],
                   published: list[Path] | None = None) -> dict[str, str]:
    """Write the files of ``verdicts.sidecar`` beside ``output`` (each atomically); returns
    name -> path for the report's ``outputs``. Every declared name must be written, and only
    those: they were claimed before the run."""
    if not names:
        return {}
    files = verdicts.sidecar.files() if verdicts.sidecar is not None else {}
    if set(files) != set(names):
        raise RuntimeError(f"step wrote sidecar files {sorted(files)}, declared {sorted(names)}")
    written = {}
    for name in names:
        path = sidecar_path(output, name)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(files[name], encoding="utf-8")
        partial.replace(path)
        if published is not None:
            published.append(path)
        written[name] = str(path)
    return written


@dataclass
class StepOutcome:
    """One step applied to rows in memory (a mix build): what was kept and what was not."""

    kept: datasets.Dataset
    report: StepReport
    rejects: pa.Table  # REJECT_SCHEMA rows, empty when nothing was removed
    kept_indices: np.ndarray | None  # rows of the input that were kept; None = all of them
    rejected_indices: np.ndarray  # rows of the input that were removed, ascending
    rejected_reasons: list[str]  # reason of each removed row, aligned with rejected_indices
    sidecar: Any = None  # Verdicts.sidecar of the step (a contamination matrix), or None


def apply_step(step: Step, executor: Executor, ds: datasets.Dataset, config: Any, kind: str, *,
               source: str, label: str | None = None) -> StepOutcome:
    """Decide ``ds`` with ``step`` on ``executor`` and apply the verdicts;
    reconciles by construction."""
    name = label or step.name
    started = time.perf_counter()
    verdicts = executor.decide(step, ds, config, kind=kind)
    if len(verdicts.reasons) != len(ds):
        raise RuntimeError(
            f"step {step.name} returned {len(verdicts.reasons)} verdicts for {len(ds)} rows"
        )
    decided = time.perf_counter()
    kept_idx = verdicts.kept_indices()
    rejected_idx = verdicts.rejected_indices()
    kept = ds.select(kept_idx) if len(rejected_idx) else ds
    rows = reject_rows(dataset_table(ds), verdicts, rejected_idx, step=name, source=source)
    report = StepReport(
        step=name,
        config=config.model_dump(mode="json"),
        rows_in=len(ds),
        rows_out=len(kept),
        rejected=verdicts.counts(),
        inputs=[source],
        details={"kind": kind, **_jsonable(verdicts.stats)},
        timings={
            "decide": round(decided - started, 3),
            "select": round(time.perf_counter() - decided, 3),
        },
    )
    return StepOutcome(
        kept=kept,
        report=report,
        rejects=reject_table(rows),
        kept_indices=kept_idx if len(rejected_idx) else None,
        rejected_indices=rejected_idx,
        rejected_reasons=[str(verdicts.reasons[i]) for i in rejected_idx.tolist()],
        sidecar=verdicts.sidecar,
    )


def call_decider(
    decide: Callable[..., Verdicts], ds: Any, config: Any, *, kind: str, **options: Any
) -> Verdicts:
    """A decider is ``(ds, config, *, kind, **options)``; one that takes no ``kind`` (a plugin's
    step that works on any record kind) is not given one."""
    if "kind" not in inspect.signature(decide).parameters:
        return decide(ds, config, **options)
    return decide(ds, config, kind=kind, **options)


def _jsonable(stats: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(stats, default=str))
