"""The cost of ``weight_by``: ranking rows by Efraimidis-Spirakis keys against the uniform hash
ranking, on the same ids in one run.

    python benchmarks/bench_weight_by.py                  # 1,000,000 ids
    python benchmarks/bench_weight_by.py --rows 100000

Both sides take ``count: rows / 10`` with ``postmix.mix.sampling.take``: ``uniform`` ranks by the
keyed id hash (``hash_order``), ``weight_by`` by ``log(-log u) - log w`` from the same hash
(``weighted_order``, plus the log of the weights). Best of ``--repeats`` runs each; the ratio is
weighted / uniform.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa

from postmix.mix.sampling import sampling_key, take


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ids = pa.array([f"row-{i:09d}" for i in range(args.rows)])
    weights = np.random.default_rng(0).gamma(2.0, 2.0, args.rows)
    key = sampling_key(0, "bench")
    rule = {"count": args.rows // 10}
    uniform = best(lambda: take(ids, rule, key), args.repeats)
    weighted = best(lambda: take(ids, rule, key, log_weights=np.log(weights)), args.repeats)
    print(f"rows {args.rows:,}  take count {rule['count']:,}")
    print(f"uniform   {uniform:.3f} s")
    print(f"weight_by {weighted:.3f} s")
    print(f"ratio weight_by / uniform: {weighted / uniform:.2f}")


if __name__ == "__main__":
    main()
