"""Which text of a record a curation stage looks at, built with Arrow compute (no Python per row).

``user``          the user turns (the prompts a model is trained to answer), joined by newlines
``prompt``        everything the model is given before its final answer, system turns excluded
                  (a shared system prompt would make unrelated rows look alike)
``assistant``     the response: sft assistant turns, preference ``chosen``, completion ``response``
``conversation``  every turn of the row, system included (preference: prompt + chosen)
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from postmix.errors import PostmixError

View = Literal["user", "prompt", "assistant", "conversation"]
VIEWS: tuple[str, ...] = ("user", "prompt", "assistant", "conversation")


class UnsupportedViewError(PostmixError):
    """The requested text view does not exist for this kind of record."""


def _as_list_array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


def _join_turns(column: pa.ChunkedArray | pa.Array, select: str) -> pa.Array:
    """Join the contents of the selected turns of each row with newlines.

    ``select``: ``user``, ``assistant``, ``non_system``, ``all`` or ``before_last_assistant``
    (non-system turns before the row's last assistant turn).
    """
    lists = _as_list_array(column)
    n = len(lists)
    flat = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    roles = pc.struct_field(flat, "role")
    contents = pc.struct_field(flat, "content").fill_null("")
    if select == "all":
        mask = np.ones(len(flat), dtype=bool)
    elif select in ("user", "assistant"):
        mask = pc.equal(roles, select).fill_null(False).to_numpy(zero_copy_only=False)
    else:
        mask = pc.not_equal(roles, "system").fill_null(True).to_numpy(zero_copy_only=False)
        if select == "before_last_assistant":
            positions = np.arange(len(flat))
            is_assistant = (
                pc.equal(roles, "assistant").fill_null(False).to_numpy(zero_copy_only=False)
            )
            last_seen = np.full(n, -1, dtype=np.int64)
            np.maximum.at(last_seen, parents[is_assistant], positions[is_assistant])
            last = np.where(last_seen >= 0, last_seen, np.iinfo(np.int64).max)
            mask &= positions < last[parents]
    chosen = contents.filter(pa.array(mask))
    counts = np.bincount(parents[mask], minlength=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    grouped = pa.LargeListArray.from_arrays(
        pa.array(offsets, pa.int64()), chosen.cast(pa.large_string())
    )
    return pc.binary_join(grouped, pa.scalar("\n", pa.large_string()))


def _concat(*parts: pa.Array) -> pa.Array:
    # one string type for every part and the separator: the kernel has no mixed-type overloads
    parts = tuple(p.cast(pa.large_string()) for p in parts)
    return pc.binary_join_element_wise(*parts, pa.scalar("\n", pa.large_string()))


def view_texts(table: pa.Table, kind: str, on: str) -> pa.Array:
    """One string per row of ``table`` (postmix records of ``kind``): the text ``on`` names."""
    if on not in VIEWS:
        raise UnsupportedViewError(f"unknown text view {on!r}: use one of {', '.join(VIEWS)}")
    if kind == "sft":
        messages = table.column("messages")
        select = {
            "user": "user",
            "assistant": "assistant",
            "prompt": "before_last_assistant",
            "conversation": "all",
        }
        return _join_turns(messages, select[on]).cast(pa.large_string())
    if kind in ("preference", "rlvr", "completion"):
        prompt = table.column("prompt")
        if on == "user":
            return _join_turns(prompt, "user").cast(pa.large_string())
        if on == "prompt":
            return _join_turns(prompt, "non_system").cast(pa.large_string())
        if kind == "rlvr" and on == "assistant":
            raise UnsupportedViewError(
                "rlvr rows have no response: use --on user, prompt or conversation"
            )
        if kind == "preference":
            response = _join_turns(
                table.column("chosen"), "assistant" if on == "assistant" else "all"
            )
        elif kind == "completion":
            response = _as_list_array(table.column("response")).fill_null("")
        else:
            response = None
        if on == "assistant":
            return response.cast(pa.large_string())
        whole = _join_turns(prompt, "all")
        return (
            whole
            if response is None
            else _concat(whole.cast(pa.large_string()), response.cast(pa.large_string()))
        ).cast(pa.large_string())
    raise UnsupportedViewError(
        f"cannot take text from {kind!r} records: dedup sft, preference, rlvr or completion data"
    )
