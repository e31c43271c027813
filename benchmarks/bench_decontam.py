"""Decontamination speed and recall: postmix's n-gram index scan against a straightforward
per-row Python implementation of the same score, measured in one run on the same rows.

    python benchmarks/bench_decontam.py                      # 1,000,000 rows, GSM8K test + HumanEval
    python benchmarks/bench_decontam.py --rows 100000 --baseline-rows 5000 --e2e
    python benchmarks/bench_decontam.py --answers 200000         # answer leaks in GSM8K train
    git archive 80f9002 postmix | tar -x -C /tmp/before   # the code before the answer side
    python benchmarks/bench_decontam.py --answers 200000 --before-tree /tmp/before

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
answers   (``--answers N``) N SFT rows built from real GSM8K *train* rows (user = question,
          assistant = answer; half of them under a generic prompt instead), plus every GSM8K *test*
          reference solution planted in an assistant turn under a generic prompt, four ways:
          verbatim, markup stripped (``<<...>>`` removed, ``####`` line dropped or reworded),
          a few words changed (one in 12, at least one), reformatted (lines joined or numbered,
          numbers kept). Recall over the planted rows, genuine (unplanted) rows flagged, and the
          time of today's default (both sides) against the old one (question side, user turns)
          on this code, and (``--before-tree``) against the default of the code before the
          answer side, in a subprocess on the same rows; runs interleaved, the fastest counts.
filters   (``--filters N``) ``apply_filters`` on N rows of GSM8K train question/answer pairs
          (1% with a planted refusal, 0.5% with mojibake): the four regex rules (refusal,
          self_identification, mojibake, control_chars; Arrow compute) against the same patterns
          searched per turn with Python ``re``, and the default rule set.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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


# ---------------------------------------------------------------- answer leaks (--answers)

GENERIC_PROMPTS = (
    "Please solve the following math problem step by step.",
    "Can you walk me through a worked example of a word problem?",
    "Show me how to reason through a multi-step arithmetic question.",
    "Explain your solution carefully.",
    "Here is a practice problem I got wrong; what is the right working?",
    "Give an example of a grade-school math solution.",
)
LEAK_KINDS = ("verbatim", "markup_stripped", "words_changed", "reformatted")
_ANNOTATION = re.compile(r"<<[^<>]*>>")
_WORD = re.compile(r"[A-Za-z]{3,}")


def _body_and_final(answer: str) -> tuple[str, str]:
    body, _, final = answer.rpartition("####")
    return body.rstrip(), final.strip()


def leaked(answer: str, kind: str, rng: np.random.Generator, vocab: np.ndarray) -> str:
    """A GSM8K reference solution as it might reach an SFT response."""
    if kind == "verbatim":
        return answer
    body, final = _body_and_final(answer)
    if kind == "markup_stripped":
        body = _ANNOTATION.sub("", body)
        return body if rng.random() < 0.5 else f"{body}\nThe answer is {final}."
    if kind == "words_changed":  # one word in 12 (at least one) replaced, numbers untouched
        words = list(_WORD.finditer(answer))
        k = max(1, len(words) // 12)
        picks = sorted(rng.choice(len(words), size=min(k, len(words)), replace=False).tolist())
        out, last = [], 0
        for w in (words[i] for i in picks):
            out += [answer[last : w.start()], str(vocab[rng.integers(len(vocab))])]
            last = w.end()
        return "".join(out) + answer[last:]
    lines = [line.strip() for line in body.split("\n") if line.strip()]  # reformatted
    if rng.random() < 0.5:
        return " ".join(lines) + f" So the final answer is {final}."
    return "\n".join(f"Step {i + 1}: {line}" for i, line in enumerate(lines)) + f"\nAnswer: {final}"


def sft_pairs(user: list[str], assistant: list[str], sources: list[str]) -> datasets.Dataset:
    """SFT rows of one user and one assistant turn each, built column-wise."""
    n = len(user)
    contents = np.empty(2 * n, dtype=object)
    contents[0::2], contents[1::2] = user, assistant
    roles = pa.array(np.tile(np.array(["user", "assistant"], dtype=object), n), pa.string())
    structs = pa.StructArray.from_arrays([roles, pa.array(contents, pa.string())], names=["role", "content"])
    messages = pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)), structs)
    table = pa.table({"id": pa.array([f"row-{i}" for i in range(n)]), "messages": messages,
                      "source": pa.array(sources, pa.string()), "meta": pa.array(["{}"] * n)})
    return datasets.Dataset(table.cast(FEATURES["sft"].arrow_schema))


def answer_leak_rows(n: int, bench_dir: Path, seed: int = 0):
    """``(dataset, planted row numbers, their leak kinds, train item of each genuine row)``.

    Genuine rows: every GSM8K train item once under its own question and once under a generic
    prompt, then random draws of both shapes up to ``n``. Planted: every test solution once per
    leak kind, under a generic prompt (half with a lead-in sentence), at random positions."""
    rng = np.random.default_rng(seed)
    questions = _read(bench_dir / "gsm8k_train.jsonl", "question")
    answers = _read(bench_dir / "gsm8k_train.jsonl", "answer")
    tests = _read(bench_dir / "gsm8k_test.jsonl", "answer")
    vocab = np.array(sorted({w for a in answers for w in _WORD.findall(a)}))
    planted_kinds = [kind for kind in LEAK_KINDS for _ in tests]
    n_genuine = max(n - len(planted_kinds), 2 * len(questions))
    items = np.concatenate([np.tile(np.arange(len(questions)), 2),
                            rng.integers(0, len(questions), n_genuine - 2 * len(questions))])
    generic = np.zeros(n_genuine, dtype=bool)
    generic[len(questions) : 2 * len(questions)] = True
    generic[2 * len(questions) :] = rng.random(n_genuine - 2 * len(questions)) < 0.5
    user, assistant, sources = [], [], []
    for item, is_generic in zip(items.tolist(), generic.tolist(), strict=True):
        user.append(GENERIC_PROMPTS[rng.integers(len(GENERIC_PROMPTS))] if is_generic else questions[item])
        assistant.append(answers[item])
        sources.append("generic" if is_generic else "gsm8k_train")
    total = n_genuine + len(planted_kinds)
    planted = np.sort(rng.choice(total, size=len(planted_kinds), replace=False))
    order = np.ones(total, dtype=bool)
    order[planted] = False
    genuine_rows = np.flatnonzero(order)
    rows_user, rows_assistant, rows_source = [None] * total, [None] * total, [None] * total
    for row, u, a, src in zip(genuine_rows.tolist(), user, assistant, sources, strict=True):
        rows_user[row], rows_assistant[row], rows_source[row] = u, a, src
    for row, kind, test in zip(planted.tolist(), planted_kinds, tests * len(LEAK_KINDS), strict=True):
        text = leaked(test, kind, rng, vocab)
        if rng.random() < 0.5:
            text = "Sure! Here is a worked solution.\n\n" + text
        rows_user[row] = GENERIC_PROMPTS[rng.integers(len(GENERIC_PROMPTS))]
        rows_assistant[row], rows_source[row] = text, "leaked"
    train_item = np.full(total, -1)
    train_item[genuine_rows] = items
    return (sft_pairs(rows_user, rows_assistant, rows_source), planted, np.array(planted_kinds),
            train_item)


_BEFORE_RUN = """
import json, sys, time
import datasets
from postmix.curate.decontam import DecontamConfig, decontaminate
ds = datasets.Dataset.from_parquet(sys.argv[1])
config = DecontamConfig(benchmarks=[f"gsm8k={sys.argv[2]}:question"])
decontaminate(ds.select(range(2000)), config)
wall, cpu = time.perf_counter(), time.process_time()
verdicts = decontaminate(ds, config)
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                  "flagged": sum(r is not None for r in verdicts.reasons)}))
"""


def _timed(ds: datasets.Dataset, config: DecontamConfig) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    verdicts = decontaminate(ds, config)
    return time.perf_counter() - wall, time.process_time() - cpu, verdicts


def _before_timed(tree: Path, parquet: Path, test: Path) -> tuple[float, float]:
    """The default of the code before the answer side (``tree``: a source tree of it) on the
    same rows, in a subprocess: warm-up, then one timed run."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", _BEFORE_RUN, str(parquet), str(test)], env=env,
                         check=True, capture_output=True, text=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    return got["wall"], got["cpu"]


