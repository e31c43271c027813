"""The one content hasher for files and folders: cache keys, manifests and run cards all call it,
so one folder has one fingerprint wherever postmix records it.

A file hashes as xxh3-128 of its bytes, streamed. A folder hashes over each file's relative path
and byte hash, in sorted order, skipping hidden files (``.cache``, ``.lock``: bookkeeping that
changes without the data changing). ``contents=False`` uses sizes and modification times instead
of bytes, for model folders of many GB whose identity is cheap to tell that way.
"""

from __future__ import annotations

from pathlib import Path

import xxhash

CHUNK_BYTES = 1 << 20


def file_hash(path: str | Path, *, chunk_bytes: int = CHUNK_BYTES) -> str:
    """xxh3-128 of a file's bytes, read in pieces (never the whole file in memory)."""
    hasher = xxhash.xxh3_128()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            hasher.update(block)
    return hasher.hexdigest()


def path_hash(path: str | Path, *, contents: bool = True) -> str:
    """Hex fingerprint of a file or a folder (see the module text)."""
    path = Path(path)
    if path.is_file():
        return file_hash(path) if contents else _stat_text(path)
    hasher = xxhash.xxh3_128()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        part = file_hash(file) if contents else _stat_text(file)
        hasher.update(f"{file.relative_to(path).as_posix()}\x00{part}\n".encode())
    return hasher.hexdigest()


def _stat_text(file: Path) -> str:
    stat = file.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"
