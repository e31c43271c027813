"""Benchmark decontamination: ``decontaminate(ds, config) -> Verdicts``.

1. Each benchmark's instances (``postmix.curate.benchmarks``) are normalised and their n-grams
   indexed (``postmix.curate.ngram_index``), all benchmarks in one index per *side*: the
   ``question`` fields, and the ``answer`` fields (reference solutions).
2. Every training row's text views are normalised, tokenised and scanned batch by batch, on all
   cores: ``on`` (user turns by default) against the question index, ``answer_on`` (assistant
   turns) against the answer index - a solution copied under a generic prompt leaks as surely as
   a copied question. Each side is scored on its own with the Tulu 3 coverage score.
3. A row is removed when its score against some instance reaches ``threshold`` on either side;
   the reject detail names, best first, the best instance per side and benchmark that did:
   ``contaminated:gsm8k:12:0.875 side=answer field=answer span="..."`` (span: the row's
   normalised text from the first to the last shared gram), joined by ``"; "``.
4. ``Verdicts.stats`` reports per benchmark: instances hit (best score over all rows reaches the
   threshold), the contaminated fraction of the benchmark (the dataset-level figure open-instruct
   prints as "mean match score" with ``--match_threshold``), rows removed per source, examples,
   and the same per side; ``Verdicts.sidecar`` is the contamination matrix
   (``postmix.curate.contamination``: source x benchmark x side), which the runner writes beside
   the output and a mix build into its version folder.
5. ``paraphrase`` (off unless set) adds an embedding pass (``postmix.curate.paraphrase``).
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
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator

from postmix.curate.benchmarks import (
    BenchmarkInstances,
    BenchmarkSpec,
    load_instances,
    parse_benchmark_spec,
)
from postmix.curate.contamination import ContaminationMatrix
from postmix.curate.executor import LocalExecutor
from postmix.curate.ngram_index import NgramIndex, build_index, scan, text_token_hashes
from postmix.curate.normalise import NormaliseOptions, normalise_texts
from postmix.curate.paraphrase import ParaphraseConfig, question_texts, similar_pairs
from postmix.curate.runner import StageOutput, Verdicts
from postmix.curate.steps import STEPS
from postmix.curate.textview import UnsupportedViewError, View, view_texts
from postmix.errors import ConfigError
from postmix.progress import progress_bar
from postmix.schemas import FEATURES, kind_of_columns

CONTAMINATED = "contaminated"
_SPAN_CHARS = 200
SIDE_ORDER = {"question": 0, "answer": 1, "paraphrase": 2}


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
    on: View = Field("user", description="Text of the training row scanned against the "
                     "benchmarks' question fields: user turns (where questions leak), prompt, "
                     "assistant or the whole conversation.")
    answer_on: View | None = Field(
        "assistant", description="Text scanned against the benchmarks' answer fields (reference "
        "solutions copied into responses); None scans questions only. Rows without that text "
        "(rlvr has no response) are not scanned for answers.")
    min_short_tokens: int = Field(
        3, ge=1,
        description="Instances (fields) shorter than ngram are matched by exact containment; below "
        "this many tokens they are skipped, since a one- or two-word field ('yes', '42') occurs in "
        "almost any text.",
    )
    normalise: NormaliseOptions = Field(
        default_factory=NormaliseOptions,
        description="Applied to benchmark and training text alike; the benchmarks' own markup "
        "patterns (GSM8K's calculator annotations) are added to its markup.")
    batch_size: int = Field(
        65536, ge=1, description="Training rows normalised and scanned per batch (bounds memory)."
    )
    workers: int | None = Field(None, ge=1, description="Threads for the scan; None = every core. "
                                "Results do not depend on it.")
    examples: int = Field(
        5, ge=0, description="Contaminated rows listed per benchmark in the report."
    )
    paraphrase: ParaphraseConfig | None = Field(
        None, description="Embedding pass for paraphrased questions (an OpenAI-compatible "
        "/v1/embeddings endpoint); None = off.")

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
    """The benchmarks' instances and one n-gram index per side (question, answer) over them,
    instances numbered the same way in both."""

    def __init__(self, loaded: list[BenchmarkInstances], config: DecontamConfig):
        self.benchmarks = loaded
        markup = [p for bench in loaded for p in bench.markup]
        self.normalise = config.normalise.model_copy(
            update={"markup": tuple(dict.fromkeys([*config.normalise.markup, *markup]))})
        self.instance_benchmark = np.repeat(np.arange(len(loaded)), [len(b.ids) for b in loaded])
        self.first_instance = np.concatenate(
            [[0], np.cumsum([len(b.ids) for b in loaded])]).astype(np.int64)
        self.sides: dict[str, NgramIndex] = {}
        self.segment_field: dict[str, np.ndarray] = {}  # segment -> field number on its side
        for side in ("question", "answer"):
            texts: list[str] = []
            owners: list[int] = []
            fields: list[int] = []
            for b, bench in enumerate(loaded):
                for i, values in enumerate(bench.side(side)[1]):
                    texts.extend(values)
                    owners.extend([int(self.first_instance[b]) + i] * len(values))
                    fields.extend(range(len(values)))
            if not texts:
                continue  # no benchmark has answer fields: that side is not scanned
            data, offsets = normalise_texts(pa.array(texts, pa.large_string()), self.normalise)
            self.sides[side] = build_index(data, offsets, np.array(owners, dtype=np.int64),
                                           int(self.first_instance[-1]), config.ngram,
                                           config.min_short_tokens)
            self.segment_field[side] = np.array(fields, dtype=np.int64)

    @property
    def index(self) -> NgramIndex:
        """The question index."""
        return self.sides["question"]

    @property
    def n_instances(self) -> int:
        return int(self.first_instance[-1])

    def describe(self, instance: int) -> tuple[str, str]:
        """(benchmark name, instance id) of a global instance number."""
        b = int(self.instance_benchmark[instance])
        bench = self.benchmarks[b]
        return bench.name, bench.ids[instance - int(self.first_instance[b])]

    def field_name(self, side: str, instance: int, segment: int) -> str:
        bench = self.benchmarks[int(self.instance_benchmark[instance])]
        return bench.side(side)[0][int(self.segment_field[side][segment])]


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


def scanned_sides(kind: str, config: DecontamConfig, index: BenchmarkIndex
                  ) -> dict[str, View | None]:
    """Side -> the text view scanned against it, None where it is not scanned (no benchmark has
    answer fields, ``answer_on`` is None, or the records have no such text)."""
    sides: dict[str, View | None] = {"question": config.on, "answer": None}
    if config.answer_on is not None and "answer" in index.sides:
        try:
            view_texts(FEATURES[kind].arrow_schema.empty_table(), kind, config.answer_on)
            sides["answer"] = config.answer_on
        except UnsupportedViewError:
            pass  # rlvr rows have no response to copy a solution into
    return sides


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
    ``contaminated:<benchmark>:<instance id>:<score> side=<side> field=<field> span="..."`` in
    the detail."""
    kind, index, timings = prepare(ds, config, kind, index)
    n = len(ds)
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
    paraphrased = None
    if config.paraphrase is not None:
        started = time.perf_counter()
        table, paraphrased = paraphrase_block(arrow, kind, config.paraphrase, index)
        scans.append(table)
        timings["paraphrase"] = time.perf_counter() - started
    found = pa.concat_tables(scans) if scans else SCAN_SCHEMA.empty_table()
    rows, reasons, details_at, stats, matrix = verdicts_of_scan(found, index, config, kind)
    reasons_all: list[str | None] = [None] * n
    details = [""] * n
    for row, reason, detail in zip(rows.tolist(), reasons, details_at, strict=True):
        reasons_all[row], details[row] = reason, detail
    if paraphrased is not None:
        stats["paraphrase"] = paraphrased
    stats["timings"] = {k: round(v, 3) for k, v in timings.items()}
    return Verdicts(reasons_all, details, stats, sidecar=matrix)


