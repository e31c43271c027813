"""Benchmark decontamination: ``decontaminate(ds, config) -> Verdicts``.

1. Each benchmark's instances (``postmix.curate.benchmarks``) are normalised and their n-grams
   indexed (``postmix.curate.ngram_index``), all benchmarks in one index.
2. Every training row's text view (``on``: user turns by default) is normalised, tokenised and
   scanned batch by batch, on all cores.
3. A row is removed when its score against some instance reaches ``threshold``; the reject
   detail names the best one: ``contaminated:gsm8k:12:0.875 span="..."`` (span: the row's
   normalised text from the first to the last shared gram).
4. ``Verdicts.stats`` reports per benchmark: instances hit (best score over all rows reaches the
   threshold), the contaminated fraction of the benchmark (the dataset-level figure open-instruct
   prints as "mean match score" with ``--match_threshold``), rows removed per source, examples.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import datasets
import numba
import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from postmix.curate.benchmarks import (
    BenchmarkInstances,
    BenchmarkSpec,
    load_instances,
    parse_benchmark_spec,
)
from postmix.curate.executor import LocalExecutor
from postmix.curate.ngram_index import NgramIndex, build_index, scan, token_hashes
from postmix.curate.normalise import NormaliseOptions, normalise_texts
from postmix.curate.runner import StageOutput, Verdicts
from postmix.curate.steps import STEPS
from postmix.curate.textview import View, view_texts
from postmix.errors import ConfigError
from postmix.progress import progress_bar
from postmix.schemas import kind_of_columns

CONTAMINATED = "contaminated"
_SPAN_CHARS = 200


class DecontamConfig(BaseModel):
    """Settings of ``postmix curate decontam``."""

    model_config = ConfigDict(extra="forbid")

    benchmarks: list[BenchmarkSpec] = Field(
        min_length=1, description="Benchmarks to check against; strings like 'gsm8k' or "
        "'gsm8k=test.jsonl:question' are parsed."
    )
    ngram: int = Field(8, ge=2, le=64, description="Tokens per n-gram; 8 is what Tulu 3 used.")
    threshold: float = Field(
        0.5, gt=0.0, le=1.0,
        description="Score (share of an instance's tokens covered by shared n-grams) at which a "
        "row is contaminated; 0.5 is Tulu 3's match threshold.",
    )
    on: View = Field("user", description="Text of the training row scanned: user turns (where "
                     "benchmark questions leak), prompt, assistant or the whole conversation.")
    min_short_tokens: int = Field(
        3, ge=1,
        description="Instances (fields) shorter than ngram are matched by exact containment; below "
        "this many tokens they are skipped, since a one- or two-word field ('yes', '42') occurs in "
        "almost any text.",
    )
    normalise: NormaliseOptions = Field(default_factory=NormaliseOptions,
                                        description="Applied to benchmark and training text alike.")
    batch_size: int = Field(
        65536, ge=1, description="Training rows normalised and scanned per batch (bounds memory)."
    )
    workers: int | None = Field(None, ge=1, description="Threads for the scan; None = every core. "
                                "Results do not depend on it.")
    examples: int = Field(
        5, ge=0, description="Contaminated rows listed per benchmark in the report."
    )

    @field_validator("benchmarks", mode="before")
    @classmethod
    def _parse_strings(cls, value: Any) -> Any:
        if isinstance(value, (str, BenchmarkSpec, dict)):
            value = [value]
        return [parse_benchmark_spec(v) if isinstance(v, str) else v for v in value]

    @field_validator("benchmarks")
    @classmethod
    def _unique_names(cls, value: list[BenchmarkSpec]) -> list[BenchmarkSpec]:
        names = [b.name for b in value]
        if len(set(names)) != len(names):
            raise ValueError(f"benchmark names must be unique, got {names}")
        return value


class BenchmarkIndex:
    """The benchmarks' instances and their n-gram index."""

    def __init__(self, loaded: list[BenchmarkInstances], config: DecontamConfig):
        self.benchmarks = loaded
        self.instance_benchmark = np.repeat(np.arange(len(loaded)), [len(b.ids) for b in loaded])
        self.first_instance = np.concatenate(
            [[0], np.cumsum([len(b.ids) for b in loaded])]).astype(np.int64)
        texts: list[str] = []
        owners: list[int] = []
        for b, bench in enumerate(loaded):
            for i, fields in enumerate(bench.texts):
                texts.extend(fields)
                owners.extend([int(self.first_instance[b]) + i] * len(fields))
        data, offsets = normalise_texts(pa.array(texts, pa.large_string()), config.normalise)
        self.index: NgramIndex = build_index(data, offsets, np.array(owners, dtype=np.int64),
                                             int(self.first_instance[-1]), config.ngram,
                                             config.min_short_tokens)

    def describe(self, instance: int) -> tuple[str, str]:
        """(benchmark name, instance id) of a global instance number."""
        b = int(self.instance_benchmark[instance])
        bench = self.benchmarks[b]
        return bench.name, bench.ids[instance - int(self.first_instance[b])]


