"""Postmix records as ``datasets.Dataset``: the form every stage works on.

Files postmix wrote (their columns match a record kind) load straight into Arrow without a
Python object per row. Anything else — ShareGPT, Alpaca, a Hub set — goes through ingest first,
and the rows ingest could not convert come back as rejects so the calling stage can account for
them in its own report.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq
import xxhash

from postmix.io.claims import publish_mode
from postmix.io.paths import resolve_path
from postmix.io.read import file_type, load_arrow_folder, load_hub, parquet_shards
from postmix.io.write import output_type
from postmix.schemas import FEATURES, Reject, jsontext, kind_of_columns
from postmix.schemas.arrow_checks import all_rows_valid

_TOOL_KEYS = (b'"tool_calls"', b'"tool_call_id"', b'"function_call"')


def _mentions_tool_calls(path: Path) -> bool:
    """Whether the file has any tool-call key (a byte scan: the typed reader would drop them)."""
    tail = b""
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 24):
            window = tail + chunk
            if any(key in window for key in _TOOL_KEYS):
                return True
            tail = chunk[-16:]
    return False


def _same_shape(found: pa.DataType, expected: pa.DataType) -> bool:
    """Whether a column of type ``found`` holds what postmix stores as ``expected`` without a
    conversion: the large variants and all-null columns count, other types (an int id, a struct
    meta) and extra struct fields (a turn's tool_calls, which the fast path would drop) do not."""
    if pa.types.is_null(found):
        return True
    if pa.types.is_string(expected):
        return pa.types.is_string(found) or pa.types.is_large_string(found)
    if pa.types.is_floating(expected):
        return pa.types.is_floating(found) or pa.types.is_integer(found)
    if pa.types.is_list(expected):
        return ((pa.types.is_list(found) or pa.types.is_large_list(found))
                and _same_shape(found.value_type, expected.value_type))
    if pa.types.is_struct(expected):
        if not pa.types.is_struct(found):
            return False
        if sorted(f.name for f in found) != sorted(f.name for f in expected):
            return False
        return all(_same_shape(found.field(f.name).type, f.type) for f in expected)
    return found == expected


def _typed_as(schema: pa.Schema, kind: str) -> bool:
    """Whether every postmix column of a file has the type postmix writes for ``kind``."""
    names = schema.names
    return all(names.count(f.name) == 1 and _same_shape(schema.field(f.name).type, f.type)
               for f in FEATURES[kind].arrow_schema)


def _checked(table: pa.Table, kind: str) -> pa.Table | None:
    """``table`` cast to ``kind``'s schema when every row passes the record rules; None when
    some row does not (or a column is of another type), so it goes the careful way."""
    if not _typed_as(table.schema, kind):
        return None
    try:
        table = table.select(list(FEATURES[kind])).cast(FEATURES[kind].arrow_schema)
        return table if all_rows_valid(table, kind) else None
    except (pa.ArrowException, ValueError):
        return None


def parquet_kind(path: str | Path) -> str | None:
    """The record kind of a Parquet file or shard folder whose schema holds postmix records as
    they are (no row read): the shards agree on one schema, its columns name a kind, and turns
    are plain ``{role, content}`` lists. None: the rows need converting (``ingest``)."""
    try:
        schemas = [pq.read_schema(shard) for shard in parquet_shards(path)]
    except (pa.ArrowException, OSError):
        return None  # not readable as Parquet: the row-by-row reader says why in one line
    if not schemas or any(not schema.equals(schemas[0]) for schema in schemas[1:]):
        return None
    kind = kind_of_columns(schemas[0].names)
    return kind if kind is not None and _typed_as(schemas[0], kind) else None


def _postmix_table(path: Path, kind_hint: str | None) -> tuple[pa.Table, str] | None:
    """The file as an Arrow table of postmix records when every row is one (the fast path);
    None sends it through ``ingest``, which validates each row and rejects the bad ones."""
    ftype = file_type(path)
    if ftype == "parquet":
        kind = parquet_kind(path)
        if kind is None:
            return None
        try:
            shards = parquet_shards(path)
            table = pa.concat_tables(
                [pq.read_table(s, columns=list(FEATURES[kind])) for s in shards]
            )
        except (pa.ArrowException, OSError):
            return None  # a damaged data page: the row-by-row reader says why in one line
        table = _checked(table, kind)
        return None if table is None else (table, kind)  # None: row by row, with rejects
    if ftype == "jsonl" and not path.name.endswith(".gz"):
        with open(path, "rb") as handle:
            first = handle.readline()
        try:
            kind = (kind_of_columns(list(jsontext.loads(first.decode("utf-8-sig"))))
                    if first.strip() else kind_hint)
        except (jsontext.JsonTextError, UnicodeDecodeError, TypeError):
            return None
        if kind is None or _mentions_tool_calls(path):
            return None  # tool-call turns: ingest rejects them whole rather than dropping the calls
        schema = FEATURES[kind].arrow_schema
        try:
            table = pa_json.read_json(
                path,
                parse_options=pa_json.ParseOptions(
                    explicit_schema=schema, unexpected_field_behavior="ignore"
                ),
            )
        except (pa.ArrowException, OSError):
            return None  # a malformed line or a non-postmix row: let ingest find and report it
        table = _checked(table, kind)
        return None if table is None else (table, kind)  # None: row by row, with rejects
    return None


def _verbatim_fingerprint(source: str | Path) -> str:
    stats = [(p.stat().st_size, p.stat().st_mtime_ns) for p in parquet_shards(source)]
    return "verbatim-" + xxhash.xxh3_64_hexdigest(f"{Path(source).resolve()}|{stats}".encode())


def loaded_verbatim(ds: datasets.Dataset, source: str | Path) -> bool:
    """Whether ``ds`` holds the rows of the file ``source`` exactly as stored (the fast path of
    ``load_records``: nothing converted, dropped or filled in), so that other readers of the file,
    such as Ray workers, see the same rows at the same positions."""
    try:
        return ds._fingerprint == _verbatim_fingerprint(resolve_path(source))
    except (OSError, ValueError):
        return False


def load_records(
    source: str | Path, *, format: str | None = None, split: str = "train"
) -> tuple[datasets.Dataset, str, list[Reject]]:
    """``(dataset, record kind, rows that could not be converted)`` for any supported input."""
    source = resolve_path(source)
    ftype = file_type(source)
    if ftype in ("arrow", "hub"):
        ds = (load_arrow_folder(source) if ftype == "arrow"
              else load_hub(str(source), split, streaming=False))
        kind = kind_of_columns(ds.column_names)
        if kind is not None and format is None:
            # a saved dataset is typed, but by whoever saved it: a row the records refuse (a null
            # role, an int id) sends the whole set through ingest, where that row is rejected
            ds = ds.select_columns(list(FEATURES[kind]))
            if _checked(dataset_table(ds), kind) is not None:
                return ds, kind, []
    elif format is None:
        fast = _postmix_table(Path(source), None)
        if fast is not None:
            table, kind = fast
            # Without a fingerprint, datasets hashes the whole table to make one (seconds at 1M
            # rows).
            return datasets.Dataset(table, fingerprint=_verbatim_fingerprint(source)), kind, []
    return _via_ingest(source, format=format, split=split)


def _via_ingest(source: str | Path, *, format: str | None, split: str):
    from postmix.io.ingest import ingest
    from postmix.io.read import iter_raw_rows

    with tempfile.TemporaryDirectory(prefix="postmix-ingest-") as tmp:
        out = Path(tmp) / "records.parquet"
        result = ingest(source, out, format=format, split=split, progress=False)
        table = pq.read_table(out)
        rejects = [Reject.model_validate(r.data) for r in iter_raw_rows(result.rejects)]
    table = table.cast(FEATURES[result.kind].arrow_schema)
    return datasets.Dataset(table), result.kind, rejects


def dataset_table(ds: datasets.Dataset) -> pa.Table:
    """The rows of ``ds`` as one Arrow table (a ``take`` when ``ds`` is a selection, no copy
    otherwise)."""
    return ds.with_format("arrow")[:]


PARQUET_ROW_GROUP_ROWS = 100_000


def write_table(table: pa.Table, output: str | Path, *, publish: bool = True) -> Path:
    """Write an Arrow table by suffix (.jsonl / .jsonl.gz / .parquet), atomically: to a temporary
    file beside ``output``, renamed into place. ``publish=False`` returns the temporary file
    instead (the caller renames it when the rest of its outputs are written).

    Arrow-native on purpose: going through ``Dataset.to_json``/``to_parquet`` after a selection
    re-materialises every row through datasets' formatters, which dominated large stage runs.
    """
    import gzip

    from postmix.io.write import dumps_row, write_failed

    output = Path(output)
    kind = output_type(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent)
    os.close(fd)
    try:
        if kind == "parquet":
            # 100k-row groups rather than pyarrow's 1Mi: a stage's output can then be read in
            # parallel by the next one (Ray workers take a row group each) at little cost.
            pq.write_table(table, tmp, row_group_size=PARQUET_ROW_GROUP_ROWS)
        else:
            opener = gzip.open if output.name.endswith(".gz") else open
            with opener(tmp, "wt", encoding="utf-8") as handle:
                for batch in table.to_batches(max_chunksize=8192):
                    handle.write("".join(dumps_row(row) + "\n" for row in batch.to_pylist()))
        publish_mode(tmp)  # mkstemp made it 0600
        if not publish:
            return Path(tmp)
        os.replace(tmp, output)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise write_failed(output, exc, removed=True) from None
        raise
    return output


def replace_output(target: Path, new: Path) -> None:
    """``new`` (a file or a shard folder) under the name ``target``, whatever held it before (a
    file, or the shard folder of a Ray run: ``claims.check_replaceable`` vetted it)."""
    if not target.is_dir() and not (new.is_dir() and target.exists()):
        os.replace(new, target)
        return
    old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
    target.rename(old)  # a folder and a file cannot replace each other in one rename
    new.rename(target)
    if old.is_dir():
        shutil.rmtree(old)
    else:
        old.unlink()


def stale_partials(output: str | Path) -> list[Path]:
    """Temporary files a killed ``write_table`` of ``output`` left (only the run holding the
    output's lock may remove them)."""
    output = Path(output)
    mine = re.compile(rf"^\.{re.escape(output.name)}\.[a-z0-9_]{{8}}\.partial$")  # mkstemp's 8
    return sorted(p for p in output.parent.glob(f".{glob.escape(output.name)}.*.partial")
                  if mine.match(p.name))


def save_records(ds: datasets.Dataset, output: str | Path) -> Path:
    """Write a dataset by suffix (.jsonl / .jsonl.gz / .parquet), atomically."""
    return write_table(dataset_table(ds), output)
