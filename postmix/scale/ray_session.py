"""Connecting to Ray, and the Ray Data settings every postmix pipeline runs under.

``connect`` joins the cluster named by ``RayConfig.address`` or ``RAY_ADDRESS``, else a cluster
already running on this machine (``ray start --head``), else starts a local Ray; a process that
already called ``ray.init`` keeps its session. ``ray_pipeline`` wraps one pipeline run: it
connects, picks the shuffle, and keeps Ray Data quiet on a non-interactive terminal.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from postmix.curate.runner import Verdicts
from postmix.errors import ConfigError
from postmix.ray_connect import RayUnavailableError, connect_ray  # noqa: F401 (named here too)
from postmix.scale.ray_components import PART, partition_of
from postmix.schemas import FEATURES, kind_of_columns


class RayConfig(BaseModel):
    """Where and how a Ray Data pipeline runs. The defaults suit both a laptop and a cluster."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        None,
        description="Ray cluster to join ('ray://host:10001', 'host:6379', 'auto'); None: the "
        "RAY_ADDRESS variable, else a cluster running on this machine, else a local Ray.",
    )
    num_cpus: int | None = Field(
        None, ge=1, description="CPUs of a local Ray (ignored on a cluster); None = all."
    )
    partitions: int | None = Field(
        None,
        ge=1,
        description="Shuffle partitions (groups of band hashes, pairs, nodes); None = the "
        "cluster's CPU count, so every core has one partition to reduce.",
    )
    block_rows: int | None = Field(
        None,
        ge=1,
        description="Input rows per Ray block (one map_batches call); None = enough blocks "
        "for two per CPU, at most the stage's batch_size.",
    )
    shuffle: Literal["sort", "hash"] = Field(
        "sort",
        description="Ray Data shuffle: sort (pull-based; starts in ~0.1 s, fine into the "
        "terabytes) or hash (an actor pool per shuffle: seconds to start, scales further).",
    )
    max_rounds: int = Field(
        64,
        ge=1,
        description="Cap on connected-components rounds (each halves "
        "the distance to a cluster's root, so real corpora need 3-10).",
    )


def connect(config: RayConfig | None = None) -> None:
    """Join or start Ray once per process."""
    config = config or RayConfig()
    connect_ray(config.address, config.num_cpus)


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


@contextmanager
def ray_pipeline(config: RayConfig | None = None) -> Iterator[PipelineSettings]:
    """Connected, with Ray Data's shuffle and output set for this run and restored afterwards."""
    config = config or RayConfig()
    connect(config)
    import ray.data
    from ray.data.context import ShuffleStrategy

    context = ray.data.DataContext.get_current()
    saved = {
        name: getattr(context, name)
        for name in ("shuffle_strategy", "enable_progress_bars", "print_on_execution_start")
    }
    logger = logging.getLogger("ray.data")
    saved_level = logger.level
    interactive = sys.stderr.isatty()
    context.shuffle_strategy = (
        ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
        if config.shuffle == "sort"
        else ShuffleStrategy.HASH_SHUFFLE
    )
    context.enable_progress_bars = interactive
    context.print_on_execution_start = interactive
    if not interactive:
        logger.setLevel(logging.WARNING)
    try:
        cpus = cluster_cpus()
        yield PipelineSettings(config, cpus, config.partitions or cpus)
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
        logger.setLevel(saved_level)


