"""Precise instruction following: an IFEval-style catalogue of verifiable constraints.

A constraint spec is a flat dict, ``{"type": "word_count", "relation": "at_most", "num_words":
50}``. Each type has a parameter schema (a pydantic model, so a sampler can read the ranges from
``params.model_json_schema()``), a checker ``check(response, **params) -> bool`` and an
instruction ``describe(spec) -> "Answer in at most 50 words."`` that is appended to a prompt.

Each checker decides exactly as Google's official IFEval implementation (Zhou et al., 2023,
google-research ``instruction_following_eval``) decides for the instruction it stands for,
quirks included, because RLVR rewards and ``postmix eval`` must agree with the published
numbers: keywords are case-insensitive substrings (``"story"`` is in ``"history"``), forbidden
words are ``\\b``-bounded, sentences are NLTK Punkt's (``postmix.verifiers.punkt``), a postscript
marker may stand anywhere on a line, the two case rules also require English (langdetect), and
``benchmarks/bench_ifeval_agreement.py`` measures the agreement on the published responses.
Two things differ by design: count relations are ``at_most`` / ``at_least`` (both inclusive;
IFEval's "less than N" reads as ``at_most N-1``, see ``postmix.verifiers.ifeval_formats``), and
keywords, words and markers are matched literally (IFEval inserts them into a regex unescaped;
the same for every word without regex metacharacters). ``start_phrase`` is postmix's own.

A response satisfies a row when it satisfies every one of the row's constraints; a blank
response satisfies none (IFEval's strict rule). Rows may carry postmix specs, IFEval's native
``instruction_id_list`` + ``kwargs``, or RLVR-IFeval's ``func_name`` ground truth
(``row_constraints``). The IFEval benchmark's strict and loose scoring is in
``postmix.verifiers.ifeval_bench``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from postmix.verifiers import ifeval_formats, punkt
from postmix.verifiers.base import Verdict, unscorable

Relation = Literal["at_most", "at_least"]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class ConstraintType:
    """One kind of verifiable instruction."""

    name: str
    params: type[_Params]
    check: Callable[..., bool]
    instruction: Callable[[Any], str]

    def describe(self, **params: Any) -> str:
        return self.instruction(self.params(**params))


CONSTRAINTS: dict[str, ConstraintType] = {}


class ConstraintSpecError(ValueError):
    """A constraint spec names an unknown type or has parameters its type does not accept."""


def _constraint(name: str, params: type[_Params], instruction: Callable[[Any], str]):
    def register(check: Callable[..., bool]) -> Callable[..., bool]:
        CONSTRAINTS[name] = ConstraintType(name, params, check, instruction)
        return check

    return register


def _holds(count: int, relation: str, bound: int) -> bool:
    return count <= bound if relation == "at_most" else count >= bound


def _rel(relation: str) -> str:
    return relation.replace("_", " ")


def _quoted(words: list[str] | tuple[str, ...]) -> str:
    return ", ".join(f'"{w}"' for w in words)


def words(text: str) -> list[str]:
    """IFEval's words: ``\\w+`` runs (``nltk.RegexpTokenizer(r"\\w+")``)."""
    return re.findall(r"\w+", text)


def sentences(text: str) -> list[str]:
    """IFEval's sentences: NLTK Punkt's English model."""
    try:
        return punkt.sentences(text)
    except punkt.PunktUnavailable as exc:
        raise ConstraintSpecError(str(exc)) from None


# ---------------------------------------------------------------- length


class WordCount(_Params):
    relation: Relation
    num_words: int = Field(ge=1, le=5000)


@_constraint(
    "word_count", WordCount, lambda p: f"Answer in {_rel(p.relation)} {p.num_words} words."
)
def word_count(response: str, *, relation: str, num_words: int) -> bool:
    return _holds(len(words(response)), relation, num_words)


class SentenceCount(_Params):
    relation: Relation
    num_sentences: int = Field(ge=1, le=500)


@_constraint(
    "sentence_count",
    SentenceCount,
    lambda p: f"Your response should contain {_rel(p.relation)} {p.num_sentences} sentences.",
)
def sentence_count(response: str, *, relation: str, num_sentences: int) -> bool:
    return _holds(len(sentences(response)), relation, num_sentences)


class ParagraphCount(_Params):
    num_paragraphs: int = Field(ge=1, le=50)


