"""The record rules of ``postmix.schemas.records``, checked over whole Arrow columns.

Loading a large file of postmix records row by row through pydantic costs seconds per million
rows; these vectorised checks answer "does every row pass?" in a fraction of that, so clean data
(the common case) loads at Arrow speed and anything else goes the careful way, where each bad
row gets its reject and line number. They must flag every row pydantic would refuse; a row they
let through is loaded as it is.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from postmix.schemas import jsontext
from postmix.schemas.records import ROLES

# (column, the role its last turn must have, whether it needs a user turn somewhere)
_TURNS: dict[str, list[tuple[str, str, bool]]] = {
    "sft": [("messages", "assistant", True)],
    "preference": [
        ("prompt", "user", False),
        ("chosen", "assistant", False),
        ("rejected", "assistant", False),
    ],
    "rlvr": [("prompt", "user", False)],
}


def _column(table: pa.Table, name: str) -> pa.Array:
    return table.column(name).combine_chunks()


def _turns_ok(turns: pa.ListArray, last_role: str, needs_user: bool) -> np.ndarray:
    """Per row: a non-empty list of known roles and non-blank contents, ending as required."""
    n = len(turns)
    lengths = pc.fill_null(pc.list_value_length(turns), 0).to_numpy(zero_copy_only=False)
    ok = lengths > 0
    flat = pc.list_flatten(turns)
    if len(flat):
        owner = pc.list_parent_indices(turns).to_numpy(zero_copy_only=False)
        roles = flat.field("role")
        contents = flat.field("content")
        good_turn = pc.and_(
            pc.fill_null(pc.is_in(roles, pa.array(ROLES)), False),
            pc.fill_null(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(contents)), 0), False),
        )
        bad_owner = owner[~good_turn.to_numpy(zero_copy_only=False)]
        ok[bad_owner] = False
        last = np.cumsum(lengths) - 1  # index of each row's last turn in the flat array
        has_turns = lengths > 0
        last_roles = np.asarray(roles.take(pa.array(last[has_turns])).to_pylist(), dtype=object)
        ends_right = np.zeros(n, bool)
        ends_right[has_turns] = last_roles == last_role
        ok &= ends_right
        if needs_user:
            is_user = pc.fill_null(pc.equal(roles, "user"), False).to_numpy(zero_copy_only=False)
            with_user = np.zeros(n, bool)
            with_user[np.unique(owner[is_user])] = True
            ok &= with_user
    return ok


def _joined_trimmed(turns: pa.ListArray) -> pa.Array:
    """Each row's contents, trimmed and joined: what ``chosen != rejected`` compares."""
    flat = pc.list_flatten(turns)
    trimmed = pc.utf8_trim_whitespace(flat.field("content"))
    offsets = pc.fill_null(pc.list_value_length(turns), 0).to_numpy(zero_copy_only=False)
    rebuilt = pa.ListArray.from_arrays(
        pa.array(np.concatenate([[0], np.cumsum(offsets)]), pa.int32()), trimmed
    )
    return pc.binary_join(rebuilt, "\x00")


def _json_objects(values: pa.Array, *, allow_empty: bool = True) -> bool:
    """Each value null/empty (when allowed) or text shaped like a JSON object, ``{...}``. Not a
    parse: a cheap guard against the common mistakes ("not json", "[1]"), whole-column. Text with
    more brackets than ``jsontext.MAX_DEPTH`` may nest too deep to parse later, so it goes the
    careful way too (where a shallow one is kept)."""
    text = pc.utf8_trim_whitespace(values.cast(pa.large_string()))
    shaped = pc.and_(pc.starts_with(text, "{"), pc.ends_with(text, "}"))
    brackets = pc.add(pc.count_substring(text, "{"), pc.count_substring(text, "["))
    shaped = pc.and_(shaped, pc.less_equal(brackets, jsontext.MAX_DEPTH))
    if allow_empty:
        shaped = pc.or_(shaped, pc.equal(text, ""))
    ok = pc.fill_null(shaped, allow_empty)
    return bool(pc.all(ok).as_py()) if len(values) else True


def all_rows_valid(table: pa.Table, kind: str) -> bool:
    """Whether every row of ``table`` (postmix columns of ``kind``) is a valid record with a
    unique id. False means: validate row by row to find and reject the bad ones. Dict columns
    (``meta``, ``judge``, ``constraints``) are checked for the shape of a JSON object only."""
    if kind not in _TURNS:
        # completion and prompt rows are postmix's own intermediate files, which ingest does not
        # read back: they load as they are (as before these checks existed)
        return True
    if table.num_rows == 0:
        return True
    ids = _column(table, "id")
    if ids.null_count or not pc.all(pc.greater(pc.utf8_length(ids), 0)).as_py():
        return False
    if pc.count_distinct(ids).as_py() != len(ids) or _column(table, "source").null_count:
        return False
    for name, last_role, needs_user in _TURNS[kind]:
        if not _turns_ok(_column(table, name), last_role, needs_user).all():
            return False
    for name in ("meta", "judge"):
        if name in table.column_names and not _json_objects(_column(table, name)):
            return False
    if kind == "rlvr" and "constraints" in table.column_names:
        constraints = _column(table, "constraints")
        if len(pc.list_flatten(constraints)) and not _json_objects(pc.list_flatten(constraints)):
            return False
    if kind == "preference":
        same = pc.equal(
            _joined_trimmed(_column(table, "chosen")), _joined_trimmed(_column(table, "rejected"))
        )
        if pc.any(pc.fill_null(same, False)).as_py():
            return False
    if kind == "rlvr":
        verifier = _column(table, "verifier")
        if _column(table, "ground_truth").null_count or verifier.null_count:
            return False
        if not pc.all(pc.greater(pc.utf8_length(verifier), 0)).as_py():
            return False
    return True
