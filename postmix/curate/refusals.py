"""The one refusal / self-identification detector, shared by the ``refusal`` and
``self_identification`` quality filters and by ``curate respond``'s answer filters.

Each reason has a phrase list (found anywhere in an assistant turn, the filter's configurable
part: "As an AI language model", "I am ChatGPT") and a built-in pattern for the forms a phrase
list misses: a refusal that *opens* the answer ("Sorry, I cannot assist with this."; only the
opening, so "I can't recommend this enough" deep in an answer stays), and a claim of being a
model or of having a maker ("I'm Qwen", "I was trained by Anthropic"). Both are RE2 syntax, so
Arrow compute runs them over a whole column; Python ``re`` reads them the same way for details.
Match case-insensitively. A text can fire both reasons ("As an AI language model, I can't ...");
the caller's rule order picks the reason, as for every other rule.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

REFUSAL = "refusal"
SELF_IDENTIFICATION = "self_identification"
REASONS: tuple[str, ...] = (REFUSAL, SELF_IDENTIFICATION)

REFUSAL_PHRASES: tuple[str, ...] = (
    "As an AI language model", "As a language model", "As a large language model",
    "I cannot fulfill", "I can't fulfill", "I am unable to fulfill", "I'm unable to fulfill",
    "I cannot comply with", "I can't comply with", "I'm sorry, but I cannot",
    "I'm sorry, but I can't", "I apologize, but I cannot", "I apologize, but I can't",
    "my knowledge cutoff", "I do not have personal opinions", "I don't have personal opinions",
)
SELF_IDENTIFICATION_PHRASES: tuple[str, ...] = (
    "I am ChatGPT", "I'm ChatGPT", "as ChatGPT,", "I am GPT-3", "I'm GPT-3", "I am GPT-4",
    "I'm GPT-4", "trained by OpenAI", "developed by OpenAI", "created by OpenAI",
    "built by OpenAI", "I am Claude", "I'm Claude", "trained by Anthropic",
    "developed by Anthropic", "created by Anthropic", "I am Bard", "I'm Bard", "I am Gemini",
    "I'm Gemini",
)

# Refusals open the answer ("I'm sorry, but I can't...", "I cannot help with...").
REFUSAL_OPENING = (
    r"^\W{0,5}(?:(?:(?:I['’]?m|I am) (?:sorry|afraid)|(?:my )?apologies|I apologi[sz]e|"
    r"sorry)[^.!?\n]{0,40}?\b)?I (?:can(?:no|'|’)?t|won'?t|will not|must decline to|am "
    r"unable to|['’]m unable to|am not able to|['’]m not able to)(?: \w+){0,2}? (?:help|"
    r"assist|provide|comply|fulfil|fulfill|do|create|write|answer|engage|generate|support|"
    r"share)\b")
# An answer that claims to be some model or names its maker: wrong for a model trained on it.
IDENTITY_CLAIM = (
    r"\bas an? (?:AI|artificial intelligence)(?: language)?(?: model| assistant)?\b"
    r"|\bI(?:['’]m| am) (?:an? )?(?:AI language model|large language model|LLM|ChatGPT|"
    r"GPT-?\d|Claude|Gemini|Bard|Llama|Qwen|Mistral|DeepSeek)\b"
    r"|\b(?:I was|I['’]m|I am)\b[^.!?\n]{0,40}?\b(?:developed|created|trained|built|"
    r"made) by (?:OpenAI|Anthropic|Google|DeepMind|Meta|Mistral AI|Alibaba|DeepSeek)\b")
_BUILT_IN = {REFUSAL: REFUSAL_OPENING, SELF_IDENTIFICATION: IDENTITY_CLAIM}
DETAILS = {REFUSAL: "answer refuses",
           SELF_IDENTIFICATION: "answer claims a model identity or maker"}


def phrase_pattern(phrases: list[str] | tuple[str, ...]) -> str:
    """One alternation; straight and curly apostrophes match each other and any run of
    whitespace matches a space."""
    parts = []
    for phrase in phrases:
        pattern = ""
        for char in " ".join(phrase.split()):
            pattern += "['’]" if char in "'’" else r"\s+" if char == " " else re.escape(char)
        parts.append(pattern)
    return "|".join(parts)


def pattern(reason: str, phrases: list[str] | tuple[str, ...] | None = None) -> str:
    """The detector of ``reason`` (phrases first, so a detail names the phrase that matched)."""
    if phrases is None:
        phrases = REFUSAL_PHRASES if reason == REFUSAL else SELF_IDENTIFICATION_PHRASES
    return "|".join(p for p in (phrase_pattern(phrases), _BUILT_IN[reason]) if p)


def detect(texts: pa.Array, reason: str) -> pa.BooleanArray:
    """Which of ``texts`` fire ``reason`` with the default phrases (one Arrow regex pass)."""
    return pc.match_substring_regex(texts, pattern(reason), ignore_case=True)
