"""Exact and near-duplicate removal: ``dedup(ds, config) -> Verdicts``.

1. Every row's text view (``--on``) is normalised (NFKC, case, punctuation, whitespace).
2. Exact: rows with the same xxh3-64 of that text form a group; one survives.
3. Near: MinHash signatures (``postmix.curate.minhash``) and LSH buckets (``postmix.curate.lsh``).
   With ``verify`` (the default) rows are visited in ``keep`` order and a row is removed only
   when a kept row sharing one of its buckets is at exact Jaccard >= threshold
   (``postmix.curate.survivors``): a chain A~B~C never removes a C far from A. Without it,
   candidate pairs are joined into clusters by union-find and one row per cluster survives.
4. Each removed row's reject detail names the kept row it duplicates:
   ``duplicate_of=<id> similarity=0.912 method=jaccard``; a copy (exact pass) of a row removed
   in the near pass names that row's survivor.

Rows whose text is empty after normalisation are never duplicates of anything (they would all
collapse into one cluster); empty-text rows are a job for the filters. With ``against``, rows
of the reference dataset always survive and new rows that duplicate them are removed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from postmix.curate import lsh
from postmix.curate.executor import LocalExecutor
from postmix.curate.features import normalised_view, row_features
from postmix.curate.minhash import MinHashConfig, estimated_jaccard, shingle_sets
from postmix.curate.reference import Reference, load_reference
from postmix.curate.runner import StageOutput, Verdicts
from postmix.curate.steps import STEPS
from postmix.curate.survivors import bucket_ids, greedy_survivors
from postmix.curate.textview import View, view_texts
from postmix.curate.unionfind import clusters
from postmix.errors import ConfigError
from postmix.schemas import kind_of_columns

EXACT = "exact_duplicate"
NEAR = "near_duplicate"
METHODS = ("exact-hash", "minhash", "jaccard")
# With verification a pair LSH misses is the one way two similar rows both stay: aim higher
VERIFIED_MIN_RECALL = 0.99
_PREVIEW_CHARS = 160


class DedupConfig(MinHashConfig):
    """Settings of ``postmix curate dedup``; the MinHash fields are inherited."""

    mode: Literal["exact", "near", "both"] = Field(
        "both", description="exact: identical normalised text; near: MinHash-LSH; both: exact "
        "first (cheap, and it keeps near-dup clusters from being dominated by identical copies)."
    )
    on: View = Field("user", description="Text compared: user turns (the usual choice for prompt "
                     "dedup), prompt, assistant or the whole conversation.")
    threshold: float = Field(0.8, gt=0.0, le=1.0, description="Jaccard similarity at which rows "
                             "count as near duplicates.")
    bands: int | None = Field(
        None, ge=1, description="LSH bands; chosen from threshold and min_recall when omitted."
    )
    rows: int | None = Field(None, ge=1, description="LSH rows per band; give with bands.")
    min_recall: float | None = Field(
        None, gt=0.0, lt=1.0,
        description="Chance of catching a pair exactly at the threshold when bands/rows are "
        f"chosen; default {VERIFIED_MIN_RECALL} with verify (16x6 at 0.8: a false candidate costs "
        f"one exact comparison), {lsh.DEFAULT_MIN_RECALL} without (datatrove's 14x8 at 0.8).",
    )
    verify: bool = Field(
        True,
        description="Decide near duplicates by exact Jaccard: a row goes only for a kept row at "
        ">= threshold (--no-verify: MinHash clusters, one survivor each, faster but chaining).",
    )
    keep: Literal["first", "longest", "source-priority"] = Field(
        "first",
        description="Survivor of a group: first row, longest conversation, or best-ranked source.",
    )
    source_priority: list[str] = Field(
        default_factory=list,
        description="Sources best first, for keep=source-priority; unlisted sources rank last.",
    )
    batch_size: int = Field(
        65536, ge=1, description="Rows normalised and hashed per batch (bounds text memory)."
    )
    largest_clusters: int = Field(
        5, ge=0, description="Clusters listed with examples in the report."
    )

    @model_validator(mode="after")
    def _consistent(self) -> DedupConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both bands and rows, or neither")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(
                f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}"
            )
        if self.keep == "source-priority" and not self.source_priority:
            raise ValueError(
                "keep=source-priority needs source_priority, e.g. ['human', 'synthetic']"
            )
        if self.source_priority and self.keep != "source-priority":
            raise ValueError(
                f"source_priority is only used with keep=source-priority (keep is {self.keep!r}): "
                "set both, or drop source_priority"
            )
        return self

    def lsh_shape(self) -> tuple[int, int]:
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        recall = self.min_recall or (VERIFIED_MIN_RECALL if self.verify else lsh.DEFAULT_MIN_RECALL)
        return lsh.optimal_bands_rows(self.num_perm, self.threshold, recall)


# ---------------------------------------------------------------- survivor ranking


def _column(ds: datasets.Dataset, name: str) -> pa.Array:
    column = ds.with_format("arrow")[name]
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


def _conversation_lengths(ds: datasets.Dataset, kind: str, batch_size: int) -> np.ndarray:
    from postmix.curate.features import arrow_batches

    parts = [pc.utf8_length(view_texts(t, kind, "conversation")).to_numpy(zero_copy_only=False)
             for _, t in arrow_batches(ds, batch_size)]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def preference_rank(ds: datasets.Dataset, kind: str, config: DedupConfig) -> np.ndarray:
    """``rank[i]``: lower survives. Ties always go to the earlier row, so results are stable."""
    n = len(ds)
    index = np.arange(n)
    if config.keep == "first":
        return index
    if config.keep == "longest":
        keys = (index, -_conversation_lengths(ds, kind, config.batch_size))
    else:
        position = pc.index_in(
            _column(ds, "source"), value_set=pa.array(config.source_priority, pa.string())
        )
        keys = (index,
                position.fill_null(len(config.source_priority)).to_numpy(zero_copy_only=False))
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort(keys)] = index
    return rank


def _group_survivors(groups: np.ndarray, members: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """For each member (row index), the best-ranked member of its group."""
    order = np.lexsort((rank[members], groups))
    sorted_groups = groups[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = sorted_groups[1:] != sorted_groups[:-1]
    run_first = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    survivors = np.empty(len(members), dtype=np.int64)
    survivors[order] = members[order][run_first]
    return survivors


# ---------------------------------------------------------------- the stage


class _Outcome:
    """Removed rows and why, filled by the exact and near passes."""

    def removals(self) -> Removals:
        rows = np.flatnonzero(self.reason)
        return Removals(rows, self.reason[rows], self.kept[rows], self.similarity[rows],
                        self.method[rows])

    def __init__(self, n: int):
        self.reason = np.zeros(n, dtype=np.int8)  # 0 keep, 1 exact, 2 near
        self.kept = np.full(n, -1, dtype=np.int64)  # survivor: >= 0 new row, < 0 reference row -1-r
        self.similarity = np.zeros(n, dtype=np.float64)
        # 0 exact hash, 1 minhash estimate, 2 exact jaccard
        self.method = np.zeros(n, dtype=np.int8)

    def follow_exact_survivors(self) -> int:
        """A copy whose exact-pass survivor went in the near pass names the near survivor: its
        text is the survivor's, so it is that row's near duplicate at the same similarity."""
        copies = np.flatnonzero(self.reason == 1)
        survivor = self.kept[copies]
        moved = survivor >= 0
        moved[moved] = self.reason[survivor[moved]] == 2
        copies, survivor = copies[moved], survivor[moved]
        self.reason[copies] = 2
        self.kept[copies] = self.kept[survivor]
        self.similarity[copies] = self.similarity[survivor]
        self.method[copies] = self.method[survivor]
        return len(copies)


def _exact_pass(
    features, reference: Reference | None, rank: np.ndarray, out: _Outcome
) -> dict[str, Any]:
    eligible = np.flatnonzero(~features.empty)
    removed = 0
    if reference is not None and len(eligible) and (~reference.features.empty).any():
        ref_rows = np.flatnonzero(~reference.features.empty)
        ref_rows = ref_rows[np.argsort(reference.features.exact[ref_rows], kind="stable")]
        ref_hashes = reference.features.exact[ref_rows]
        pos = np.minimum(np.searchsorted(ref_hashes, features.exact[eligible]), len(ref_hashes) - 1)
        hit = ref_hashes[pos] == features.exact[eligible]
        rows = eligible[hit]
        out.reason[rows], out.kept[rows], out.similarity[rows] = 1, -1 - ref_rows[pos[hit]], 1.0
        removed += len(rows)
        eligible = eligible[~hit]
    if len(eligible):
        survivors = _group_survivors(features.exact[eligible], eligible, rank)
        dup = survivors != eligible
        rows = eligible[dup]
        out.reason[rows], out.kept[rows], out.similarity[rows] = 1, survivors[dup], 1.0
        removed += len(rows)
    return {"removed": removed}


def _joint_bands(
    features, reference: Reference | None, active: np.ndarray, bands: int, rows: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """``(members, band hashes [bands, len(members)], offset)`` of the rows LSH looks at, in a
    joint index space: reference rows first (0..offset-1), new rows after; members ascending."""
    members = np.flatnonzero(active)
    hashes = lsh.band_hashes(features.signatures, bands, rows, members)
    if reference is None:
        return members, hashes, 0
    ref_active = np.flatnonzero(~reference.features.empty)
    offset = len(reference.features)
    ref_hashes = lsh.band_hashes(reference.features.signatures, bands, rows, ref_active)
    return (np.concatenate([ref_active, members + offset]),
            np.concatenate([ref_hashes, hashes], axis=1), offset)


def _candidate_pairs(members: np.ndarray, hashes: np.ndarray, offset: int, total: int
                     ) -> np.ndarray:
    """Each bucket member paired with the bucket's first member: enough to connect clusters."""
    if len(members) < 2:
        return np.zeros((0, 2), np.int64)
    keys = []
    for band in range(hashes.shape[0]):
        pairs = lsh.bucket_pairs(hashes[band], members, 1)
        lo, hi = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
        keep = hi >= offset  # a pair inside the reference is not ours to resolve
        keys.append(lo[keep] * total + hi[keep])
    unique = np.unique(np.concatenate(keys))
    return np.stack([unique // total, unique % total], axis=1)


def _bucket_pairs(buckets: np.ndarray, members: np.ndarray, offset: int, total: int) -> np.ndarray:
    """``_candidate_pairs`` from ``bucket_ids`` (computed with ``counted`` = new rows), without
    sorting every band's hashes a second time: only rows in a shared bucket are sorted."""
    keys = [np.zeros(0, np.int64)]
    for band in range(buckets.shape[1]):
        shared = np.flatnonzero(buckets[:, band] >= 0)
        order = np.argsort(buckets[shared, band], kind="stable")  # members ascending: first = least
        ids, rows = buckets[shared[order], band], members[shared[order]]
        first = np.ones(len(ids), bool)
        first[1:] = ids[1:] != ids[:-1]
        run_first = np.maximum.accumulate(np.where(first, np.arange(len(ids)), 0))
        keep = ~first & (rows >= offset)  # a pair inside the reference is not ours to resolve
        keys.append(rows[run_first[keep]] * total + rows[keep])
    unique = np.unique(np.concatenate(keys))
    return np.stack([unique // total, unique % total], axis=1)


class _JointText:
    """Shingle sets of some rows (joint index, taken ascending) for exact Jaccard, computed once."""

    def __init__(self, ds, kind, reference: Reference | None, offset: int, config: DedupConfig,
                 rows: np.ndarray):
        self.rows = np.unique(rows)
        parts = []
        ref_rows = self.rows[self.rows < offset]
        new_rows = self.rows[self.rows >= offset] - offset
        if len(ref_rows):
            ref_ds, ref_kind = reference.dataset()
            parts.append(normalised_view(ref_ds, ref_kind, config.on, config, ref_rows))
        if len(new_rows):
            parts.append(normalised_view(ds, kind, config.on, config, new_rows))
        data = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.uint8)
        offsets = [np.zeros(1, np.int64)]
        base = 0
        for part_data, part_offsets in parts:
            offsets.append(part_offsets[1:] + base)
            base += len(part_data)
        self.flat, self.set_offsets = shingle_sets(data, np.concatenate(offsets), config)


def _near_pass(ds, kind, features, reference, rank, config: DedupConfig, out: _Outcome,
               timings: dict[str, float]) -> dict[str, Any]:
    bands, rows = config.lsh_shape()
    active = ~features.empty & (out.reason == 0)
    started = time.perf_counter()
    members, hashes, offset = _joint_bands(features, reference, active, bands, rows)
    total = offset + len(features)
    if config.verify:  # the buckets the greedy pass walks, and the same pairs from them
        buckets = bucket_ids(hashes, counted=members >= offset)
        pairs = _bucket_pairs(buckets, members, offset, total)
    else:
        pairs = _candidate_pairs(members, hashes, offset, total)
    timings["lsh"] = time.perf_counter() - started
    stats: dict[str, Any] = {
        "bands": bands, "rows": rows, "candidate_pairs": int(len(pairs)),
        "recall_at_threshold": round(
            float(lsh.collision_probability(config.threshold, bands, rows)), 4),
    }
    started = time.perf_counter()
    labels = clusters(total, pairs)
    nodes = np.unique(pairs.ravel())
    joint_rank = np.concatenate([np.arange(offset), offset + rank]) if offset else rank
    if config.verify:
        removed, kept, similarity = _verified_survivors(
            ds, kind, reference, config, members, buckets, offset, joint_rank, stats)
        stats["chained_rows_kept"] = int(
            len(nodes) - np.isin(nodes, removed + offset).sum() - len(np.unique(labels[nodes])))
        timings["verify"] = time.perf_counter() - started
        started = time.perf_counter()
    else:
        survivors = _group_survivors(labels[nodes], nodes, joint_rank) if len(nodes) else nodes
        new = (nodes >= offset) & (survivors != nodes)
        removed, kept = nodes[new] - offset, survivors[new]
        similarity = np.empty(len(removed))
        for start in range(0, len(removed), 65536):
            r, k = removed[start : start + 65536], kept[start : start + 65536]
            similarity[start : start + 65536] = estimated_jaccard(
                features.signatures[r], _joint_signatures(features, reference, offset, k)
            )
    out.reason[removed] = 2
    out.kept[removed] = np.where(kept >= offset, kept - offset, -1 - kept)
    out.similarity[removed] = similarity
    out.method[removed] = 2 if config.verify else 1
    sizes = (np.bincount(np.unique(labels[nodes], return_inverse=True)[1]) if len(nodes)
             else np.zeros(0, np.int64))
    stats.update({"clusters": int(len(sizes)), "removed": int(len(removed)),
                  "cluster_size_histogram": cluster_size_histogram(sizes)})
    timings["clusters"] = time.perf_counter() - started
    stats["_labels"], stats["_nodes"], stats["_offset"] = labels, nodes, offset
    return stats


def _verified_survivors(ds, kind, reference, config: DedupConfig, members: np.ndarray,
                        buckets: np.ndarray, offset: int, joint_rank: np.ndarray,
                        stats: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(removed new rows, their survivors in the joint index, exact Jaccard)`` of the greedy
    pass (``postmix.curate.survivors``) over every row that shares a bucket with a new row."""
    shared = (buckets >= 0).any(axis=1)
    rows, buckets = members[shared], buckets[shared]
    if not len(rows):
        stats.update({"pairs_compared": 0, "pairs_below_threshold": 0})
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    text = _JointText(ds, kind, reference, offset, config, rows)  # rows ascending: same order
    decided = greedy_survivors(buckets, np.argsort(joint_rank[rows], kind="stable"), text.flat,
                               text.set_offsets, config.threshold, forced=rows < offset)
    stats.update({"pairs_compared": int(decided.compared.sum()),
                  "pairs_below_threshold": int(decided.below.sum())})
    gone = np.flatnonzero(decided.kept_by >= 0)
    return rows[gone] - offset, rows[decided.kept_by[gone]], decided.similarity[gone]


def _joint_signatures(
    features, reference: Reference | None, offset: int, rows: np.ndarray
) -> np.ndarray:
    if not offset:
        return features.signatures[rows]
    result = np.empty((len(rows), features.signatures.shape[1]), features.signatures.dtype)
    in_ref = rows < offset
    result[in_ref] = reference.features.signatures[rows[in_ref]]
    result[~in_ref] = features.signatures[rows[~in_ref] - offset]
    return result


def cluster_size_histogram(sizes: np.ndarray) -> dict[str, int]:
    """Cluster sizes in bins 2, 3, 4, 5-8, 9-16, ...: readable for any corpus size."""
    bins: Counter[tuple[int, int]] = Counter()
    for size, count in zip(*np.unique(sizes, return_counts=True), strict=True):
        size = int(size)
        top = 2 ** int(np.ceil(np.log2(size)))
        lo, hi = (size, size) if size <= 4 else (top // 2 + 1, top)
        bins[(lo, hi)] += int(count)
    return {(str(lo) if lo == hi else f"{lo}-{hi}"): bins[(lo, hi)] for lo, hi in sorted(bins)}


def _preview(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 1] + "…"


@dataclass
class Removals:
    """The rows a dedup run removes, ascending, each with its survivor: what the reject details
    and the report are made of, on either engine (the Ray engine gathers only these rows).
    ``kept[k] >= 0`` is a row of the data, ``< 0`` the reference row ``-1 - kept[k]``."""

    rows: np.ndarray  # int64, ascending
    code: np.ndarray  # int8: 1 exact, 2 near
    kept: np.ndarray  # int64
    similarity: np.ndarray  # float64
    method: np.ndarray  # int8: index into METHODS

    def of(self, rows: np.ndarray) -> np.ndarray:
        """Positions of ``rows`` (all removed) in this table."""
        return np.searchsorted(self.rows, rows)

    def near(self, rows: np.ndarray) -> np.ndarray:
        """Which of ``rows`` were removed as near duplicates."""
        at = np.minimum(self.of(rows), max(len(self.rows) - 1, 0))
        if not len(self.rows):
            return np.zeros(len(rows), bool)
        return (self.rows[at] == rows) & (self.code[at] == 2)


def removal_verdicts(removals: Removals, kept_ids: Sequence[str], sources: Sequence[Any]
                     ) -> tuple[list[str], list[str], dict[str, dict[str, int]]]:
    """``(reasons, details, removed_per_source)`` of the removed rows, in their order, given the
    id of each one's survivor and each one's source."""
    reasons = [EXACT if code == 1 else NEAR for code in removals.code.tolist()]
    details = [f"duplicate_of={kept_id} similarity={similarity:.3f} method={METHODS[method]}"
               + (" kept_in=reference" if kept < 0 else "")
               for kept_id, similarity, method, kept in zip(
                   kept_ids, removals.similarity.tolist(), removals.method.tolist(),
                   removals.kept.tolist(), strict=True)]
    per_source: dict[str, dict[str, int]] = {}
    for source, reason in zip(sources, reasons, strict=True):
        entry = per_source.setdefault(str(source), {EXACT: 0, NEAR: 0})
        entry[reason] += 1
    return reasons, details, dict(sorted(per_source.items()))


def largest_cluster_picks(nodes: np.ndarray, node_labels: np.ndarray, offset: int,
                          removals: Removals, limit: int) -> list[tuple[int, int, np.ndarray]]:
    """``(size, survivor, example rows)`` of the ``limit`` largest near-duplicate clusters
    (``nodes`` in the joint index: reference rows first, then ``offset`` + data rows) that lost
    a data row; the survivor is encoded as ``Removals.kept``."""
    if not len(nodes) or not limit:
        return []
    unique, inverse, counts = np.unique(node_labels, return_inverse=True, return_counts=True)
    picks = []
    for t in np.lexsort((unique, -counts))[:limit]:
        members = nodes[inverse == t]
        new = members[members >= offset] - offset
        removed = new[removals.near(new)]
        if len(removed):
            kept = int(removals.kept[removals.of(removed[:1])][0])
            picks.append((int(counts[t]), kept, removed[:3]))
    return picks


def cluster_listing(picks: list[tuple[int, int, np.ndarray]], removals: Removals,
                    ids: dict[int, str], texts: dict[int, str]) -> list[dict[str, Any]]:
    """The report's ``largest_clusters``: ``ids`` and ``texts`` (the compared text view) hold the
    picks' survivors and examples, keyed as ``Removals.kept`` encodes rows."""
    listed = []
    for size, kept, examples in picks:
        similarity = removals.similarity[removals.of(examples)]
        listed.append({
            "size": size,
            "kept": {"id": ids[kept], "in_reference": kept < 0, "text": _preview(texts[kept])},
            "examples": [{"id": ids[r], "similarity": round(float(s), 4),
                          "text": _preview(texts[r])}
                         for r, s in zip(examples.tolist(), similarity.tolist(), strict=True)],
        })
    return listed


def _view_of(ds: datasets.Dataset, kind: str, on: str, rows: list[int]) -> list[str]:
    return view_texts(ds.select(rows).with_format("arrow")[:], kind, on).to_pylist() if rows else []


def _local_listing(ds, kind, ids, reference, picks, removals: Removals, config: DedupConfig):
    rows = sorted({r for _, kept, examples in picks for r in [kept, *examples.tolist()]})
    new, ref = [r for r in rows if r >= 0], [-1 - r for r in rows if r < 0]
    texts = dict(zip(new, _view_of(ds, kind, config.on, new), strict=True))
    names = {r: ids[r] for r in new}
    if ref:
        ref_ds, ref_kind = reference.dataset()
        ref_texts = _view_of(ref_ds, ref_kind, config.on, ref)
        texts.update(zip([-1 - r for r in ref], ref_texts, strict=True))
        names.update({-1 - r: reference.ids[r] for r in ref})
    return cluster_listing(picks, removals, names, texts)


def dedup(
    ds: datasets.Dataset,
    config: DedupConfig | None = None,
    *,
    kind: str | None = None,
    against: str | Path | datasets.Dataset | None = None,
    cache_dir: str | Path | None = None,
) -> Verdicts:
    """One verdict per row of ``ds``: ``None`` keeps it, ``exact_duplicate`` / ``near_duplicate``
    remove it with ``duplicate_of=<kept id>`` in the detail. ``stats`` holds the report details."""
    config = config or DedupConfig()
    kind = kind or kind_of_columns(ds.column_names)
    if kind is None:
        raise ConfigError("dedup needs postmix records: run `postmix ingest` on the data first")
    n = len(ds)
    timings: dict[str, float] = {}
    reference = None
    if against is not None:
        reference = load_reference(
            against, config.on, config, cache_dir=cache_dir, batch_size=config.batch_size
        )
        timings["reference"] = reference.seconds
    started = time.perf_counter()
    features = row_features(
        ds, kind, config.on, config, signatures=config.mode != "exact", batch_size=config.batch_size
    )
    rank = preference_rank(ds, kind, config)
    timings["hashing"] = time.perf_counter() - started
    out = _Outcome(n)
    stats: dict[str, Any] = {"empty_text_rows": int(features.empty.sum()), "text_view": config.on}
    if config.mode in ("exact", "both"):
        started = time.perf_counter()
        stats["exact"] = _exact_pass(features, reference, rank, out)
        timings["exact"] = time.perf_counter() - started
    near: dict[str, Any] = {}
    if config.mode in ("near", "both"):
        near = _near_pass(ds, kind, features, reference, rank, config, out, timings)
        followed = out.follow_exact_survivors()
        if "exact" in stats:
            stats["exact"]["named_near_survivor"] = followed
    ids = _column(ds, "id").to_pylist()
    removals = out.removals()
    kept_ids = [ids[k] if k >= 0 else reference.ids[-1 - k] for k in removals.kept.tolist()]
    sources = _column(ds, "source").take(pa.array(removals.rows)).to_pylist()
    removed_reasons, removed_details, per_source = removal_verdicts(removals, kept_ids, sources)
    stats["removed_per_source"] = per_source
    reasons: list[str | None] = [None] * n
    details = [""] * n
    for row, reason, detail in zip(removals.rows.tolist(), removed_reasons, removed_details,
                                   strict=True):
        reasons[row], details[row] = reason, detail
    if near:
        labels, nodes, offset = near.pop("_labels"), near.pop("_nodes"), near.pop("_offset")
        picks = largest_cluster_picks(nodes, labels[nodes], offset, removals,
                                      config.largest_clusters)
        stats["largest_clusters"] = _local_listing(ds, kind, ids, reference, picks, removals,
                                                   config)
        stats["near"] = near
    if reference is not None:
        stats["against"] = {"path": reference.name, "rows": len(reference.ids),
                            "cache_hit": reference.cache_hit,
                            "cache": str(reference.cache_path) if reference.cache_path else None}
    stats["timings"] = {k: round(v, 3) for k, v in timings.items()}
    return Verdicts(reasons, details, stats)


def dedup_file(
    source: str | Path,
    output: str | Path,
    config: DedupConfig | None = None,
    *,
    against: str | Path | None = None,
    cache_dir: str | Path | None = None,
    format: str | None = None,
) -> StageOutput:
    """Read ``source``, dedup it, write kept rows to ``output`` with rejects and report
    beside it."""
    return LocalExecutor().run_file(STEPS["dedup"], source, output, config or DedupConfig(),
                                    format=format, against=against, cache_dir=cache_dir)
