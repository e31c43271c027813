"""Read rows from JSONL, JSON, Parquet, Arrow folders and Hugging Face Hub datasets.

A folder of Parquet shards (``part-00000.parquet``, ...: what the Ray engine writes for a
``.parquet`` output) reads as one dataset, its shards in name order.

``iter_raw_rows`` is the validating path used by ingest: it streams one row at a time with its
1-based position, and turns a malformed line into a ``RawRow`` with an error instead of raising,
so one bad line never aborts a long run. Parquet and Arrow are read batch by batch, so a
multi-GB file never has to become Python objects all at once.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postmix.errors import InputNotFoundError, PostmixError, UnsupportedFormatError
from postmix.io.paths import resolve_path
from postmix.schemas import jsontext

HUB_PREFIX = "hf:"
BATCH_ROWS = 4096

_SUFFIX_HELP = (
    "use .jsonl (or .jsonl.gz), .json, .parquet (a file, or a folder of Parquet shards), an "
    "Arrow folder written by Dataset.save_to_disk, or hf:<owner>/<name> for a Hub dataset"
)


@dataclass(frozen=True)
class RawRow:
    """One input row, or the reason it could not be read. ``line`` is 1-based."""

    line: int
    data: dict[str, Any] | None
    error: str | None = None
    detail: str = ""
    raw: str | None = None


def parquet_shards(path: str | Path) -> list[Path]:
    """The Parquet files of ``path`` in row order: the file itself, or a folder's ``*.parquet``
    files sorted by name (hidden and ``_``-prefixed bookkeeping files skipped, as pyarrow does)."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(".parquet")
                  and not p.name.startswith((".", "_")))


def _is_shard_folder(path: Path) -> bool:
    visible = [p for p in path.iterdir() if not p.name.startswith((".", "_"))]
    return bool(visible) and all(p.is_file() and p.name.lower().endswith(".parquet")
                                 for p in visible)


def file_type(path: str | Path) -> str:
    """``jsonl``, ``json``, ``parquet`` (a file or a folder of shards), ``arrow`` (folder) or
    ``hub``; a one-line error otherwise."""
    text = str(resolve_path(path))
    if text.startswith(HUB_PREFIX):
        return "hub"
    p = Path(text)
    if not p.exists():
        raise InputNotFoundError(f"no such file or folder: {text} (check the path)")
    if p.is_dir():
        if (p / "dataset_info.json").exists() or (p / "state.json").exists():
            return "arrow"
        if (p / "dataset_dict.json").exists():
            raise UnsupportedFormatError(
                f"{text} holds several splits: pass the split folder, e.g. {text}/train"
            )
        if _is_shard_folder(p):
            return "parquet"
        raise UnsupportedFormatError(
            f"{text} is a folder but not a saved Arrow dataset: {_SUFFIX_HELP}"
        )
    name = p.name.lower()
    for suffix, kind in ((".jsonl.gz", "jsonl"), (".jsonl", "jsonl"), (".ndjson", "jsonl"),
                         (".json", "json"), (".parquet", "parquet")):
        if name.endswith(suffix):
            return kind
    raise UnsupportedFormatError(
        f"unknown file type '{p.suffix or p.name}' for {text}: {_SUFFIX_HELP}"
    )


def _unreadable(path: Path, exc: BaseException) -> PostmixError:
    what = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return PostmixError(
        f"{path} could not be read ({what}): is the file complete and of the type its name says?"
    )


def _iter_jsonl(path: Path) -> Iterator[RawRow]:
    try:
        yield from _jsonl_rows(path)
    except (OSError, EOFError, zlib.error) as exc:  # a truncated or mislabelled .gz
        raise _unreadable(path, exc) from None


def _jsonl_rows(path: Path) -> Iterator[RawRow]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if raw.startswith(b"\xef\xbb\xbf"):
                # a UTF-8 byte-order mark (Windows editors, pandas utf-8-sig); past line 1 it
                # marks where two such files were concatenated
                raw = raw[3:]
            if not raw.strip():
                continue  # blank lines are layout, not rows
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield RawRow(line_no, None, "not_utf8", f"invalid UTF-8 at byte {exc.start}",
                             raw.decode("utf-8", errors="replace").rstrip("\n"))
                continue
            try:
                value = jsontext.loads(text)
            except jsontext.JsonTextError as exc:
                yield RawRow(line_no, None, exc.reason, exc.detail, text.rstrip("\r\n"))
                continue
            if not isinstance(value, dict):
                yield RawRow(line_no, None, "not_an_object",
                             f"expected a JSON object, got {type(value).__name__}",
                             text.rstrip("\r\n"))
                continue
            yield RawRow(line_no, value)