@_constraint("paragraph_count", ParagraphCount,
             lambda p: f"There should be exactly {p.num_paragraphs} paragraphs. Paragraphs are "
                       "separated from each other by the markdown divider: ***")
def paragraph_count(response: str, *, num_paragraphs: int) -> bool:
    parts = re.split(r"\s?\*\*\*\s?", response)
    # Empty pieces at the very start or end are tolerated (a leading or trailing divider);
    # an empty paragraph in the middle is not.
    inner = parts[1:-1] if len(parts) > 2 else []
    if any(not p.strip() for p in inner):
        return False
    return sum(1 for p in parts if p.strip()) == num_paragraphs


# ---------------------------------------------------------------- keywords and letters


class KeywordsInclude(_Params):
    keywords: list[str] = Field(min_length=1, max_length=50)  # IFEval has up to 12


@_constraint("keywords_include", KeywordsInclude,
             lambda p: f"Include the keywords {_quoted(p.keywords)} in the response.")
def keywords_include(response: str, *, keywords: list[str]) -> bool:
    # As IFEval: a case-insensitive substring, so "cat" is found in "category"
    return all(re.search(re.escape(k), response, re.IGNORECASE) for k in keywords)


class KeywordsForbidden(_Params):
    forbidden_words: list[str] = Field(min_length=1, max_length=50)  # IFEval has up to 12


@_constraint("keywords_forbidden", KeywordsForbidden,
             lambda p: f"Do not include the words {_quoted(p.forbidden_words)} in the response.")
def keywords_forbidden(response: str, *, forbidden_words: list[str]) -> bool:
    return not any(re.search(r"\b" + re.escape(w) + r"\b", response, re.IGNORECASE)
                   for w in forbidden_words)


class KeywordFrequency(_Params):
    keyword: str = Field(min_length=1)
    relation: Relation
    frequency: int = Field(ge=0, le=100, description="0 with at_most: the word must not appear")


@_constraint("keyword_frequency", KeywordFrequency,
             lambda p: f'In your response, the word "{p.keyword}" should appear '
                       f"{_rel(p.relation)} {p.frequency} times.")
def keyword_frequency(response: str, *, keyword: str, relation: str, frequency: int) -> bool:
    # As IFEval: non-overlapping case-insensitive substrings, so "story" counts in "history"
    found = re.findall(re.escape(keyword.strip()), response, re.IGNORECASE)
    return _holds(len(found), relation, frequency)


class LetterFrequency(_Params):
    letter: str = Field(pattern=r"^\S$",
                        description="One character; IFEval asks for '#' and '!' too")
    relation: Relation
    let_frequency: int = Field(ge=0, le=500)


@_constraint("letter_frequency", LetterFrequency,
             lambda p: f'In your response, the letter "{p.letter.lower()}" should appear '
                       f"{_rel(p.relation)} {p.let_frequency} times.")
def letter_frequency(response: str, *, letter: str, relation: str, let_frequency: int) -> bool:
    return _holds(response.lower().count(letter.lower()), relation, let_frequency)


class CapitalWordFrequency(_Params):
    relation: Relation
    capital_frequency: int = Field(ge=1, le=100)


@_constraint("capital_word_frequency", CapitalWordFrequency,
             lambda p: "In your response, words with all capital letters should appear "
                       f"{_rel(p.relation)} {p.capital_frequency} times.")
def capital_word_frequency(response: str, *, relation: str, capital_frequency: int) -> bool:
    # As IFEval: nltk.word_tokenize tokens, so "AI-POWERED" is one word and "U.S." another
    try:
        tokens = punkt.word_tokens(response)
    except punkt.PunktUnavailable as exc:
        raise ConstraintSpecError(str(exc)) from None
    return _holds(sum(1 for w in tokens if w.isupper()), relation, capital_frequency)


# ---------------------------------------------------------------- format


class NoParams(_Params):
    pass


@_constraint("json_format", NoParams,
             lambda p: "Entire output should be wrapped in JSON format. You can use markdown "
                       "ticks such as ```.")
def json_format(response: str) -> bool:
    body = response.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):  # as IFEval: each prefix once, in turn
        body = body.removeprefix(fence)
    body = body.removesuffix("```").strip()
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


class BulletCount(_Params):
    num_bullets: int = Field(ge=1, le=50)


# As IFEval: a line opening with "*" not followed by "*", or with "-" (a "---" rule counts too)
_STAR_BULLET = re.compile(r"^\s*\*[^\*].*$", re.MULTILINE)
_DASH_BULLET = re.compile(r"^\s*-.*$", re.MULTILINE)


