"""The dataset new rows are deduplicated against (``dedup --against REF``), and an on-disk cache of
its features so a reference is hashed once.

The cache key is the reference's content hash (every byte of the file or folder) plus everything
that changes the features (text view, normalisation, shingles, permutations), so an edited
reference or a changed config can never reuse stale signatures. Files are plain ``.npz`` (no
pickle), written to a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import xxhash

from postmix.curate.features import RowFeatures, arrow_batches, row_features
from postmix.curate.minhash import MinHashConfig
from postmix.curate.normalise import string_buffers
from postmix.curate.textview import view_texts
from postmix.io.fingerprint import path_hash
from postmix.io.paths import cache_folder

CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    return cache_folder("dedup")


def dataset_fingerprint(ds: datasets.Dataset, kind: str, on: str) -> str:
    """Content hash of an in-memory dataset: its ids and the raw text dedup reads."""
    digest = xxhash.xxh3_128()
    for _, table in arrow_batches(ds, 65536):
        for array in (table.column("id").combine_chunks(), view_texts(table, kind, on)):
            data, offsets = string_buffers(array)
            digest.update((offsets - offsets[0]).tobytes())
            digest.update(data[offsets[0] : offsets[-1]].tobytes())
    return digest.hexdigest()


@dataclass
class Reference:
    """The dataset new rows are deduplicated against; rows of it are never removed."""

    name: str
    ids: list[str]
    features: RowFeatures
    cache_path: Path | None = None
    cache_hit: bool = False
    seconds: float = 0.0
    _dataset: tuple[datasets.Dataset, str] | None = field(default=None, repr=False)
    _source: Any = field(default=None, repr=False)

    def dataset(self) -> tuple[datasets.Dataset, str]:
        """The reference rows themselves, loaded only when needed (``verify``, report examples)."""
        if self._dataset is None:
            from postmix.io.dataset import load_records

            ds, kind, _ = load_records(self._source)
            self._dataset = (ds, kind)
        return self._dataset


def _cache_key(fingerprint: str, on: str, config: MinHashConfig) -> str:
    material = {"format": CACHE_FORMAT, "content": fingerprint, "on": on,
                "signature": config.signature_key()}
    return xxhash.xxh3_128_hexdigest(json.dumps(material, sort_keys=True).encode())


def _read_cache(path: Path) -> tuple[list[str], RowFeatures] | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            ids = [i.decode("utf-8") for i in npz["ids"].tolist()]
            return ids, RowFeatures(
                exact=npz["exact"], empty=npz["empty"], signatures=npz["signatures"]
            )
    except (OSError, KeyError, ValueError):
        return None  # unreadable or from another version: recompute and overwrite


def _write_cache(path: Path, ids: list[str], features: RowFeatures) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    encoded = (
        np.array([i.encode("utf-8") for i in ids], dtype=np.bytes_) if ids else np.zeros(0, "S1")
    )
    np.savez(
        tmp, ids=encoded, exact=features.exact, empty=features.empty, signatures=features.signatures
    )
    os.replace(tmp, path)


def load_reference(
    against: str | Path | datasets.Dataset,
    on: str,
    config: MinHashConfig,
    *,
    cache_dir: str | Path | None = None,
    batch_size: int = 65536,
) -> Reference:
    """Features of the reference, from the cache when its content and config were seen before."""
    started = time.perf_counter()
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    loaded: tuple[datasets.Dataset, str] | None = None
    if isinstance(against, datasets.Dataset):
        from postmix.schemas import kind_of_columns

        kind = kind_of_columns(against.column_names)
        if kind is None:
            from postmix.errors import UnsupportedFormatError

            raise UnsupportedFormatError(
                "the --against dataset is not postmix records: run `postmix ingest` on it first"
            )
        loaded = (against, kind)
        name = f"<dataset {len(against)} rows>"
        fingerprint = dataset_fingerprint(against, kind, on)
    else:
        from postmix.io.read import file_type

        name = str(against)
        path = Path(against)
        if file_type(name) == "hub" or not path.exists():
            from postmix.io.dataset import load_records

            ds, kind, _ = load_records(against)
            loaded = (ds, kind)
            fingerprint = dataset_fingerprint(ds, kind, on)
        else:
            fingerprint = path_hash(path)
    cache_path = cache_root / f"reference-{_cache_key(fingerprint, on, config)}.npz"
    cached = _read_cache(cache_path) if cache_path.exists() else None
    if cached is not None:
        ids, features = cached
        return Reference(
            name, ids, features, cache_path, True, time.perf_counter() - started, loaded, against
        )
    if loaded is None:
        from postmix.io.dataset import load_records

        ds, kind, _ = load_records(against)
        loaded = (ds, kind)
    ds, kind = loaded
    features = row_features(ds, kind, on, config, signatures=True, batch_size=batch_size,
                            description="dedup: hashing reference")
    id_column = ds.with_format("arrow")["id"]
    ids = (
        id_column.combine_chunks() if isinstance(id_column, pa.ChunkedArray) else id_column
    ).to_pylist()
    _write_cache(cache_path, ids, features)
    return Reference(
        name, ids, features, cache_path, False, time.perf_counter() - started, loaded, against
    )