def build_benchmark_index(config: DecontamConfig) -> BenchmarkIndex:
    return BenchmarkIndex([load_instances(spec) for spec in config.benchmarks], config)


def prepare_index(config: DecontamConfig) -> dict[str, Any]:
    """The deciders' ``index`` argument, built once before any data is read (the step
    registry's ``prepare``): a bad benchmark fails fast, and every batch or worker shares it."""
    return {"index": build_benchmark_index(config)}


@contextmanager
def _threads(workers: int | None):
    previous = numba.get_num_threads()
    numba.set_num_threads(
        min(workers or numba.config.NUMBA_NUM_THREADS, numba.config.NUMBA_NUM_THREADS)
    )
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def _span(data: np.ndarray, offsets: np.ndarray, row: int, start: int, end: int) -> str:
    tokens = data[offsets[row] : offsets[row + 1]].tobytes().decode("utf-8").split(" ")
    text = " ".join(tokens[start:end])
    return text if len(text) <= _SPAN_CHARS else text[: _SPAN_CHARS - 1] + "…"


def prepare(ds: Any, config: DecontamConfig, kind: str | None,
            index: BenchmarkIndex | None) -> tuple[str, BenchmarkIndex, dict[str, float]]:
    """``(kind, index, timings)`` for a decontam run on either engine: the records' kind, and the
    benchmark index built now unless the caller built it already."""
    kind = kind or kind_of_columns(ds.column_names)
    if kind is None:
        raise ConfigError("decontam needs postmix records: run `postmix ingest` on the data first")
    started = time.perf_counter()
    index = index or build_benchmark_index(config)
    return kind, index, {"index": time.perf_counter() - started}


def decontaminate(
    ds: datasets.Dataset,
    config: DecontamConfig,
    *,
    kind: str | None = None,
    index: BenchmarkIndex | None = None,
) -> Verdicts:
    """One verdict per row of ``ds``: ``None`` keeps it, ``contaminated`` removes it with
    ``contaminated:<benchmark>:<instance id>:<score> span="..."`` in the detail."""
    kind, index, timings = prepare(ds, config, kind, index)
    n = len(ds)
    reasons: list[str | None] = [None] * n
    details = [""] * n
    scans: list[pa.Table] = []
    started = time.perf_counter()
    arrow = ds.with_format("arrow")
    with _threads(config.workers), progress_bar("decontam: scanning", total=n) as bar:
        for start in range(0, n, config.batch_size):
            table = arrow[start : start + config.batch_size]
            rows = np.arange(start, start + len(table))
            scans.append(scan_block(table, kind, config, index, rows))
            bar.advance(len(table))
    timings["scan"] = time.perf_counter() - started
    found = pa.concat_tables(scans) if scans else pa.table({}, schema=SCAN_SCHEMA)
    rows, reasons_at, details_at, stats = verdicts_of_scan(found, index, config)
    reasons: list[str | None] = [None] * n
    details = [""] * n
    for row, reason, detail in zip(rows.tolist(), reasons_at, details_at, strict=True):
        reasons[row], details[row] = reason, detail
    stats["timings"] = {k: round(v, 3) for k, v in timings.items()}
    return Verdicts(reasons, details, stats)


SCAN_SCHEMA = pa.schema([("row", pa.int64()), ("instance", pa.int64()), ("score", pa.float64()),
                         ("best", pa.bool_()), ("span", pa.string()), ("id", pa.string()),
                         ("source", pa.string())])


def scan_block(table: pa.Table, kind: str, config: DecontamConfig, index: BenchmarkIndex,
               rows: np.ndarray) -> pa.Table:
    """Every match of one block of rows (``rows``: their numbers in the whole dataset) against the
    index, ``SCAN_SCHEMA``: each row's best match (highest score, then lowest instance number)
    is marked ``best`` and carries its span, the row's id and source."""
    data, offsets = normalise_texts(view_texts(table, kind, config.on), config.normalise)
    tokens, token_offsets = token_hashes(data, offsets)
    found = scan(tokens, token_offsets, index.index, config.threshold)
    order = np.lexsort((found.instance, -found.score, found.row))
    first = np.ones(len(order), dtype=bool)
    first[1:] = found.row[order][1:] != found.row[order][:-1]
    best = np.zeros(len(order), dtype=bool)
    best[order[first]] = True
    picked = np.flatnonzero(best)
    spans: list[str | None] = [None] * len(order)
    ids: list[str | None] = [None] * len(order)
    sources: list[str | None] = [None] * len(order)
    at = pa.array(found.row[picked])
    for k, row_id, source in zip(picked.tolist(), table.column("id").take(at).to_pylist(),
                                 table.column("source").take(at).to_pylist(), strict=True):
        spans[k] = _span(data, offsets, int(found.row[k]), int(found.start[k]), int(found.end[k]))
        ids[k], sources[k] = row_id, source
    return pa.table({"row": np.asarray(rows, np.int64)[found.row], "instance": found.instance,
                     "score": found.score, "best": best, "span": spans, "id": ids,
                     "source": sources},
                    schema=SCAN_SCHEMA)