def paraphrase_block(arrow: Any, kind: str, config: ParaphraseConfig, index: BenchmarkIndex
                     ) -> tuple[pa.Table, dict[str, Any]]:
    """The paraphrase pass's matches as ``SCAN_SCHEMA`` rows (side ``paraphrase``, the best
    question per row and benchmark marked ``best``; span: the row's text, cut), and its
    details (model, threshold, ledger)."""
    rows, instances, scores, texts, details = similar_pairs(
        arrow, kind, config, question_texts(index.benchmarks))
    bench = index.instance_benchmark[instances] if len(instances) else np.zeros(0, np.int64)
    order = np.lexsort((instances, -scores, bench, rows))
    first = np.ones(len(order), dtype=bool)
    first[1:] = (rows[order][1:] != rows[order][:-1]) | (bench[order][1:] != bench[order][:-1])
    best = np.zeros(len(order), dtype=bool)
    best[order[first]] = True
    k = len(rows)
    at = pa.array(rows, pa.int64())
    ids = arrow.data.table.column("id").take(at).to_pylist() if k else []
    sources = arrow.data.table.column("source").take(at).to_pylist() if k else []
    fields = [",".join(index.benchmarks[int(b)].fields) for b in bench.tolist()]
    spans = [" ".join(t.split())[:_SPAN_CHARS] for t in texts]
    table = pa.table({"row": rows, "instance": instances, "score": scores, "best": best,
                      "side": ["paraphrase"] * k, "field": fields,
                      "span": [s if b else None for s, b in zip(spans, best, strict=True)],
                      "id": [i if b else None for i, b in zip(ids, best, strict=True)],
                      "source": sources}, schema=SCAN_SCHEMA)
    seen = pc.unique(arrow.data.table.column("source").combine_chunks())
    return pa.concat_tables([table, _sources_seen(seen, "paraphrase")]), details


