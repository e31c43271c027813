"""The pieces under dedup: normalisation, signatures (datasketch-identical and fast), LSH, clusters."""

from __future__ import annotations

import random

import datasketch
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postmix.curate.lsh import collision_probability, lsh_candidates, optimal_bands_rows
from postmix.curate.minhash import (
    MinHashConfig,
    estimated_jaccard,
    exact_jaccard,
    minhash_signatures,
    normalised_batch,
    shingle_sets,
    shingles,
)
from postmix.curate.normalise import NormaliseOptions, decode_rows, normalise_text, normalise_texts
from postmix.curate.unionfind import clusters

_ALPHABET = list("abcdefgh ÄÖüéß中文字ﬁＡ１—“”,.!?-\t\n") + ["  ", "\u00a0", "\u2003", "İ", "ǅ"]


def random_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 120))) for _ in range(count)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=60), max_size=8), st.booleans(), st.booleans(), st.booleans())
def test_batch_normalisation_equals_the_reference_definition(texts, nfkc, lowercase, punct):
    options = NormaliseOptions(nfkc=nfkc, lowercase=lowercase, strip_punctuation=punct)
    data, offsets = normalise_texts(texts, options)
    assert decode_rows(data, offsets) == [normalise_text(t, options) for t in texts]


def test_normalisation_folds_cosmetic_differences():
    assert normalise_text("  Ｈｅｌｌｏ,\u00a0WORLD!!  ﬁne\n") == "hello world fine"
    assert normalise_text("Hello, World", NormaliseOptions(lowercase=False, strip_punctuation=False)) == "Hello, World"


@pytest.mark.parametrize("scheme", ["affine32", "legacy", "affine64"])
@pytest.mark.parametrize(("shingle", "ngram", "num_perm", "seed"),
                         [("word", 5, 128, 1), ("word", 2, 64, 42), ("char", 4, 32, 7), ("word", 1, 16, 2**31 + 5)])
def test_datasketch_mode_equals_datasketch_minhash(scheme, shingle, ngram, num_perm, seed):
    config = MinHashConfig(hash="datasketch", datasketch_scheme=scheme, shingle=shingle, ngram=ngram,
                           num_perm=num_perm, seed=seed)
    texts = random_texts(seed % 1000 + num_perm, 40) + ["", "one", "x" * 300 + " long multi-block sha1 input"]
    signatures = minhash_signatures(texts, config)
    assert signatures.dtype == (np.uint32 if scheme == "affine32" else np.uint64)
    for text, signature in zip(texts, signatures, strict=True):
        expected = datasketch.MinHash(num_perm, seed=seed, scheme=scheme)
        expected.update_batch(shingles(text, config))
        assert np.array_equal(signature, expected.hashvalues), text


def test_datasketch_mode_signatures_work_in_a_datasketch_lsh_index():
    config = MinHashConfig(hash="datasketch")
    base = " ".join(f"token{i}" for i in range(60))
    texts = [base, base.replace("token30", "other"), " ".join(f"else{i}" for i in range(60))]
    signatures = minhash_signatures(texts, config)
    index = datasketch.MinHashLSH(threshold=0.8, num_perm=128)
    for i, sig in enumerate(signatures):
        index.insert(str(i), datasketch.MinHash(128, seed=1, hashvalues=sig, scheme="affine32"))
    query = datasketch.MinHash(128, seed=1)
    query.update_batch(shingles(base, config))
    assert sorted(index.query(query)) == ["0", "1"]


def _pairs_of_known_jaccard(count: int, seed: int):
    """Texts of distinct words: A = words[0:100], B = words[k:k+100] share 100-k of 100+k."""
    rng = random.Random(seed)
    pairs, truth = [], []
    for p in range(count):
        k = rng.randint(2, 60)
        vocab = [f"p{p}w{i}" for i in range(160)]
        pairs.append((" ".join(vocab[:100]), " ".join(vocab[k : k + 100])))
        truth.append((100 - k) / (100 + k))
    return pairs, np.array(truth)


def test_fast_mode_estimates_are_as_accurate_as_datasketch():
    pairs, truth = _pairs_of_known_jaccard(400, seed=3)
    config = MinHashConfig(ngram=1)
    texts = [t for pair in pairs for t in pair]
    fast = minhash_signatures(texts, config)
    fast_est = estimated_jaccard(fast[0::2], fast[1::2])
    ds_est = []
    for a, b in pairs:
        ma, mb = datasketch.MinHash(128, seed=1), datasketch.MinHash(128, seed=1)
        ma.update_batch(shingles(a, config))
        mb.update_batch(shingles(b, config))
        ds_est.append(ma.jaccard(mb))
    fast_err, ds_err = np.abs(fast_est - truth), np.abs(np.array(ds_est) - truth)
    noise = np.sqrt(fast_err.var() / len(truth) + ds_err.var() / len(truth))
    assert abs(fast_err.mean() - ds_err.mean()) < 4 * noise
    # and unbiased: the mean signed error is within noise of zero
    assert abs((fast_est - truth).mean()) < 4 * (fast_est - truth).std() / np.sqrt(len(truth))


def test_exact_jaccard_of_shingle_sets():
    config = MinHashConfig(ngram=1)
    data, offsets = normalised_batch(["a b c d", "c d e f", "a a b", "", "b a"], config)
    flat, set_offsets = shingle_sets(data, offsets, config)
    got = exact_jaccard(flat, set_offsets, np.array([0, 0, 2, 3, 3]), np.array([1, 2, 4, 3, 0]))
    assert got.tolist() == [2 / 6, 2 / 4, 1.0, 0.0, 0.0]


def test_shingles_of_short_and_char_texts():
    assert shingles("One two, three!", MinHashConfig(ngram=5)) == [b"one two three"]
    assert shingles("ab cd", MinHashConfig(shingle="char", ngram=3)) == [b"ab ", b"b c", b" cd"]
    assert shingles("  ...  ") == []


def test_chosen_bands_rows_keep_recall_high_at_the_threshold():
    for num_perm, threshold in ((128, 0.8), (128, 0.5), (256, 0.9), (64, 0.7)):
        bands, rows = optimal_bands_rows(num_perm, threshold)
        assert bands * rows <= num_perm
        assert collision_probability(threshold, bands, rows) >= 0.92
    bands, rows = optimal_bands_rows(128, 0.8)
    assert collision_probability(0.87, bands, rows) > 0.99


def test_lsh_candidates_and_clusters():
    sig = np.array([[1, 2, 3, 4], [1, 2, 9, 9], [7, 7, 3, 4], [5, 5, 5, 5], [1, 2, 3, 4]], dtype=np.uint32)
    assert lsh_candidates(sig, 2, 2).tolist() == [[0, 1], [0, 2], [0, 4]]
    assert lsh_candidates(sig, 2, 2, window=4).tolist() == [[0, 1], [0, 2], [0, 4], [1, 4], [2, 4]]
    assert lsh_candidates(sig, 2, 2, active=np.array([False, True, True, True, True])).tolist() == [[1, 4], [2, 4]]
    assert clusters(7, np.array([[5, 6], [1, 5], [2, 3]])).tolist() == [0, 1, 2, 2, 4, 1, 1]
