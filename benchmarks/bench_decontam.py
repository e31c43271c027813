"""Decontamination speed and recall: postmix's n-gram index scan against a straightforward
per-row Python implementation of the same score, measured in one run on the same rows.

    python benchmarks/bench_decontam.py                      # 1,000,000 rows, GSM8K test + HumanEval
    python benchmarks/bench_decontam.py --rows 100000 --baseline-rows 5000 --e2e

corpus    synthetic SFT rows (user turn + short assistant turn): half are 1-2 real GSM8K *train*
          questions (so many 8-grams are shared with the test set, as in real math data), half are
          Zipf-drawn words from the same vocabulary; ``--planted`` of them copy a benchmark instance
          (GSM8K question or HumanEval prompt): half whole, inside other text, half as a contiguous
          60-90% part. Every planted row should be flagged at threshold 0.5.
postmix   ``decontaminate(ds, config)`` on the in-memory dataset: index build, text view,
          normalisation, scan, report (what ``run_stage`` calls between load and write).
baseline  per row: ``normalise_text``, ``str.split``, a Python dict from n-gram tuple to
          (instance, position) and a set of covered positions per instance — the algorithm of
          open-instruct's search.py without the Elasticsearch round trips, on a subsample; its
          verdicts are compared with postmix's on the same rows.
e2e       ``decontaminate_file`` on a Parquet file of the rows (load + scan + write output,
          rejects, report).
filters   (``--filters N``) ``apply_filters`` on N rows of GSM8K train question/answer pairs
          (1% with a planted refusal, 0.5% with mojibake): the four regex rules (refusal,
          self_identification, mojibake, control_chars; Arrow compute) against the same patterns
          searched per turn with Python ``re``, and the default rule set.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa

from postmix.curate.decontam import (
    DecontamConfig,
    build_benchmark_index,
    decontaminate,
    decontaminate_file,
)
from postmix.curate.normalise import normalise_text
from postmix.schemas import FEATURES

SHARED = Path("/work/shared/data/benchmarks")


def _read(path: Path, field: str) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line)[field] for line in handle if line.strip()]


def synthetic_rows(n: int, bench_dir: Path, planted: float, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """User texts, and the indices of rows planted with a benchmark instance."""
    rng = np.random.default_rng(seed)
    train = _read(bench_dir / "gsm8k_train.jsonl", "question")
    instances = _read(bench_dir / "gsm8k_test.jsonl", "question") + _read(bench_dir / "humaneval.jsonl", "prompt")
    vocab = np.array(sorted({w for q in train for w in q.split()}))
    texts: list[str] = [""] * n
    half = n // 2
    picks = rng.integers(0, len(train), size=(half, 2))
    two = rng.random(half) < 0.3
    for i in range(half):
        a, b = picks[i]
        texts[i] = train[a] + (" " + train[b] if two[i] else "")
    lengths = rng.integers(20, 120, size=n - half)
    words = vocab[(rng.zipf(1.3, size=int(lengths.sum())) - 1) % len(vocab)]
    ends = np.cumsum(lengths)
    for j, (end, length) in enumerate(zip(ends, lengths, strict=True)):
        texts[half + j] = " ".join(words[end - length : end])
    planted_rows = rng.choice(n, size=int(n * planted), replace=False)
    for k, row in enumerate(planted_rows):
        source = instances[rng.integers(0, len(instances))]
        if k % 2 == 0:
            texts[row] = f"Here is a problem for you. {source} Please answer carefully."
        else:
            tokens = source.split()
            keep = max(8, int(len(tokens) * rng.uniform(0.6, 0.9)))
            begin = rng.integers(0, len(tokens) - keep + 1)
            texts[row] = "Consider: " + " ".join(tokens[begin : begin + keep])
    return texts, np.sort(planted_rows)


def sft_dataset(texts: list[str]) -> datasets.Dataset:
    """SFT rows built column-wise (no Python dict per row)."""
    n = len(texts)
    roles = pa.array(np.tile(np.array(["user", "assistant"], dtype=object), n), pa.string())
    contents = np.empty(2 * n, dtype=object)
    contents[0::2] = texts
    contents[1::2] = "Sure, here is my answer."
    structs = pa.StructArray.from_arrays([roles, pa.array(contents, pa.string())], names=["role", "content"])
    messages = pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)), structs)
    table = pa.table({
        "id": pa.array([f"row-{i}" for i in range(n)]),
        "messages": messages,
        "source": pa.array(np.where(np.arange(n) % 2 == 0, "math", "chat").astype(object), pa.string()),
        "meta": pa.array(["{}"] * n),
    })
    return datasets.Dataset(table.cast(FEATURES["sft"].arrow_schema))


class PythonBaseline:
    """open-instruct's ngram_match scoring with a Python dict in place of Elasticsearch."""

    def __init__(self, instances: list[str], n: int, threshold: float):
        self.n, self.threshold = n, threshold
        self.lengths = []
        self.grams: dict[tuple[str, ...], list[tuple[int, int]]] = defaultdict(list)
        self.short: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for i, text in enumerate(instances):
            tokens = normalise_text(text).split()
            self.lengths.append(len(tokens))
            if len(tokens) < n:
                if len(tokens) >= 3:
                    self.short[tuple(tokens)].append(i)
                continue
            for p in range(len(tokens) - n + 1):
                self.grams[tuple(tokens[p : p + n])].append((i, p))
        self.short_lengths = sorted({len(k) for k in self.short})

    def flagged(self, text: str) -> bool:
        tokens = normalise_text(text).split()
        covered: dict[int, set[int]] = defaultdict(set)
        for p in range(len(tokens) - self.n + 1):
            for instance, position in self.grams.get(tuple(tokens[p : p + self.n]), ()):
                covered[instance].update(range(position, position + self.n))
        if any(len(c) / self.lengths[i] >= self.threshold for i, c in covered.items()):
            return True
        return any(tuple(tokens[p : p + k]) in self.short
                   for k in self.short_lengths for p in range(len(tokens) - k + 1))


