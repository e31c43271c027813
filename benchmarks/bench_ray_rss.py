"""Driver peak RSS of ``curate dedup`` on the Ray engine, at two corpus sizes, against the local
engine as baseline in the same run.

    python benchmarks/bench_ray_rss.py                          # 200k and 2M rows
    python benchmarks/bench_ray_rss.py --rows 200000,1000000 --step filter

The corpora (synthetic but chat-shaped: several turns, Zipf words, sources of different styles,
10% of rows exact or lightly edited copies of earlier ones) are written to Parquet first, in this
process, with 100k-row groups as postmix writes them. Each measured run is a fresh child process
(``--child``) that runs the step as ``postmix curate <step> IN OUT --engine E`` does (the
executor's ``run_file``) and reports its own peak RSS (``VmHWM``); this process also samples
the child's RSS with psutil every 50 ms. Only the driver is measured: Ray's workers and object
store are other processes, and the point is that the driver no longer holds the rows. The local
engine holds the whole input and its features in one process: the baseline it is compared with.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GROUP_ROWS = 100_000


def write_corpus(path: Path, rows: int, seed: int = 0) -> None:
    """Chat rows to Parquet, one row group per 100k rows, without a Python dict per row."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from postmix.schemas import FEATURES

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = pa.array(["".join(rng.choice(letters, rng.integers(2, 10))) for _ in range(30_000)])
    schema = FEATURES["sft"].arrow_schema
    sources = pa.array(["sharegpt", "oasst", "synthetic", "flan"])
    zipf = np.cumsum(1.0 / np.arange(1, len(vocab) + 1) ** 1.1)  # word frequencies: Zipf's law
    zipf = np.searchsorted(zipf / zipf[-1], (np.arange(1 << 16) + 0.5) / (1 << 16))  # draw -> word
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, GROUP_ROWS):
            n = min(GROUP_ROWS, rows - start)
            turns = rng.integers(1, 3, size=n)  # user/assistant exchanges per row
            firsts = np.r_[0, np.cumsum(2 * turns)]  # each row's first turn
            lengths = rng.integers(10, 60, size=int(firsts[-1]))  # words per turn
            targets = np.sort(rng.choice(np.arange(1, n), size=n // 10, replace=False))
            originals = firsts[(rng.random(len(targets)) * targets).astype(np.int64)]
            for target, original in zip(firsts[targets].tolist(), originals.tolist(), strict=True):
                lengths[target] = lengths[
                    original
                ]  # in row order: an original may be a copy itself
            ends = np.cumsum(lengths)
            begins = ends - lengths
            words = zipf[rng.integers(0, 1 << 16, size=int(ends[-1]))]
            for target, original, edited in zip(
                firsts[targets].tolist(),
                originals.tolist(),
                (rng.random(len(targets)) < 0.5).tolist(),
                strict=True,
            ):
                # an earlier row's first user turn, as it is or with one word changed
                copy = words[begins[original] : ends[original]].copy()
                if edited:
                    copy[rng.integers(0, len(copy))] = rng.integers(0, len(vocab))
                words[begins[target] : ends[target]] = copy
            texts = pc.binary_join(
                pa.ListArray.from_arrays(
                    pa.array(np.r_[0, ends], pa.int32()), vocab.take(pa.array(words))
                ),
                " ",
            )
            roles = pa.array(np.tile(np.array(["user", "assistant"]), len(texts) // 2))
            turn = pa.StructArray.from_arrays([roles, texts], names=["role", "content"])
            messages = pa.ListArray.from_arrays(pa.array(firsts, pa.int32()), turn)
            table = (
                pa.table(
                    {
                        "id": pa.array([f"c{start + i}" for i in range(n)]),
                        "messages": messages,
                        "source": sources.take(pa.array(rng.integers(0, len(sources), size=n))),
                        "meta": pa.array(["{}"] * n),
                    }
                )
                .select(list(FEATURES["sft"]))
                .cast(schema)
            )
            writer.write_table(table, row_group_size=GROUP_ROWS)


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM: unlike ``ru_maxrss`` it starts afresh at exec, so a child
    does not inherit the benchmark's own peak); ``ru_maxrss`` where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(step: str, engine: str, source: str, output: str) -> None:
    """One measured run: the step as the CLI runs it, then this process's peak RSS as JSON."""
    from postmix.curate.executor import make_executor
    from postmix.curate.steps import get_step

    spec = get_step(step)
    started = time.perf_counter()
    result = make_executor(engine).run_file(spec, source, output, spec.parse({}))
    seconds = time.perf_counter() - started
    report = result.report
    print(
        json.dumps(
            {
                "peak_mib": peak_rss_mib(),
                "seconds": round(seconds, 1),
                "rows_in": report.rows_in,
                "rows_out": report.rows_out,
                "rejected": report.rejected,
                "input": report.details.get("engine", {}).get("input", "driver (local)"),
            }
        )
    )


def measure(step: str, engine: str, source: Path, output: Path) -> dict:
    import psutil

    command = [sys.executable, __file__, "--child", step, engine, str(source), str(output)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    handle, sampled = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            sampled = max(sampled, handle.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{engine} run failed ({proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    result["sampled_mib"] = sampled / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", default="200000,2000000", help="two corpus sizes, comma-separated"
    )
    parser.add_argument("--step", default="dedup", choices=["dedup", "filter"])
    parser.add_argument(
        "--workdir", default=None, help="where the corpora go (default: a temp folder)"
    )
    parser.add_argument(
        "--child", nargs=4, metavar=("STEP", "ENGINE", "IN", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    sizes = [int(s) for s in args.rows.split(",")]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="postmix-rss-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}; "
        f"step: {args.step} (default config)"
    )
    results: dict[tuple[int, str], dict] = {}
    for rows in sizes:
        source = work / f"chat-{rows}.parquet"
        if not source.exists():
            started = time.perf_counter()
            write_corpus(source, rows)
            print(
                f"wrote {rows:,} rows ({source.stat().st_size / 2**20:.0f} MiB) in "
                f"{time.perf_counter() - started:.0f} s"
            )
        for engine in ("local", "ray"):
            output = work / f"out-{rows}-{engine}.parquet"
            results[rows, engine] = got = measure(args.step, engine, source, output)
            print(
                f"{engine:>5} {rows:>9,} rows: driver peak {got['peak_mib']:7.0f} MiB "
                f"(sampled {got['sampled_mib']:.0f}), {got['seconds']} s, "
                f"{got['rows_out']:,} kept, "
                f"input: {got['input']}",
                flush=True,
            )
            shutil.rmtree(output, ignore_errors=True) if output.is_dir() else output.unlink(
                missing_ok=True
            )
        kept = {engine: results[rows, engine]["rows_out"] for engine in ("local", "ray")}
        assert kept["local"] == kept["ray"], kept
    small, large = sizes
    print(
        f"\n| engine | {small:,} rows MiB | {large:,} rows MiB | difference MiB "
        "| ratio large/small |"
    )
    print("|---|---|---|---|---|")
    for engine in ("local", "ray"):
        a, b = results[small, engine]["peak_mib"], results[large, engine]["peak_mib"]
        print(f"| {engine} | {a:.0f} | {b:.0f} | {b - a:+.0f} | {b / a:.2f} |")
    for rows in sizes:
        ratio = results[rows, "ray"]["peak_mib"] / results[rows, "local"]["peak_mib"]
        print(f"ray / local driver peak at {rows:,} rows: {ratio:.2f}")


if __name__ == "__main__":
    main()
