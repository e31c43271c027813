"""``dedup`` as Ray Data pipelines: the same ``Verdicts`` as ``postmix.curate.dedup.dedup`` for
the same data and config (kept rows, reasons, ``duplicate_of`` targets, similarities, report).

Same kernels, different orchestration:

1. ``map_batches``: each block's features with the local code (``row_features``: normalisation,
   xxh3, MinHash signatures) plus the survivor key ``keep`` ranks by.
2. exact pass: shuffle by exact hash; per hash, the best-ranked row survives.
3. near pass: ``map_batches`` band hashes (``lsh.band_hashes``); shuffle by band hash; each
   bucket member paired with its first member (``lsh.bucket_pairs``); shuffle by pair to drop
   repeats.
4. clusters: connected components over Ray Data (``ray_components``), label = smallest row.
5. survivors: shuffle by cluster label, whole clusters per group, in the local keep order
   (``keep=first|longest|source-priority`` compare ``(key, row)`` as the local
   ``preference_rank`` does): with ``verify`` (the default) the local greedy pass
   (``survivors.greedy_survivors``) on the members' band hashes and text; without it the
   best-ranked member of each cluster survives.

Only what ``Verdicts`` needs comes back to the driver: removed rows, their survivors and
similarities, and each clustered row's label (for the report). Signatures, band hashes and
candidate pairs stay in the Ray object store.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from postmix.curate import lsh
from postmix.curate.dedup import (
    DedupConfig,
    Removals,
    cluster_listing,
    cluster_size_histogram,
    dedup,
    largest_cluster_picks,
    removal_verdicts,
)
from postmix.curate.features import normalised_view, row_features
from postmix.curate.minhash import estimated_jaccard, shingle_sets
from postmix.curate.normalise import string_buffers
from postmix.curate.runner import Verdicts
from postmix.curate.survivors import bucket_ids, greedy_survivors
from postmix.curate.textview import view_texts
from postmix.errors import ConfigError
from postmix.scale.ray_components import (
    PART,
    column,
    connected_components,
    group_runs,
    pair_partition,
    partition_of,
    unique_pairs,
)
from postmix.scale.ray_session import (
    ROW,
    RayConfig,
    RayRows,
    collect,
    collect_table,
    ray_pipeline,
    sparse_verdicts,
    strip_row,
)
from postmix.schemas import FEATURES, kind_of_columns

# ---------------------------------------------------------------- array <-> Arrow helpers


def _sig_column(sigs: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(sigs.reshape(-1)), sigs.shape[1])


def _sig_array(table: pa.Table, name: str = "sig") -> np.ndarray:
    col = table.column(name)
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    width = col.type.list_size
    return col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), width)


def _text_column(data: np.ndarray, offsets: np.ndarray) -> pa.Array:
    return pa.LargeStringArray.from_buffers(
        len(offsets) - 1,
        pa.py_buffer(np.ascontiguousarray(offsets, np.int64)),
        pa.py_buffer(np.ascontiguousarray(data)),
    )


def _keyed(table: pa.Table, key: np.ndarray, partitions: int) -> pa.Table:
    return table.append_column(PART, pa.array(partition_of(key, partitions)))


# ---------------------------------------------------------------- 1. features per block


def survivor_key(table: pa.Table, kind: str, config: DedupConfig) -> np.ndarray:
    """Smaller survives; ties go to the smaller row: the order of ``dedup.preference_rank``."""
    n = len(table)
    if config.keep == "first":
        return np.zeros(n, np.int64)
    if config.keep == "longest":
        return (
            -pc.utf8_length(view_texts(table, kind, "conversation"))
            .to_numpy(zero_copy_only=False)
            .astype(np.int64)
        )
    source = table.column("source")
    position = pc.index_in(source, value_set=pa.array(config.source_priority, pa.string()))
    return (
        position.fill_null(len(config.source_priority))
        .to_numpy(zero_copy_only=False)
        .astype(np.int64)
    )


def _features(
    table: pa.Table, *, kind: str, config: DedupConfig, signatures: bool, text: bool
) -> pa.Table:
    block = strip_row(table)
    features = row_features(
        block, kind, config.on, config, signatures=signatures, batch_size=max(len(block), 1)
    )
    columns: dict[str, Any] = {
        "row": table.column(ROW),
        "exact": pa.array(features.exact),
        "empty": pa.array(features.empty),
        "key": pa.array(survivor_key(table, kind, config)),
        "id": table.column("id"),
        "source": table.column("source"),
    }
    if signatures:
        columns["sig"] = _sig_column(features.signatures)
    if text:
        columns["text"] = _text_column(*normalised_view(block, kind, config.on, config))
    return pa.table(columns)


def _true_count(table: pa.Table, *, name: str) -> pa.Table:
    return pa.table({"count": [int(np.count_nonzero(column(table, name)))]})


def _count_true(ds: Any, name: str) -> int:
    counts = collect(
        ds.map_batches(_true_count, batch_format="pyarrow", fn_kwargs={"name": name}), ["count"]
    )
    return int(counts["count"].sum())


def _non_empty(table: pa.Table, *, key: str | None, partitions: int) -> pa.Table:
    """Rows with text, without what only the driver's lookups need (id, source)."""
    table = table.filter(pc.invert(table.column("empty"))).drop_columns(["id", "source"])
    return _keyed(table, column(table, key), partitions) if key else table


