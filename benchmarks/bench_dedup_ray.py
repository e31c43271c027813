"""Dedup (and filter) on the Ray engine next to the local engine, same corpus, same run.

    python benchmarks/bench_dedup.py --engine ray              # the same, from the dedup benchmark
    python benchmarks/bench_dedup_ray.py                       # local Ray on this machine
    python benchmarks/bench_dedup_ray.py --docs 20000,200000 --no-verify
    RAY_ADDRESS=head:6379 python benchmarks/bench_dedup_ray.py --docs 2000000   # a cluster

Baseline: ``postmix.curate.dedup.dedup`` (one process, numba on every core). Each engine runs
once to warm up (numba compiles, Ray starts its workers) and is then timed; the Ray verdicts are
checked equal to the local ones on every size. On one machine Ray cannot win: the same kernels run
plus Arrow serialisation, the object store and one shuffle per step; the ratio shows that
overhead, and the point of the engine is the cluster case, where the corpus does not fit one node.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import datasets
import numpy as np


def synthetic_sft(docs: int, words: int = 120, seed: int = 0, planted: float = 0.2) -> datasets.Dataset:
    """Zipf words from a 30k vocabulary; a share of rows are edited copies of earlier ones."""
    from postmix.schemas import FEATURES

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = np.array(["".join(rng.choice(letters, rng.integers(2, 10))) for _ in range(30_000)])
    ids = (rng.zipf(1.2, size=(docs, words)) - 1) % len(vocab)
    targets = rng.choice(np.arange(1, docs), size=int(docs * planted), replace=False)
    for t in targets:
        ids[t] = ids[rng.integers(0, t)]
        edits = int(rng.uniform(0, 0.1) * words)
        ids[t, rng.choice(words, size=edits, replace=False)] = rng.integers(0, len(vocab), size=edits)
    texts = [" ".join(vocab[row]) for row in ids]
    return datasets.Dataset.from_dict({
        "id": [f"d{i}" for i in range(docs)],
        "messages": [[{"role": "user", "content": t}, {"role": "assistant", "content": "ok"}] for t in texts],
        "source": ["synthetic"] * docs, "meta": ["{}"] * docs,
    }, features=FEATURES["sft"])


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def compare(docs_list: list[int], *, verify: bool = True, partitions: int | None = None,
            skip_filter: bool = False) -> None:
    """Time each step on both engines for each corpus size and print one table."""
    from postmix.curate.dedup import DedupConfig, dedup
    from postmix.curate.filters import FilterConfig, apply_filters
    from postmix.scale.ray_dedup import dedup_ray
    from postmix.scale.ray_filter import filter_ray
    from postmix.scale.ray_session import RayConfig, cluster_cpus, connect

    connect(RayConfig())
    ray_config = RayConfig(partitions=partitions)
    dedup_config = DedupConfig(verify=verify)
    filter_config = FilterConfig()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs here, "
          f"{cluster_cpus()} CPUs in Ray; dedup{'' if verify else ' --no-verify'} threshold 0.8, 128 perms")
    warm = synthetic_sft(2000, seed=99)
    dedup(warm, dedup_config)
    dedup_ray(warm, dedup_config, ray_config=ray_config)
    apply_filters(warm, filter_config)
    filter_ray(warm, filter_config, ray_config=ray_config)
    print(f"{'step':8s} {'docs':>9s} {'local s':>9s} {'ray s':>9s} {'local docs/s':>13s} {'ray docs/s':>11s} "
          f"{'ray/local':>9s}  equal  removed")
    for docs in docs_list:
        ds = synthetic_sft(docs)
        steps = [("dedup", lambda ds=ds: dedup(ds, dedup_config), lambda ds=ds: dedup_ray(ds, dedup_config, ray_config=ray_config))]
        if not skip_filter:
            steps.append(("filter", lambda ds=ds: apply_filters(ds, filter_config),
                          lambda ds=ds: filter_ray(ds, filter_config, ray_config=ray_config)))
        for name, run_local, run_ray in steps:
            local, local_s = timed(run_local)
            distributed, ray_s = timed(run_ray)
            equal = list(local.reasons) == list(distributed.reasons) and list(local.details) == list(distributed.details)
            print(f"{name:8s} {docs:9d} {local_s:9.2f} {ray_s:9.2f} {docs / local_s:13,.0f} {docs / ray_s:11,.0f} "
                  f"{local_s / ray_s:9.2f}  {equal!s:5s}  {sum(local.counts().values())}")


def compare_files(docs: int, *, row_group_rows: int = 20_000) -> None:
    """File to file (load, decide, write output + rejects + report): the local engine, Ray with the
    workers reading the input's row groups, and Ray with the driver cutting blocks."""
    import tempfile
    from pathlib import Path

    import pyarrow.parquet as pq

    from postmix.curate.dedup import DedupConfig, dedup_file
    from postmix.curate.steps import get_step
    from postmix.io.dataset import dataset_table
    from postmix.scale.executor import RayExecutor
    from postmix.scale.ray_session import RayConfig, connect

    connect(RayConfig())

    def dedup_file_ray(source, output, config):
        return RayExecutor().run_file(get_step("dedup"), source, output, config)

    table = dataset_table(synthetic_sft(docs))
    config = DedupConfig()
    with tempfile.TemporaryDirectory() as tmp:
        grouped, single = Path(tmp) / "grouped.parquet", Path(tmp) / "single.parquet"
        pq.write_table(table, grouped, row_group_size=row_group_rows)
        pq.write_table(table, single, row_group_size=docs)
        dedup_file_ray(grouped, Path(tmp) / "warm.parquet", config)  # start Ray's workers
        local, local_s = timed(lambda: dedup_file(grouped, Path(tmp) / "local.parquet", config))
        print(f"dedup file to file, {docs} docs; local engine {local_s:.2f} s")
        for name, path in (("workers read", grouped), ("driver blocks", single)):
            result, seconds = timed(lambda path=path: dedup_file_ray(path, Path(tmp) / "ray.parquet", config))
            equal = pq.read_table(result.output).equals(pq.read_table(local.output))
            print(f"  ray, {name:13s} {seconds:6.2f} s  ray/local {local_s / seconds:.2f}  equal {equal}  "
                  f"input: {result.report.details['engine']['input']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", default="20000,100000", help="comma list of corpus sizes")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="dedup without exact-Jaccard verification (MinHash clusters)")
    parser.add_argument("--partitions", type=int, default=None, help="Ray shuffle partitions (default: CPUs)")
    parser.add_argument("--skip-filter", action="store_true", help="time dedup only")
    parser.add_argument("--files", type=int, default=0, help="also time file-to-file dedup of this many docs, "
                        "with the workers reading row groups and with driver blocks")
    args = parser.parse_args()
    if args.files:
        compare_files(args.files)
    compare([int(d) for d in args.docs.split(",")], verify=args.verify, partitions=args.partitions,
            skip_filter=args.skip_filter)


if __name__ == "__main__":
    main()
