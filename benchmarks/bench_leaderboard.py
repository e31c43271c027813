"""What ``postmix leaderboard`` costs beyond the ``mix diff`` calls it summarises, and the paired
bootstrap against the obvious Python loop.

    python benchmarks/bench_leaderboard.py                  # 4 versions of 200,000 rows
    python benchmarks/bench_leaderboard.py --rows 20000     # quicker

Setup (not timed): one Parquet source of SFT records, 4 versions of a mix taking 100%, 90%, 80%
and 70% of it, each with one recorded eval of 3 benchmarks of ``--items`` items with per-item
files (so every cell takes the paired bootstrap).

* ``leaderboard``: ``postmix.mix.leaderboard`` over the 4 versions - reading the evals, 3 diffs
  against the baseline, 9 paired bootstraps of 2,000 resamples, the decontamination sets.
* ``diffs only`` (baseline): the same 3 ``postmix.mix.diff`` calls and nothing else; the ratio
  says how much the board adds to the diffs it needs anyway.
* ``paired_bootstrap`` against ``python loop`` (baseline): 2,000 resamples of ``--items`` paired
  differences, NumPy fancy indexing against ``random.choices`` per resample.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from postmix import mix
from postmix.mix.comparison import BOOTSTRAP_SAMPLES, paired_bootstrap
from postmix.schemas.eval import BenchmarkScore, EvalResult, ItemResult, write_result

FRACTIONS = (1.0, 0.9, 0.8, 0.7)
BENCHMARKS = ("gsm8k", "math", "ifeval")


def make_source(path: Path, rows: int) -> None:
    messages = [[{"role": "user", "content": f"question {i} about the data mix"},
                 {"role": "assistant", "content": f"answer {i} " + "word " * (i % 40)}]
                for i in range(rows)]
    table = pa.table({"id": [f"r{i:07d}" for i in range(rows)], "source": ["bench"] * rows,
                      "meta": ["{}"] * rows, "messages": messages})
    pq.write_table(table, path)


def record(folder: Path, home: Path, ref: str, items: int, seed: int) -> None:
    rng = random.Random(seed)
    scores = []
    for bench in BENCHMARKS:
        values = [float(rng.random() < 0.4 + 0.02 * seed) for _ in range(items)]
        with open(folder / f"{bench}.items.jsonl", "w", encoding="utf-8") as handle:
            for i, value in enumerate(values):
                handle.write(ItemResult(id=f"{bench}-{i}", prompt="p", verdict=value == 1.0,
                                        score=value).model_dump_json() + "\n")
        mean = sum(values) / items
        scores.append(BenchmarkScore(benchmark=bench, metric="accuracy", score=mean,
                                     ci_low=mean - 0.03, ci_high=mean + 0.03, items=items,
                                     scored=items, items_file=f"{bench}.items.jsonl"))
    mix.record_eval(write_result(folder, EvalResult(model="m", model_kind="hub", mix=ref,
                                                    scores=scores)), home=home)


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def python_bootstrap(differences: list[float], samples: int, seed: int = 0) -> tuple[float, float]:
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(differences, k=len(differences))) / len(differences)
                   for _ in range(samples))
    return means[int(0.025 * samples)], means[int(0.975 * samples) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=1319, help="items per benchmark (GSM8K's)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-leaderboard-"))
    try:
        home = work / "reg"
        make_source(work / "source.parquet", args.rows)
        refs = []
        for seed, fraction in enumerate(FRACTIONS):
            spec = {"name": "bench", "kind": "sft", "shuffle": False, "sources": [
                {"name": "all", "path": str(work / "source.parquet"), "fraction": fraction}]}
            ref = mix.build(spec, home=home, progress=False).mix.ref
            (work / ref).mkdir()
            record(work / ref, home, ref, args.items, seed)
            refs.append(ref)
        board = best_of(args.repeats, lambda: mix.leaderboard(["bench"], home=home))
        diffs = best_of(args.repeats, lambda: [mix.diff(refs[0], r, home=home, sample=0)
                                                for r in refs[1:]])
        print(f"leaderboard, {len(refs)} versions of {args.rows:,} rows, "
              f"{len(BENCHMARKS)} benchmarks x {args.items:,} items: {board:.3f} s")
        print(f"diffs only (baseline): {diffs:.3f} s; ratio leaderboard / diffs = "
              f"{board / diffs:.2f}")
        a = {str(i): float(i % 3 == 0) for i in range(args.items)}
        b = {str(i): float(i % 2 == 0) for i in range(args.items)}
        ours = best_of(args.repeats, lambda: paired_bootstrap(a, b))
        differences = [b[k] - a[k] for k in a]
        loop = best_of(1, lambda: python_bootstrap(differences, BOOTSTRAP_SAMPLES))
        print(f"paired_bootstrap, {BOOTSTRAP_SAMPLES:,} resamples of {args.items:,} items: "
              f"{ours * 1000:.1f} ms; python loop (baseline) {loop * 1000:.1f} ms; "
              f"speed-up {loop / ours:.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