SCAN_SCHEMA = pa.schema([("row", pa.int64()), ("instance", pa.int64()), ("score", pa.float64()),
                         ("best", pa.bool_()), ("side", pa.string()), ("field", pa.string()),
                         ("span", pa.string()), ("id", pa.string()), ("source", pa.string())])


def scan_block(table: pa.Table, kind: str, config: DecontamConfig, index: BenchmarkIndex,
               rows: np.ndarray) -> pa.Table:
    """Every match of one block of rows (``rows``: their numbers in the whole dataset) against the
    index, both sides, ``SCAN_SCHEMA``. Per row, side and benchmark the best match (highest
    score, then lowest instance number) is marked ``best`` and carries the field, span and the
    row's id. Each side also gives one row per source of the block with ``row = -1`` (the sources
    scanned, so the matrix lists sources nothing was found in)."""
    parts = []
    table = table.combine_chunks()  # once for both sides' text views
    sources = table.column("source")
    for side, view in scanned_sides(kind, config, index).items():
        if view is None:
            continue
        texts = view_texts(table, kind, view)
        tokens, token_offsets = text_token_hashes(texts, index.normalise)
        found = scan(tokens, token_offsets, index.sides[side], config.threshold)
        parts.append(_block_matches(found, side, texts, table, index, rows))
        seen = pc.unique(sources.combine_chunks() if isinstance(sources, pa.ChunkedArray)
                         else sources)
        parts.append(_sources_seen(seen, side))
    return pa.concat_tables(parts) if parts else SCAN_SCHEMA.empty_table()


def _sources_seen(sources: pa.Array, side: str) -> pa.Table:
    k = len(sources)
    return pa.table({"row": np.full(k, -1, np.int64), "instance": np.full(k, -1, np.int64),
                     "score": np.zeros(k), "best": np.zeros(k, bool), "side": [side] * k,
                     "field": pa.nulls(k, pa.string()), "span": pa.nulls(k, pa.string()),
                     "id": pa.nulls(k, pa.string()), "source": sources.cast(pa.string())},
                    schema=SCAN_SCHEMA)