# ---------------------------------------------------------------- 2. exact pass


def _best_of_each_group(
    group: np.ndarray, key: np.ndarray, member: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the member that ranks first in its group by ``(key, member)`` (as the local
    ``preference_rank``), and the position of that member's row."""
    order = np.lexsort((member, key, group))
    starts, counts = group_runs(group[order])
    survivor = np.empty(len(member), np.int64)
    survivor[order] = np.repeat(member[order][starts], counts)
    position = np.empty(len(member), np.int64)
    position[order] = np.repeat(order[starts], counts)
    return survivor, position


def _exact_survivors(table: pa.Table) -> pa.Table:
    survivor, _ = _best_of_each_group(
        column(table, "exact"), column(table, "key"), column(table, "row")
    )
    return table.drop_columns([PART]).append_column("survivor", pa.array(survivor))


def _split(table: pa.Table, *, removed: bool) -> pa.Table:
    moved = column(table, "survivor") != column(table, "row")
    table = table.filter(pa.array(moved if removed else ~moved))
    return table.select(["row", "survivor"]) if removed else table.drop_columns(["survivor"])


# ---------------------------------------------------------------- 3. candidate pairs


def _band_records(table: pa.Table, *, bands: int, rows: int, partitions: int) -> pa.Table:
    hashes = lsh.band_hashes(_sig_array(table), bands, rows)  # [bands, n]
    n = hashes.shape[1]
    band = np.repeat(np.arange(bands, dtype=np.int64), n)
    flat = hashes.reshape(-1)
    return pa.table(
        {
            "band": band,
            "hash": flat,
            "row": np.tile(column(table, "row"), bands),
            PART: partition_of(flat ^ partition_of(band, 1 << 62).astype(np.uint64), partitions),
        }
    )


def _bucket_pairs(table: pa.Table, *, window: int, partitions: int) -> pa.Table:
    band, hashes, row = column(table, "band"), column(table, "hash"), column(table, "row")
    lows, highs = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for b in np.unique(band):
        mine = np.flatnonzero(band == b)
        mine = mine[np.argsort(row[mine], kind="stable")]  # ascending rows, as the local members
        pairs = lsh.bucket_pairs(hashes[mine], row[mine], window)
        lows.append(np.minimum(pairs[:, 0], pairs[:, 1]))
        highs.append(np.maximum(pairs[:, 0], pairs[:, 1]))
    lo, hi = unique_pairs(np.concatenate(lows), np.concatenate(highs))
    return pa.table({"lo": lo, "hi": hi, PART: pair_partition(lo, hi, partitions)})


def _distinct_pairs(table: pa.Table) -> pa.Table:
    lo, hi = unique_pairs(column(table, "lo"), column(table, "hi"))
    return pa.table({"lo": lo, "hi": hi})


# ---------------------------------------------------------------- joins: union + shuffle by node


def _lookup(table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values' rows sorted by node, items' rows, position of each item's node among the values)."""
    node, tag = column(table, "node"), column(table, "tag")
    values = np.flatnonzero(tag == 0)
    values = values[np.argsort(node[values], kind="stable")]
    items = np.flatnonzero(tag == 1)
    return values, items, np.searchsorted(node[values], node[items])


def _node_records(
    table: pa.Table, *, partitions: int, width: int, dtype: str, with_text: bool
) -> pa.Table:
    """Nodes' survivor keys, signatures (and normalised text), the value side of a join on
    ``node``."""
    row = column(table, "row")
    columns = {
        "node": row,
        "label": np.full(len(row), -1, np.int64),
        "key": column(table, "key"),
        "tag": np.zeros(len(row), np.int8),
        "sig": table.column("sig"),
    }
    if with_text:
        columns["text"] = table.column("text")
    return pa.table({**columns, PART: partition_of(row, partitions)})


def _label_records(
    table: pa.Table, *, partitions: int, width: int, dtype: str, with_text: bool
) -> pa.Table:
    node = column(table, "node")
    columns = {
        "node": node,
        "label": column(table, "label"),
        "key": np.zeros(len(node), np.int64),
        "tag": np.ones(len(node), np.int8),
        "sig": _sig_column(np.zeros((len(node), width), dtype)),
    }
    if with_text:
        columns["text"] = pa.array([""] * len(node), pa.large_string())
    return pa.table({**columns, PART: partition_of(node, partitions)})


def _members(table: pa.Table, *, partitions: int, with_text: bool) -> pa.Table:
    """Labelled nodes meet their keys, signatures (and text); re-keyed by cluster label."""
    values, items, at = _lookup(table)
    label = column(table, "label")[items]
    columns = {
        "label": label,
        "node": column(table, "node")[items],
        "key": column(table, "key")[values[at]],
        "sig": table.column("sig").take(pa.array(values[at])),
    }
    if with_text:
        columns["text"] = table.column("text").take(pa.array(values[at]))
    return pa.table({**columns, PART: partition_of(label, partitions)})


def _cluster_survivors(table: pa.Table) -> pa.Table:
    """Per cluster, the best-ranked member survives; similarity = MinHash estimate to it."""
    label, node = column(table, "label"), column(table, "node")
    survivor, position = _best_of_each_group(label, column(table, "key"), node)
    sigs = _sig_array(table)
    return pa.table(
        {
            "node": node,
            "label": label,
            "survivor": survivor,
            "similarity": estimated_jaccard(sigs, sigs[position]),
        }
    )


def _greedy_survivors(table: pa.Table, *, config: DedupConfig) -> pa.Table:
    """Whole clusters: the local greedy pass (``postmix.curate.survivors``) over their rows, in
    the local keep order ``(key, row)``, on their band hashes and normalised text."""
    label, node = column(table, "label"), column(table, "node")
    texts = table.column("text")
    texts = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    data, offsets = string_buffers(texts)
    flat, set_offsets = shingle_sets(data, offsets - offsets[0], config)
    hashes = lsh.band_hashes(_sig_array(table), *config.lsh_shape())
    decided = greedy_survivors(bucket_ids(hashes), np.lexsort((node, column(table, "key"))), flat,
                               set_offsets, config.threshold)
    gone = decided.kept_by >= 0
    return pa.table({
        "node": node, "label": label,
        "survivor": np.where(gone, node[np.maximum(decided.kept_by, 0)], node),
        "similarity": np.where(gone, decided.similarity, 1.0),
        "compared": decided.compared, "below": decided.below,
    })


# ---------------------------------------------------------------- the stage


def _gather(ds: Any, names: list[str], dtypes: dict[str, Any]) -> dict[str, np.ndarray]:
    got = collect(ds, names)
    return {k: v.astype(dtypes.get(k, np.int64), copy=False) for k, v in got.items()}


def _wanted(table: pa.Table, *, rows: np.ndarray, columns: list[str]) -> pa.Table:
    """The rows of a block whose ``row`` (or ``__row``) is in ``rows`` (ascending), with
    ``columns`` only."""
    name = "row" if "row" in table.column_names else ROW
    mine = column(table, name)
    at = np.minimum(np.searchsorted(rows, mine), max(len(rows) - 1, 0))
    hit = rows[at] == mine if len(rows) else np.zeros(len(mine), bool)
    return table.filter(pa.array(hit)).select([name, *columns]).rename_columns(["row", *columns])


def _view(table: pa.Table, *, kind: str, on: str) -> pa.Table:
    return pa.table(
        {"row": table.column("row"), "text": view_texts(table.drop_columns(["row"]), kind, on)}
    )


def _looked_up(ds: Any, rows: np.ndarray, columns: list[str]) -> pa.Table | None:
    rows = np.unique(rows)
    if not len(rows):
        return None
    got = collect_table(
        ds.map_batches(
            _wanted, batch_format="pyarrow", fn_kwargs={"rows": rows, "columns": columns}
        )
    )
    return got.sort_by("row") if got is not None else None


def dedup_ray(
    ds: Any,
    config: DedupConfig | None = None,
    *,
    kind: str | None = None,
    against: Any = None,
    cache_dir: Any = None,
    ray_config: RayConfig | None = None,
    source: str | Path | None = None,
) -> Verdicts:
    """``postmix.curate.dedup.dedup`` on Ray Data: same arguments, same ``Verdicts`` (``ds`` and
    ``source`` as ``PipelineSettings.rows`` takes them). The driver gathers only the removed rows,
    their survivors' ids and the clustered rows' labels."""
    config = config or DedupConfig()
    if against is not None:
        raise ConfigError("dedup --against runs on the local engine only: drop --engine ray for it")
    if not isinstance(ds, RayRows):
        kind = kind or kind_of_columns(ds.column_names)
        if kind is None:
            raise ConfigError("dedup needs postmix records: run `postmix ingest` on the data first")
        if len(ds) == 0:  # nothing to distribute
            return dedup(ds, config, kind=kind)
    timings: dict[str, float] = {}
    stats: dict[str, Any] = {}
    with ray_pipeline(ray_config) as run:
        p = run.partitions
        started = time.perf_counter()
        rows = run.rows(ds, config.batch_size, source)
        kind = kind or rows.kind
        engine = run.engine(rows)
        need_sigs = config.mode != "exact"
        features = rows.dataset.map_batches(
            _features,
            batch_format="pyarrow",
            fn_kwargs={
                "kind": kind,
                "config": config,
                "signatures": need_sigs,
                "text": config.verify and need_sigs,
            },
        ).materialize()
        empty = _count_true(features, "empty")
        timings["hashing"] = time.perf_counter() - started
        stats.update({"empty_text_rows": empty, "text_view": config.on})
        active = features.map_batches(
            _non_empty, batch_format="pyarrow", fn_kwargs={"key": None, "partitions": p}
        )
        exact = {"row": np.zeros(0, np.int64), "survivor": np.zeros(0, np.int64)}
        if config.mode in ("exact", "both"):
            started = time.perf_counter()
            grouped = (
                features.map_batches(
                    _non_empty, batch_format="pyarrow", fn_kwargs={"key": "exact", "partitions": p}
                )
                .groupby(PART)
                .map_groups(_exact_survivors, batch_format="pyarrow")
                .materialize()
            )
            exact = _gather(
                grouped.map_batches(_split, batch_format="pyarrow", fn_kwargs={"removed": True}),
                ["row", "survivor"],
                {},
            )
            stats["exact"] = {"removed": int(len(exact["row"]))}
            active = grouped.map_batches(
                _split, batch_format="pyarrow", fn_kwargs={"removed": False}
            )
            timings["exact"] = time.perf_counter() - started
        near: dict[str, Any] = {}
        clustered = {k: np.zeros(0, np.int64) for k in ("node", "label", "survivor")}
        clustered["similarity"] = np.zeros(0)
        if config.mode in ("near", "both"):
            near, clustered = _near_pass(
                active.materialize(), config, timings, p, run.config.max_rounds, engine
            )
        removals = _removals(exact, clustered, config)
        if "exact" in stats and near:
            moved = clustered["node"][clustered["survivor"] != clustered["node"]]
            stats["exact"]["named_near_survivor"] = int(np.isin(exact["survivor"], moved).sum())
        picks = (
            largest_cluster_picks(
                clustered["node"], clustered["label"], 0, removals, config.largest_clusters
            )
            if near
            else []
        )
        shown = np.array(
            [r for _, kept, examples in picks for r in [kept, *examples.tolist()]], np.int64
        )
        info = _looked_up(features, np.r_[removals.rows, removals.kept, shown], ["id", "source"])
        texts = _looked_up(rows.dataset, shown, list(FEATURES[kind]))
    ids = info.column("id").to_pylist() if info is not None else []
    known = info.column("row").to_numpy() if info is not None else np.zeros(0, np.int64)
    kept_ids = [ids[k] for k in np.searchsorted(known, removals.kept).tolist()]
    sources = (
        info.column("source").take(pa.array(np.searchsorted(known, removals.rows))).to_pylist()
        if len(removals.rows)
        else []
    )
    reasons, details, stats["removed_per_source"] = removal_verdicts(removals, kept_ids, sources)
    if near:
        viewed = _view(texts, kind=kind, on=config.on) if texts is not None else None
        shown_text = (
            dict(
                zip(
                    viewed.column("row").to_pylist(), viewed.column("text").to_pylist(), strict=True
                )
            )
            if viewed is not None
            else {}
        )
        shown_ids = {
            r: ids[i]
            for r, i in zip(shown.tolist(), np.searchsorted(known, shown).tolist(), strict=True)
        }
        stats["largest_clusters"] = cluster_listing(picks, removals, shown_ids, shown_text)
        stats["near"] = near
    stats["timings"] = {k: round(v, 3) for k, v in timings.items()}
    stats["engine"] = engine
    return sparse_verdicts(rows.n, removals.rows, reasons, details, stats)


def _removals(
    exact: dict[str, np.ndarray], clustered: dict[str, np.ndarray], config: DedupConfig
) -> Removals:
    moved = clustered["survivor"] != clustered["node"]
    near_rows = clustered["node"][moved]
    near_kept, near_similarity = clustered["survivor"][moved], clustered["similarity"][moved]
    # a copy whose exact survivor went in the near pass names that row's survivor (as locally)
    followed = np.zeros(len(exact["survivor"]), bool)
    exact_kept, exact_similarity = exact["survivor"], np.ones(len(followed))
    if len(near_rows):
        at = np.minimum(np.searchsorted(near_rows, exact["survivor"]), len(near_rows) - 1)
        followed = near_rows[at] == exact["survivor"]
        exact_kept = np.where(followed, near_kept[at], exact_kept)
        exact_similarity = np.where(followed, near_similarity[at], exact_similarity)
    near_method = 2 if config.verify else 1  # METHODS: jaccard or minhash
    rows = np.r_[exact["row"], near_rows].astype(np.int64)
    order = np.argsort(rows, kind="stable")
    n_near = len(near_rows)
    return Removals(
        rows=rows[order],
        code=np.r_[np.where(followed, 2, 1).astype(np.int8), np.full(n_near, 2, np.int8)][order],
        kept=np.r_[exact_kept, near_kept].astype(np.int64)[order],
        similarity=np.r_[exact_similarity, near_similarity][order],
        method=np.r_[np.where(followed, near_method, 0).astype(np.int8),
                     np.full(n_near, near_method, np.int8)][order],
    )


def _near_pass(
    active: Any,
    config: DedupConfig,
    timings: dict[str, float],
    p: int,
    max_rounds: int,
    engine: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(near stats, clustered rows)``: every row of a candidate pair with its cluster label,
    survivor and similarity to it, ascending by row."""
    bands, rows = config.lsh_shape()
    started = time.perf_counter()
    pairs = (
        active.map_batches(
            _band_records,
            batch_format="pyarrow",
            fn_kwargs={"bands": bands, "rows": rows, "partitions": p},
        )
        .groupby(PART)
        .map_groups(
            _bucket_pairs, batch_format="pyarrow", fn_kwargs={"window": 1, "partitions": p}
        )
        .groupby(PART)
        .map_groups(_distinct_pairs, batch_format="pyarrow")
        .materialize()
    )
    candidates = pairs.count()
    timings["lsh"] = time.perf_counter() - started
    recall = round(float(lsh.collision_probability(config.threshold, bands, rows)), 4)
    stats: dict[str, Any] = {
        "bands": bands,
        "rows": rows,
        "candidate_pairs": int(candidates),
        "recall_at_threshold": recall,
    }
    started = time.perf_counter()
    clustered = {k: np.zeros(0, np.int64) for k in ("node", "label", "survivor")}
    clustered["similarity"] = np.zeros(0)
    if pairs.count():
        label_ds, rounds = connected_components(pairs.select_columns(["lo", "hi"]), p, max_rounds)
        label_ds = label_ds.materialize()
        shape = {
            "partitions": p,
            "width": config.num_perm,
            "dtype": np.dtype(config.signature_dtype()).name,
            "with_text": config.verify,
        }
        joined = (
            active.map_batches(_node_records, batch_format="pyarrow", fn_kwargs=shape)
            .union(label_ds.map_batches(_label_records, batch_format="pyarrow", fn_kwargs=shape))
            .groupby(PART)
            .map_groups(
                _members, batch_format="pyarrow",
                fn_kwargs={"partitions": p, "with_text": config.verify},
            )
            .groupby(PART)
        )
        if config.verify:
            decided = joined.map_groups(
                _greedy_survivors, batch_format="pyarrow", fn_kwargs={"config": config}
            ).materialize()
            counts = collect(decided, ["compared", "below"])
            stats["pairs_compared"] = int(counts["compared"].sum())
            stats["pairs_below_threshold"] = int(counts["below"].sum())
        else:
            decided = joined.map_groups(_cluster_survivors, batch_format="pyarrow")
        got = _gather(
            decided, ["node", "label", "survivor", "similarity"], {"similarity": np.float64}
        )
        order = np.argsort(got["node"])
        clustered = {k: v[order] for k, v in got.items()}
        engine["components_rounds"] = rounds
        if config.verify:
            kept = clustered["survivor"] == clustered["node"]
            stats["chained_rows_kept"] = int(kept.sum() - len(np.unique(clustered["label"])))
    elif config.verify:
        stats.update({"pairs_compared": 0, "pairs_below_threshold": 0, "chained_rows_kept": 0})
    labels = clustered["label"]
    sizes = (
        np.bincount(np.unique(labels, return_inverse=True)[1])
        if len(labels)
        else np.zeros(0, np.int64)
    )
    removed = int((clustered["survivor"] != clustered["node"]).sum())
    stats.update(
        {
            "clusters": int(len(sizes)),
            "removed": removed,
            "cluster_size_histogram": cluster_size_histogram(sizes),
        }
    )
    timings["clusters"] = time.perf_counter() - started
    return stats, clustered
