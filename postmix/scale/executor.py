"""The Ray executor: a curation step's Ray decider on Ray Data, with the connection settings it
was built with. It is handed down like the local one (``postmix.curate.executor``), so two builds
in two threads - one local, one on Ray - never share state.

``run_file`` keeps the rows off the driver. When the input is a Parquet file or shard folder of
postmix records as they are, the workers read it (``rows_from_source``); otherwise (JSONL, a
``--format`` conversion, too few row groups) the driver loads it as the local engine does and
cuts it into blocks. Either way the decider sends back only verdict metadata (removed rows, their
reasons and details, the report), and the workers write the kept rows and the rejects
themselves, block by block. What ``OUT`` becomes on Ray:

- ``x.parquet``: a folder ``x.parquet/`` of ``part-00000.parquet``, ... shards in row order (one
  per input block), which every postmix reader (``load_records``, ``iter_raw_rows``) and
  ``pyarrow.parquet.read_table`` read as one dataset;
- ``x.jsonl`` / ``x.jsonl.gz``: one file, the workers' shards joined by a Ray task (bytes only;
  gzip members concatenate into one valid stream);
- ``x.rejects.jsonl``: one file, joined likewise, row for row what the local runner writes
  (``{reason, detail, line, id, source, row}``, the rows the conversion could not read first);
- ``x.report.json``: written by the driver, reconciled (``rows_in == rows_out + rejected``).

Nothing is published under ``OUT`` until every shard is written. On a cluster ``OUT`` must be on
a filesystem every node shares, as the input must be for the workers to read it.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import BaseModel

from postmix.curate.runner import (
    StageOutput,
    Verdicts,
    call_decider,
    reject_rows,
    source_lines,
    write_sidecars,
)
from postmix.curate.steps import Step
from postmix.errors import ConfigError
from postmix.io.claims import check_own_report, check_replaceable, claim_outputs
from postmix.io.dataset import load_records, replace_output, write_table
from postmix.io.write import RowWriter, output_type, rejects_path, report_path, sidecar_path
from postmix.scale.ray_session import (
    ROW,
    RayConfig,
    RayRows,
    collect,
    ray_pipeline,
    removed_rows,
    rows_from_source,
)
from postmix.schemas import FEATURES, StepReport

DEFAULT_BATCH_ROWS = 65536


class RayExecutor:
    name = "ray"

    def __init__(self, config: RayConfig | dict[str, Any] | None = None) -> None:
        self.config = (
            config if isinstance(config, RayConfig) else RayConfig.model_validate(config or {})
        )

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name, "ray": self.config.model_dump(exclude_defaults=True)}

    def _refuse_local_only(self, step: Step, options: dict[str, Any]) -> None:
        given = [name for name in step.local_only if options.get(name) is not None]
        if given:
            raise ConfigError(
                f"{step.name}: {', '.join(given)} runs on the local engine only: "
                "drop the Ray engine for this step"
            )

    def decide(
        self,
        step: Step,
        ds: Any,
        config: BaseModel,
        *,
        kind: str,
        source: str | Path | None = None,
        **options: Any,
    ) -> Verdicts:
        self._refuse_local_only(step, options)
        options = {**step.prepared(config), **options}
        return call_decider(step.decider("ray"), ds, config, kind=kind, ray_config=self.config,
                            source=source, **options)

    def run_file(
        self,
        step: Step,
        source: str | Path,
        output: str | Path,
        config: BaseModel,
        *,
        format: str | None = None,
        **options: Any,
    ) -> StageOutput:
        """The step on ``source``, its kept rows, rejects and report written by the workers under
        ``output`` (see the module text for what ``output`` becomes)."""
        self._refuse_local_only(step, options)
        prepared = {**step.prepared(config), **options}  # before reading: a bad config fails fast
        output = Path(output)
        output_type(output)  # a bad suffix, or a folder that is not ours, fails before any work
        check_replaceable(output)
        check_own_report(output, report_path(output))
        outputs = [output, rejects_path(output), report_path(output),
                   *(sidecar_path(output, name) for name in step.sidecars)]
        with claim_outputs(outputs, inputs=[source]):
            return self._run_file(step, source, output, config, format, prepared)

    def _run_file(self, step: Step, source: str | Path, output: Path, config: BaseModel,
                  format: str | None, prepared: dict[str, Any]) -> StageOutput:
        decide = step.decider("ray")
        started = time.perf_counter()
        with ray_pipeline(self.config) as run:
            rows = rows_from_source(source) if format is None else None
            load_rejects: list[Any] = []
            if rows is not None:
                # a single Parquet file's rows are its lines; a folder's have none (as locally)
                lines: Any = "rows" if Path(source).is_file() else None
            else:
                ds, kind, load_rejects = load_records(source, format=format)
                lines = source_lines(source, len(ds), load_rejects)
                batch = getattr(config, "batch_size", DEFAULT_BATCH_ROWS)
                rows = run.rows(ds, batch, source if format is None else None)
            loaded = time.perf_counter()
            verdicts = call_decider(decide, rows, config, kind=rows.kind, ray_config=self.config,
                                    **prepared)
            if len(verdicts.reasons) != rows.n:
                raise RuntimeError(
                    f"{step.name} returned {len(verdicts.reasons)} verdicts for {rows.n} rows"
                )
            decided = time.perf_counter()
            removed = removed_rows(verdicts)
            written = write_shards(rows, removed, output, lines, load_rejects, step.name)
        sidecars = write_sidecars(verdicts, output, step.sidecars)
        rejected = Counter(removed.column("reason").to_pylist())  # verdicts.counts(), sparse
        for reject in load_rejects:
            rejected[reject.reason] = rejected.get(reject.reason, 0) + 1
        if written != rows.n - len(removed):
            raise RuntimeError(
                f"{step.name}: the workers wrote {written} rows, expected {rows.n - len(removed)}"
            )
        report = StepReport(
            step=step.name,
            config=config.model_dump(mode="json"),
            rows_in=rows.n + len(load_rejects),
            rows_out=written,
            rejected=dict(sorted(rejected.items())),
            timings={
                "load": round(loaded - started, 3),
                "decide": round(decided - loaded, 3),
                "write": round(time.perf_counter() - decided, 3),
            },
            inputs=[str(source)],
            outputs={"data": str(output), "rejects": str(rejects_path(output)), **sidecars},
            details={"kind": rows.kind, **verdicts.stats},
        )
        report.write(report_path(output))
        return ShardedStageOutput(report, output, rejects_path(output))


class ShardedStageOutput(StageOutput):
    """``StageOutput`` of a Ray run: ``kept`` reads the output on first use, so the driver holds
    no row unless a caller asks for them."""

    def __init__(self, report: StepReport, output: Path, rejects: Path) -> None:
        self.report, self.output, self.rejects = report, output, rejects

    @property
    def kept(self) -> Any:
        return load_records(self.output)[0]

    def __repr__(self) -> str:
        return f"ShardedStageOutput(output={self.output!s}, rejects={self.rejects!s})"


# ---------------------------------------------------------------- the workers' writes


def write_shards(
    rows: RayRows, removed: pa.Table, output: Path, lines: Any, load_rejects: list[Any], step: str
) -> int:
    """Each block's kept rows and rejects written by the worker that holds it; then the shards
    published under ``output`` and ``rejects_path(output)``. Returns the rows written."""
    import ray

    work = output.parent / f".{output.name}.{uuid.uuid4().hex[:8]}.shards"
    kept_dir, rejects_dir = work / "kept", work / "rejects"
    for folder in (kept_dir, rejects_dir):
        folder.mkdir(parents=True)
    try:
        if (
            load_rejects
        ):  # rows the conversion could not read: first, as the local runner writes them
            with RowWriter(rejects_dir / "head.jsonl") as writer:
                for reject in load_rejects:
                    writer.write(reject.model_copy(update={"step": "load"}).to_row())
        shard_suffix = (
            "".join(output.suffixes[-2:]) if output.name.endswith(".jsonl.gz") else output.suffix
        )
        refs = {
            "removed": ray.put(removed),
            "lines": ray.put(lines) if isinstance(lines, np.ndarray) else None,
        }
        written = rows.dataset.map_batches(
            _write_block,
            batch_format="pyarrow",
            batch_size=None,
            fn_kwargs={
                "refs": [refs],
                "step": step,
                "lines": "array" if isinstance(lines, np.ndarray) else lines,
                "kept_dir": str(kept_dir),
                "rejects_dir": str(rejects_dir),
                "suffix": shard_suffix,
                "schema": FEATURES[rows.kind].arrow_schema,
            },
        )
        counts = collect(written, ["rows", "kept"])
        if int(counts["rows"].sum()) != rows.n:
            raise RuntimeError(f"the workers saw {int(counts['rows'].sum())} rows of {rows.n}")
        # checked before anything is published
        if int(counts["kept"].sum()) != rows.n - len(removed):
            raise RuntimeError(f"the workers wrote {int(counts['kept'].sum())} rows, expected "
                               f"{rows.n - len(removed)}")
        publish = ray.remote(num_cpus=1)(_publish)
        ray.get(
            publish.remote(str(kept_dir), str(rejects_dir), str(output), str(rejects_path(output)))
        )
        return int(counts["kept"].sum())
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write_block(
    table: pa.Table,
    *,
    refs: list[dict[str, Any]],
    step: str,
    lines: str | None,
    kept_dir: str,
    rejects_dir: str,
    suffix: str,
    schema: pa.Schema,
) -> pa.Table:
    """One block's kept rows (a shard) and rejects (a shard, when any), named by its first row so
    that name order is row order however Ray Data cuts the blocks."""
    import ray

    if not table.num_rows:
        return pa.table({"rows": [0], "kept": [0]})
    removed = ray.get(refs[0]["removed"])
    block_rows = table.column(ROW).to_numpy()
    all_removed = removed.column("row").to_numpy()
    at = np.minimum(np.searchsorted(all_removed, block_rows), max(len(all_removed) - 1, 0))
    hit = all_removed[at] == block_rows if len(all_removed) else np.zeros(len(block_rows), bool)
    records = table.drop_columns([ROW]).cast(schema)
    name = f"r{int(block_rows.min()):012d}"
    write_table(records.filter(pa.array(~hit)), Path(kept_dir) / f"{name}{suffix}")
    rejected = np.flatnonzero(hit)
    if len(rejected):
        picked = removed.take(pa.array(at[rejected]))
        reasons: list[str | None] = [None] * len(block_rows)
        details = [""] * len(block_rows)
        for k, reason, detail in zip(
            rejected.tolist(),
            picked.column("reason").to_pylist(),
            picked.column("detail").to_pylist(),
            strict=True,
        ):
            reasons[k], details[k] = reason, detail
        line_of = None
        if lines == "rows":
            line_of = block_rows + 1
        elif lines == "array":
            line_of = ray.get(refs[0]["lines"])[block_rows]
        with RowWriter(Path(rejects_dir) / f"{name}.jsonl") as writer:
            writer.write_many(reject_rows(records, Verdicts(reasons, details), rejected, step=step,
                                          lines=line_of))
    return pa.table({"rows": [len(block_rows)], "kept": [int((~hit).sum())]})


def _publish(kept_dir: str, rejects_dir: str, output: str, rejects: str) -> None:
    """On a worker: shards into place. A Parquet output becomes the folder of its shards, renamed
    ``part-NNNNN`` in row order; a JSONL output and the rejects are the shards' bytes joined."""
    kept = sorted(Path(kept_dir).iterdir())
    target = Path(output)
    if output_type(target) == "parquet":
        for number, shard in enumerate(kept):
            shard.rename(shard.with_name(f"part-{number:05d}.parquet"))
        replace_output(target, Path(kept_dir))
    else:
        _join(kept, target)
    _join(sorted(Path(rejects_dir).iterdir()), Path(rejects))


def _join(parts: list[Path], target: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    with open(partial, "wb") as out:
        for part in parts:
            with open(part, "rb") as handle:
                shutil.copyfileobj(handle, out, 1 << 20)
    replace_output(target, partial)


