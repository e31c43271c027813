"""A persistent request cache: SQLite in WAL mode, one row per answered request, JSON values.

Answers are committed by a writer thread as they arrive — the event loop only enqueues them —
so a crash or Ctrl-C loses only requests still in flight (plus answers received in the last
moment before the kill), and a re-run sends only what was never answered. Under load the writer
commits whatever has queued up in one transaction, which keeps a commit per answer from costing
the loop ~0.1 ms each. WAL with ``synchronous=NORMAL`` survives a killed process; only an OS
crash can drop the last commits. Only successful answers are stored: a failure is retried by the
next run.

When the cache cannot be written (a full disk), every later ``put`` and ``check`` raises
``CacheWriteError``: the engine checks before each send, so no money is spent on answers that
could not be kept, and the run stops with one line naming the file.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from postmix.errors import PostmixError


class CacheWriteError(PostmixError):
    """The request cache could not be written; the run stops before sending more requests."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL
)
"""
_INSERT = "INSERT OR REPLACE INTO responses (key, model, value, created) VALUES (?, ?, ?, ?)"
_BATCH = 1024


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


class RequestCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = _connect(self.path)
        self._db.execute(_SCHEMA)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._error: BaseException | None = None
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(row[0])

    def check(self) -> None:
        """Raise ``CacheWriteError`` once the writer has failed."""
        if self._error is not None:
            what = getattr(self._error, "strerror", None) or str(self._error)
            raise CacheWriteError(f"cannot write the request cache {self.path}: {what}; stopped "
                                  "sending requests (answers cached so far are kept: free space "
                                  "and run again, only the rest is sent)")

    def put(self, key: str, model: str, value: dict[str, Any]) -> None:
        self.check()
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_loop, name="postmix-cache",
                                            daemon=True)
            self._writer.start()
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        self._queue.put((key, model, text, time.time()))

    def _write_loop(self) -> None:
        db = _connect(self.path)
        try:
            while True:
                batch = [self._queue.get()]
                while len(batch) < _BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                rows = [item for item in batch if isinstance(item, tuple)]
                if rows:
                    db.execute("BEGIN")
                    db.executemany(_INSERT, rows)
                    db.execute("COMMIT")
                for item in batch:
                    if isinstance(item, threading.Event):
                        item.set()
                if any(item is None for item in batch):
                    return
        except BaseException as exc:  # surfaced on the next check / put / close
            self._error = exc
            while True:  # whoever waits on a flush must not wait forever
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, threading.Event):
                    item.set()
        finally:
            db.close()

    def flush(self) -> None:
        """Block until every answer put so far is committed."""
        if self._writer is None or not self._writer.is_alive():
            return
        done = threading.Event()
        self._queue.put(done)
        # a writer that failed after draining the queue never sets it: do not wait forever
        while not done.wait(0.5):
            if self._error is not None or not self._writer.is_alive():
                return

    def __len__(self) -> int:
        self.flush()
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        if self._writer is not None and self._writer.is_alive():
            self._queue.put(None)
            self._writer.join()
        self._writer = None
        self._db.close()
        self.check()

    def __enter__(self) -> RequestCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
