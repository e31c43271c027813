"""Loading records as Datasets (fast path and via ingest) and the shared stage runner."""

import json

import pytest

from postmix.curate.runner import Verdicts, run_stage
from postmix.io import load_records, save_records
from postmix.schemas import FEATURES, StepReport


def rows(n):
    return [{"id": f"r{i}", "messages": [{"role": "user", "content": f"question {i}"},
                                         {"role": "assistant", "content": f"answer {i}"}],
             "source": "s" if i % 2 else "t", "meta": "{}"} for i in range(n)]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".jsonl.gz"])
def test_save_then_load_keeps_rows_and_schema(tmp_path, suffix):
    import datasets

    ds = datasets.Dataset.from_list(rows(5), features=FEATURES["sft"])
    path = save_records(ds, tmp_path / f"d{suffix}")
    loaded, kind, rejects = load_records(path)
    assert kind == "sft" and rejects == []
    assert loaded.to_list() == ds.to_list()
    assert not list(tmp_path.glob("*.partial"))


def test_non_postmix_input_goes_through_ingest_and_returns_its_rejects(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text(json.dumps({"instruction": "i", "output": "o"}) + "\n{bad\n")
    ds, kind, rejects = load_records(src)
    assert kind == "sft" and len(ds) == 1
    assert [(r.line, r.reason) for r in rejects] == [(2, "malformed_json")]


def test_run_stage_writes_kept_rejects_and_a_reconciled_report(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows(6)) + "{broken\n")

    def drop_odd(ds, kind):
        reasons = [None if i % 2 == 0 else "odd" for i in range(len(ds))]
        return Verdicts(reasons, ["" if r is None else f"row {i}" for i, r in enumerate(reasons)])

    result = run_stage("demo", src, tmp_path / "out.jsonl", drop_odd, {"k": 1})
    kept = [json.loads(line)["id"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    rejects = [json.loads(line) for line in (tmp_path / "out.rejects.jsonl").read_text().splitlines()]
    assert kept == ["r0", "r2", "r4"]
    assert sorted((r["reason"], r["id"]) for r in rejects if r["reason"] == "odd") == [
        ("odd", "r1"), ("odd", "r3"), ("odd", "r5")]
    assert any(r["reason"] == "malformed_json" and r["line"] == 7 for r in rejects)
    assert all(r["row"] for r in rejects)  # whole row kept, so it can be restored
    report = StepReport.read(tmp_path / "out.report.json")
    assert report == result.report
    assert (report.rows_in, report.rows_out, report.rejected) == (7, 3, {"malformed_json": 1, "odd": 3})


def test_a_failed_writer_keeps_finished_rows_and_an_earlier_partial(tmp_path):
    import pyarrow.parquet as pq

    from postmix.io.write import RowWriter

    earlier = tmp_path / "out.parquet.partial"
    earlier.write_bytes(b"rows an interrupted run finished")
    try:
        with RowWriter(tmp_path / "out.parquet"):
            raise RuntimeError("stopped before its first row")
    except RuntimeError:
        pass
    assert earlier.read_bytes() == b"rows an interrupted run finished"  # not this writer's file
    try:
        with RowWriter(tmp_path / "more.parquet") as writer:
            writer.write({"a": 1})  # buffered, not yet flushed
            raise RuntimeError("stopped")
    except RuntimeError:
        pass
    assert pq.read_table(tmp_path / "more.parquet.partial").to_pylist() == [{"a": 1}]


def test_parquet_rows_whose_fields_change_are_refused_not_dropped(tmp_path):
    """Review finding: a Parquet writer without a schema took it from the first 8,192 rows and
    silently dropped later rows' new fields."""
    from postmix.io.write import OutputWriteError, RowWriter

    refused = r"differ from them in field\(s\) b; .* write a \.jsonl"
    with pytest.raises(OutputWriteError, match=refused), RowWriter(tmp_path / "x.parquet") as writer:
        for i in range(9000):
            writer.write({"a": i} if i < 8192 else {"a": i, "b": "new"})
    assert not (tmp_path / "x.parquet").exists()
    with RowWriter(tmp_path / "y.jsonl") as writer:  # JSON lines take any fields
        for i in range(9000):
            writer.write({"a": i} if i < 8192 else {"a": i, "b": "new"})
    assert '"b":"new"' in (tmp_path / "y.jsonl").read_text().splitlines()[-1]
