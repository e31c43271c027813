"""``diff(a, b)``: what changed between two mix versions — spec keys, per-source row counts, and
rows added / removed by id (as multisets, so an upsampled row counts once per copy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from postmix.mix.registry import Registry


def flatten_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys; sources keyed by name (``sources.gsm.count``) so re-ordering is not a change."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            if not value:
                out[prefix] = {}
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for index, item in enumerate(value):
                walk(f"{prefix}[{index}]", item)
        else:
            out[prefix] = value

    for key, value in spec.items():
        if key == "sources":
            for source in value:
                walk(f"sources.{source['name']}", {k: v for k, v in source.items() if k != "name"})
        else:
            walk(key, value)
    return out


def spec_changes(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    flat_a, flat_b = flatten_spec(a), flatten_spec(b)
    changes = []
    for key in sorted(set(flat_a) | set(flat_b)):
        if flat_a.get(key, _MISSING) != flat_b.get(key, _MISSING):
            changes.append(
                {
                    "key": key,
                    "a": flat_a.get(key),
                    "b": flat_b.get(key),
                    "change": "added"
                    if key not in flat_a
                    else "removed"
                    if key not in flat_b
                    else "changed",
                }
            )
    return changes


_MISSING = object()


def _id_counts(table: pa.Table) -> pa.Table:
    return table.group_by("id").aggregate([("id", "count")])


def id_changes(ids_a: pa.Table, ids_b: pa.Table, *, sample: int) -> dict[str, Any]:
    """Multiset difference of the ``id`` columns, computed with an Arrow join
    (no Python per row)."""
    joined = _id_counts(ids_a).join(_id_counts(ids_b), keys="id", join_type="full outer",
                                    left_suffix="_a", right_suffix="_b")
    count_a = pc.fill_null(joined.column("id_count_a"), 0)
    count_b = pc.fill_null(joined.column("id_count_b"), 0)
    delta = pc.subtract(count_b, count_a)
    added_mask, removed_mask = pc.greater(delta, 0), pc.less(delta, 0)
    added = joined.filter(added_mask).column("id")
    removed = joined.filter(removed_mask).column("id")
    return {
        "rows_added": int(pc.sum(pc.filter(delta, added_mask)).as_py() or 0),
        "rows_removed": int(-(pc.sum(pc.filter(delta, removed_mask)).as_py() or 0)),
        "ids_added": len(added),
        "ids_removed": len(removed),
        "added_sample": sorted(added.to_pylist())[:sample],
        "removed_sample": sorted(removed.to_pylist())[:sample],
    }


def diff(a: str, b: str, *, home: str | Path | None = None, sample: int = 10) -> dict[str, Any]:
    registry = Registry(home)
    mix_a, mix_b = registry.resolve(a), registry.resolve(b)
    man_a, man_b = mix_a.manifest, mix_b.manifest
    rows_a = {s["name"]: s["rows"] for s in man_a["sources"]}
    rows_b = {s["name"]: s["rows"] for s in man_b["sources"]}
    fp_a = {s["name"]: s["fingerprint"] for s in man_a["sources"]}
    fp_b = {s["name"]: s["fingerprint"] for s in man_b["sources"]}
    sources = []
    for name in list(rows_a) + [n for n in rows_b if n not in rows_a]:
        if rows_a.get(name) != rows_b.get(name) or fp_a.get(name) != fp_b.get(name):
            sources.append({"source": name, "a": rows_a.get(name), "b": rows_b.get(name),
                            "delta": (rows_b.get(name) or 0) - (rows_a.get(name) or 0),
                            "fingerprint_changed": fp_a.get(name) != fp_b.get(name)})
    return {
        "a": mix_a.ref, "b": mix_b.ref,
        "same_content": mix_a.content_hash == mix_b.content_hash,
        "rows": {"a": mix_a.rows, "b": mix_b.rows},
        "spec_changes": spec_changes(man_a["spec"], man_b["spec"]),
        "source_changes": sources,
        **id_changes(mix_a.table(["id"]), mix_b.table(["id"]), sample=sample),
    }
