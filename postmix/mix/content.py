"""Content hashes of Arrow tables and byte-deterministic Parquet shards.

The content hash is computed from the *logical* values of each column (string bytes, list
lengths, validity, numbers), never from Parquet bytes, whose layout can change with the pyarrow
version. Chunking, slicing and buffer padding do not change it; a single changed character,
row order, column type or a null where there was a value does.

Shards are written with a fixed row count, fixed row-group size, one contiguous chunk per column
and no schema metadata, so the same rows produce the same bytes with the same pyarrow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

SHARD_ROWS = 100_000  # ~10 shards per million rows: parallel reads without a swarm of tiny files
ROW_GROUP_ROWS = 10_000  # fixed, so the layout never depends on how the table was chunked
COMPRESSION = "zstd"
CONTENT_HASH_CHARS = 32


def _feed_validity(hasher: xxhash.xxh3_128, array: pa.Array) -> None:
    if array.null_count:
        hasher.update(np.packbits(array.is_null().to_numpy(zero_copy_only=False)).tobytes())
    else:
        hasher.update(b"\x00all-valid")


def _feed(hasher: xxhash.xxh3_128, array: pa.Array) -> None:
    """Feed the logical content of ``array`` (one contiguous chunk) into ``hasher``."""
    kind = array.type
    hasher.update(str(kind).encode())
    hasher.update(len(array).to_bytes(8, "little"))
    _feed_validity(hasher, array)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind) \
            or pa.types.is_large_binary(kind):
        lengths = (
            pc.fill_null(pc.binary_length(array), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        )
        hasher.update(lengths.tobytes())
        # the values' bytes, contiguous: slicing the data buffer by the first/last offset
        offset_type = (
            np.int64
            if (pa.types.is_large_string(kind) or pa.types.is_large_binary(kind))
            else np.int32
        )
        buffers = array.buffers()
        offsets = (
            np.frombuffer(buffers[1], dtype=offset_type)[
                array.offset : array.offset + len(array) + 1
            ]
            if len(array)
            else np.zeros(1, offset_type)
        )
        if buffers[2] is not None and offsets[-1] > offsets[0]:
            hasher.update(memoryview(buffers[2])[int(offsets[0]) : int(offsets[-1])])
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        lengths = (
            pc.fill_null(pc.list_value_length(array), 0)
            .to_numpy(zero_copy_only=False)
            .astype(np.int64)
        )
        hasher.update(lengths.tobytes())
        _feed(hasher, array.flatten())  # flatten() honours slicing and skips null lists' values
    elif pa.types.is_struct(kind):
        for index, field in enumerate(kind):
            hasher.update(field.name.encode())
            _feed(hasher, pc.struct_field(array, [index]))
    elif pa.types.is_dictionary(kind):
        _feed(hasher, array.dictionary_decode())
    elif pa.types.is_null(kind):
        pass
    else:  # fixed-width numbers and booleans; nulls count through the validity bitmap
        values = array.fill_null(pa.scalar(0, kind) if not pa.types.is_boolean(kind) else False)
        hasher.update(values.to_numpy(zero_copy_only=False).tobytes())


def content_hash(table: pa.Table) -> str:
    """Hash of the rows of ``table`` in order (column names, types and values)."""
    hasher = xxhash.xxh3_128()
    hasher.update(f"rows={table.num_rows}".encode())
    for name, column in zip(table.column_names, table.columns, strict=True):
        hasher.update(b"\x00col\x00" + name.encode())
        _feed(hasher, column.combine_chunks() if column.num_chunks != 1 else column.chunk(0))
    return hasher.hexdigest()[:CONTENT_HASH_CHARS]


def canonical(table: pa.Table) -> pa.Table:
    """One contiguous chunk per column and no schema metadata:
    the only form shards are written in."""
    return table.replace_schema_metadata(None).combine_chunks()


def write_shard(table: pa.Table, path: Path) -> None:
    pq.write_table(
        canonical(table),
        path,
        row_group_size=ROW_GROUP_ROWS,
        compression=COMPRESSION,
        use_dictionary=True,
        write_statistics=True,
        store_schema=True,
    )


def write_shards(table: pa.Table, folder: Path) -> list[dict[str, object]]:
    """Split ``table`` into fixed-size shards named by their content hash; list them in order."""
    folder.mkdir(parents=True, exist_ok=True)
    shards = []
    for index, start in enumerate(range(0, max(table.num_rows, 1), SHARD_ROWS)):
        part = table.slice(start, SHARD_ROWS)
        digest = content_hash(part)
        name = f"shard-{index:05d}-{digest[:16]}.parquet"
        write_shard(part, folder / name)
        shards.append(
            {"file": f"{folder.name}/{name}", "rows": part.num_rows, "content_hash": digest}
        )
    return shards


