"""Verified survivors never chain: a removed row names a kept row at exact Jaccard >= threshold,
the walk follows the keep order, and two kept rows are never a pair the pass compared.

The ground truth here is computed independently: Python sets of ``minhash.shingles`` and a plain
greedy loop over all pairs."""

from __future__ import annotations

import random

import datasets
import pytest

from postmix.curate.dedup import DedupConfig, dedup
from postmix.curate.minhash import MinHashConfig, shingles
from postmix.schemas import FEATURES

VOCAB = [f"t{i}k{random.Random(i).randint(0, 10**6)}" for i in range(3000)]


def base(seed: int, n: int = 100) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(VOCAB) for _ in range(n)]


def edited(ws: list[str], positions: list[int]) -> list[str]:
    out = list(ws)
    for p in positions:
        out[p] = f"edit{p}"
    return out


def sft(texts: list[str], answers: list[str] | None = None) -> datasets.Dataset:
    answers = answers or ["ok"] * len(texts)
    return datasets.Dataset.from_list(
        [{"id": f"r{i}", "source": "s", "meta": "{}",
          "messages": [{"role": "user", "content": t}, {"role": "assistant", "content": a}]}
         for i, (t, a) in enumerate(zip(texts, answers, strict=True))], features=FEATURES["sft"])


def jaccard(a: str, b: str) -> float:
    sa, sb = set(shingles(a, MinHashConfig())), set(shingles(b, MinHashConfig()))
    return len(sa & sb) / len(sa | sb) if sa and sb else 0.0


def fields(detail: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in detail.split() if "=" in part)


def named_rows(verdicts) -> dict[int, tuple[int, float, str]]:
    """removed row -> (named row, similarity in the detail, method)."""
    out = {}
    for i, (reason, detail) in enumerate(zip(verdicts.reasons, verdicts.details, strict=True)):
        if reason is not None:
            f = fields(detail)
            out[i] = (int(f["duplicate_of"][1:]), float(f["similarity"]), f["method"])
    return out


def test_a_chain_keeps_its_far_end_and_names_the_row_it_matches():
    a = base(1)
    b = edited(a, [30])  # A~B: 91/101 = 0.901
    c = edited(b, [60, 90])  # B~C: 86/106 = 0.811, A~C: 81/111 = 0.730
    assert jaccard(" ".join(b), " ".join(c)) >= 0.8 > jaccard(" ".join(a), " ".join(c))
    ds = sft([" ".join(a), " ".join(b), " ".join(c), " ".join(base(2))])
    # 32 bands of 4: every pair above 0.7 is a candidate, the chain is one LSH cluster
    config = DedupConfig(bands=32, rows=4)
    verdicts = dedup(ds, config)
    assert list(verdicts.reasons) == [None, "near_duplicate", None, None]
    assert verdicts.details[1] == f"duplicate_of=r0 similarity={91 / 101:.3f} method=jaccard"
    assert verdicts.stats["near"]["chained_rows_kept"] == 1
    clustered = dedup(ds, config.model_copy(update={"verify": False}))
    assert list(clustered.reasons) == [None, "near_duplicate", "near_duplicate", None]
    assert fields(clustered.details[2])["duplicate_of"] == "r0"  # the chain: C goes for A


def test_the_walk_follows_the_keep_order():
    a = base(3)
    b = edited(a, [30])
    c = edited(b, [60, 90])
    texts = [" ".join(a), " ".join(b), " ".join(c)]
    # keep=longest visits B first (longest answer): A and C both match B directly, both go
    ds = sft(texts, ["x", "a much longer answer", "y"])
    verdicts = dedup(ds, DedupConfig(bands=32, rows=4, keep="longest"))
    assert list(verdicts.reasons) == ["near_duplicate", None, "near_duplicate"]
    assert {fields(d)["duplicate_of"] for d in (verdicts.details[0], verdicts.details[2])} == {"r1"}
    # C longest: C kept, B goes for C, A (0.730 to C) stays
    ds = sft(texts, ["x", "y", "a much longer answer"])
    verdicts = dedup(ds, DedupConfig(bands=32, rows=4, keep="longest"))
    assert list(verdicts.reasons) == [None, "near_duplicate", None]
    assert fields(verdicts.details[1])["duplicate_of"] == "r2"


def test_a_copy_of_a_removed_row_names_that_rows_survivor():
    y = base(4)
    x = edited(y, [50])
    ds = sft([" ".join(y), " ".join(x), "  " + " ".join(x).upper() + " !"])
    verdicts = dedup(ds, DedupConfig())
    assert list(verdicts.reasons) == [None, "near_duplicate", "near_duplicate"]
    assert verdicts.details[2] == verdicts.details[1] == (
        f"duplicate_of=r0 similarity={91 / 101:.3f} method=jaccard")
    # found by the exact pass all the same, and counted as following a near survivor
    assert verdicts.stats["exact"] == {"removed": 1, "named_near_survivor": 1}