@_constraint("bullet_count", BulletCount,
             lambda p: f"Your answer must contain exactly {p.num_bullets} bullet points. Use the "
                       "markdown bullet points such as:\n* This is point 1.\n* This is point 2")
def bullet_count(response: str, *, num_bullets: int) -> bool:
    found = len(_STAR_BULLET.findall(response)) + len(_DASH_BULLET.findall(response))
    return found == num_bullets


@_constraint("title", NoParams,
             lambda p: "Your answer must contain a title, wrapped in double angular brackets, "
                       "such as <<poem of joy>>.")
def title(response: str) -> bool:
    return any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", response))


class HighlightedSections(_Params):
    num_highlights: int = Field(ge=1, le=20)


@_constraint("highlighted_sections", HighlightedSections,
             lambda p: f"Highlight at least {p.num_highlights} sections in your answer with "
                       "markdown, i.e. *highlighted section*.")
def highlighted_sections(response: str, *, num_highlights: int) -> bool:
    # As IFEval: *single* spans and **double** spans are counted separately
    single = sum(1 for s in re.findall(r"\*[^\n\*]*\*", response) if s.strip("*").strip())
    double = sum(1 for s in re.findall(r"\*\*[^\n\*]*\*\*", response)
                 if s.removeprefix("**").removesuffix("**").strip())
    return single + double >= num_highlights


class Sections(_Params):
    section_splitter: str = Field("Section", min_length=1, pattern=r"\S",
                                  description="The marker word: Section, SECTION, Day, Audience...")
    num_sections: int = Field(ge=1, le=20)


@_constraint("sections", Sections,
             lambda p: f"Your response must have {p.num_sections} sections. Mark the beginning of "
                       f"each section with {p.section_splitter} X, such as: {p.section_splitter} 1")
def sections(response: str, *, section_splitter: str = "Section", num_sections: int) -> bool:
    marker = re.escape(section_splitter.strip())
    parts = re.split(r"\s?" + marker + r"\s?\d+\s?", response)  # case-sensitive, as IFEval
    return len(parts) - 1 >= num_sections


class Placeholders(_Params):
    num_placeholders: int = Field(ge=1, le=20)


@_constraint("placeholders", Placeholders,
             lambda p: f"The response must contain at least {p.num_placeholders} placeholders "
                       "represented by square brackets, such as [address].")
def placeholders(response: str, *, num_placeholders: int) -> bool:
    return len(re.findall(r"\[.*?\]", response)) >= num_placeholders


class Postscript(_Params):
    postscript_marker: str = Field("P.S.", min_length=1, pattern=r"\S",
                                   description="P.S. or P.P.S (IFEval's two), or any other marker")


@_constraint("postscript", Postscript,
             lambda p: "At the end of your response, please explicitly add a postscript "
                       f"starting with {p.postscript_marker}")
def postscript(response: str, *, postscript_marker: str = "P.S.") -> bool:
    # As IFEval: the marker anywhere in a line, "p. s." spacing allowed for its two markers
    marker = postscript_marker.strip()
    if marker in ("P.P.S", "P.P.S."):
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + re.escape(marker.lower()) + r".*$"
    return re.search(pattern, response.lower(), re.MULTILINE) is not None


@_constraint("quotation", NoParams,
             lambda p: "Wrap your entire response with double quotation marks.")
def quotation(response: str) -> bool:
    body = response.strip()
    return len(body) > 1 and body[0] == '"' and body[-1] == '"'


# ---------------------------------------------------------------- case and punctuation


@_constraint("lowercase", NoParams,
             lambda p: "Your entire response should be in English, and in all lowercase "
                       "letters. No capital letters are allowed.")
def lowercase(response: str) -> bool:
    return response.islower() and _english(response)


@_constraint("uppercase", NoParams,
             lambda p: "Your entire response should be in English, and in all capital letters.")
def uppercase(response: str) -> bool:
    return response.isupper() and _english(response)


def _english(response: str) -> bool:
    # As IFEval: "in English" is langdetect's verdict; text it cannot read passes
    detected = detect_language(response)
    return detected is None or detected == "en"


@_constraint("no_commas", NoParams,
             lambda p: "In your entire response, refrain from the use of any commas.")
def no_commas(response: str) -> bool:
    return "," not in response


# ---------------------------------------------------------------- start and end