def filter_rows(n: int, bench_dir: Path, seed: int = 0) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    questions = _read(bench_dir / "gsm8k_train.jsonl", "question")
    answers = _read(bench_dir / "gsm8k_train.jsonl", "answer")
    pick = rng.integers(0, len(questions), size=n)
    user = [questions[i] for i in pick]
    assistant = [answers[i] for i in pick]
    for row in rng.choice(n, size=n // 100, replace=False):
        assistant[row] = "As an AI language model, I cannot do that. " + assistant[row]
    for row in rng.choice(n, size=n // 200, replace=False):
        assistant[row] = assistant[row].replace("a", "\u00c3\u00a9", 1)
    ds = sft_dataset(user)
    contents = pa.array(np.stack([np.array(user, dtype=object), np.array(assistant, dtype=object)], axis=1).ravel(), pa.string())
    roles = pa.array(np.tile(np.array(["user", "assistant"], dtype=object), n), pa.string())
    structs = pa.StructArray.from_arrays([roles, contents], names=["role", "content"])
    messages = pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)), structs)
    table = ds.data.table.set_column(1, "messages", messages)
    return datasets.Dataset(table.cast(FEATURES["sft"].arrow_schema))


def bench_filters(n: int, bench_dir: Path) -> None:
    import re

    from postmix.curate.filters import (
        _MOJIBAKE_PY,
        CONTROL_PATTERN,
        DEFAULT_RULES,
        FilterConfig,
        apply_filters,
    )
    from postmix.curate.refusals import pattern

    ds = filter_rows(n, bench_dir)
    regex_rules = ["refusal", "self_identification", "mojibake", "control_chars"]
    config = FilterConfig(rules=regex_rules)
    apply_filters(ds.select(range(1000)), config)  # warm up compiled kernels
    started = time.perf_counter()
    verdicts = apply_filters(ds, config)
    seconds = time.perf_counter() - started
    patterns = [(re.compile(pattern("refusal", config.refusal_phrases), re.I), {"assistant"}),
                (re.compile(pattern("self_identification", config.self_identification_phrases),
                            re.I), {"assistant"}),
                (re.compile(_MOJIBAKE_PY), None), (re.compile(CONTROL_PATTERN), None)]
    conversations = ds.with_format("arrow")["messages"].to_pylist()  # Python objects, not timed
    started = time.perf_counter()
    base = []
    for row in conversations:
        base.append(any(p.search(m["content"]) for p, roles in patterns for m in row
                        if roles is None or m["role"] in roles))
    base_seconds = time.perf_counter() - started
    agree = np.mean(np.array(base) == np.array([r is not None for r in verdicts.reasons]))
    print(f"filters   {n:,} rows; regex rules: postmix {seconds:.2f} s ({n / seconds:,.0f} rows/s), "
          f"per-turn Python re {base_seconds:.2f} s ({n / base_seconds:,.0f} rows/s), "
          f"ratio {base_seconds / seconds:.1f}x, agreement {agree:.4%}; rejected {verdicts.counts()}")
    started = time.perf_counter()
    verdicts = apply_filters(ds, FilterConfig(rules=list(DEFAULT_RULES)))
    seconds = time.perf_counter() - started
    print(f"          default rules: {seconds:.2f} s ({n / seconds:,.0f} rows/s); rejected {verdicts.counts()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=20_000)
    parser.add_argument("--planted", type=float, default=0.001, help="Share of rows copying a benchmark instance.")
    parser.add_argument("--benchmarks", type=Path, default=SHARED, help="Folder with gsm8k_test/train.jsonl, humaneval.jsonl.")
    parser.add_argument("--e2e", action="store_true", help="Also time decontaminate_file on a Parquet copy.")
    parser.add_argument("--filters", type=int, default=0, metavar="N", help="Only time apply_filters on N rows.")
    args = parser.parse_args()
    if args.filters:
        bench_filters(args.filters, args.benchmarks)
        return

    config = DecontamConfig(benchmarks=[f"gsm8k={args.benchmarks / 'gsm8k_test.jsonl'}:question",
                                        f"humaneval={args.benchmarks / 'humaneval.jsonl'}:prompt"])
    started = time.perf_counter()
    texts, planted = synthetic_rows(args.rows, args.benchmarks, args.planted)
    ds = sft_dataset(texts)
    print(f"corpus: {len(ds):,} rows, {len(planted):,} planted, built in {time.perf_counter() - started:.1f} s; "
          f"cores: {len(os.sched_getaffinity(0))}")

    # warm the compiled kernels (numba caches them on disk; the first run of a fresh install compiles)
    decontaminate(sft_dataset(texts[:1000]), config)

    started = time.perf_counter()
    verdicts = decontaminate(ds, config)
    seconds = time.perf_counter() - started
    flagged = np.array([r is not None for r in verdicts.reasons])
    recall = flagged[planted].mean() if len(planted) else float("nan")
    others = np.ones(len(ds), dtype=bool)
    others[planted] = False
    print(f"postmix   {seconds:7.2f} s  {len(ds) / seconds:>12,.0f} rows/s  (index {verdicts.stats['timings']['index']:.2f} s)")
    print(f"          planted recall {recall:.4f} ({flagged[planted].sum()}/{len(planted)}); "
          f"other rows flagged: {int(flagged[others].sum())} (GSM8K train/test overlap)")
    for name, b in verdicts.stats["benchmarks"].items():
        print(f"          {name}: {b['instances_hit']}/{b['instances']} instances hit "
              f"({b['contaminated_fraction']:.2%}), {b['rows_removed']} rows removed")

    sub = np.random.default_rng(1).choice(len(ds), size=min(args.baseline_rows, len(ds)), replace=False)
    sub = np.union1d(sub, planted[: max(1, len(planted) // 10)])
    index = build_benchmark_index(config)
    instances = [t[0] for b in index.benchmarks for t in b.texts]
    started = time.perf_counter()
    baseline = PythonBaseline(instances, config.ngram, config.threshold)
    base_flags = np.array([baseline.flagged(texts[i]) for i in sub])
    base_seconds = time.perf_counter() - started
    agree = (base_flags == flagged[sub]).mean()
    base_rate = len(sub) / base_seconds
    print(f"baseline  {base_seconds:7.2f} s  {base_rate:>12,.0f} rows/s  (per-row Python dict/set, {len(sub):,} rows)")
    print(f"          verdict agreement with postmix on those rows: {agree:.4%}")
    print(f"ratio     postmix / baseline throughput: {len(ds) / seconds / base_rate:.1f}x")

    if args.e2e:
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "train.parquet"
            ds.to_parquet(str(source))
            started = time.perf_counter()
            result = decontaminate_file(source, Path(tmp) / "clean.parquet", config)
            e2e = time.perf_counter() - started
            print(f"e2e       {e2e:7.2f} s  {len(ds) / e2e:>12,.0f} rows/s  decontaminate_file parquet -> parquet "
                  f"(timings {result.report.timings})")


if __name__ == "__main__":
    main()