def verdicts_of_scan(found: pa.Table, index: BenchmarkIndex, config: DecontamConfig
                     ) -> tuple[np.ndarray, list[str], list[str], dict[str, Any]]:
    """``(removed rows ascending, their reasons, their details, report)`` from the matches of
    every block (``scan_block`` tables, concatenated in any order)."""
    best = found.filter(found.column("best")).sort_by("row")
    rows = best.column("row").to_numpy()
    instances, scores = best.column("instance").to_pylist(), best.column("score").to_pylist()
    spans = best.column("span").to_pylist()
    described = [index.describe(instance) for instance in instances]
    details = [f"{CONTAMINATED}:{name}:{instance_id}:{score:.3f} span=\"{span}\""
               for (name, instance_id), score, span in zip(described, scores, spans, strict=True)]
    per_source: dict[str, dict[str, int]] = defaultdict(dict)
    examples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    sources, ids = best.column("source").to_pylist(), best.column("id").to_pylist()
    for (name, instance_id), score, span, source, row_id in zip(
            described, scores, spans, sources, ids, strict=True):
        per_source[name][str(source)] = per_source[name].get(str(source), 0) + 1
        if len(examples[name]) < config.examples:
            examples[name].append({"row_id": row_id, "instance_id": instance_id,
                                   "score": round(score, 4), "span": span})
    all_instances = found.column("instance").to_numpy()
    all_rows = found.column("row").to_numpy()
    hit = np.zeros(index.index.n_instances, dtype=bool)
    hit[all_instances] = True
    benchmarks: dict[str, Any] = {}
    for b, bench in enumerate(index.benchmarks):
        lo, hi = int(index.first_instance[b]), int(index.first_instance[b + 1])
        mine = (all_instances >= lo) & (all_instances < hi)
        instances_hit = int(hit[lo:hi].sum())
        benchmarks[bench.name] = {
            "source": bench.source,
            "fields": list(bench.fields),
            "instances": hi - lo,
            "instances_skipped": bench.skipped,
            "instances_not_indexable": int((index.index.instance_segments[lo:hi] == 0).sum()),
            "instances_hit": instances_hit,
            "contaminated_fraction": round(instances_hit / (hi - lo), 6),
            "rows_matching": int(len(np.unique(all_rows[mine]))),
            "rows_removed": int(sum(per_source[bench.name].values())),
            "rows_removed_per_source": dict(sorted(per_source[bench.name].items())),
            "examples": examples[bench.name],
        }
    report = {"text_view": config.on, "ngram": config.ngram, "threshold": config.threshold,
              "benchmarks": benchmarks, "rows_removed": len(rows)}
    return rows, [CONTAMINATED] * len(rows), details, report


def decontaminate_file(
    source: str | Path,
    output: str | Path,
    config: DecontamConfig,
    *,
    format: str | None = None,
) -> StageOutput:
    """Read ``source``, decontaminate it, write kept rows to ``output`` with rejects and report
    beside it."""
    return LocalExecutor().run_file(STEPS["decontam"], source, output, config, format=format)


def contamination_report(ids: list[str], texts: list[str], benchmarks: list[str | BenchmarkSpec],
                         **config: Any) -> dict[str, Any]:
    """Contamination of plain texts (e.g. synthesised prompts) against benchmarks, as report
    details only: nothing is removed. ``config`` overrides ``DecontamConfig`` fields."""
    from postmix.schemas import FEATURES

    settings = DecontamConfig(benchmarks=benchmarks, **config)
    ds = datasets.Dataset.from_dict(
        {"id": list(ids), "messages": [[{"role": "user", "content": t}] for t in texts],
         "source": ["texts"] * len(texts), "meta": ["{}"] * len(texts)},
        features=FEATURES["sft"])
    verdicts = decontaminate(ds, settings.model_copy(update={"on": "user"}), kind="sft")
    flagged = [i for i, r in zip(ids, verdicts.reasons, strict=True) if r is not None]
    per_benchmark = {name: {k: v for k, v in stats.items()
                            if k not in ("rows_removed", "rows_removed_per_source")}
                     for name, stats in verdicts.stats["benchmarks"].items()}
    return {"ngram": settings.ngram, "threshold": settings.threshold, "rows_flagged": len(flagged),
            "flagged_ids": flagged[:20], "benchmarks": per_benchmark}
