"""``decontaminate`` as a Ray Data pipeline: the benchmark n-gram index is built once on the
driver and shipped to the workers; each block is normalised, tokenised and scanned with the local
kernels (``normalise_texts``, ``token_hashes``, ``ngram_index.scan``) inside ``map_batches``;
only matches come back, and the driver writes reasons, details and the report exactly as the
local engine does."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from postmix.curate import decontam as local
from postmix.curate.decontam import (
    CONTAMINATED,
    BenchmarkIndex,
    DecontamConfig,
)
from postmix.curate.ngram_index import scan, token_hashes
from postmix.curate.normalise import normalise_texts
from postmix.curate.runner import Verdicts
from postmix.curate.textview import view_texts
from postmix.scale.ray_session import ROW, RayConfig, collect, ray_pipeline, rows_dataset

_SCHEMA = pa.schema([("row", pa.int64()), ("instance", pa.int64()), ("score", pa.float64()),
                     ("best", pa.bool_()), ("span", pa.string())])


def _scan_block(table: pa.Table, *, kind: str, config: DecontamConfig, index: BenchmarkIndex) -> pa.Table:
    data, offsets = normalise_texts(view_texts(table, kind, config.on), config.normalise)
    tokens, token_offsets = token_hashes(data, offsets)
    found = scan(tokens, token_offsets, index.index, config.threshold)
    # per row, the best instance: highest score, then lowest instance number (as the local scan)
    order = np.lexsort((found.instance, -found.score, found.row))
    first = np.ones(len(order), dtype=bool)
    first[1:] = found.row[order][1:] != found.row[order][:-1]
    best = np.zeros(len(order), dtype=bool)
    best[order[first]] = True
    spans = [local._span(data, offsets, int(found.row[k]), int(found.start[k]), int(found.end[k])) if best[k] else None
             for k in range(len(order))]
    rows = table.column(ROW).to_numpy()
    return pa.table({"row": rows[found.row], "instance": found.instance, "score": found.score, "best": best,
                     "span": spans}, schema=_SCHEMA)


def decontaminate_ray(ds: Any, config: DecontamConfig, *, kind: str | None = None,
                      index: BenchmarkIndex | None = None, ray_config: RayConfig | None = None,
                      source: str | Path | None = None) -> Verdicts:
    """``postmix.curate.decontam.decontaminate`` on Ray Data: same arguments, same ``Verdicts``.
    ``source``: the Parquet file ``ds`` was loaded from, for the workers to read (``rows_dataset``)."""
    kind, index, timings = local.prepare(ds, config, kind, index)
    n = len(ds)
    if n == 0:
        return local.decontaminate(ds, config, kind=kind, index=index)
    started = time.perf_counter()
    with ray_pipeline(ray_config) as run:
        rows_ds, read = rows_dataset(ds, run.block_rows(n, config.batch_size), source)
        found = rows_ds.map_batches(
            _scan_block, batch_format="pyarrow", fn_kwargs={"kind": kind, "config": config, "index": index})
        got = collect(found, ["row", "instance", "score", "best", "span"])
    timings["scan"] = time.perf_counter() - started
    rows, instances = got["row"].astype(np.int64), got["instance"].astype(np.int64)
    scores = got["score"].astype(np.float64)
    best = {int(rows[k]): (int(instances[k]), float(scores[k]), got["span"][k])
            for k in np.flatnonzero(got["best"].astype(bool)).tolist()}
    reasons: list[str | None] = [None] * n
    details = [""] * n
    for row, (instance, score, span) in best.items():
        name, instance_id = index.describe(instance)
        reasons[row] = CONTAMINATED
        details[row] = f"{CONTAMINATED}:{name}:{instance_id}:{score:.3f} span=\"{span}\""
    stats = local._report(ds, index, config, [(rows, instances, scores)], best)
    stats["timings"] = {k: round(v, 3) for k, v in timings.items()}
    stats["engine"] = {"name": "ray", "partitions": run.partitions, "cpus": run.cpus, "input": read}
    return Verdicts(reasons, details, stats)
