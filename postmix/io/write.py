"""Write rows to JSONL or Parquet (chosen by suffix), incrementally and atomically.

Rows go to ``<path>.partial`` as they come and the file is renamed into place only when the
writer closes cleanly, so a reader never sees half a file under the final name. If the run dies,
the ``.partial`` file keeps every row finished so far.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from postmix.errors import PostmixError, UnsupportedFormatError


class OutputWriteError(PostmixError):
    """An output could not be written (disk full, quota, a vanished folder): names the path."""


def write_failed(path: str | Path, exc: OSError, *, removed: bool) -> OutputWriteError:
    what = exc.strerror or str(exc)
    then = (
        "the unfinished file was removed; free space (or fix the folder) and run again"
        if removed
        else "finished rows are kept in the .partial file; free space and run again"
    )
    return OutputWriteError(f"cannot write {path}: {what} ({then})")

PARQUET_FLUSH_ROWS = 8192


def output_type(path: str | Path) -> str:
    name = Path(path).name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    raise UnsupportedFormatError(
        f"cannot write '{path}': name the output .jsonl, .jsonl.gz or .parquet"
    )


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".jsonl.gz", ".jsonl", ".ndjson", ".parquet", ".json"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def rejects_path(output: str | Path) -> Path:
    """``data/clean.jsonl`` -> ``data/clean.rejects.jsonl``."""
    output = Path(output)
    return output.with_name(_stem(output) + ".rejects.jsonl")


def report_path(output: str | Path) -> Path:
    """``data/clean.jsonl`` -> ``data/clean.report.json``."""
    output = Path(output)
    return output.with_name(_stem(output) + ".report.json")


def sidecar_path(output: str | Path, name: str) -> Path:
    """``data/clean.jsonl``, ``contamination.tsv`` -> ``data/clean.contamination.tsv``: a file a
    step writes beside its output, rejects and report."""
    output = Path(output)
    return output.with_name(_stem(output) + "." + name)


def dumps_row(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=str)


class RowWriter:
    """Append rows one at a time; ``close()`` publishes the file. Use as a context manager."""

    def __init__(self, path: str | Path, *, schema: pa.Schema | None = None):
        self.path = Path(path)
        self.kind = output_type(self.path)
        self.schema = schema
        self._given_schema = schema is not None
        self.rows = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self._text: IO[str] | None = None
        self._parquet: Any = None
        self._buffer: list[dict[str, Any]] = []
        if self.kind == "jsonl":
            opener = gzip.open if self.path.name.lower().endswith(".gz") else open
            # gzip with mtime=0 would need GzipFile; plain text mode is fine for streaming output
            self._text = opener(self.partial, "wt", encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        self.rows += 1
        try:
            if self._text is not None:
                self._text.write(dumps_row(row) + "\n")
                return
            self._buffer.append(row)
            if len(self._buffer) >= PARQUET_FLUSH_ROWS:
                self._flush_parquet()
        except OSError as exc:
            raise self._failed(exc) from None

    def write_many(self, rows: Any) -> None:
        for row in rows:
            self.write(row)

    def _flush_parquet(self) -> None:
        import pyarrow.parquet as pq

        if not self._buffer and self._parquet is not None:
            return
        if self._parquet is not None and not self._given_schema:
            self._check_same_fields()
        table = pa.Table.from_pylist(self._buffer, schema=self.schema)
        if self._parquet is None:
            self.schema = table.schema
            self._parquet = pq.ParquetWriter(self.partial, table.schema)
        self._parquet.write_table(table)
        self._buffer = []

    def _check_same_fields(self) -> None:
        """A Parquet file has one schema, taken from the first rows when none was given: later
        rows with other fields would lose them without a word, so refuse instead."""
        later = pa.Table.from_pylist(self._buffer).schema
        try:
            unified = pa.unify_schemas([self.schema, later], promote_options="permissive")
        except (pa.ArrowException, TypeError):
            unified = None
        if unified is None or not unified.equals(self.schema):
            changed = sorted(set(later.names) ^ set(self.schema.names)) or sorted(
                f.name for f in later if f.name in self.schema.names
                and not f.type.equals(self.schema.field(f.name).type))
            raise OutputWriteError(
                f"cannot write {self.path}: rows after the first {self.rows - len(self._buffer)} "
                f"differ from them in field(s) {', '.join(changed)}; a Parquet file has one "
                "schema: write a .jsonl output instead"
            )

    def flush(self) -> None:
        if self._text is not None:
            self._text.flush()

    def close(self) -> Path:
        try:
            if self._text is not None:
                self._text.close()
            else:
                self._flush_parquet()
                self._parquet.close()
        except OSError as exc:
            raise self._failed(exc) from None
        os.replace(self.partial, self.path)
        return self.path

    def _failed(self, exc: OSError) -> OutputWriteError:
        """A write failed (a full disk): nothing half-written may keep the disk full or pass for
        finished rows, so the partial file goes; the message names it."""
        for handle in (self._text, self._parquet):
            try:
                if handle is not None:
                    handle.close()
            except OSError:
                pass
        self._text = self._parquet = None
        self._buffer = []
        self.partial.unlink(missing_ok=True)
        return write_failed(self.partial, exc, removed=True)

    def abort(self) -> None:
        """Stop writing but keep the ``.partial`` file with the rows finished so far, buffered
        ones included (none finished: the file this writer opened is removed, so a run stopped
        before its first row leaves nothing behind; a partial left by an earlier run is kept)."""
        try:
            if self._text is not None:
                self._text.close()
            elif self._buffer:
                self._flush_parquet()
            if self._parquet is not None:
                self._parquet.close()
        except (
            Exception
        ):  # a full disk, a refused row: what could not be flushed is lost, the rest kept
            if self._parquet is not None:
                self._parquet.close()
        if self.rows == 0 and (self._text is not None or self._parquet is not None):
            self.partial.unlink(missing_ok=True)

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
