"""Regression tests for the crashes hostile input found in the readers (issue 14), one each.

Each failed before its fix with a traceback (``RecursionError``, ``ValueError``,
``UnicodeEncodeError``, ``ArrowNotImplementedError``, ``JSONDecodeError`` from datasets...) instead
of a reject with its line or a one-line ``PostmixError``. tests/test_fuzz_readers.py is the suite
that found them and keeps looking.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from postmix.errors import ConfigError, PostmixError, UnsupportedFormatError
from postmix.io.dataset import load_records
from postmix.io.ingest import ingest

DEEP = "[" * 100_000 + "]" * 100_000
# six lines, ten references each: a million values once the aliases are followed
_ALIAS_BOMB = b"a: &a [x, x, x, x, x, x, x, x, x, x]\n" + b"".join(
    f"{chr(98 + k)}: &{chr(98 + k)} [{', '.join(['*' + chr(97 + k)] * 10)}]\n".encode()
    for k in range(5)
)


def _row(i: int, **extra) -> dict:
    return {
        "id": f"r{i}",
        "messages": [
            {"role": "user", "content": f"question {i} about rivers"},
            {"role": "assistant", "content": f"answer {i}: they flow"},
        ],
        **extra,
    }


def _jsonl(path: Path, lines: list[str | bytes]) -> Path:
    with open(path, "wb") as handle:
        for line in lines:
            handle.write((line.encode() if isinstance(line, str) else line) + b"\n")
    return path


def _rejects(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _kept_ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def deep_file(tmp_path) -> Path:
    return _jsonl(tmp_path / "deep.jsonl", [json.dumps(_row(1)), DEEP, json.dumps(_row(3))])


def test_deep_row_is_a_too_deep_reject_in_ingest(deep_file, tmp_path):
    result = ingest(deep_file, tmp_path / "out.jsonl", progress=False)
    assert result.report.rejected == {"too_deep": 1}
    assert _kept_ids(tmp_path / "out.jsonl") == ["r1", "r3"]
    (reject,) = _rejects(result.rejects)
    assert reject["line"] == 2 and reject["reason"] == "too_deep" and reject["row"] == DEEP


def test_deep_row_in_filter_dedup_stats_and_judge_prompts(deep_file, tmp_path):
    from postmix.curate.dedup import dedup_file
    from postmix.curate.filters import filter_file
    from postmix.llm.model_stage import load_prompts
    from postmix.mix.stats import dataset_stats

    for run, out in ((filter_file, "f.jsonl"), (dedup_file, "d.jsonl")):
        result = run(deep_file, tmp_path / out)
        assert _kept_ids(tmp_path / out) == ["r1", "r3"]
        assert [(r["line"], r["reason"]) for r in _rejects(result.rejects)] == [(2, "too_deep")]
    stats = dataset_stats(deep_file)
    assert stats["rows"] == 2 and stats["unreadable_rows"] == 1
    loaded = load_prompts(deep_file)
    assert [p.id for p in loaded.items] == ["r1", "r3"]
    assert [(r.line, r.reason) for r in loaded.rejects] == [(2, "too_deep")]


def test_deep_row_through_the_cli(deep_file, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    for args in (["ingest", str(deep_file), "-o", str(tmp_path / "o.jsonl")], ["stats", str(deep_file)]):
        proc = subprocess.run(
            [sys.executable, "-m", "postmix.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_nesting_past_the_limit_but_parseable_is_too_deep(tmp_path):
    source = _jsonl(
        tmp_path / "in.jsonl",
        [
            json.dumps(_row(1, meta=json.loads("[" * 300 + "]" * 300))),
            json.dumps(_row(2, meta={"a": [[[1]]]})),
        ],
    )
    result = ingest(source, tmp_path / "out.jsonl", progress=False)
    assert result.report.rejected == {"too_deep": 1} and _kept_ids(tmp_path / "out.jsonl") == ["r2"]


def test_integer_past_4300_digits_is_malformed_json(tmp_path):
    source = _jsonl(
        tmp_path / "in.jsonl",
        [json.dumps(_row(1))[:-1] + ', "n": ' + "9" * 5000 + "}", json.dumps(_row(2))],
    )
    result = ingest(source, tmp_path / "out.jsonl", progress=False)
    assert result.report.rejected == {"malformed_json": 1}
    assert "4300 digits" in _rejects(result.rejects)[0]["detail"]


def test_lone_surrogate_is_a_reject_not_an_unwritable_row(tmp_path):
    bad = json.dumps(_row(1)).replace("question 1", "question \\ud800")
    source = _jsonl(
        tmp_path / "in.jsonl",
        [
            bad,
            json.dumps(_row(2)),
            json.dumps(_row(3)).replace("question 3", "question \\ud83d\\ude00"),
        ],
    )
    for out in ("out.jsonl", "out.parquet"):
        result = ingest(source, tmp_path / out, progress=False)
        assert result.report.rejected == {"not_utf8": 1} and result.report.rows_out == 2


def test_byte_order_mark_past_line_one_keeps_the_row(tmp_path):
    source = _jsonl(
        tmp_path / "in.jsonl", [json.dumps(_row(1)), b"\xef\xbb\xbf" + json.dumps(_row(2)).encode()]
    )
    ingest(source, tmp_path / "out.jsonl", progress=False)
    assert _kept_ids(tmp_path / "out.jsonl") == ["r1", "r2"]


def test_deep_json_text_in_meta(tmp_path):
    # a JSONL row whose meta is a string of deep JSON: kept, the text as it was
    source = _jsonl(tmp_path / "in.jsonl", [json.dumps(_row(1, meta=DEEP))])
    ingest(source, tmp_path / "out.jsonl", progress=False)
    assert json.loads(json.loads((tmp_path / "out.jsonl").read_text())["meta"]) == {"meta": DEEP}
    # the same in a Parquet file of postmix records: not loaded verbatim (past the fast path's
    # shape check, the text would reach whoever parses meta next) but kept the same way
    rows = [dict(_row(i), source="s", meta="{}") for i in range(3)]
    rows[1]["meta"] = '{"a":' + DEEP + "}"
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    ds, _kind, rejects = load_records(tmp_path / "in.parquet")
    assert list(ds["id"]) == ["r0", "r1", "r2"] and not rejects
    assert json.loads(ds[1]["meta"]) == {"meta": rows[1]["meta"]}


def test_json_file_too_deep_for_python_is_one_line(tmp_path):
    source = tmp_path / "deep.json"
    source.write_text("[" + DEEP + "]")
    with pytest.raises(UnsupportedFormatError, match="nests deeper"):
        ingest(source, tmp_path / "out.jsonl", progress=False)
    source.write_text("[" + "9" * 5000 + "]")
    with pytest.raises(UnsupportedFormatError, match="not valid JSON"):
        ingest(source, tmp_path / "out.jsonl", progress=False)


def test_json_file_item_past_the_limit_is_rejected_alone(tmp_path):
    source = tmp_path / "in.json"
    source.write_text(
        json.dumps(
            [
                _row(1),
                json.loads("[" * 300 + "]" * 300),
                _row(3),
                json.loads(json.dumps(_row(4)).replace("question", "\\ud800")),
            ]
        )
    )
    result = ingest(source, tmp_path / "out.jsonl", progress=False)
    assert _kept_ids(tmp_path / "out.jsonl") == ["r1", "r3"]
    assert [(r["line"], r["reason"]) for r in _rejects(result.rejects)] == [
        (2, "too_deep"),
        (4, "not_utf8"),
    ]


@pytest.mark.parametrize(
    "column,values",
    [
        ("id", [0, 1, 2]),
        ("meta", [{"a": 1.5}] * 3),
        ("messages", [[{"role": 1, "content": "x"}]] * 3),
    ],
)
def test_parquet_postmix_columns_of_another_type_take_the_careful_path(tmp_path, column, values):
    rows = [dict(_row(i), source="s", meta="{}") for i in range(3)]
    for row, value in zip(rows, values, strict=True):
        row[column] = value
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    ds, _kind, rejects = load_records(tmp_path / "in.parquet")
    assert len(ds) + len(rejects) == 3


def test_arrow_folder_with_a_row_the_records_refuse(tmp_path):
    import datasets

    from postmix.mix.stats import dataset_stats

    rows = [dict(_row(i), source="s", meta="{}") for i in range(3)]
    rows[1]["messages"] = [{"role": None, "content": "x"}]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    ds, _kind, rejects = load_records(tmp_path / "ds")
    assert list(ds["id"]) == ["r0", "r2"] and [r.line for r in rejects] == [2]
    assert dataset_stats(tmp_path / "ds")["rows"] == 2


def test_damaged_arrow_folder_is_one_line(tmp_path):
    import datasets

    datasets.Dataset.from_list([_row(1)]).save_to_disk(str(tmp_path / "ds"))
    (tmp_path / "ds" / "state.json").write_text("{not json")
    with pytest.raises(PostmixError, match="could not be read"):
        load_records(tmp_path / "ds")


def test_reject_of_a_row_with_a_non_text_id(tmp_path):
    from postmix.llm.model_stage import load_prompts

    source = _jsonl(
        tmp_path / "in.jsonl", [json.dumps({"id": 5, "messages": 7}), json.dumps(_row(2))]
    )
    loaded = load_prompts(source)
    assert [p.id for p in loaded.items] == ["r2"] and loaded.rejects[0].id == "5"


def test_deep_json_prompt_text_in_judge_inputs(tmp_path):
    from postmix.llm.model_stage import load_prompts

    source = _jsonl(
        tmp_path / "in.jsonl", [json.dumps({"id": "p", "prompt": DEEP}), json.dumps(_row(2))]
    )
    loaded = load_prompts(source)
    assert [p.id for p in loaded.items] == ["r2"] and loaded.rejects[0].line == 1


# ---- YAML ------------------------------------------------------------------------------------


def _read(tmp_path: Path, body: bytes):
    from postmix.yamlfile import read_yaml

    path = tmp_path / "spec.yaml"
    path.write_bytes(body)
    return read_yaml(path, "spec file")


@pytest.mark.parametrize(
    "body,message",
    [
        (b"a: " + DEEP.encode(), "nests deeper"),
        ("".join("  " * k + "a:\n" for k in range(3000)).encode(), "nests deeper"),
        (b"name: caf\xe9\n", r"is not UTF-8 text \(byte 0xe9 at offset 9\)"),
        (b"seed: " + b"9" * 5000 + b"\n", "4300 digits"),
        (b"name: x\nsources:\n  - a\n bad: 1\n", "line 4 column 2: not valid YAML"),
        (b"name: [x\n", "line 2 column 1: not valid YAML: expected ',' or ']'"),
        (
            b"name: a\nsources: []\nname: b\n",
            "line 3 column 1: not valid YAML: key 'name' given twice "
            r"\(first on line 1\)",
        ),
        (
            _ALIAS_BOMB,
            "expands to more than",
        ),
    ],
    ids=[
        "deep_flow",
        "deep_block",
        "latin1",
        "long_int",
        "bad_indent",
        "unclosed",
        "duplicate_key",
        "alias_bomb",
    ],
)
def test_yaml_errors_are_one_line(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message) as caught:
        _read(tmp_path, body)
    assert "\n" not in str(caught.value)


def test_yaml_merge_keys_may_override(tmp_path):
    assert _read(tmp_path, b"base: &b {k: 1, j: 2}\nspec:\n  <<: *b\n  k: 3\n")["spec"] == {
        "k": 3,
        "j": 2,
    }


def test_yaml_path_that_is_a_folder(tmp_path):
    from postmix.mix.spec import load_spec
    from postmix.pipeline import load_recipe

    for load in (load_spec, load_recipe):
        with pytest.raises(ConfigError, match="is a folder, not a YAML file"):
            load(tmp_path)


def test_config_key_with_a_newline_keeps_the_message_on_one_line(tmp_path):
    from postmix.llm import load_endpoints
    from postmix.mix.spec import load_spec

    path = tmp_path / "spec.yaml"
    path.write_text('"\\n": 1\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_spec(path)
    assert "\n" not in str(caught.value) and "'\\n'" in str(caught.value)
    path.write_text('endpoints:\n- {"\\n": 1, name: a, model: m, base_url: "http://x/v1"}\n')
    with pytest.raises(ConfigError) as caught:
        load_endpoints(path)
    assert "\n" not in str(caught.value) and "'\\n'" in str(caught.value)


def test_deep_meta_text_in_curate_respond_prompts(tmp_path):
    from postmix.curate.respond import read_prompts

    source = _jsonl(tmp_path / "in.jsonl", [json.dumps(_row(1, meta=DEEP)), json.dumps(_row(2))])
    loaded = read_prompts(source)
    kept, rejects = loaded.items, loaded.rejects
    assert [p.id for p in kept] == ["r2"] and [r.line for r in rejects] == [1]
