"""A seeded percentile-bootstrap interval of a mean: the uncertainty printed beside every score.

Items are resampled with replacement ``samples`` times and the interval is the middle ``level``
of the resampled means. Same scores and seed, same interval; a benchmark of a few dozen items
gets a wide one, which is the point of showing it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_CHUNK = 200  # resamples drawn at once: bounds memory at 200 x items floats


def bootstrap_interval(scores: Sequence[float], *, samples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float | None, float | None]:
    """(low, high) of the mean of ``scores``; (None, None) without scores."""
    values = np.asarray(scores, dtype=float)
    if values.size == 0:
        return None, None
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, samples, _CHUNK):
        draws = rng.integers(0, values.size, size=(min(_CHUNK, samples - start), values.size))
        means.append(values[draws].mean(axis=1))
    tail = (1 - level) / 2
    low, high = np.quantile(np.concatenate(means), [tail, 1 - tail])
    # the quantiles of a resampled mean can miss the mean by float noise only; never report an
    # interval that excludes its own score
    mean = float(values.mean())
    return round(min(float(low), mean), 6), round(max(float(high), mean), 6)