def _iter_json(path: Path) -> Iterator[RawRow]:
    try:
        text = path.read_text(encoding="utf-8-sig")
        value = json.loads(text)
    except RecursionError:
        raise UnsupportedFormatError(
            f"{path} nests deeper than Python can parse; for one object per line name it .jsonl, "
            "so that only the bad row is rejected"
        ) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an over-long integer
        what = str(exc).split(";")[0].strip()
        raise UnsupportedFormatError(
            f"{path} is not valid JSON ({what}); for one object per line name it .jsonl"
        ) from None
    except OSError as exc:
        raise _unreadable(path, exc) from None
    if isinstance(value, dict) and _is_record(value):  # one record on its own
        value = [value]
    elif isinstance(value, dict):  # {"data": [...]} and similar single-key wrappers
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise UnsupportedFormatError(f"{path} must hold a JSON array of objects")
        value = lists[0]
    if not isinstance(value, list):
        raise UnsupportedFormatError(f"{path} must hold a JSON array of objects")
    # the checks jsontext.loads makes per JSONL line, here per item (only where they can apply)
    checked = text.count("[") + text.count("{") > jsontext.MAX_DEPTH or "\\u" in text
    for index, item in enumerate(value, start=1):
        if checked:
            try:
                jsontext.check_value(item)
            except jsontext.JsonTextError as exc:
                yield RawRow(index, None, exc.reason, exc.detail, _item_text(item))
                continue
        if isinstance(item, dict):
            yield RawRow(index, item)
        else:
            yield RawRow(index, None, "not_an_object",
                         f"expected a JSON object, got {type(item).__name__}", _item_text(item))


def _item_text(item: object) -> str:
    """An item of a JSON file as text for its reject (any depth, any strings)."""
    try:
        return json.dumps(item, ensure_ascii=True)[:2000]
    except (RecursionError, ValueError):
        return f"<{type(item).__name__} too deep to show>"


def _is_record(value: dict[str, Any]) -> bool:
    """A record on its own, not a one-key wrapper of records such as {"messages": [row, row]}."""
    from postmix.io.formats import detect_format

    if detect_format(value) is None:
        return False
    if len(value) == 1:
        (items,) = value.values()
        if (
            isinstance(items, list)
            and items
            and all(isinstance(i, dict) and detect_format(i) for i in items)
        ):
            return False
    return True


def _iter_parquet(path: Path) -> Iterator[RawRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    line = 0
    for shard in parquet_shards(path):
        try:
            for batch in pq.ParquetFile(shard).iter_batches(batch_size=BATCH_ROWS):
                for row in batch.to_pylist():
                    line += 1
                    yield RawRow(line, row)
        except (pa.ArrowException, OSError) as exc:  # truncated, or not Parquet at all
            raise _unreadable(shard, exc) from None


def _iter_dataset(dataset: Any) -> Iterator[RawRow]:
    line = 0
    for batch in dataset.iter(batch_size=BATCH_ROWS):
        columns = list(batch)
        for values in zip(*(batch[c] for c in columns), strict=True):
            line += 1
            yield RawRow(line, dict(zip(columns, values, strict=True)))


def load_arrow_folder(path: str | Path) -> Any:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001 - a damaged folder fails in datasets' own ways
        raise _unreadable(Path(path), exc) from None
    if isinstance(loaded, datasets.DatasetDict):
        raise UnsupportedFormatError(f"{path} holds several splits: pass the split folder")
    return loaded


def load_hub(
    name: str, split: str = "train", *, streaming: bool = True, config: str | None = None
) -> Any:
    """A Hub dataset named ``hf:owner/name`` or ``hf:owner/name@revision``; streamed by default."""
    import datasets

    repo = name[len(HUB_PREFIX):] if name.startswith(HUB_PREFIX) else name
    repo, _, revision = repo.partition("@")
    try:
        return datasets.load_dataset(
            repo, config, split=split, streaming=streaming, revision=revision or None
        )
    except Exception as exc:  # network, auth, missing split: all user-fixable
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PostmixError(
            f"could not load Hub dataset {repo!r} split {split!r}: {first_line} "
            "(check the name, your network and HF_TOKEN, or download it and pass a local file)"
        ) from None


def iter_raw_rows(source: str | Path, *, split: str = "train") -> Iterator[RawRow]:
    """Every row of ``source`` in order, malformed ones included as errors."""
    source = resolve_path(source)
    kind = file_type(source)
    if kind == "hub":
        yield from _iter_dataset(load_hub(str(source), split))
        return
    path = Path(source)
    if kind == "jsonl":
        yield from _iter_jsonl(path)
    elif kind == "json":
        yield from _iter_json(path)
    elif kind == "parquet":
        yield from _iter_parquet(path)
    else:
        yield from _iter_dataset(load_arrow_folder(path))


def size_hint(source: str | Path) -> int | None:
    """Bytes to read, for a progress bar; None when unknown (Hub, folders)."""
    try:
        kind = file_type(source)
    except PostmixError:
        return None
    if kind not in ("jsonl", "json", "parquet"):
        return None
    if kind == "parquet":
        return sum(p.stat().st_size for p in parquet_shards(source))
    return Path(source).stat().st_size
