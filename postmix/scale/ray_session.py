"""Connecting to Ray, and the Ray Data settings every postmix pipeline runs under.

``connect`` joins the cluster named by ``RayConfig.address`` or ``RAY_ADDRESS``, else a cluster
already running on this machine (``ray start --head``), else starts a local Ray; a process that
already called ``ray.init`` keeps its session. ``ray_pipeline`` wraps one pipeline run: it
connects, picks the shuffle, and keeps Ray Data quiet on a non-interactive terminal.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from postmix.ray_connect import RayUnavailableError, connect_ray  # noqa: F401 (named here too)

ENGINES: tuple[str, ...] = ("local", "ray")


class RayConfig(BaseModel):
    """Where and how a Ray Data pipeline runs. The defaults suit both a laptop and a cluster."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        None, description="Ray cluster to join ('ray://host:10001', 'host:6379', 'auto'); None: the "
        "RAY_ADDRESS variable, else a cluster running on this machine, else a local Ray.")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a local Ray (ignored on a cluster); None = all.")
    partitions: int | None = Field(
        None, ge=1, description="Shuffle partitions (groups of band hashes, pairs, nodes); None = the "
        "cluster's CPU count, so every core has one partition to reduce.")
    block_rows: int | None = Field(
        None, ge=1, description="Input rows per Ray block (one map_batches call); None = enough blocks "
        "for two per CPU, at most the stage's batch_size.")
    shuffle: Literal["sort", "hash"] = Field(
        "sort", description="Ray Data shuffle: sort (pull-based; starts in ~0.1 s, fine into the "
        "terabytes) or hash (an actor pool per shuffle: seconds to start, scales further).")
    max_rounds: int = Field(64, ge=1, description="Cap on connected-components rounds (each halves "
                            "the distance to a cluster's root, so real corpora need 3-10).")


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
    saved = {name: getattr(context, name) for name in
             ("shuffle_strategy", "enable_progress_bars", "print_on_execution_start")}
    logger = logging.getLogger("ray.data")
    saved_level = logger.level
    interactive = sys.stderr.isatty()
    context.shuffle_strategy = (ShuffleStrategy.SORT_SHUFFLE_PULL_BASED if config.shuffle == "sort"
                                else ShuffleStrategy.HASH_SHUFFLE)
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


# ---------------------------------------------------------------- rows in, rows out


def rows_dataset(ds: Any, block_rows: int, source: str | Path | None = None) -> tuple[Any, str]:
    """``(Ray Dataset, how it was read)``: the rows of ``ds`` as Arrow blocks with a ``__row``
    column (the row's position), so every later step can say which input row it is about.

    When ``source`` is the Parquet file ``ds`` was loaded from, has a row group per CPU or more,
    and every node of the cluster sees it, the workers read its row groups themselves
    (``"workers"``): the input is then read in parallel where the tasks run instead of going
    through the driver's object store. Otherwise the driver's rows are cut into blocks (``"driver"``).
    """
    import pyarrow as pa
    import ray.data

    from postmix.io.dataset import dataset_table

    pieces = _parquet_pieces(source, ds)
    if pieces is not None:
        columns, schema = list(ds.column_names), dataset_table(ds.select(range(0))).schema
        read = ray.data.from_items(pieces, override_num_blocks=len(pieces)).map_batches(
            _read_pieces, batch_format="pyarrow", batch_size=None, fn_kwargs={"columns": columns, "schema": schema})
        return read, f"workers ({len(pieces)} row groups of {source})"
    table = dataset_table(ds)
    blocks = []
    for start in range(0, max(len(table), 1), block_rows):
        block = table.slice(start, block_rows)
        blocks.append(block.append_column(ROW, pa.array(np.arange(start, start + len(block), dtype=np.int64))))
    return ray.data.from_arrow(blocks), "driver"


def _parquet_pieces(source: str | Path | None, ds: Any) -> list[dict[str, Any]] | None:
    """The row groups of ``source`` with their first row positions, when workers should read them."""
    if source is None or not str(source).endswith(".parquet") or not Path(source).is_file():
        return None
    import pyarrow.parquet as pq

    from postmix.io.dataset import loaded_verbatim
    from postmix.schemas import kind_of_columns

    if not loaded_verbatim(ds, source):
        return None  # the driver converted rows while loading: the workers would read others
    path = Path(source).resolve()
    parquet = pq.ParquetFile(path)
    meta = parquet.metadata
    if kind_of_columns(parquet.schema_arrow.names) is None or not set(ds.column_names) <= set(parquet.schema_arrow.names):
        return None  # not postmix records as they are: the driver converted them while loading
    if meta.num_rows != len(ds) or meta.num_row_groups < cluster_cpus():
        return None  # rows dropped while loading, or too few groups to keep every CPU busy
    size = path.stat().st_size
    if not _visible_on_every_node(str(path), size):
        return None
    pieces, offset = [], 0
    for group in range(meta.num_row_groups):
        pieces.append({"path": str(path), "group": group, "offset": offset})
        offset += meta.row_group(group).num_rows
    return pieces


def _read_pieces(batch: Any, *, columns: list[str], schema: Any) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for path, group, offset in zip(batch.column("path").to_pylist(), batch.column("group").to_pylist(),
                                   batch.column("offset").to_pylist(), strict=True):
        table = pq.ParquetFile(path).read_row_group(group, columns=columns).cast(schema)
        rows = pa.array(np.arange(offset, offset + table.num_rows, dtype=np.int64))
        tables.append(table.append_column(ROW, rows))
    return pa.concat_tables(tables)


def _visible_on_every_node(path: str, size: int) -> bool:
    """Whether each alive node sees ``path`` with this size (a shared filesystem, or one node)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
    if len(nodes) <= 1:
        return True

    @ray.remote(num_cpus=0)
    def size_here(p: str) -> int:
        return os.path.getsize(p) if os.path.isfile(p) else -1

    probes = [size_here.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote(path)
              for n in nodes]
    return all(found == size for found in ray.get(probes))


ROW = "__row"


def strip_row(table: Any) -> Any:
    """A block without the ``__row`` column, as a ``datasets.Dataset`` a local kernel accepts."""
    import uuid

    import datasets

    return datasets.Dataset(table.drop_columns([ROW]), fingerprint=uuid.uuid4().hex)


def collect(ds: Any, columns: list[str]) -> dict[str, np.ndarray]:
    """Small results (removed rows, verdicts) back on the driver, as NumPy columns."""
    parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for c in columns:
            parts[c].append(batch.column(c).to_numpy(zero_copy_only=False))
    return {c: (np.concatenate(v) if v else np.zeros(0)) for c, v in parts.items()}
