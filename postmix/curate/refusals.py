"""The one detector of answers a model must not be trained on, shared by the ``refusal``,
``self_identification`` and ``knowledge_cutoff`` quality filters and by ``curate respond``'s
answer filters of the same names (one reason code each, wherever it is found).

Each reason is a phrase list (found anywhere in an assistant turn: "As an AI language model",
"I am ChatGPT", "as of my last update") plus a built-in pattern for the forms a list misses: a
refusal that *opens* the answer ("Sorry, I cannot assist with this."; only the opening, so "I
can't recommend this enough" deep in an answer stays), a claim of being a model or of having a
maker ("I'm Qwen", "I was trained by Anthropic"), a training-data horizon with a year ("my
training data only goes up to early 2023").

Model families (``FAMILIES``: openai, anthropic, google, meta, qwen, mistral, deepseek,
microsoft) hold each maker's model names, its name and its typical phrases; a config picks the
families to look for (all by default) and may add phrases of its own (``PhraseSettings``, mixed
into ``FilterConfig`` and ``RespondConfig`` so both build the same detector). Everything is RE2
syntax, so Arrow compute runs it over a whole column; Python ``re`` reads it the same way for
details. Match case-insensitively. A text can fire two reasons ("As an AI language model, I
can't ..."); the caller's rule order picks the reason, as for every other rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field, field_validator

REFUSAL = "refusal"
SELF_IDENTIFICATION = "self_identification"
KNOWLEDGE_CUTOFF = "knowledge_cutoff"
REASONS: tuple[str, ...] = (REFUSAL, SELF_IDENTIFICATION, KNOWLEDGE_CUTOFF)


@dataclass(frozen=True)
class Family:
    """A maker's models: the names they answer to, the maker's names, and phrases typical of
    them (self-identification and refusal) that the generic patterns miss."""

    models: tuple[str, ...]
    makers: tuple[str, ...]
    self_identification: tuple[str, ...] = ()
    refusal: tuple[str, ...] = ()


# "trained by OpenAI" alone is a self-identification (nothing else is trained by OpenAI in chat
# data); "developed by Google" is not (Go, Android), so for most makers only the first-person
# claim of IDENTITY_CLAIM counts.
FAMILIES: dict[str, Family] = {
    "openai": Family(
        ("ChatGPT", "GPT-3", "GPT-3.5", "GPT-4", "GPT-4o", "GPT-5"), ("OpenAI",),
        ("I am ChatGPT", "I'm ChatGPT", "as ChatGPT,", "I am GPT-3", "I'm GPT-3", "I am GPT-4",
         "I'm GPT-4", "trained by OpenAI", "developed by OpenAI", "created by OpenAI",
         "built by OpenAI")),
    "anthropic": Family(
        ("Claude",), ("Anthropic",),
        ("I am Claude", "I'm Claude", "trained by Anthropic", "developed by Anthropic",
         "created by Anthropic")),
    "google": Family(("Gemini", "Bard", "Gemma", "PaLM"), ("Google", "Google DeepMind", "DeepMind"),
                     ("I am Bard", "I'm Bard", "I am Gemini", "I'm Gemini")),
    "meta": Family(("Llama", "LLaMA 2", "Llama 3", "Meta AI"), ("Meta", "Meta AI"),
                   refusal=("I cannot provide information or guidance on illegal",
                            "I'm just an AI, it's not within my programming")),
    "qwen": Family(("Qwen", "Tongyi Qianwen"), ("Alibaba Cloud", "Alibaba"),
                   ("我是通义千问", "我是Qwen", "我是阿里云", "由阿里云开发", "Tongyi Qianwen")),
    "mistral": Family(("Mistral", "Mixtral", "Le Chat"), ("Mistral AI",)),
    "deepseek": Family(("DeepSeek",), ("DeepSeek",), ("我是DeepSeek", "由深度求索")),
    "microsoft": Family(("Copilot", "Bing Chat", "Phi-3", "Phi-4"), ("Microsoft",)),
}

REFUSAL_PHRASES: tuple[str, ...] = (
    "As an AI language model", "As a language model", "As a large language model",
    "I cannot fulfill", "I can't fulfill", "I am unable to fulfill", "I'm unable to fulfill",
    "I cannot comply with", "I can't comply with", "I'm sorry, but I cannot",
    "I'm sorry, but I can't", "I apologize, but I cannot", "I apologize, but I can't",
    "I do not have personal opinions", "I don't have personal opinions",
)
KNOWLEDGE_CUTOFF_PHRASES: tuple[str, ...] = (
    "as of my last update", "as of my last knowledge update", "as of my latest update",
    "my knowledge cutoff", "my knowledge cut-off", "my training cutoff", "my training cut-off",
    "my last training update", "my training data goes up to", "my training data only goes up to",
    "my training data extends to", "my training data includes information up to",
    "I don't have access to real-time", "I do not have access to real-time",
    "I don't have real-time", "I do not have real-time", "I cannot browse the internet",
    "I can't browse the internet", "I don't have the ability to browse",
)

# Refusals open the answer ("I'm sorry, but I can't...", "I cannot help with...").
REFUSAL_OPENING = (
    r"^\W{0,5}(?:(?:(?:I['’]?m|I am) (?:sorry|afraid)|(?:my )?apologies|I apologi[sz]e|"
    r"sorry)[^.!?\n]{0,40}?\b)?I (?:can(?:no|'|’)?t|won'?t|will not|must decline to|am "
    r"unable to|['’]m unable to|am not able to|['’]m not able to)(?: \w+){0,2}? (?:help|"
    r"assist|provide|comply|fulfil|fulfill|do|create|write|answer|engage|generate|support|"
    r"share)\b")
# A horizon of the model's own knowledge, with a year: "my knowledge is current up to 2023",
# "my training data runs until late 2021". The year keeps "my training data goes up to 10 GB"
# (a user's own data set) out, and "training" alone is not enough ("my training plan goes up to
# 2000 metres").
KNOWLEDGE_HORIZON = (
    r"\bmy (?:knowledge|training data|training cut-?off|information)\b[^.!?\n]{0,40}?\b"
    r"(?:up to|until|through|cut-?off|ends? in|as of)\b[^.!?\n]{0,30}?\b(?:19|20)\d\d\b")


def identity_claim(models: list[str] | tuple[str, ...], makers: list[str] | tuple[str, ...]) -> str:
    """An answer that claims to be some model or names its maker: wrong for a model trained on
    it. The generic forms ("as an AI", "I am a large language model") always count; names come
    from the families chosen."""
    generic = r"\bas an? (?:AI|artificial intelligence)(?: language)?(?: model| assistant)?\b"
    names = "|".join(["AI language model", "large language model", "LLM",
                      *(_literal(m) for m in models)])
    parts = [generic, rf"\bI(?:['’]m| am) (?:an? )?(?:{names})\b"]
    if makers:
        parts.append(r"\b(?:I was|I['’]m|I am)\b[^.!?\n]{0,40}?\b(?:developed|created|trained|"
                     rf"built|made) by (?:{'|'.join(_literal(m) for m in makers)})\b")
    return "|".join(parts)


def _literal(phrase: str) -> str:
    """A phrase as RE2: straight and curly apostrophes match each other and any run of
    whitespace matches a space."""
    pattern = ""
    for char in " ".join(phrase.split()):
        pattern += "['’]" if char in "'’" else r"\s+" if char == " " else re.escape(char)
    return pattern


def phrase_pattern(phrases: list[str] | tuple[str, ...]) -> str:
    """One alternation of ``phrases`` (see ``_literal``)."""
    return "|".join(_literal(p) for p in phrases)


class PhraseSettings(BaseModel):
    """Which phrases the refusal, self-identification and knowledge-cutoff detectors look for:
    shared by ``curate filter`` and ``curate respond``, so both judge an answer alike."""

    model_families: list[str] = Field(
        default_factory=lambda: list(FAMILIES),
        description="Model families whose names, makers and typical phrases are looked for "
        f"({', '.join(FAMILIES)}; all by default; [] for the generic phrases only).")
    refusal_phrases: list[str] = Field(
        default_factory=list, description="refusal: phrases added to the built-in ones "
        "(case-insensitive, in assistant turns).")
    self_identification_phrases: list[str] = Field(
        default_factory=list, description="self_identification: phrases added to the built-in "
        "ones (e.g. your own model's name: 'I am Tulu').")
    knowledge_cutoff_phrases: list[str] = Field(
        default_factory=list, description="knowledge_cutoff: phrases added to the built-in ones.")

    @field_validator("model_families")
    @classmethod
    def _known_families(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(FAMILIES))
        if unknown:
            raise ValueError(f"unknown model families {unknown}: use {', '.join(FAMILIES)}")
        return list(dict.fromkeys(value))

    def phrases(self, reason: str) -> list[str]:
        """The phrase list of ``reason``: built-in, the chosen families', then the config's."""
        families = [FAMILIES[f] for f in self.model_families]
        if reason == REFUSAL:
            return [*REFUSAL_PHRASES, *(p for f in families for p in f.refusal),
                    *self.refusal_phrases]
        if reason == SELF_IDENTIFICATION:
            return [*(p for f in families for p in f.self_identification),
                    *self.self_identification_phrases]
        return [*KNOWLEDGE_CUTOFF_PHRASES, *self.knowledge_cutoff_phrases]

    def pattern(self, reason: str) -> str:
        """The detector of ``reason`` (phrases first, so a detail names the phrase that
        matched)."""
        families = [FAMILIES[f] for f in self.model_families]
        built_in = {
            REFUSAL: REFUSAL_OPENING,
            SELF_IDENTIFICATION: identity_claim([m for f in families for m in f.models],
                                                [m for f in families for m in f.makers]),
            KNOWLEDGE_CUTOFF: KNOWLEDGE_HORIZON,
        }[reason]
        return "|".join(p for p in (phrase_pattern(self.phrases(reason)), built_in) if p)


DETAILS = {REFUSAL: "answer refuses",
           SELF_IDENTIFICATION: "answer claims a model identity or maker",
           KNOWLEDGE_CUTOFF: "answer mentions the model's knowledge cutoff"}


def pattern(reason: str, settings: PhraseSettings | None = None) -> str:
    """The detector of ``reason`` under ``settings`` (default: every family, no extra
    phrases)."""
    return (settings or PhraseSettings()).pattern(reason)


def detect(texts: pa.Array, reason: str, settings: PhraseSettings | None = None
           ) -> pa.BooleanArray:
    """Which of ``texts`` fire ``reason`` (one Arrow regex pass)."""
    return pc.match_substring_regex(texts, pattern(reason, settings), ignore_case=True)