class StartPhrase(_Params):
    start_phrase: str = Field(min_length=1)


def _unquoted(text: str) -> str:
    return text.strip().strip('"').lower()


@_constraint("start_phrase", StartPhrase,
             lambda p: f'Start your response with the exact phrase "{p.start_phrase}".')
def start_phrase(response: str, *, start_phrase: str) -> bool:
    return _unquoted(response).lstrip().startswith(start_phrase.strip().lower())


class EndPhrase(_Params):
    end_phrase: str = Field(min_length=1)


@_constraint("end_phrase", EndPhrase,
             lambda p: f'Finish your response with this exact phrase "{p.end_phrase}". '
                       "No other words should follow this phrase.")
def end_phrase(response: str, *, end_phrase: str) -> bool:
    return _unquoted(response).endswith(end_phrase.strip().lower())


# ---------------------------------------------------------------- IFEval's remaining types


class NthParagraphFirstWord(_Params):
    num_paragraphs: int = Field(ge=1, le=20)
    nth_paragraph: int = Field(ge=1, le=20)
    first_word: str = Field(pattern=r"^[A-Za-z]+$")


@_constraint(
    "nth_paragraph_first_word",
    NthParagraphFirstWord,
    lambda p: (
        f"There should be {p.num_paragraphs} paragraphs. Paragraphs and only paragraphs "
        "are separated with each other by two new lines as if it was '\\n\\n' in python. "
        f"Paragraph {p.nth_paragraph} must start with word {p.first_word}."
    ),
)
def nth_paragraph_first_word(
    response: str, *, num_paragraphs: int, nth_paragraph: int, first_word: str
) -> bool:
    # As IFEval: paragraphs split on "\n\n" and empty ones not counted, but the nth is picked
    # from the raw split; its first word loses leading quotes and is cut at . , ? ! ' "
    paragraphs = re.split(r"\n\n", response)
    count = sum(1 for p in paragraphs if p.strip())
    if nth_paragraph > count or not paragraphs[nth_paragraph - 1].strip():
        return False
    word = paragraphs[nth_paragraph - 1].split()[0].lstrip("'").lstrip('"')
    found = re.match(r"[^.,?!'\"]*", word).group(0).lower()
    return count == num_paragraphs and found == first_word.lower()


CONSTRAINED_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


class ConstrainedResponse(_Params):
    options: tuple[str, ...] = Field(CONSTRAINED_OPTIONS, min_length=1,
                                     description="IFEval's yes/no/maybe unless a row names others")


@_constraint("constrained_response", ConstrainedResponse,
             lambda p: "Answer with one of the following options: "
                       f"({', '.join(repr(o) for o in p.options)})")
def constrained_response(response: str, *, options: tuple[str, ...] = CONSTRAINED_OPTIONS) -> bool:
    return any(option in response.strip() for option in options)


@_constraint("two_responses", NoParams,
             lambda p: "Give two different responses. Responses and only responses should be "
                       "separated by 6 asterisk symbols: ******.")
def two_responses(response: str) -> bool:
    # As IFEval: empty pieces are allowed only at the very start or end
    parts = response.split("******")
    answers = []
    for index, part in enumerate(parts):
        if part.strip():
            answers.append(part.strip())
        elif 0 < index < len(parts) - 1:
            return False
    return len(answers) == 2 and answers[0] != answers[1]


class RepeatPrompt(_Params):
    prompt_to_repeat: str = Field(min_length=1)


@_constraint("repeat_prompt", RepeatPrompt,
             lambda p: "First repeat the request word for word without change, then give your "
                       "answer (1. do not say any words or characters before repeating the "
                       "request; 2. the request you need to repeat does not include this "
                       "sentence)")
def repeat_prompt(response: str, *, prompt_to_repeat: str) -> bool:
    return response.strip().lower().startswith(prompt_to_repeat.strip().lower())


# Types whose parameters are the prompt's own text: only rows that come with them (IFEval's
# native format) carry them; a constraint sampler cannot draw them.
PROMPT_BOUND = frozenset({"repeat_prompt"})


class ResponseLanguage(_Params):
    language: str = Field(
        pattern=r"^[a-z]{2}(?:-[a-z]{2})?$", description="ISO 639-1 code, as langdetect names it."
    )


