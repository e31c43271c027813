"""English sentences and words as IFEval counts them: NLTK's Punkt with its English model.

IFEval's sentence count is NLTK Punkt's English model, and its all-capital-word count runs over
``nltk.word_tokenize`` (Punkt sentences, then the Treebank word tokenizer). Counting any other
way disagrees with the official verdicts on real responses (abbreviations, "5 p.m.", decimals,
quotes), so postmix runs the same algorithm over the same model parameters.

The parameters (abbreviations, collocations, sentence starters, orthographic context) ship in
``postmix/data/punkt/english``, in NLTK's own ``punkt_tab`` layout, and are read here as plain
text: nothing is downloaded and nothing is unpickled. See that folder's README for where they
come from.
"""

from __future__ import annotations

import collections
import functools
from importlib import resources
from typing import Any


class PunktUnavailable(RuntimeError):
    """NLTK is not installed, so sentences cannot be counted the IFEval way."""


def _nltk_punkt() -> Any:
    try:
        from nltk.tokenize import punkt
    except ImportError:
        raise PunktUnavailable("sentence counts need nltk: pip install nltk") from None
    return punkt


def _lines(name: str) -> list[str]:
    text = resources.files("postmix").joinpath("data", "punkt", "english", name).read_text("utf-8")
    return [line for line in text.split("\n") if line]  # the trailing newline ends the last one


@functools.lru_cache(maxsize=1)
def _sentence_tokenizer() -> Any:
    punkt = _nltk_punkt()
    params = punkt.PunktParameters()
    params.abbrev_types = set(_lines("abbrev_types.txt"))
    params.sent_starters = set(_lines("sent_starters.txt"))
    params.collocations = {tuple(line.split("\t")) for line in _lines("collocations.tab")}
    params.ortho_context = collections.defaultdict(
        int, {word: int(flags) for word, flags in (line.split("\t") for line in
                                                   _lines("ortho_context.tab"))})
    return punkt.PunktSentenceTokenizer(params)


@functools.lru_cache(maxsize=1)
def _word_tokenizer() -> Any:
    _nltk_punkt()
    from nltk.tokenize.destructive import NLTKWordTokenizer

    return NLTKWordTokenizer()


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` as Punkt's English model splits them."""
    return _sentence_tokenizer().tokenize(text)


def word_tokens(text: str) -> list[str]:
    """``nltk.word_tokenize(text)``: Treebank words of each Punkt sentence."""
    tokenizer = _word_tokenizer()
    return [token for sentence in sentences(text) for token in tokenizer.tokenize(sentence)]
