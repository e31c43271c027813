"""Dedup speed and quality against datasketch and rensa, measured in one run on the same corpus.

    python benchmarks/bench_dedup.py                         # throughput + quality + survivors
    python benchmarks/bench_dedup.py --corpus debian-copyright
    python benchmarks/bench_dedup.py --sections survivors    # the survivor figures only
    python benchmarks/bench_dedup.py --sections e2e --e2e-docs 1000000   # default vs --no-verify
    python benchmarks/bench_dedup.py --sections e2e --e2e-docs 100000 --e2e-repeats 3
    python benchmarks/bench_dedup.py --engine ray            # Ray engine next to the local one

throughput  signatures of the same normalised 5-word shingles, 128 permutations: datasketch
            ``MinHash.update_batch`` (+ ``MinHashLSH``), rensa ``RMinHash`` (per document and its
            bulk matrix API), postmix fast and ``--hash datasketch`` on 1 and 2 threads. "per CPU-s"
            is docs per second of process CPU time, i.e. per core; ratios are against datasketch.
quality     recall of pairs at or above the threshold and precision, against exact all-pairs
            Jaccard (prefix filtering: exact, just not quadratic), with planted near duplicates
            (synthetic) or the real ones in Debian licence texts.
survivors   on the licence paragraphs (30+ words) of /usr/share/doc/*/copyright and on synthetic
            text, default (verified) and --no-verify against exact ground truth: kept rows against
            a greedy exact pass (in row order, a row stays unless a kept row is >= threshold),
            removed rows with no kept row >= threshold, rejects naming a row below the threshold
            or one that is not kept, and pairs of kept rows still >= threshold.
e2e         ``dedup_file`` (load, exact + near dedup, write output/rejects/report) of N documents
            in a child process, --no-verify (the old default) then the default; wall time, the
            ratio and the child's peak RSS.
--engine ray  instead of the sections: dedup and filter on the Ray engine (a local Ray, or the
            cluster at RAY_ADDRESS) next to the local engine on the same corpora, with the
            verdicts checked equal (``bench_dedup_ray.py``).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

THRESHOLD = 0.8
NUM_PERM = 128


# ---------------------------------------------------------------- corpora


def synthetic_corpus(docs: int, words: int, seed: int = 0, planted: float = 0.1) -> list[str]:
    """Zipf-distributed words from a 50k vocabulary; a share of documents are edited copies of
    earlier ones (0-15% of words replaced), so true Jaccard spans roughly 0.4-1.0."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = np.array(["".join(rng.choice(letters, rng.integers(2, 10))) for _ in range(50_000)])
    ids = (rng.zipf(1.2, size=(docs, words)) - 1) % len(vocab)
    n_planted = int(docs * planted)
    targets = rng.choice(np.arange(1, docs), size=n_planted, replace=False)
    for t in targets:
        src = rng.integers(0, t)
        ids[t] = ids[src]
        edits = int(rng.uniform(0, 0.15) * words)
        ids[t, rng.choice(words, size=edits, replace=False)] = rng.integers(0, len(vocab), size=edits)
    words_of = vocab.tolist()  # Python strings: joining numpy str_ items is several times slower
    return [" ".join([words_of[i] for i in row]) for row in ids.tolist()]


def debian_corpus(docs: int | None = None, min_words: int = 10) -> list[str]:
    """Paragraphs (``min_words``+ words) of /usr/share/doc/*/copyright: real licence boilerplate,
    full of exact and near duplicates."""
    paragraphs = []
    for path in sorted(glob.glob("/usr/share/doc/*/copyright")):
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        paragraphs += [p.strip() for p in re.split(r"\n\s*\n", text) if len(p.split()) >= min_words]
    if not paragraphs:
        sys.exit("no /usr/share/doc/*/copyright files on this machine: use --corpus synthetic")
    return paragraphs[:docs] if docs else paragraphs


def corpus(name: str, docs: int, words: int) -> list[str]:
    return synthetic_corpus(docs, words) if name == "synthetic" else debian_corpus(docs)


# ---------------------------------------------------------------- throughput


def _timed(fn):
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.perf_counter() - wall0, time.process_time() - cpu0


