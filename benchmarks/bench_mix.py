"""Build a 1,000,000-row SFT mix from 5 Parquet sources, against a naive Python-list baseline.

    python benchmarks/bench_mix.py                 # 1M rows (the target: <= 60 s on 2 cores)
    python benchmarks/bench_mix.py --rows 100000   # quicker

Sources (made once under --workdir; not timed): 5 files of postmix SFT records, ~250 chars of
text per row. The spec uses every take rule: count, fraction and epochs (upsampling), seed 0,
shuffle on.

* ``postmix``: ``postmix.mix.build`` — fingerprints (xxh3 of the bytes), Arrow load, keyed-hash
  sampling in NumPy, Arrow take/concat, shuffle, content hash, deterministic Parquet shards,
  provenance, manifest, SQLite publish.
* ``naive`` (baseline): the same sampling + shuffle + write done the obvious way: read each file
  into Python dicts, ``random.Random(seed).sample`` per source, list repetition for epochs,
  ``random.shuffle``, a content hash over ``json.dumps`` of each row, ``pa.Table.from_pylist``
  and one ``pq.write_table``. No fingerprints, no manifest, no registry: it does less work.

Each side runs in its own subprocess so its peak RSS (``resource.getrusage``) is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# (name, rows in the file, take rule); the rules sum to exactly --rows
SOURCES = [
    ("chat", 0.30, {"count": 0.25}),
    ("math", 0.40, {"fraction": 0.5}),
    ("code", 0.10, {"epochs": 2}),
    ("safety", 0.20, {"count": 0.20}),
    ("multilingual", 0.20, {"fraction": 0.75}),
]
WORDS = np.array(["the", "a", "model", "data", "answer", "question", "mix", "seed", "token", "source",
                  "step", "value", "row", "hash", "train", "test", "curate", "filter", "sample",
                  "shuffle", "epoch", "count", "fraction", "version"])


def _rule(rule: dict, total: int) -> dict:
    (name, value), = rule.items()
    return {"count": int(value * total)} if name == "count" else {name: value}


def make_sources(workdir: Path, total: int) -> Path:
    """Write the 5 source files and the spec (skipped when already there for this size)."""
    spec_path = workdir / f"bench_{total}.yaml"
    if spec_path.exists():
        return spec_path
    workdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sources = []
    for name, share, rule in SOURCES:
        n = int(share * total)
        words = WORDS[rng.integers(0, len(WORDS), size=(n, 8))]
        user = [" ".join(w) + f" #{i}" for i, w in enumerate(words.tolist())]
        assistant = [u * 5 for u in user]
        messages = pa.ListArray.from_arrays(
            pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)),
            pa.StructArray.from_arrays(
                [pa.array(["user", "assistant"] * n), pa.array([t for pair in zip(user, assistant, strict=True) for t in pair])],
                names=["role", "content"]),
        )
        table = pa.table({"id": [f"{name}-{i:08d}" for i in range(n)], "messages": messages,
                          "source": [name] * n, "meta": ["{}"] * n})
        pq.write_table(table, workdir / f"{name}_{total}.parquet")
        sources.append({"name": name, "path": f"{name}_{total}.parquet", **_rule(rule, total)})
    import yaml

    spec_path.write_text(yaml.safe_dump({"name": f"bench-{total}", "kind": "sft", "seed": 0, "shuffle": True,
                                         "sources": sources}, sort_keys=False))
    return spec_path


def run_postmix(spec: Path, home: Path) -> dict:
    from postmix.mix import build

    started = time.perf_counter()
    result = build(spec, home=home, progress=False)
    return {"seconds": time.perf_counter() - started, "rows": result.mix.rows, "hash": result.mix.content_hash}


def run_naive(spec: Path, out: Path) -> dict:
    import random

    import xxhash
    import yaml

    started = time.perf_counter()
    data = yaml.safe_load(spec.read_text())
    rng = random.Random(data["seed"])
    rows: list[dict] = []
    for source in data["sources"]:
        records = pq.read_table(spec.parent / source["path"]).to_pylist()
        if "count" in source:
            rows += rng.sample(records, source["count"])
        elif "fraction" in source:
            rows += rng.sample(records, int(source["fraction"] * len(records) + 0.5))
        else:
            whole = int(source["epochs"])
            rows += records * whole + rng.sample(records, int((source["epochs"] - whole) * len(records) + 0.5))
    rng.shuffle(rows)
    hasher = xxhash.xxh3_128()
    for row in rows:
        hasher.update(json.dumps(row, sort_keys=True).encode())
    pq.write_table(pa.Table.from_pylist(rows), out)
    return {"seconds": time.perf_counter() - started, "rows": len(rows), "hash": hasher.hexdigest()[:32]}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def child(args: argparse.Namespace) -> None:
    spec = Path(args.spec)
    scratch = Path(args.workdir) / f"out-{args.child}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    result = run_postmix(spec, scratch / "home") if args.child == "postmix" else run_naive(spec, scratch / "naive.parquet")
    result["peak_rss_mib"] = round(_peak_rss_mib(), 1)
    print(json.dumps(result))
    shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", default="/tmp/postmix-bench-mix")
    parser.add_argument("--child", choices=["postmix", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    started = time.perf_counter()
    spec = make_sources(Path(args.workdir), args.rows)
    print(f"sources ready in {time.perf_counter() - started:.1f}s: {spec} ({os.cpu_count()} cores)")
    results = {}
    for side in ("postmix", "naive"):
        proc = subprocess.run([sys.executable, __file__, "--child", side, "--spec", str(spec),
                               "--workdir", args.workdir], capture_output=True, text=True, check=True)
        results[side] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = results[side]
        print(f"{side:8s} {r['rows']:>9,} rows  {r['seconds']:7.2f} s  peak RSS {r['peak_rss_mib']:8.1f} MiB")
    ratio = results["naive"]["seconds"] / results["postmix"]["seconds"]
    print(f"speed-up postmix vs naive baseline: {ratio:.2f}x "
          f"(peak RSS ratio naive/postmix {results['naive']['peak_rss_mib'] / results['postmix']['peak_rss_mib']:.2f}x)")
    assert results["postmix"]["rows"] == results["naive"]["rows"] == args.rows


if __name__ == "__main__":
    main()
