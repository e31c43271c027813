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
import pyarrow.compute as pc

from postmix.curate.filters import FilterConfig, apply_filters
from postmix.curate.runner import Verdicts
from postmix.scale.ray_session import (
    ROW,
    RayConfig,
    collect_table,
    ray_pipeline,
    sparse_verdicts,
    strip_row,
)

_JUDGED = pa.schema([("row", pa.int64()), ("reason", pa.string()), ("detail", pa.string())])


def _judge_block(table: pa.Table, *, kind: str, config: FilterConfig) -> pa.Table:
    if not table.num_rows:
        return _JUDGED.empty_table()
    verdicts = apply_filters(strip_row(table), config, kind=kind)
    rejected = verdicts.rejected_indices()
    rows = table.column(ROW).to_numpy()
    return pa.table(
        {
            "row": np.r_[
                rows[rejected], -1 - rows[0]
            ],  # the last record carries the block's counters
            "reason": [verdicts.reasons[i] for i in rejected.tolist()] + [None],
            "detail": [verdicts.details[i] for i in rejected.tolist()]
            + [json.dumps(verdicts.stats)],
        },
        schema=_JUDGED,
    )


def _merge(blocks: list[dict[str, Any]], codes: list[str], examples: int) -> dict[str, Any]:
    """Block reports, in row order, summed into the report one ``apply_filters`` call writes."""
    merged: dict[str, Any] = {
        "rules": codes,
        "rejected_per_rule": dict.fromkeys(codes, 0),
        "fired_per_rule": dict.fromkeys(codes, 0),
        "rejected_per_source": {},
        "examples": {},
    }
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
    """``postmix.curate.filters.apply_filters`` on Ray Data: same arguments, same ``Verdicts``
    (``ds`` and ``source`` as ``PipelineSettings.rows`` takes them)."""
    config = config or FilterConfig()
    if len(ds) == 0:  # a datasets.Dataset: RayRows read by the workers are never empty
        return apply_filters(ds, config, kind=kind)
    with ray_pipeline(ray_config) as run:
        rows = run.rows(ds, config.batch_size, source)
        judged = rows.dataset.map_batches(
            _judge_block,
            batch_format="pyarrow",
            fn_kwargs={"kind": kind or rows.kind, "config": config},
        )
        got = collect_table(judged)
    got = got.sort_by("row")
    counters = got.filter(pc.less(got.column("row"), 0))
    removed = got.filter(pc.greater_equal(got.column("row"), 0))
    # counters are keyed -1 - first row: descending keys are ascending blocks
    blocks = [json.loads(d) for d in reversed(counters.column("detail").to_pylist())]
    stats = _merge(blocks, config.rule_codes(), config.examples)
    stats["engine"] = run.engine(rows)
    return sparse_verdicts(
        rows.n,
        removed.column("row").to_numpy(),
        removed.column("reason").to_pylist(),
        removed.column("detail").to_pylist(),
        stats,
    )
