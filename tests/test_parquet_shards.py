"""A folder of Parquet shards (what the Ray engine writes for a ``.parquet`` output) reads as one
dataset in shard order, through every postmix reader; and the sparse verdict columns the Ray
deciders return behave as the dense lists the local ones do. No Ray needed."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from postmix.curate.runner import Verdicts
from postmix.errors import UnsupportedFormatError
from postmix.io.dataset import load_records, loaded_verbatim
from postmix.io.read import file_type, iter_raw_rows, parquet_shards, size_hint
from postmix.schemas import FEATURES


def rows(start: int, n: int) -> pa.Table:
    return pa.Table.from_pylist(
        [{"id": f"r{i}", "source": "s", "meta": "{}",
          "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
         for i in range(start, start + n)], schema=FEATURES["sft"].arrow_schema)


@pytest.fixture
def folder(tmp_path):
    out = tmp_path / "out.parquet"
    out.mkdir()
    # written out of order, and part-00010 after part-00002: name order is the row order
    for number, start in ((10, 20), (0, 0), (2, 7)):
        pq.write_table(rows(start, 7 if start < 20 else 5), out / f"part-{number:05d}.parquet")
    (out / "_SUCCESS").write_text("")  # bookkeeping files are skipped, as pyarrow skips them
    return out


def test_a_shard_folder_reads_as_one_dataset_in_name_order(folder):
    assert file_type(folder) == "parquet"
    assert [p.name for p in parquet_shards(folder)] == [f"part-{n:05d}.parquet" for n in (0, 2, 10)]
    ds, kind, rejects = load_records(folder)
    expected = [f"r{i}" for i in range(0, 14)] + [f"r{i}" for i in range(20, 25)]
    assert kind == "sft" and not rejects and ds["id"] == expected
    assert loaded_verbatim(ds, folder)  # the Ray workers may read it themselves
    assert [r.data["id"] for r in iter_raw_rows(folder)] == expected
    assert pq.read_table(folder).column("id").to_pylist() == expected
    assert size_hint(folder) == sum(p.stat().st_size for p in parquet_shards(folder))


def test_a_shard_folder_with_bad_rows_goes_through_ingest(folder):
    pq.write_table(rows(0, 1), folder / "part-00011.parquet")  # r0 again: a duplicate id
    ds, _, rejects = load_records(folder)
    assert len(ds) + len(rejects) == 20 and ds["id"].count("r0") == 1


def test_a_folder_with_other_files_is_not_a_dataset(folder):
    (folder / "notes.txt").write_text("x")
    with pytest.raises(UnsupportedFormatError, match="not a saved Arrow dataset"):
        file_type(folder)


def test_sparse_verdicts_behave_as_dense_ones():
    from postmix.scale.ray_session import SparseColumn, removed_rows, sparse_verdicts

    sparse = sparse_verdicts(7, np.array([1, 4, 6]), ["a", "b", "a"], ["x", "y", "z"], {"k": 1})
    dense = Verdicts([None, "a", None, None, "b", None, "a"], ["", "x", "", "", "y", "", "z"],
                     {"k": 1})
    assert list(sparse.reasons) == list(dense.reasons)
    assert list(sparse.details) == list(dense.details)
    assert [sparse.reasons[i] for i in range(-7, 7)] == list(dense.reasons) * 2
    assert sparse.reasons[2:6] == dense.reasons[2:6]
    assert sparse.counts() == dense.counts() == {"a": 2, "b": 1}
    assert sparse.kept_indices().tolist() == dense.kept_indices().tolist() == [0, 2, 3, 5]
    assert removed_rows(sparse).equals(removed_rows(dense))
    assert removed_rows(sparse).column("detail").to_pylist() == ["x", "y", "z"]
    with pytest.raises(IndexError):
        SparseColumn(3, np.array([0]), ["a"], None)[3]