LANGUAGE_NAMES = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "sv": "Swedish",
    "pl": "Polish",
    "tr": "Turkish",
    "ru": "Russian",
    "ja": "Japanese",
    "ko": "Korean",
    "ar": "Arabic",
    "hi": "Hindi",
    "vi": "Vietnamese",
    "fi": "Finnish",
    "sw": "Swahili",
}


@_constraint(
    "response_language",
    ResponseLanguage,
    lambda p: (
        f"Your ENTIRE response should be in {LANGUAGE_NAMES.get(p.language, p.language)} "
        "language, no other language is allowed."
    ),
)
def response_language(response: str, *, language: str) -> bool:
    detected = detect_language(response)
    return detected is None or detected == language  # as IFEval: undetectable text passes


@functools.lru_cache(maxsize=256)  # one completion is often asked its language by two rules
def detect_language(text: str) -> str | None:
    """The language langdetect (IFEval's own detector) finds, seeded so it is deterministic."""
    try:
        from langdetect import DetectorFactory, detect
        from langdetect.lang_detect_exception import LangDetectException
    except ImportError:
        raise ConstraintSpecError(
            "response_language needs langdetect: pip install langdetect"
        ) from None
    DetectorFactory.seed = 0
    try:
        return detect(text)
    except LangDetectException:  # no letters at all: IFEval lets the response pass
        return None


# ---------------------------------------------------------------- specs


def parse_spec(spec: dict[str, Any] | str) -> tuple[ConstraintType, _Params]:
    """The constraint type and validated parameters of a spec (a dict or its JSON text)."""
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise ConstraintSpecError(f"constraint spec is not JSON: {exc.msg}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise ConstraintSpecError(f"constraint spec must be an object with a 'type': {spec!r:.100}")
    params = {k: v for k, v in spec.items() if k != "type"}
    kind = CONSTRAINTS.get(spec["type"])
    if kind is None:
        raise ConstraintSpecError(
            f"unknown constraint type {spec['type']!r}; known: {', '.join(sorted(CONSTRAINTS))}")
    try:
        return kind, kind.params(**params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "params"
        raise ConstraintSpecError(f"constraint {spec['type']!r}: {where}: {first['msg']}") from None


def describe(spec: dict[str, Any] | str) -> str:
    """The instruction text of a spec, e.g. ``"Answer in at most 50 words."``."""
    kind, params = parse_spec(spec)
    return kind.instruction(params)


def describe_all(specs: list[dict[str, Any]] | list[str]) -> str:
    """The instructions of several specs, one sentence after the other."""
    return " ".join(describe(s) for s in specs)


def check(response: str, spec: dict[str, Any] | str) -> bool:
    """Whether ``response`` satisfies one spec (raises ConstraintSpecError on a bad spec)."""
    kind, params = parse_spec(spec)
    return holds(kind, params, response)


def holds(kind: ConstraintType, params: _Params, response: str) -> bool:
    """IFEval's strict rule: a blank response follows no instruction; else the checker decides."""
    return bool(response.strip()) and kind.check(response, **params.model_dump())


def row_constraints(ground_truth: str | None, constraints: Any) -> list[Any]:
    """A row's specs: its ``constraints`` column, else its ground truth as JSON.

    The ground truth may be postmix specs (one or a list), IFEval's native
    ``{"instruction_id_list": [...], "kwargs": [...]}``, or RLVR-IFeval's
    ``{"func_name": ..., ...}``; the last two are read into specs by ``ifeval_formats``.
    """
    if constraints:
        return list(constraints)
    try:
        value = json.loads(ground_truth or "")
    except json.JSONDecodeError:
        raise ConstraintSpecError(
            "row has no constraints and its ground truth is not JSON"
        ) from None
    try:
        value = ifeval_formats.to_specs(value)
    except ifeval_formats.FormatError as exc:
        raise ConstraintSpecError(str(exc)) from None
    if not value:
        raise ConstraintSpecError("row has no constraints and its ground truth lists none")
    return value


def verify(response: str, ground_truth: str | None, constraints: Any = None) -> Verdict:
    """Correct when the response satisfies every constraint of the row."""
    try:
        parsed = [parse_spec(s) for s in row_constraints(ground_truth, constraints)]
        failed = [
            kind.name
            for kind, params in parsed
            if not holds(kind, params, response or "")
        ]
    except ConstraintSpecError as exc:  # a bad spec, or a checker's library missing
        return unscorable("bad_constraint", str(exc))
    return Verdict(not failed, "" if not failed else "constraint_failed", detail=",".join(failed))