def _block_matches(found: Any, side: str, texts: pa.Array, table: pa.Table,
                   index: BenchmarkIndex, rows: np.ndarray) -> pa.Table:
    bench = index.instance_benchmark[found.instance]
    order = np.lexsort((found.instance, -found.score, bench, found.row))
    first = np.ones(len(order), dtype=bool)
    first[1:] = ((found.row[order][1:] != found.row[order][:-1])
                 | (bench[order][1:] != bench[order][:-1]))
    best = np.zeros(len(order), dtype=bool)
    best[order[first]] = True
    picked = np.flatnonzero(best)
    n = len(order)
    spans: list[str | None] = [None] * n
    ids: list[str | None] = [None] * n
    fields: list[str | None] = [None] * n
    at = pa.array(found.row[picked])
    # only the matched rows' normalised text is written out, for their spans
    data, offsets = normalise_texts(texts.take(at), index.normalise)
    for j, (k, row_id) in enumerate(zip(picked.tolist(), table.column("id").take(at).to_pylist(),
                                        strict=True)):
        spans[k] = _span(data, offsets, j, int(found.start[k]), int(found.end[k]))
        ids[k] = row_id
        fields[k] = index.field_name(side, int(found.instance[k]), int(found.segment[k]))
    sources = table.column("source").take(pa.array(found.row)).to_pylist()
    return pa.table({"row": np.asarray(rows, np.int64)[found.row], "instance": found.instance,
                     "score": found.score, "best": best, "side": [side] * n, "field": fields,
                     "span": spans, "id": ids, "source": sources},
                    schema=SCAN_SCHEMA)


def _detail(index: BenchmarkIndex, match: dict[str, Any]) -> str:
    name, instance_id = index.describe(match["instance"])
    return (f"{CONTAMINATED}:{name}:{instance_id}:{match['score']:.3f} side={match['side']} "
            f"field={match['field']} span=\"{match['span']}\"")


def verdicts_of_scan(found: pa.Table, index: BenchmarkIndex, config: DecontamConfig, kind: str
                     ) -> tuple[np.ndarray, list[str], list[str], dict[str, Any],
                                ContaminationMatrix]:
    """``(removed rows ascending, their reasons, their details, report, contamination matrix)``
    from the matches of every block (``scan_block`` tables and the paraphrase pass's,
    concatenated in any order)."""
    seen = found.filter(pc.equal(found.column("row"), -1))
    found = found.filter(pc.not_equal(found.column("row"), -1))
    best = sorted(found.filter(found.column("best")).to_pylist(),
                  key=lambda m: (m["row"], -m["score"], SIDE_ORDER[m["side"]], m["instance"]))
    removed: dict[int, list[dict[str, Any]]] = {}
    for match in best:
        removed.setdefault(match["row"], []).append(match)
    rows = np.array(sorted(removed), dtype=np.int64)
    details = ["; ".join(_detail(index, m) for m in removed[row]) for row in rows.tolist()]
    stats = _report(found, [removed[row][0] for row in rows.tolist()], index, config, kind)
    return rows, [CONTAMINATED] * len(rows), details, stats, _matrix(found, seen, best, index)


