"""``apply_filters`` as a Ray Data pipeline: every rule judges one row at a time, so each block
runs the local ``apply_filters`` itself inside ``map_batches`` and only rejected rows (and each
block's counters) come back; the driver merges them in row order, which gives the same reasons,
details and report as the local engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from postmix.curate.filters import FilterConfig, apply_filters
from postmix.curate.runner import Verdicts
from postmix.errors import ConfigError
from postmix.scale.ray_session import ROW, RayConfig, collect, ray_pipeline, rows_dataset, strip_row
from postmix.schemas import kind_of_columns


def _judge_block(table: pa.Table, *, kind: str, config: FilterConfig) -> pa.Table:
    verdicts = apply_filters(strip_row(table), config, kind=kind)
    rejected = verdicts.rejected_indices()
    rows = table.column(ROW).to_numpy()
    return pa.table({
        "row": np.r_[rows[rejected], -1 - rows[0]],  # the last record carries the block's counters
        "reason": [verdicts.reasons[i] for i in rejected.tolist()] + [None],
        "detail": [verdicts.details[i] for i in rejected.tolist()] + [json.dumps(verdicts.stats)],
    }, schema=pa.schema([("row", pa.int64()), ("reason", pa.string()), ("detail", pa.string())]))


def _merge(blocks: list[dict[str, Any]], codes: list[str], examples: int) -> dict[str, Any]:
    """Block reports, in row order, summed into the report one ``apply_filters`` call writes."""
    merged: dict[str, Any] = {"rules": codes, "rejected_per_rule": dict.fromkeys(codes, 0),
                              "fired_per_rule": dict.fromkeys(codes, 0), "rejected_per_source": {},
                              "examples": {}}
    for stats in blocks:
        for counter in ("rejected_per_rule", "fired_per_rule"):
            for code, count in stats[counter].items():
                merged[counter][code] += count
        for source, counts in stats["rejected_per_source"].items():
            mine = merged["rejected_per_source"].setdefault(source, {})
            for code, count in counts.items():
                mine[code] = mine.get(code, 0) + count
        for code, listed in stats["examples"].items():
            mine = merged["examples"].setdefault(code, [])
            mine.extend(listed[: examples - len(mine)])
    merged["rejected_per_source"] = dict(sorted(merged["rejected_per_source"].items()))
    return merged


def filter_ray(ds: Any, config: FilterConfig | None = None, *, kind: str | None = None,
               ray_config: RayConfig | None = None, source: str | Path | None = None) -> Verdicts:
    """``postmix.curate.filters.apply_filters`` on Ray Data: same arguments, same ``Verdicts``.
    ``source``: the Parquet file ``ds`` was loaded from, for the workers to read (``rows_dataset``)."""
    config = config or FilterConfig()
    kind = kind or kind_of_columns(ds.column_names)
    if kind is None:
        raise ConfigError("filter needs postmix records: run `postmix ingest` on the data first")
    n = len(ds)
    if n == 0:
        return apply_filters(ds, config, kind=kind)
    with ray_pipeline(ray_config) as run:
        rows, read = rows_dataset(ds, run.block_rows(n, config.batch_size), source)
        judged = rows.map_batches(
            _judge_block, batch_format="pyarrow", fn_kwargs={"kind": kind, "config": config})
        got = collect(judged, ["row", "reason", "detail"])
    reasons: list[str | None] = [None] * n
    details = [""] * n
    block_stats = []
    for row, reason, detail in zip(got["row"].tolist(), got["reason"].tolist(), got["detail"].tolist(), strict=True):
        if row < 0:
            block_stats.append((-1 - row, json.loads(detail)))
        else:
            reasons[row], details[row] = reason, detail
    stats = _merge([s for _, s in sorted(block_stats, key=lambda item: item[0])], config.rule_codes(), config.examples)
    stats["engine"] = {"name": "ray", "partitions": run.partitions, "cpus": run.cpus, "input": read}
    return Verdicts(reasons, details, stats)