def throughput(texts: list[str], datasketch_docs: int) -> list[dict]:
    import datasketch
    import numba
    import pyarrow as pa
    import rensa

    from postmix.curate.minhash import (
        MinHashConfig,
        minhash_signatures,
        normalised_batch,
        shingles,
        signatures_of_normalised,
    )

    config = MinHashConfig()
    rows = []

    def add(name, n, wall, cpu, note=""):
        rows.append({"name": name, "docs": n, "wall_s": wall, "cpu_s": cpu,
                     "docs_per_s": n / wall, "docs_per_cpu_s": n / max(cpu, 1e-9), "note": note})

    sample = texts[:datasketch_docs]

    def run_datasketch():
        for text in sample:
            m = datasketch.MinHash(NUM_PERM, seed=1)
            m.update_batch(shingles(text, config))
    _, wall, cpu = _timed(run_datasketch)
    add("datasketch MinHash.update_batch", len(sample), wall, cpu, "baseline")

    def run_datasketch_lsh():
        index = datasketch.MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
        for i, text in enumerate(sample):
            m = datasketch.MinHash(NUM_PERM, seed=1)
            m.update_batch(shingles(text, config))
            index.query(m)
            index.insert(i, m)
    _, wall, cpu = _timed(run_datasketch_lsh)
    add("datasketch update_batch + MinHashLSH", len(sample), wall, cpu, "query+insert per doc")

    shingle_strings, wall_sh, cpu_sh = _timed(lambda: [[s.decode() for s in shingles(t, config)] for t in texts])

    def run_rensa():
        for tokens in shingle_strings:
            m = rensa.RMinHash(NUM_PERM, 1)
            m.update(tokens)
            m.digest()
    _, wall, cpu = _timed(run_rensa)
    add("rensa RMinHash (per doc)", len(texts), wall + wall_sh, cpu + cpu_sh, "incl. Python shingling")
    add("rensa RMinHash (per doc), kernel only", len(texts), wall, cpu, "shingles prebuilt")
    _, wall, cpu = _timed(lambda: rensa.RMinHash.digest_matrix_from_token_sets(shingle_strings, NUM_PERM, 1))
    add("rensa digest_matrix (bulk)", len(texts), wall + wall_sh, cpu + cpu_sh, "incl. Python shingling")

    arrow = pa.array(texts, pa.large_string())
    for mode in ("fast", "datasketch"):
        mode_config = MinHashConfig(hash=mode)
        minhash_signatures(texts[:100], mode_config)  # compile outside the timing
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            _, wall, cpu = _timed(lambda c=mode_config: minhash_signatures(arrow, c))
            add(f"postmix --hash {mode}, {threads} thread{'s' * (threads > 1)}", len(texts), wall, cpu,
                "normalise + shingle + sign")
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    # like "rensa kernel only": text already normalised, time the signatures alone, one thread
    data, offsets = normalised_batch(arrow, config)
    numba.set_num_threads(1)
    _, wall, cpu = _timed(lambda: signatures_of_normalised(data, offsets, config))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    add("postmix --hash fast, kernel only, 1 thread", len(texts), wall, cpu, "text prenormalised")
    return rows


def print_throughput(rows: list[dict]) -> None:
    base = rows[0]["docs_per_cpu_s"]
    print(f"\n{'method':44s} {'docs':>8s} {'docs/s':>10s} {'per CPU-s':>10s} {'x datasketch/core':>18s}  note")
    for r in rows:
        print(f"{r['name']:44s} {r['docs']:8d} {r['docs_per_s']:10,.0f} {r['docs_per_cpu_s']:10,.0f} "
              f"{r['docs_per_cpu_s'] / base:18.1f}  {r['note']}")


# ---------------------------------------------------------------- quality