def _report(found: pa.Table, tops: list[dict[str, Any]], index: BenchmarkIndex,
            config: DecontamConfig, kind: str) -> dict[str, Any]:
    """Per benchmark (and per side) figures; each removed row is counted once, for the benchmark
    of its best match (``tops``)."""
    per_source: dict[str, dict[str, int]] = defaultdict(dict)
    examples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for match in tops:
        name, instance_id = index.describe(match["instance"])
        source = str(match["source"])
        per_source[name][source] = per_source[name].get(source, 0) + 1
        if len(examples[name]) < config.examples:
            examples[name].append({"row_id": match["id"], "instance_id": instance_id,
                                   "side": match["side"], "field": match["field"],
                                   "score": round(match["score"], 4), "span": match["span"]})
    all_instances = found.column("instance").to_numpy()
    all_rows = found.column("row").to_numpy()
    all_sides = np.array(found.column("side").to_pylist(), dtype=object)
    sides = scanned_sides(kind, config, index)
    if config.paraphrase is not None:
        sides["paraphrase"] = "prompt"
    benchmarks: dict[str, Any] = {}
    for b, bench in enumerate(index.benchmarks):
        lo, hi = int(index.first_instance[b]), int(index.first_instance[b + 1])
        mine = (all_instances >= lo) & (all_instances < hi)
        instances_hit = len(np.unique(all_instances[mine]))
        per_side = {}
        for side, view in sides.items():
            fields = list(bench.side(side)[0]) if side != "paraphrase" else list(bench.fields)
            here = mine & (all_sides == side)
            entry: dict[str, Any] = {"fields": fields, "text_view": view,
                                     "instances_hit": len(np.unique(all_instances[here])),
                                     "rows_matching": len(np.unique(all_rows[here]))}
            if side in index.sides:
                entry["instances_not_indexable"] = int(
                    (index.sides[side].instance_segments[lo:hi] == 0).sum())
            per_side[side] = entry
        benchmarks[bench.name] = {
            "source": bench.source,
            "fields": list(bench.fields),
            "answer_fields": list(bench.answer_fields),
            "instances": hi - lo,
            "instances_skipped": bench.skipped,
            "instances_not_indexable": int((index.index.instance_segments[lo:hi] == 0).sum()),
            "instances_hit": instances_hit,
            "contaminated_fraction": round(instances_hit / (hi - lo), 6),
            "rows_matching": len(np.unique(all_rows[mine])),
            "rows_removed": int(sum(per_source[bench.name].values())),
            "rows_removed_per_source": dict(sorted(per_source[bench.name].items())),
            "sides": per_side,
            "examples": examples[bench.name],
        }
    return {"text_view": config.on, "answer_view": sides["answer"], "ngram": config.ngram,
            "threshold": config.threshold, "markup": list(index.normalise.markup),
            "benchmarks": benchmarks, "rows_removed": len(tops)}


def _matrix(found: pa.Table, seen: pa.Table, best: list[dict[str, Any]],
            index: BenchmarkIndex) -> ContaminationMatrix:
    """Source x benchmark x side: rows flagged (one best match per row, side and benchmark) and
    the instances hit; a zero cell for every source scanned and side the benchmark has."""
    matrix = ContaminationMatrix({b.name: len(b.ids) for b in index.benchmarks})
    for source, side in sorted(set(zip(seen.column("source").to_pylist(),
                                       seen.column("side").to_pylist(), strict=True))):
        for bench in index.benchmarks:
            if side == "paraphrase" or bench.side(side)[0]:
                matrix.add(str(source), bench.name, side, 0, ())
    firsts = index.first_instance
    for match in best:
        b = int(index.instance_benchmark[match["instance"]])
        matrix.add(str(match["source"]), index.benchmarks[b].name, match["side"], 1, ())
    instances = found.column("instance").to_numpy()
    owners = index.instance_benchmark[instances] if len(instances) else np.zeros(0, np.int64)
    for source, side, instance, b in zip(found.column("source").to_pylist(),
                                         found.column("side").to_pylist(), instances.tolist(),
                                         owners.tolist(), strict=True):
        matrix.add(str(source), index.benchmarks[b].name, side, 0, (instance - int(firsts[b]),))
    return matrix


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
    settings = DecontamConfig(benchmarks=benchmarks, **config)
    ds = datasets.Dataset.from_dict(
        {"id": list(ids), "messages": [[{"role": "user", "content": t}] for t in texts],
         "source": ["texts"] * len(texts), "meta": ["{}"] * len(texts)},
        features=FEATURES["sft"])
    verdicts = decontaminate(ds, settings.model_copy(update={"on": "user", "answer_on": None}),
                             kind="sft")
    flagged = [i for i, r in zip(ids, verdicts.reasons, strict=True) if r is not None]
    per_benchmark = {name: {k: v for k, v in stats.items()
                            if k not in ("rows_removed", "rows_removed_per_source")}
                     for name, stats in verdicts.stats["benchmarks"].items()}
    return {"ngram": settings.ngram, "threshold": settings.threshold, "rows_flagged": len(flagged),
            "flagged_ids": flagged[:20], "benchmarks": per_benchmark}
