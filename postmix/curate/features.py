"""Per-row dedup features of a dataset: the normalised text view, its exact hashes and MinHash
signatures, computed batch by batch. Both engines and the reference cache
(``postmix.curate.reference``) compute them here, so a row hashes the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets
import numpy as np
import xxhash

from postmix.curate import minhash
from postmix.curate.minhash import MinHashConfig
from postmix.curate.normalise import normalise_texts
from postmix.curate.textview import view_texts
from postmix.progress import progress_bar


@dataclass
class RowFeatures:
    """What dedup needs of each row; memory is ``n * num_perm`` signature values plus ``O(n)``."""

    exact: np.ndarray  # uint64 xxh3-64 of the normalised text
    empty: np.ndarray  # bool: nothing left after normalisation
    signatures: np.ndarray | None  # [n, num_perm] or None when only exact dedup runs

    def __len__(self) -> int:
        return len(self.exact)


def _exact_hashes(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    view = memoryview(data)
    digest = xxhash.xxh3_64_intdigest
    return np.fromiter(
        (digest(view[offsets[i] : offsets[i + 1]]) for i in range(len(offsets) - 1)),
        dtype=np.uint64,
        count=len(offsets) - 1,
    )


def arrow_batches(ds: datasets.Dataset, batch_size: int):
    """``(start, pa.Table)`` slices of a dataset, honouring any ``select`` it went through."""
    arrow = ds.with_format("arrow")
    for start in range(0, len(ds), batch_size):
        yield start, arrow[start : start + batch_size]


def normalised_view(ds: datasets.Dataset, kind: str, on: str, config: MinHashConfig,
                    indices: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Normalised view text of some rows (all by default) as ``(bytes, offsets)``."""
    table = (ds.with_format("arrow")[:] if indices is None
             else ds.select(indices).with_format("arrow")[:])
    return normalise_texts(view_texts(table, kind, on), config.normalise)


def row_features(
    ds: datasets.Dataset,
    kind: str,
    on: str,
    config: MinHashConfig,
    *,
    signatures: bool = True,
    batch_size: int = 65536,
    description: str = "dedup: hashing",
) -> RowFeatures:
    n = len(ds)
    exact = np.zeros(n, dtype=np.uint64)
    empty = np.zeros(n, dtype=bool)
    sigs = np.empty((n, config.num_perm), dtype=config.signature_dtype()) if signatures else None
    with progress_bar(description, total=n) as bar:
        for start, table in arrow_batches(ds, batch_size):
            data, offsets = normalise_texts(view_texts(table, kind, on), config.normalise)
            stop = start + len(offsets) - 1
            empty[start:stop] = offsets[1:] == offsets[:-1]
            exact[start:stop] = _exact_hashes(data, offsets)
            if sigs is not None:
                # looked up on the module at call time so tests can count calls
                sigs[start:stop] = minhash.signatures_of_normalised(data, offsets, config)
            bar.advance(stop - start)
    return RowFeatures(exact=exact, empty=empty, signatures=sigs)
