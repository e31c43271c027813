"""``decontaminate`` as a Ray Data pipeline: the benchmark n-gram index is built once on the
driver and shipped to the workers; each block is scanned with the local code
(``decontam.scan_block``) inside ``map_batches``; only matches come back, and the driver turns
them into reasons, details and the report with the local ``decontam.verdicts_of_scan``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from postmix.curate.decontam import (
    SCAN_SCHEMA,
    BenchmarkIndex,
    DecontamConfig,
    decontaminate,
    prepare,
    scan_block,
    verdicts_of_scan,
)
from postmix.curate.runner import Verdicts
from postmix.errors import ConfigError
from postmix.scale.ray_session import ROW, RayConfig, collect_table, ray_pipeline, sparse_verdicts


def _scan(table: pa.Table, *, kind: str, config: DecontamConfig, index: BenchmarkIndex) -> pa.Table:
    return scan_block(table, kind, config, index, table.column(ROW).to_numpy())


def decontaminate_ray(ds: Any, config: DecontamConfig, *, kind: str | None = None,
                      index: BenchmarkIndex | None = None, ray_config: RayConfig | None = None,
                      source: str | Path | None = None) -> Verdicts:
    """``postmix.curate.decontam.decontaminate`` on Ray Data: same arguments, same ``Verdicts``
    (``ds`` and ``source`` as ``PipelineSettings.rows`` takes them)."""
    if config.paraphrase is not None:
        raise ConfigError("decontam: the paraphrase pass runs on the local engine only: drop "
                          "the Ray engine for this step, or the paraphrase setting")
    kind, index, timings = prepare(ds, config, kind, index)
    if len(ds) == 0:  # a datasets.Dataset: RayRows read by the workers are never empty
        return decontaminate(ds, config, kind=kind, index=index)
    started = time.perf_counter()
    with ray_pipeline(ray_config) as run:
        rows = run.rows(ds, config.batch_size, source)
        found = rows.dataset.map_batches(
            _scan,
            batch_format="pyarrow",
            fn_kwargs={"kind": kind, "config": config, "index": index},
        )
        got = collect_table(found) or SCAN_SCHEMA.empty_table()
    timings["scan"] = time.perf_counter() - started
    removed, reasons, details, stats, matrix = verdicts_of_scan(got, index, config, kind)
    stats["timings"] = {k: round(v, 3) for k, v in timings.items()}
    stats["engine"] = run.engine(rows)
    verdicts = sparse_verdicts(rows.n, removed, reasons, details, stats)
    verdicts.sidecar = matrix
    return verdicts
