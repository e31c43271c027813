"""A token-budget mix built twice over the same sources: the first build tokenises every row
(chat template applied), the second reads every count from the token-count cache.

    python benchmarks/bench_mix_tokens.py               # 50,000 rows
    python benchmarks/bench_mix_tokens.py --rows 5000   # quicker

Baseline: the cold build (empty cache) in the same run; the ratio is cold / warm. Each build goes
to a fresh registry, so the second one is a full build whose counts alone come from the cache.
The tokenizer is postmix's tiny test tokenizer (byte-level BPE, a few hundred merges): a real
tokenizer is slower per row, so the cache saves more with it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-mix-tokens-"))
    os.environ["POSTMIX_CACHE_DIR"] = str(work / "cache")
    from postmix import mix
    from postmix.testing.tiny_model import build_tiny_model

    tokenizer = build_tiny_model(work / "tiny")
    for name, share in (("a", 0.6), ("b", 0.4)):
        with open(work / f"{name}.jsonl", "w") as handle:
            for i in range(int(args.rows * share)):
                text = f"{name} question {i} about data mixing " * (1 + i % 7)
                handle.write(json.dumps({"id": f"{name}-{i}", "source": name, "meta": "{}",
                    "messages": [{"role": "user", "content": text},
                                 {"role": "assistant", "content": "an answer " * (5 + i % 11)}]})
                             + "\n")
    spec = {"name": "tokens", "kind": "sft", "tokenizer": str(tokenizer),
            "target": {"tokens": args.rows * 60},
            "sources": [{"path": "a.jsonl", "weight": 1}, {"path": "b.jsonl", "weight": 1}]}
    times = []
    for run in ("cold", "warm"):
        started = time.perf_counter()
        result = mix.build(spec, home=work / f"reg-{run}", base=work, progress=False)
        times.append(time.perf_counter() - started)
        counts = result.manifest["token_counts"]
        print(f"{run}: {times[-1]:.2f} s, {result.mix.rows:,} rows, {result.manifest['tokens']:,} "
              f"tokens, tokenised {counts['rows_tokenized']:,}, from cache "
              f"{counts['rows_from_cache']:,}")
    print(f"ratio cold/warm: {times[0] / times[1]:.2f}x")


if __name__ == "__main__":
    main()