def near_duplicate_corpus(seed: int, n: int = 160) -> tuple[list[str], list[str]]:
    """Rows drawn from a few bases, each with 0-6 scattered edits: Jaccard from ~0.5 to 1, many
    chains and pairs near 0.8; a few identical copies; answers of random length."""
    rng = random.Random(seed)
    bases = [base(1000 * seed + k, rng.randint(40, 100)) for k in range(12)]
    texts = []
    for _ in range(n):
        ws = rng.choice(bases)
        if texts and rng.random() < 0.1:
            texts.append(rng.choice(texts))
            continue
        texts.append(" ".join(edited(ws, rng.sample(range(len(ws)), rng.randint(0, 6)))))
    return texts, ["x" * rng.randint(1, 40) for _ in range(n)]


def keep_order(answers: list[str], texts: list[str], keep: str) -> list[int]:
    if keep == "first":
        return list(range(len(texts)))
    return sorted(range(len(texts)), key=lambda i: (-len(texts[i]) - len(answers[i]), i))


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("keep", ["first", "longest"])
def test_every_reject_names_a_kept_row_at_or_above_the_threshold(seed, keep):
    texts, answers = near_duplicate_corpus(seed)
    ds = sft(texts, answers)
    for config in (DedupConfig(keep=keep), DedupConfig(keep=keep, mode="near", threshold=0.7)):
        verdicts = dedup(ds, config)
        removed = named_rows(verdicts)
        assert removed, "the corpus is full of near duplicates"
        for row, (kept, similarity, method) in removed.items():
            assert verdicts.reasons[kept] is None, (row, kept)  # the named row is in the output
            exact = jaccard(texts[row], texts[kept])
            assert exact >= config.threshold and method in ("jaccard", "exact-hash")
            assert similarity == pytest.approx(exact, abs=5e-4)


@pytest.mark.parametrize("seed", [4, 5])
@pytest.mark.parametrize("keep", ["first", "longest"])
def test_with_every_pair_a_candidate_the_pass_is_the_greedy_exact_pass(seed, keep):
    """64 bands of 2 rows miss a pair at 0.8 with chance 0.36**64: every similar pair is a
    candidate, so the verdicts are those of a greedy pass over all pairs, in keep order."""
    texts, answers = near_duplicate_corpus(seed, n=120)
    ds = sft(texts, answers)
    verdicts = dedup(ds, DedupConfig(keep=keep, mode="near", bands=64, rows=2))
    kept: list[int] = []
    expected: dict[int, int] = {}
    for i in keep_order(answers, texts, keep):
        match = next((k for k in kept if jaccard(texts[i], texts[k]) >= 0.8), None)
        if match is None:
            kept.append(i)
        else:
            expected[i] = match
    got = named_rows(verdicts)
    assert {row: target for row, (target, _, _) in got.items()} == expected
    survivors = [i for i, reason in enumerate(verdicts.reasons) if reason is None]
    assert all(jaccard(texts[i], texts[j]) < 0.8 for i in survivors for j in survivors if i < j)


def test_reference_rows_always_stay_and_are_named_first(tmp_path):
    a = base(6)
    ref = sft([" ".join(a)])
    near_ref = edited(a, [40])  # 0.901 to the reference row
    far = edited(near_ref, [10, 80])  # 0.811 to near_ref, 0.730 to the reference
    new = sft([" ".join(far), " ".join(near_ref)])
    verdicts = dedup(new, DedupConfig(bands=32, rows=4), against=ref, cache_dir=tmp_path)
    # the reference row is visited first: near_ref goes for it, so far (visited first among the
    # new rows, kept) is not removed by a row that is itself removed
    assert verdicts.reasons[0] is None and verdicts.reasons[1] == "near_duplicate"
    assert verdicts.details[1].startswith("duplicate_of=r0 ") and "kept_in=reference" in verdicts.details[1]


@pytest.mark.parametrize("offset", [0, 7])
def test_pairs_from_the_buckets_are_the_candidate_pairs_of_a_second_sort(offset):
    """The verified pass derives its candidate pairs (clusters, report) from the bucket ids it
    walks; they must be the pairs the band sort of ``--no-verify`` finds, reference pairs left out."""
    import numpy as np

    from postmix.curate.dedup import _bucket_pairs, _candidate_pairs
    from postmix.curate.survivors import bucket_ids

    rng = np.random.default_rng(offset)
    members = np.sort(rng.choice(offset + 200, 150, replace=False)).astype(np.int64)
    members = np.unique(np.concatenate([np.arange(min(offset, 5)), members]))  # some reference rows
    hashes = rng.integers(0, 60, size=(6, len(members))).astype(np.uint64)  # many shared buckets
    total = offset + 200
    buckets = bucket_ids(hashes, counted=members >= offset)
    expected = _candidate_pairs(members, hashes, offset, total)
    assert len(expected) > 100
    assert np.array_equal(_bucket_pairs(buckets, members, offset, total), expected)