class PipelineSettings:
    def __init__(self, config: RayConfig, cpus: int, partitions: int):
        self.config, self.cpus, self.partitions = config, cpus, partitions

    def block_rows(self, n: int, batch_size: int) -> int:
        """Rows per input block: two blocks per CPU, capped by the stage's own batch size."""
        if self.config.block_rows:
            return self.config.block_rows
        return max(1, min(batch_size, -(-n // (2 * self.cpus))))

    def rows(self, ds: Any, batch_size: int, source: str | Path | None = None) -> RayRows:
        """A decider's input on Ray, in blocks of ``block_rows``: ``ds`` is a ``datasets.Dataset``
        or ``RayRows`` the workers read already; ``source`` the Parquet file or folder ``ds`` was
        loaded from, for the workers to read (``rows_on_ray``)."""
        return rows_on_ray(ds, self.block_rows(max(len(ds), 1), batch_size), source)

    def engine(self, rows: RayRows) -> dict[str, Any]:
        """The report's ``engine`` entry: where the step ran and how its input was read."""
        return {"name": "ray", "partitions": self.partitions, "cpus": self.cpus, "input": rows.read}


# ---------------------------------------------------------------- rows in, rows out


@dataclass
class RayRows:
    """A step's input on Ray: Arrow blocks with a ``__row`` column (the row's position), so
    every later step can say which input row it is about. ``read`` says where the rows came
    from: ``"workers (...)"`` when the workers read the input's row groups themselves (then the
    driver never holds a row), ``"driver"`` when the driver's rows were cut into blocks."""

    dataset: Any  # ray.data.Dataset
    n: int
    kind: str
    read: str

    def __len__(self) -> int:  # as a datasets.Dataset answers, so deciders take either
        return self.n

    @property
    def column_names(self) -> list[str]:
        return list(FEATURES[self.kind])


def rows_on_ray(ds: Any, block_rows: int, source: str | Path | None = None) -> RayRows:
    """``ds`` (a ``datasets.Dataset``, or ``RayRows`` already) as ``RayRows``.

    When ``source`` is the Parquet file ``ds`` was loaded from, has a row group per CPU or more,
    and every node of the cluster sees it, the workers read its row groups themselves: the input
    is then read in parallel where the tasks run instead of going through the object store."""
    if isinstance(ds, RayRows):
        return ds
    import ray.data

    from postmix.io.dataset import dataset_table, loaded_verbatim

    kind = kind_of_columns(ds.column_names)
    if kind is None:
        raise ConfigError("this step needs postmix records: run `postmix ingest` on the data first")
    if source is not None and loaded_verbatim(ds, source):
        pieces = _parquet_pieces(source, set(ds.column_names))
        if pieces is not None and sum(p["rows"] for p in pieces) == len(ds):
            return _read_by_workers(pieces, kind, source)
    table = dataset_table(ds)
    blocks = []
    for start in range(0, max(len(table), 1), block_rows):
        block = table.slice(start, block_rows)
        blocks.append(
            block.append_column(ROW, pa.array(np.arange(start, start + len(block), dtype=np.int64)))
        )
    return RayRows(ray.data.from_arrow(blocks), len(ds), kind, "driver")


def rows_from_source(source: str | Path) -> RayRows | None:
    """The input ``source`` read by the workers alone, without the driver loading it: a Parquet
    file or shard folder of postmix records as they are (the schema says so, and a pass on the
    workers checks every row is a valid record with a unique id, as ``load_records`` does),
    with a row group per CPU or more. None: the driver has to load (and convert) it."""
    from postmix.io.dataset import parquet_kind
    from postmix.io.read import file_type

    if str(source).startswith("hf:") or file_type(source) != "parquet":
        return None
    kind = parquet_kind(source)
    if kind is None:
        return None
    pieces = _parquet_pieces(source, set(FEATURES[kind]))
    if pieces is None:
        return None
    rows = _read_by_workers(pieces, kind, source)
    return rows if rows.n and _all_valid(rows) else None


def _read_by_workers(pieces: list[dict[str, Any]], kind: str, source: str | Path) -> RayRows:
    import ray.data

    schema = FEATURES[kind].arrow_schema
    read = ray.data.from_items(pieces, override_num_blocks=len(pieces)).map_batches(
        _read_pieces,
        batch_format="pyarrow",
        batch_size=None,
        fn_kwargs={"columns": list(FEATURES[kind]), "schema": schema},
    )
    return RayRows(
        read,
        sum(p["rows"] for p in pieces),
        kind,
        f"workers ({len(pieces)} row groups of {source})",
    )


def _parquet_pieces(source: str | Path, columns: set[str]) -> list[dict[str, Any]] | None:
    """The row groups of ``source`` (a file, or a folder's shards in order) with their first row
    positions, when the workers should read them: a row group per CPU or more, and every node
    of the cluster sees the same files."""
    import pyarrow.parquet as pq

    from postmix.io.read import parquet_shards

    path = Path(source)
    if not str(source).endswith(".parquet") or not path.exists():
        return None
    pieces: list[dict[str, Any]] = []
    offset = 0
    for shard in parquet_shards(path.resolve()):
        parquet = pq.ParquetFile(shard)
        if kind_of_columns(parquet.schema_arrow.names) is None or not columns <= set(
            parquet.schema_arrow.names
        ):
            return None  # not postmix records as they are: the driver converts them while loading
        for group in range(parquet.metadata.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            pieces.append({"path": str(shard), "group": group, "offset": offset, "rows": rows})
            offset += rows
    if len(pieces) < cluster_cpus():
        return None  # too few groups to keep every CPU busy: the driver's blocks do better
    files = sorted({p["path"] for p in pieces})
    if not _visible_on_every_node([(f, os.path.getsize(f)) for f in files]):
        return None
    return pieces


def _read_pieces(batch: Any, *, columns: list[str], schema: Any) -> Any:
    import pyarrow.parquet as pq

    tables = []
    for path, group, offset in zip(
        batch.column("path").to_pylist(),
        batch.column("group").to_pylist(),
        batch.column("offset").to_pylist(),
        strict=True,
    ):
        table = pq.ParquetFile(path).read_row_group(group, columns=columns).cast(schema)
        rows = pa.array(np.arange(offset, offset + table.num_rows, dtype=np.int64))
        tables.append(table.append_column(ROW, rows))
    return pa.concat_tables(tables)


def _check_block(table: pa.Table, *, kind: str, partitions: int) -> pa.Table:
    """Each row's id keyed by a hash of it (for the unique-id check), and whether the whole block
    passes ``all_rows_valid`` (repeated on every row, so one column says it)."""
    import xxhash

    from postmix.schemas.arrow_checks import all_rows_valid

    ids = table.column("id")
    hashes = np.fromiter(
        (xxhash.xxh3_64_intdigest((i or "").encode()) for i in ids.to_pylist()), np.uint64, len(ids)
    )
    ok = all_rows_valid(table.drop_columns([ROW]), kind)
    return pa.table(
        {"id": ids, "ok": np.full(len(ids), ok), PART: partition_of(hashes, partitions)}
    )


def _repeated_ids(table: pa.Table) -> pa.Table:
    ids = table.column("id")
    return pa.table(
        {
            "repeated": [len(ids) - pc.count_distinct(ids).as_py()],
            "bad": [int(pc.sum(pc.invert(table.column("ok"))).as_py() or 0)],
        }
    )


def _all_valid(rows: RayRows) -> bool:
    """Whether every row is a valid record and ids are unique over all blocks (a shuffle by id)."""
    partitions = cluster_cpus()
    checked = (
        rows.dataset.map_batches(
            _check_block,
            batch_format="pyarrow",
            fn_kwargs={"kind": rows.kind, "partitions": partitions},
        )
        .groupby(PART)
        .map_groups(_repeated_ids, batch_format="pyarrow")
    )
    got = collect(checked, ["repeated", "bad"])
    return not got["repeated"].any() and not got["bad"].any()


def _visible_on_every_node(files: list[tuple[str, int]]) -> bool:
    """Whether each alive node sees every file with its size (a shared filesystem, or one node)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
    if len(nodes) <= 1:
        return True

    @ray.remote(num_cpus=0)
    def sizes_here(paths: list[str]) -> list[int]:
        return [os.path.getsize(p) if os.path.isfile(p) else -1 for p in paths]

    paths, sizes = [f for f, _ in files], [size for _, size in files]
    probes = [
        sizes_here.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)
        ).remote(paths)
        for n in nodes
    ]
    return all(found == sizes for found in ray.get(probes))


ROW = "__row"


class SparseColumn(Sequence):
    """``n`` entries, ``fill`` except at ``rows`` (ascending): a Ray step's reasons or details,
    sized by the rows it removes rather than by the rows it reads."""

    def __init__(self, n: int, rows: np.ndarray, values: Sequence[Any], fill: Any):
        self.n, self.rows, self.values, self.fill = n, np.asarray(rows, np.int64), values, fill

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.n))]
        index = int(index) + (self.n if index < 0 else 0)
        if not 0 <= index < self.n:
            raise IndexError(index)
        at = int(np.searchsorted(self.rows, index))
        return self.values[at] if at < len(self.rows) and self.rows[at] == index else self.fill

    def __iter__(self) -> Iterator[Any]:
        last = 0
        for row, value in zip(self.rows.tolist(), self.values, strict=True):
            yield from itertools.repeat(self.fill, row - last)
            yield value
            last = row + 1
        yield from itertools.repeat(self.fill, self.n - last)


def sparse_verdicts(
    n: int, rows: np.ndarray, reasons: Sequence[str], details: Sequence[str], stats: dict[str, Any]
) -> Verdicts:
    """``Verdicts`` of ``n`` rows removing ``rows`` (ascending) with these reasons and details."""
    return Verdicts(SparseColumn(n, rows, reasons, None), SparseColumn(n, rows, details, ""), stats)


def removed_rows(verdicts: Verdicts) -> pa.Table:
    """``(row, reason, detail)`` of the rows ``verdicts`` removes, ascending by row."""
    if isinstance(verdicts.reasons, SparseColumn) and isinstance(verdicts.details, SparseColumn):
        rows, reasons, details = (
            verdicts.reasons.rows,
            verdicts.reasons.values,
            verdicts.details.values,
        )
    else:
        rows = verdicts.rejected_indices()
        reasons = [verdicts.reasons[i] for i in rows.tolist()]
        details = [verdicts.details[i] for i in rows.tolist()]
    return pa.table(
        {
            "row": pa.array(rows, pa.int64()),
            "reason": pa.array(list(reasons), pa.string()),
            "detail": pa.array(list(details), pa.string()),
        }
    )


def strip_row(table: Any) -> Any:
    """A block without the ``__row`` column, as a ``datasets.Dataset`` a local kernel accepts."""
    import uuid

    import datasets

    return datasets.Dataset(table.drop_columns([ROW]), fingerprint=uuid.uuid4().hex)


def collect_table(ds: Any) -> pa.Table | None:
    """Small results as one Arrow table on the driver (None when there are no blocks)."""
    tables = list(ds.iter_batches(batch_size=None, batch_format="pyarrow"))
    return pa.concat_tables(tables) if tables else None


def collect(ds: Any, columns: list[str]) -> dict[str, np.ndarray]:
    """Small results (removed rows, verdicts) back on the driver, as NumPy columns."""
    parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for c in columns:
            parts[c].append(batch.column(c).to_numpy(zero_copy_only=False))
    return {c: (np.concatenate(v) if v else np.zeros(0)) for c, v in parts.items()}
