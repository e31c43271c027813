"""Per-row sizes of a mix (characters, turns, tokens), computed on Arrow columns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MESSAGE_COLUMNS = {
    "sft": ("messages",),
    "preference": ("prompt", "chosen", "rejected"),
    "rlvr": ("prompt",),
}
TOKENIZE_BATCH_ROWS = 8192


def _flat_contents(column: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, np.ndarray]:
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    parents = pc.list_parent_indices(column).to_numpy()
    return pc.list_flatten(column).field("content"), parents


def row_chars(table: pa.Table, kind: str) -> np.ndarray:
    """Characters of all message contents per row (prompt + chosen + rejected for preferences)."""
    total = np.zeros(table.num_rows, dtype=np.int64)
    for name in MESSAGE_COLUMNS[kind]:
        contents, parents = _flat_contents(table.column(name))
        lengths = pc.fill_null(pc.utf8_length(contents), 0).to_numpy(zero_copy_only=False)
        total += np.bincount(parents, weights=lengths, minlength=table.num_rows).astype(np.int64)
    return total


def row_turns(table: pa.Table, kind: str) -> np.ndarray:
    column = table.column(MESSAGE_COLUMNS[kind][0])
    return (
        pc.fill_null(pc.list_value_length(column), 0)
        .to_numpy(zero_copy_only=False)
        .astype(np.int64)
    )


def load_tokenizer(name: str, *, trust_remote_code: bool = False) -> Any:
    from postmix.errors import PostmixError

    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except Exception as exc:  # missing files, no network, unknown name
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PostmixError(
            f"cannot load tokenizer {name!r}: {first} (pass a local path or a Hub name)"
        ) from None
