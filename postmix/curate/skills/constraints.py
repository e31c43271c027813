"""Sampling verifiable constraints for precise-IF prompts, from the IFEval-style catalogue in
``postmix.verifiers.ifeval``.

postmix draws the constraints, never the model: which types (1 to 3 per prompt by default, no two
that contradict each other) and their parameters come from a random generator seeded by (seed,
item index), so a re-run draws the same ones and the row's ground truth is exactly what the
checker will test. Parameter values come from the domains below, chosen so that a good answer can
meet them (e.g. "at most" a letter count only for rare letters); every drawn spec is validated by
the catalogue's own parser.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from postmix.verifiers import ifeval

# Words to include or count: common nouns that fit many tasks.
TOPIC_WORDS = (
    "plan", "budget", "morning", "team", "garden", "history", "future", "energy", "river",
    "market", "community", "window", "journey", "balance", "network", "kitchen", "season",
    "signal", "memory", "weather", "schedule", "bridge", "lesson", "harvest", "pattern",
    "distance", "evidence", "promise", "station", "quality",
)
# Words to forbid: fillers a response can always do without (disjoint from TOPIC_WORDS and from
# the start/end phrases, so no spec contradicts another).
FILLER_WORDS = (
    "very", "really", "basically", "actually", "literally", "just", "stuff", "thing", "nice",
    "good", "important", "simply", "totally", "definitely", "obviously",
)
START_PHRASES = ("My answer is", "Here is what I suggest", "Short answer first", "Let us begin")
END_PHRASES = ("Is there anything else I can help with?", "Any other questions?",
               "Let me know if you have additional questions.", "That is all.")
# Languages a capable responder writes well and langdetect tells apart reliably.
LANGUAGES = ("de", "fr", "es", "it", "pt", "nl")
# First words for a paragraph: capitalised, and unlike the start phrases.
FIRST_WORDS = ("Firstly", "However", "Finally", "Meanwhile", "Today", "Overall")
RARE_LETTERS = "jkqvxz"
COMMON_LETTERS = "aeinorst"

Draw = Callable[[random.Random], dict[str, Any]]


def _relation_count(field: str, at_most: tuple[int, ...], at_least: tuple[int, ...]) -> Draw:
    def draw(rng: random.Random) -> dict[str, Any]:
        relation = rng.choice(("at_most", "at_least"))
        return {"relation": relation,
                field: rng.choice(at_most if relation == "at_most" else at_least)}
    return draw


def _letter(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.5:
        return {"letter": rng.choice(RARE_LETTERS), "relation": "at_most",
                "let_frequency": rng.randint(2, 6)}
    return {"letter": rng.choice(COMMON_LETTERS), "relation": "at_least",
            "let_frequency": rng.randint(5, 20)}


def _keyword_frequency(rng: random.Random) -> dict[str, Any]:
    relation = rng.choice(("at_most", "at_least"))
    return {"keyword": rng.choice(TOPIC_WORDS), "relation": relation,
            "frequency": rng.randint(1, 3) if relation == "at_most" else rng.randint(2, 4)}


def _nth_paragraph(rng: random.Random) -> dict[str, Any]:
    paragraphs = rng.randint(2, 5)
    return {"num_paragraphs": paragraphs, "nth_paragraph": rng.randint(1, paragraphs),
            "first_word": rng.choice(FIRST_WORDS)}


DOMAINS: dict[str, Draw] = {
    "word_count": _relation_count("num_words", (50, 80, 100, 150, 200, 300),
                                  (100, 150, 200, 300, 400)),
    "sentence_count": _relation_count("num_sentences", (3, 5, 8, 10), (5, 8, 10, 15)),
    "paragraph_count": lambda rng: {"num_paragraphs": rng.randint(2, 5)},
    "keywords_include": lambda rng: {"keywords": rng.sample(TOPIC_WORDS, rng.randint(1, 3))},
    "keywords_forbidden": lambda rng: {"forbidden_words": rng.sample(FILLER_WORDS,
                                                                     rng.randint(1, 3))},
    "keyword_frequency": _keyword_frequency,
    "letter_frequency": _letter,
    "capital_word_frequency": _relation_count("capital_frequency", (2, 3, 5), (2, 3, 4, 6)),
    "json_format": lambda rng: {},
    "bullet_count": lambda rng: {"num_bullets": rng.randint(2, 6)},
    "title": lambda rng: {},
    "highlighted_sections": lambda rng: {"num_highlights": rng.randint(1, 4)},
    "sections": lambda rng: {"section_splitter": rng.choice(("Section", "SECTION", "Part",
                                                             "Chapter")),
                             "num_sections": rng.randint(2, 5)},
    "placeholders": lambda rng: {"num_placeholders": rng.randint(1, 4)},
    "postscript": lambda rng: {"postscript_marker": rng.choice(("P.S.", "P.P.S."))},
    "quotation": lambda rng: {},
    "lowercase": lambda rng: {},
    "uppercase": lambda rng: {},
    "no_commas": lambda rng: {},
    "start_phrase": lambda rng: {"start_phrase": rng.choice(START_PHRASES)},
    "end_phrase": lambda rng: {"end_phrase": rng.choice(END_PHRASES)},
    "nth_paragraph_first_word": lambda rng: _nth_paragraph(rng),
    "constrained_response": lambda rng: {},
    "two_responses": lambda rng: {},
    "response_language": lambda rng: {"language": rng.choice(LANGUAGES)},
}

# Types that cannot share a prompt: a JSON answer has no title, bullets or postscript (and needs
# commas); one length, one structure and one case rule at a time; a postscript and an ending
# phrase both claim the last line; a case rule contradicts a fixed-case section marker. A fixed
# yes/no/maybe answer stands alone, as does a response in another language (the other rules'
# keywords, phrases and case are English).
_JSON_COMPATIBLE = {"keywords_include", "keywords_forbidden", "keyword_frequency",
                    "letter_frequency", "word_count"}
_ALONE = {"constrained_response", "response_language"}
_EXCLUSIVE_GROUPS = (
    {"word_count", "sentence_count"},
    {"paragraph_count", "sections", "nth_paragraph_first_word", "two_responses"},
    {"start_phrase", "nth_paragraph_first_word"},
    {"lowercase", "uppercase", "capital_word_frequency"},
    {"postscript", "end_phrase"},
    {"lowercase", "sections"},
    {"uppercase", "sections"},
)


def conflicts(a: str, b: str) -> bool:
    if a == b or a in _ALONE or b in _ALONE:
        return True
    if "json_format" in (a, b):
        return (b if a == "json_format" else a) not in _JSON_COMPATIBLE
    return any(a in group and b in group for group in _EXCLUSIVE_GROUPS)


def sample_constraints(seed: int, index: int, min_count: int = 1,
                       max_count: int = 3) -> list[dict[str, Any]]:
    """Between ``min_count`` and ``max_count`` compatible specs for item ``index``.

    Fewer are returned only when no more compatible types exist. Specs are flat dicts
    (``{"type": "word_count", "relation": "at_most", "num_words": 100}``), validated by
    ``ifeval.parse_spec``.
    """
    rng = random.Random(f"postmix-ifeval:{seed}:{index}")
    wanted = rng.randint(min_count, max_count)
    types = [t for t in sorted(DOMAINS) if t in ifeval.CONSTRAINTS]
    rng.shuffle(types)
    chosen: list[str] = []
    for name in types:
        if len(chosen) == wanted:
            break
        if not any(conflicts(name, other) for other in chosen):
            chosen.append(name)
    specs = [{"type": name, **DOMAINS[name](rng)} for name in chosen]
    for spec in specs:
        ifeval.parse_spec(spec)  # a domain the catalogue rejects is a bug here, not user error
    return specs


def describe_all(specs: list[dict[str, Any]]) -> str:
    """The instructions appended to the written prompt, one per line."""
    return "\n".join(ifeval.describe(spec) for spec in specs)