def exact_similar_pairs(texts: list[str], threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """All pairs with Jaccard >= threshold, exactly (AllPairs prefix filtering: a pair that
    reaches the threshold must share one of each set's rarest |A| - ceil(t|A|) + 1 shingles)."""
    from postmix.curate.minhash import MinHashConfig, exact_jaccard, normalised_batch, shingle_sets

    config = MinHashConfig()
    data, offsets = normalised_batch(texts, config)
    flat, set_offsets = shingle_sets(data, offsets, config)
    uniq_sets = [np.unique(flat[set_offsets[i] : set_offsets[i + 1]]) for i in range(len(texts))]
    values, counts = np.unique(flat, return_counts=True)
    tokens, docs = [], []
    for i, s in enumerate(uniq_sets):
        if not len(s):
            continue
        rarity = counts[np.searchsorted(values, s)]
        prefix = len(s) - int(np.ceil(threshold * len(s) - 1e-9)) + 1
        chosen = s[np.lexsort((s, rarity))[:prefix]]
        tokens.append(chosen)
        docs.append(np.full(len(chosen), i))
    tokens, docs = np.concatenate(tokens), np.concatenate(docs)
    order = np.lexsort((docs, tokens))
    tokens, docs = tokens[order], docs[order]
    bounds = np.flatnonzero(np.diff(tokens)) + 1
    keys = []
    for group in np.split(docs, bounds):
        if len(group) > 1:
            a, b = np.triu_indices(len(group), 1)
            keys.append(group[a] * len(texts) + group[b])
    if not keys:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    pairs = np.unique(np.concatenate(keys))
    left, right = pairs // len(texts), pairs % len(texts)
    # Jaccard over sets (duplicate shingles inside a text count once), as MinHash sees them
    dedup_flat = np.concatenate(uniq_sets)
    dedup_offsets = np.concatenate([[0], np.cumsum([len(s) for s in uniq_sets])]).astype(np.int64)
    jac = exact_jaccard(dedup_flat, dedup_offsets, left, right)
    similar = jac >= threshold - 1e-12
    return np.stack([left[similar], right[similar]], axis=1), jac[similar]


def quality(texts: list[str]) -> list[dict]:
    import datasets
    import datasketch

    from postmix.curate.dedup import DedupConfig, dedup
    from postmix.curate.minhash import (
        MinHashConfig,
        exact_jaccard,
        normalised_batch,
        shingle_sets,
        shingles,
    )
    from postmix.schemas import FEATURES

    started = time.perf_counter()
    truth, _ = exact_similar_pairs(texts, THRESHOLD)
    print(f"\nexact all-pairs: {len(truth)} pairs with Jaccard >= {THRESHOLD} among {len(texts)} texts "
          f"({time.perf_counter() - started:.1f}s)")
    ds = datasets.Dataset.from_dict({
        "id": [str(i) for i in range(len(texts))],
        "messages": [[{"role": "user", "content": t}, {"role": "assistant", "content": "ok"}] for t in texts],
        "source": ["bench"] * len(texts), "meta": ["{}"] * len(texts)}, features=FEATURES["sft"])
    config = MinHashConfig()
    data, offsets = normalised_batch(texts, config)
    flat, set_offsets = shingle_sets(data, offsets, config)
    uniq = [np.unique(flat[set_offsets[i] : set_offsets[i + 1]]) for i in range(len(texts))]
    uflat = np.concatenate(uniq)
    uoff = np.concatenate([[0], np.cumsum([len(s) for s in uniq])]).astype(np.int64)

    def score(name, cluster_of, removed_pairs, seconds):
        removed_mask = cluster_of != np.arange(len(texts))
        found = removed_mask[truth[:, 0]] | removed_mask[truth[:, 1]]
        if len(removed_pairs):
            sims = exact_jaccard(uflat, uoff, removed_pairs[:, 0], removed_pairs[:, 1])
            precision = float((sims >= THRESHOLD - 1e-12).mean())
        else:
            precision = 1.0
        return {"name": name, "recall": float(found.mean()) if len(truth) else 1.0, "precision": precision,
                "removed": int(len(removed_pairs)), "seconds": seconds}

    results = []
    for label, cfg in (("postmix near --no-verify", DedupConfig(mode="near", verify=False)),
                       ("postmix near (default: verified)", DedupConfig(mode="near")),
                       ("postmix near --hash datasketch", DedupConfig(mode="near", hash="datasketch"))):
        started = time.perf_counter()
        verdicts = dedup(ds, cfg)
        seconds = time.perf_counter() - started
        cluster_of = np.arange(len(texts))
        removed = []
        for i, (reason, detail) in enumerate(zip(verdicts.reasons, verdicts.details, strict=True)):
            if reason is not None:
                kept = int(detail.split()[0].split("=", 1)[1])
                cluster_of[i] = kept
                removed.append((i, kept))
        r = score(label, cluster_of, np.array(removed, np.int64).reshape(-1, 2), seconds)
        r["bands_rows"] = f"{verdicts.stats['near']['bands']}x{verdicts.stats['near']['rows']}"
        results.append(r)

    started = time.perf_counter()
    index = datasketch.MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    cluster_of = np.arange(len(texts))
    removed = []
    for i, text in enumerate(texts):  # the usual datasketch dedup loop: drop a doc if the index knows one like it
        m = datasketch.MinHash(NUM_PERM, seed=1)
        m.update_batch(shingles(text, config))
        hits = index.query(m) if len(uniq[i]) else []
        if hits:
            kept = min(hits)
            cluster_of[i] = kept
            removed.append((i, kept))
        else:
            index.insert(i, m)
    r = score("datasketch MinHashLSH (default bands)", cluster_of, np.array(removed, np.int64).reshape(-1, 2),
              time.perf_counter() - started)
    r["bands_rows"] = f"{index.b}x{index.r}"
    results.append(r)
    return results


def print_quality(results: list[dict]) -> None:
    print(f"\n{'method':44s} {'bands':>6s} {'recall':>7s} {'precision':>9s} {'removed':>8s} {'seconds':>8s}")
    for r in results:
        print(f"{r['name']:44s} {r['bands_rows']:>6s} {r['recall']:7.3f} {r['precision']:9.3f} {r['removed']:8d} {r['seconds']:8.1f}")
    print("recall: share of pairs with exact Jaccard >= 0.8 of which at least one row was removed (no pair left "
          "in the output); precision: share of removed rows whose exact Jaccard with the row named in "
          "duplicate_of is >= 0.8")


# ---------------------------------------------------------------- survivors


def _sft_table(texts: list[str], ids: list[str]):
    """sft rows (the text as the user turn, "ok" as the answer) built in Arrow: a million nested
    Python dicts through ``Dataset.from_dict`` take minutes."""
    import pyarrow as pa

    from postmix.schemas import FEATURES

    n = len(texts)
    content = pa.array([x for t in texts for x in (t, "ok")], pa.string())
    role = pa.DictionaryArray.from_arrays(pa.array(np.tile([0, 1], n), pa.int8()),
                                          pa.array(["user", "assistant"])).cast(pa.string())
    turns = pa.StructArray.from_arrays([role, content], ["role", "content"])
    messages = pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)), turns)
    return pa.Table.from_arrays(
        [pa.array(ids, pa.string()), messages, pa.array(["bench"] * n, pa.string()), pa.array(["{}"] * n, pa.string())],
        schema=FEATURES["sft"].arrow_schema)