def bench_answers(n: int, bench_dir: Path, repeats: int, show: int, before: Path | None) -> None:
    from postmix.curate.benchmarks import BenchmarkSpec

    started = time.perf_counter()
    ds, planted, kinds, train_item = answer_leak_rows(n, bench_dir)
    test = bench_dir / "gsm8k_test.jsonl"
    print(f"answers: {len(ds):,} rows ({len(planted):,} planted leaks of {len(planted) // len(LEAK_KINDS):,} "
          f"GSM8K test solutions x {len(LEAK_KINDS)}), built in {time.perf_counter() - started:.1f} s; "
          f"cores: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f}")
    today = DecontamConfig(benchmarks=[f"gsm8k={test}"])  # both sides, GSM8K markup (built-in)
    old = DecontamConfig(benchmarks=[BenchmarkSpec(name="gsm8k", path=str(test), fields=("question",),
                                                   answer_fields=(), markup=())], answer_on=None)
    decontaminate(ds.select(range(2000)), today)  # warm the compiled kernels
    times: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        parquet = Path(tmp) / "rows.parquet"
        if before is not None:
            ds.to_parquet(str(parquet))
        for _ in range(repeats):  # interleaved, so load on the shared VM hits every config alike
            if before is not None:
                times["before"].append(_before_timed(before, parquet, test))
            wall, cpu, old_v = _timed(ds, old)
            times["old"].append((wall, cpu))
            wall, cpu, new_v = _timed(ds, today)
            times["today"].append((wall, cpu))
    best = {k: (min(w for w, _ in v), min(c for _, c in v)) for k, v in times.items()}
    print(f"old       {best['old'][0]:7.2f} s wall, {best['old'][1]:7.2f} s CPU  (this code, question "
          f"side only, user turns; the fastest of {repeats})")
    print(f"today     {best['today'][0]:7.2f} s wall, {best['today'][1]:7.2f} s CPU  (this code's default: "
          "question + answer side, GSM8K markup)")
    print(f"ratio     today / old: {best['today'][0] / best['old'][0]:.2f}x wall, "
          f"{best['today'][1] / best['old'][1]:.2f}x CPU")
    if before is not None:
        print(f"before    {best['before'][0]:7.2f} s wall, {best['before'][1]:7.2f} s CPU  ({before}: "
              "the default before the answer side: question side, user turns)")
        print(f"ratio     today / before: {best['today'][0] / best['before'][0]:.2f}x wall, "
              f"{best['today'][1] / best['before'][1]:.2f}x CPU")
    flagged = np.array([r is not None for r in new_v.reasons])
    old_flagged = np.array([r is not None for r in old_v.reasons])
    genuine = np.ones(len(ds), dtype=bool)
    genuine[planted] = False
    print(f"recall    {flagged[planted].mean():.4f} ({flagged[planted].sum()}/{len(planted)}); old default "
          f"{old_flagged[planted].mean():.4f}")
    for kind in LEAK_KINDS:
        mine = planted[kinds == kind]
        print(f"          {kind:16s} {flagged[mine].mean():.4f} ({flagged[mine].sum()}/{len(mine)})")
    hit = genuine & flagged
    sides = defaultdict(int)
    for row in np.flatnonzero(hit).tolist():
        sides[new_v.details[row].split(" side=")[1].split(" ")[0]] += 1
    items = np.unique(train_item[hit])
    print(f"genuine   {hit.sum():,} of {genuine.sum():,} flagged ({hit.sum() / genuine.sum():.3%}; by best side "
          f"{dict(sides)}); {len(items)} distinct GSM8K train items; old default flagged "
          f"{(genuine & old_flagged).sum():,}")
    seen = set()
    for row in np.flatnonzero(hit).tolist():
        if train_item[row] in seen or len(seen) >= show:
            continue
        seen.add(train_item[row])
        messages = ds[row]["messages"]
        print(f"  - train item {train_item[row]}: {new_v.details[row][:300]}")
        print(f"    row assistant: {' '.join(messages[1]['content'].split())[:200]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=20_000)
    parser.add_argument("--planted", type=float, default=0.001, help="Share of rows copying a benchmark instance.")
    parser.add_argument("--benchmarks", type=Path, default=SHARED, help="Folder with gsm8k_test/train.jsonl, humaneval.jsonl.")
    parser.add_argument("--e2e", action="store_true", help="Also time decontaminate_file on a Parquet copy.")
    parser.add_argument("--filters", type=int, default=0, metavar="N", help="Only time apply_filters on N rows.")
    parser.add_argument("--answers", type=int, default=0, metavar="N",
                        help="Only the answer-leak benchmark on N rows built from GSM8K train.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs per config (--answers); the fastest counts.")
    parser.add_argument("--show", type=int, default=5, help="Flagged genuine rows printed (--answers).")
    parser.add_argument("--before-tree", type=Path, default=None,
                        help="Source tree of the code before the answer side (git archive 80f9002 postmix | "
                             "tar -x -C DIR), whose default is timed on the same rows (--answers).")
    args = parser.parse_args()
    if args.answers:
        bench_answers(args.answers, args.benchmarks, args.repeats, args.show, args.before_tree)
        return
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
