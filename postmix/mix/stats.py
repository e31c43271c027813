"""Dataset statistics computed on Arrow columns, not Python objects: rows, sources, turns,
role counts, and length distributions in characters (and tokens with a tokenizer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from postmix.io.dataset import load_records

PERCENTILES = (0, 10, 50, 90, 99, 100)


def _distribution(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {"mean": 0.0, **{f"p{p}": 0.0 for p in PERCENTILES}}
    out = {"mean": round(float(values.mean()), 2)}
    out.update({f"p{p}": float(np.percentile(values, p)) for p in PERCENTILES})
    return out


def _message_columns(table: pa.Table) -> list[str]:
    return [
        name
        for name, field in zip(table.column_names, table.schema, strict=True)
        if pa.types.is_list(field.type) and pa.types.is_struct(field.type.value_type)
    ]


def _column_stats(column: pa.ChunkedArray, tokenizer: Any | None) -> dict[str, Any]:
    column = column.combine_chunks()
    turns = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(column)
    parents = pc.list_parent_indices(column).to_numpy()
    roles = flat.field("role")
    contents = flat.field("content")
    lengths = pc.utf8_length(contents).to_numpy(zero_copy_only=False)
    role_counts = {r["values"]: r["counts"] for r in pc.value_counts(roles).to_pylist()}
    stats: dict[str, Any] = {
        "turns": _distribution(turns),
        "roles": dict(sorted(role_counts.items())),
        "chars_per_row": _distribution(
            np.bincount(parents, weights=lengths, minlength=len(column))
        ),
        "chars_per_turn": {
            role: _distribution(lengths[pc.equal(roles, role).to_numpy(zero_copy_only=False)])
            for role in sorted(role_counts)
        },
    }
    if tokenizer is not None:
        texts = contents.to_pylist()
        counts = np.array(
            [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
        )
        stats["tokens_per_row"] = _distribution(
            np.bincount(parents, weights=counts, minlength=len(column))
        )
        stats["tokens_total"] = int(counts.sum())
    return stats


def dataset_stats(path: str | Path, *, tokenizer: str | None = None, format: str | None = None,
                  trust_remote_code: bool = False) -> dict[str, Any]:
    tok = None
    if tokenizer:  # before reading the data: a wrong name fails at once, in one line
        from postmix.mix.measure import load_tokenizer

        tok = load_tokenizer(tokenizer, trust_remote_code=trust_remote_code)
    ds, kind, rejects = load_records(path, format=format)
    table = ds.data.table if hasattr(ds.data, "table") else ds.data
    sources = {
        r["values"]: r["counts"] for r in pc.value_counts(table.column("source")).to_pylist()
    }
    return {
        "path": str(path),
        "kind": kind,
        "rows": len(ds),
        "unreadable_rows": len(rejects),
        "sources": dict(sorted(sources.items(), key=lambda kv: (-kv[1], kv[0]))),
        "columns": {
            name: _column_stats(table.column(name), tok) for name in _message_columns(table)
        },
    }