def _sft_dataset(texts: list[str]):
    import datasets

    return datasets.Dataset(_sft_table(texts, [str(i) for i in range(len(texts))]))


def brute_force_pairs(texts: list[str], threshold: float) -> set[int]:
    """Keys ``i * len(texts) + j`` (i < j) of every pair with Jaccard >= threshold, by comparing
    all pairs of Python sets of ``minhash.shingles`` (the UTF-8 shingle strings, so neither the
    64-bit shingle hashes nor the prefix filter are trusted). Quadratic: for a few thousand texts."""
    from postmix.curate.minhash import MinHashConfig, shingles

    config = MinHashConfig()
    sets = [frozenset(shingles(t, config)) for t in texts]
    found = set()
    for i, a in enumerate(sets):
        if not a:
            continue
        for j in range(i + 1, len(sets)):
            b = sets[j]
            if b and min(len(a), len(b)) >= threshold * max(len(a), len(b)):  # J <= min/max
                inter = len(a & b)
                if inter >= threshold * (len(a) + len(b) - inter) - 1e-9:
                    found.add(i * len(texts) + j)
    return found


class ExactTruth:
    """Exact ground truth at the shingle-set level: ``group[i]`` numbers each distinct normalised
    text (identical texts share a group, Jaccard 1), ``pairs`` are the group pairs with exact
    Jaccard >= threshold (all-pairs with prefix filtering over one text per group)."""

    def __init__(self, texts: list[str], threshold: float, brute_force: bool = False):
        import xxhash

        from postmix.curate.minhash import MinHashConfig, normalised_batch

        data, offsets = normalised_batch(texts, MinHashConfig())
        view = memoryview(data)
        keys = np.array([xxhash.xxh3_64_intdigest(view[offsets[i]:offsets[i + 1]]) for i in range(len(texts))],
                        np.uint64)
        empty = offsets[1:] == offsets[:-1]
        _, first, group = np.unique(keys, return_index=True, return_inverse=True)
        # groups numbered in order of first occurrence (the keep=first order)
        renumber = np.empty(len(first), np.int64)
        renumber[np.argsort(first, kind="stable")] = np.arange(len(first))
        self.group = renumber[group]
        self.group[empty] = -1 - np.flatnonzero(empty)  # empty texts are nobody's duplicate
        reps = np.sort(first)
        self.size = np.bincount(self.group[~empty], minlength=len(reps))
        started = time.perf_counter()
        self.pairs, _ = exact_similar_pairs([texts[i] for i in reps], threshold)
        self.seconds = time.perf_counter() - started
        self.true_pairs = int((self.size * (self.size - 1) // 2).sum()
                              + (self.size[self.pairs[:, 0]] * self.size[self.pairs[:, 1]]).sum())
        self._keys = set((self.pairs[:, 0] * len(reps) + self.pairs[:, 1]).tolist())
        self.groups = len(reps)
        self.brute_force_seconds = None
        if brute_force:
            started = time.perf_counter()
            checked = brute_force_pairs([texts[i] for i in reps], threshold)
            self.brute_force_seconds = time.perf_counter() - started
            if checked != self._keys:
                sys.exit(f"prefix filtering and brute force disagree on {len(checked ^ self._keys)} pairs")

    def similar(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether rows a[k], b[k] have exact Jaccard >= threshold."""
        ga, gb = self.group[a], self.group[b]
        lo, hi = np.minimum(ga, gb), np.maximum(ga, gb)
        return np.array([g == h or (g >= 0 and g * self.groups + h in self._keys)
                         for g, h in zip(lo.tolist(), hi.tolist(), strict=True)], bool)

    def greedy_kept(self) -> int:
        """Rows a greedy exact pass keeps: in row order, a row stays unless a kept row is >= threshold."""
        neighbours: list[list[int]] = [[] for _ in range(self.groups)]
        for a, b in self.pairs.tolist():
            neighbours[max(a, b)].append(min(a, b))  # groups are numbered in visiting order
        kept = np.zeros(self.groups, bool)
        for g in range(self.groups):
            kept[g] = not any(kept[h] for h in neighbours[g])
        return int(kept.sum()) + int((self.group < 0).sum())

    def figures(self, kept: np.ndarray, named: np.ndarray) -> dict:
        """``kept``: bool per row; ``named[i]``: the row a removed row names (-1 for kept rows)."""
        removed = np.flatnonzero(~kept)
        k_group = np.zeros(self.groups, np.int64)
        np.add.at(k_group, self.group[kept & (self.group >= 0)], 1)
        near_kept = k_group > 0
        a, b = self.pairs[:, 0], self.pairs[:, 1]
        has_kept = near_kept.copy()
        np.logical_or.at(has_kept, a, near_kept[b])  # .at: a group is in many pairs
        np.logical_or.at(has_kept, b, near_kept[a])
        g = self.group[removed]
        return {
            "kept": int(kept.sum()),
            "orphans": int((~np.where(g >= 0, has_kept[np.maximum(g, 0)], False)).sum()),
            "below_threshold": int((~self.similar(removed, named[removed])).sum()) if len(removed) else 0,
            "named_not_kept": int((~kept[named[removed]]).sum()) if len(removed) else 0,
            "kept_pairs": int((k_group * (k_group - 1) // 2).sum() + (k_group[a] * k_group[b]).sum()),
        }


def survivors(texts: list[str], with_datasketch_mode: bool = True, brute_force: bool = False
              ) -> tuple[ExactTruth, int, list[dict]]:
    """The four survivor figures of the issue for each dedup setting, against exact ground truth."""
    from postmix.curate.dedup import DedupConfig, dedup

    truth = ExactTruth(texts, THRESHOLD, brute_force=brute_force)
    greedy = truth.greedy_kept()
    ds = _sft_dataset(texts)
    settings = [("postmix --no-verify (MinHash clusters)", DedupConfig(verify=False)),
                ("postmix default (verified)", DedupConfig())]
    if with_datasketch_mode:
        settings.append(("postmix --hash datasketch (verified)", DedupConfig(hash="datasketch")))
    results = []
    for name, config in settings:
        dedup(ds.select(range(min(200, len(ds)))), config)  # compile outside the timing
        started = time.perf_counter()
        verdicts = dedup(ds, config)
        seconds = time.perf_counter() - started
        named = np.full(len(texts), -1, np.int64)
        for i, (reason, detail) in enumerate(zip(verdicts.reasons, verdicts.details, strict=True)):
            if reason is not None:
                named[i] = int(detail.split()[0].split("=", 1)[1])
        figures = truth.figures(named < 0, named)
        results.append({"name": name, "seconds": seconds, **figures})
    return truth, greedy, results


def print_survivors(label: str, truth: ExactTruth, greedy: int, results: list[dict]) -> None:
    print(f"\nsurvivors, {label}: {len(truth.group)} rows, {truth.groups} distinct texts, {truth.true_pairs} true pairs "
          f"(exact Jaccard >= {THRESHOLD}, {truth.seconds:.1f}s); greedy exact pass keeps {greedy}")
    if truth.brute_force_seconds is not None:
        print(f"brute force over all {truth.groups * (truth.groups - 1) // 2} pairs of distinct texts (Python sets of "
              f"the shingle strings) finds the same pairs ({truth.brute_force_seconds:.1f}s)")
    print(f"{'method':42s} {'kept':>7s} {'vs greedy':>9s} {'orphans':>8s} {'named<t':>8s} {'named gone':>10s} "
          f"{'kept pairs':>10s} {'of true':>8s} {'seconds':>8s}")
    for r in results:
        print(f"{r['name']:42s} {r['kept']:7d} {r['kept'] / greedy - 1:+9.2%} {r['orphans']:8d} {r['below_threshold']:8d} "
              f"{r['named_not_kept']:10d} {r['kept_pairs']:10d} {r['kept_pairs'] / max(truth.true_pairs, 1):8.3%} "
              f"{r['seconds']:8.2f}")
    print("orphans: removed rows with no kept row at exact Jaccard >= threshold; named<t: rejects whose duplicate_of "
          "row is below the threshold; named gone: rejects whose duplicate_of row is not in the output; kept pairs: "
          "pairs of kept rows still >= threshold")


# ---------------------------------------------------------------- end to end


def peak_rss_gib() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss it does not count the
    parent's memory at fork time)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def e2e_child(path: str, out_dir: str, verify: bool) -> None:
    from postmix.curate.dedup import DedupConfig, dedup_file

    started = time.perf_counter()
    result = dedup_file(path, Path(out_dir) / "deduped.parquet", DedupConfig(verify=verify))
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rows_in": result.report.rows_in, "rows_out": result.report.rows_out,
                      "rejected": result.report.rejected, "timings": result.report.timings,
                      "stage_timings": result.report.details.get("timings"), "peak_rss_gib": peak_rss_gib()}))


def e2e_corpus(name: str, docs: int, words: int) -> Path:
    import datasets


    # the corpus is kept between runs (generating 1M documents takes longer than deduplicating them)
    path = Path(tempfile.gettempdir()) / f"postmix-bench-dedup-{name}-{docs}-{words}.parquet"
    if not path.exists():
        started = time.perf_counter()
        texts = corpus(name, docs, words)
        ds = datasets.Dataset(_sft_table(texts, [f"doc-{i}" for i in range(len(texts))]))
        ds.to_parquet(str(path.with_suffix(".partial")))
        path.with_suffix(".partial").rename(path)
        del ds, texts
        print(f"\ncorpus of {docs} documents written to {path} in {time.perf_counter() - started:.0f}s (not timed)")
    return path


def e2e(path: Path, verify: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-dedup-") as tmp:
        proc = subprocess.run([sys.executable, __file__, "--_e2e-child", str(path), tmp]
                              + ([] if verify else ["--no-verify"]),
                              capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        if proc.returncode:
            sys.exit(proc.stderr)
        return json.loads(proc.stdout.strip().splitlines()[-1])


def print_e2e(runs: list[dict[str, dict]]) -> None:
    """``runs``: one ``{"--no-verify": result, "default (verified)": result}`` per repeat."""
    ratios, stage_ratios = [], []
    for k, results in enumerate(runs, 1):
        base = results["--no-verify"]
        base_stage = sum((base["stage_timings"] or {}).values())
        for label, result in results.items():
            stage = sum((result["stage_timings"] or {}).values())
            print(f"end to end {label} (run {k}): {result['rows_in']} docs -> {result['rows_out']} kept "
                  f"{result['rejected']} in {result['seconds']:.1f}s ({result['seconds'] / base['seconds']:.2f}x "
                  f"--no-verify; dedup phases {stage:.1f}s, {stage / base_stage:.2f}x), peak RSS "
                  f"{result['peak_rss_gib']:.2f} GiB")
            print(f"  phases: {result['timings']}  dedup: {result['stage_timings']}")
        verified = results["default (verified)"]
        ratios.append(verified["seconds"] / base["seconds"])
        stage_ratios.append(sum(verified["stage_timings"].values()) / base_stage)
    if len(runs) > 1:
        print(f"default / --no-verify over {len(runs)} runs: total {', '.join(f'{r:.2f}' for r in ratios)} "
              f"(median {np.median(ratios):.2f}x); dedup phases {', '.join(f'{r:.2f}' for r in stage_ratios)} "
              f"(median {np.median(stage_ratios):.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", choices=["synthetic", "debian-copyright"], default="synthetic")
    parser.add_argument("--docs", type=int, default=50_000, help="documents for the throughput section")
    parser.add_argument("--words", type=int, default=150, help="words per synthetic document")
    parser.add_argument("--datasketch-docs", type=int, default=3_000, help="documents datasketch signs (it is slow)")
    parser.add_argument("--quality-docs", type=int, default=20_000)
    parser.add_argument("--e2e-docs", type=int, default=1_000_000)
    parser.add_argument("--e2e-repeats", type=int, default=1, help="e2e: pairs of runs, first side alternating")
    parser.add_argument("--survivor-docs", type=int, default=100_000, help="synthetic documents for survivors")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="--engine ray: dedup without verification (the e2e section times both)")
    parser.add_argument("--sections", default="throughput,quality,survivors",
                        help="comma list of throughput,quality,survivors,e2e")
    parser.add_argument("--engine", choices=["local", "ray"], default="local",
                        help="ray: compare the Ray engine with the local one instead of the sections")
    parser.add_argument("--engine-docs", default="20000,100000", help="--engine ray: comma list of corpus sizes")
    parser.add_argument("--_e2e-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine == "ray":
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_dedup_ray import compare

        compare([int(d) for d in args.engine_docs.split(",")], verify=args.verify)
        return
    if args._e2e_child:
        e2e_child(*args._e2e_child, verify=args.verify)
        return
    import numba

    print(f"machine: {os.cpu_count()} CPUs, numba threads {numba.config.NUMBA_NUM_THREADS}; corpus {args.corpus}")
    sections = set(args.sections.split(","))
    if "throughput" in sections:
        texts = corpus(args.corpus, args.docs, args.words)
        words = np.mean([len(t.split()) for t in texts[:2000]])
        print(f"throughput: {len(texts)} docs, {words:.0f} words each on average, {NUM_PERM} permutations, 5-word shingles")
        print_throughput(throughput(texts, args.datasketch_docs))
    if "quality" in sections:
        print_quality(quality(corpus(args.corpus, args.quality_docs, args.words)))
    if "survivors" in sections:
        print_survivors("licence paragraphs of 30+ words", *survivors(debian_corpus(min_words=30), brute_force=True))
        print_survivors("synthetic", *survivors(synthetic_corpus(args.survivor_docs, args.words)))
    if "e2e" in sections:
        path = e2e_corpus(args.corpus, args.e2e_docs, args.words)
        # baseline: today's default before verification was (MinHash clusters, 14x8); the two sides
        # alternate which goes first, so that a shared machine's load changes hurt both alike
        runs = []
        for k in range(args.e2e_repeats):
            sides = [("--no-verify", False), ("default (verified)", True)][:: 1 if k % 2 == 0 else -1]
            measured = {}
            for label, verify in sides:
                measured[label] = e2e(path, verify=verify)
                print(f"  measured {label}: {json.dumps(measured[label])}", flush=True)  # if the rest never ends
            runs.append({label: measured[label] for label in ("--no-verify", "default (verified)")})
        print_e2e(runs)


if __name__ == "__main__":
    main()
