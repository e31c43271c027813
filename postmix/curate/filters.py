"""Quality filters: ``apply_filters(ds, config) -> Verdicts``.

Every turn of every row (sft ``messages``; preference ``prompt``/``chosen``/``rejected``; rlvr
``prompt``; completion ``prompt`` and ``response``) goes into one flat Arrow table, and each rule
runs over that table at once: Arrow compute for lengths and regular expressions, NumPy for role
order, compiled kernels (``postmix.curate.repetition``) for repeated lines, n-grams and
sentences. The built-in regex rules share one screen per batch (``_screen``), so the column is
read once for all of them. Python touches only the rows that fail, to write the detail (which
phrase, which turn).

A rejected row's reason is the first failing rule in ``config.rules`` order (then the custom regex
rules in file order); the report also counts every rule that fired, so a rule whose rows were
all taken by an earlier one is still visible.

Built-in rules (rule name = reason code):

``empty_turn``           a turn that is empty or only whitespace
``min_chars``/``max_chars``   a turn shorter/longer than ``min_chars``/``max_chars`` characters
``min_tokens``/``max_tokens`` the same in tokens of ``tokenizer``
``max_turns``            more than ``max_turns`` messages in a conversation
``role_order``           system anywhere but first; user/assistant not alternating (tool turns
                         may follow an assistant turn and precede the next one); a conversation not
                         starting with user; not ending with assistant (``require_final_assistant``)
                         or, for prompts (rlvr, preference prompt), not ending with user
``leaked_tokens``        a chat-template or reasoning token outside code spans ("<|im_end|>",
                         "<|eot_id|>", "[INST]", "<think>"; ``postmix.curate.hygiene``)
``think_format``         the last answer of a conversation is not one ``<think>...</think>`` block
                         at the start followed by an answer (reasoning data only; off by default)
``refusal``              a refusal/boilerplate phrase in an assistant turn ("As an AI language
                         model") or a turn opening with a refusal (``postmix.curate.refusals``)
``self_identification``  a model naming itself or its maker in an assistant turn ("I am ChatGPT",
                         "trained by OpenAI"), as Tulu 3 removed (``postmix.curate.refusals``)
``knowledge_cutoff``     an assistant turn talking about its training horizon ("as of my last
                         update", "my training data goes up to 2023")
``repeated_lines``       a turn whose lines (>= ``min_line_chars``) are more than
                         ``max_duplicate_line_fraction`` duplicates of earlier lines (Gopher: 0.3)
``repeated_ngrams``      a turn of >= ``repetition_min_words`` words where more than
                         ``max_repeated_ngram_fraction`` of the words lie in a word
                         ``repetition_ngram``-gram that occurs twice or more in it: generation loops
``repeated_sentences``   a turn in which one sentence of >= ``min_sentence_chars`` occurs more than
                         ``max_sentence_repeats`` times
``script_share``         a turn whose share of letters in a script is outside a ``script_limits``
                         bound (e.g. CJK letters in an English set); off unless limits are given
``language``             a turn whose language (fastText lid.176, ``postmix.curate.langid``) is not
                         in ``keep_languages``; off unless languages are given
``mojibake``             text decoded with the wrong codec ("Ã©", "â€™", "Â "), U+FFFD, C1 controls
``control_chars``        ASCII control characters other than tab, newline, carriage return
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from postmix import yamlfile
from postmix.curate import hygiene, langid, refusals, repetition
from postmix.curate.executor import LocalExecutor
from postmix.curate.runner import StageOutput, Verdicts
from postmix.curate.steps import STEPS
from postmix.errors import ConfigError
from postmix.progress import progress_bar
from postmix.schemas import ROLES, kind_of_columns

BUILTIN_RULES: tuple[str, ...] = (
    "empty_turn", "min_chars", "max_chars", "min_tokens", "max_tokens", "max_turns", "role_order",
    "leaked_tokens", "think_format", "refusal", "self_identification", "knowledge_cutoff",
    "repeated_lines", "repeated_ngrams", "repeated_sentences", "script_share", "language",
    "mojibake", "control_chars",
)
# language and script_share do nothing until keep_languages / script_limits say what to keep (so
# a dumped default config reads back as it was)
DEFAULT_RULES: tuple[str, ...] = (
    "empty_turn", "role_order", "max_chars", "control_chars", "mojibake", "leaked_tokens",
    "refusal", "self_identification", "knowledge_cutoff", "repeated_lines", "repeated_ngrams",
    "repeated_sentences", "script_share", "language",
)
_NEEDS = {"language": "keep_languages", "script_share": "script_limits"}
MOJIBAKE_PATTERN = r"Ã[\x80-\xbf]|Â[\x80-\xbf]|â€|[\x80-\x9f]|\x{FFFD}"
_MOJIBAKE_PY = r"Ã[\x80-\xbf]|Â[\x80-\xbf]|â€|[\x80-\x9f]|\ufffd"
CONTROL_PATTERN = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
# A turn can match MOJIBAKE_PATTERN or CONTROL_PATTERN only if its UTF-8 holds one of these
# bytes: U+0080-U+00BF (alone or after "Ã"/"Â") encode as C2 xx, "Ã", "Â" and "â" as C3 xx,
# U+FFFD as EF BF BD, and the ASCII controls are themselves (never part of a longer sequence).
_BYTE_SCREEN = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, 0xC2, 0xC3,
                      0xEF])
_DETAIL_CHARS = 80


class RegexRule(BaseModel):
    """A custom rule: a row fails when ``pattern`` is found in one of its ``roles`` turns."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Rule name, shown in the report.")
    pattern: str = Field(min_length=1, description="Regular expression (RE2 syntax runs vectorised;"
                         " other Python syntax, e.g. look-arounds, runs per turn).")
    roles: list[str] = Field(default_factory=lambda: list(ROLES), description="Turns searched.")
    reason: str | None = Field(None, description="Reason code of rejected rows; default: the name.")
    ignore_case: bool = Field(False, description="Case-insensitive match.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad regular expression {value!r}: {exc}") from None
        return value

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(ROLES))
        if unknown:
            raise ValueError(f"unknown roles {unknown}: use {', '.join(ROLES)}")
        return value

    @property
    def code(self) -> str:
        return self.reason or self.name


class ScriptLimit(BaseModel):
    """A bound on the share of a turn's letters written in one script (``script_share``)."""

    model_config = ConfigDict(extra="forbid")

    script: Literal[tuple(hygiene.SCRIPTS)] = Field(  # type: ignore[valid-type]
        description=f"Script: {', '.join(hygiene.SCRIPTS)} (cjk = Han, kana and Hangul).")
    min_share: float | None = Field(None, ge=0.0, le=1.0, description="Fewest share allowed.")
    max_share: float | None = Field(None, ge=0.0, le=1.0, description="Largest share allowed.")
    roles: list[str] = Field(default_factory=lambda: ["assistant"], description="Turns judged.")
    min_letters: int = Field(20, ge=1, description="Turns with fewer letters are not judged.")

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(ROLES))
        if unknown:
            raise ValueError(f"unknown roles {unknown}: use {', '.join(ROLES)}")
        return value

    @model_validator(mode="after")
    def _bounded(self) -> ScriptLimit:
        if self.min_share is None and self.max_share is None:
            raise ValueError(f"script limit {self.script!r} needs min_share or max_share")
        return self


class FilterConfig(refusals.PhraseSettings):
    """Settings of ``postmix curate filter``. Every default is chosen to remove clear defects, not
    to judge quality: tighten them per dataset. The phrase settings (``model_families``,
    ``refusal_phrases``, ...) are ``curate respond``'s too."""

    model_config = ConfigDict(extra="forbid")

    rules: list[str] = Field(default_factory=lambda: list(DEFAULT_RULES),
                             description="Built-in rules to run, in priority order (the first "
                             "failing one is the reason).")
    custom: list[RegexRule] = Field(
        default_factory=list, description="Custom regex rules, run after the built-ins."
    )
    min_chars: int = Field(
        1, ge=0, description="min_chars: fewest characters per turn (whitespace counts)."
    )
    max_chars: int = Field(100_000, ge=1, description="max_chars: most characters per turn; catches"
                           " dumps, not long answers.")
    tokenizer: str | None = Field(
        None, description="Tokenizer (path or Hub name) for min_tokens/max_tokens."
    )
    min_tokens: int = Field(1, ge=0, description="min_tokens: fewest tokens per turn.")
    max_tokens: int = Field(8192, ge=1, description="max_tokens: most tokens per turn.")
    max_turns: int = Field(
        64, ge=1, description="max_turns: most messages per conversation, system included."
    )
    require_final_assistant: bool = Field(
        True, description="role_order: an SFT conversation must end with the assistant (there is "
        "nothing to learn after the last answer).")
    phrase_roles: list[str] = Field(
        default_factory=lambda: ["assistant"],
        description="Turns searched by refusal, self_identification and knowledge_cutoff.",
    )
    leaked_token_roles: list[str] = Field(
        default_factory=lambda: ["assistant"], description="Turns searched by leaked_tokens.")
    think_allow_empty: bool = Field(
        False, description="think_format: accept an empty <think></think> block (a hybrid "
        "model's no-thinking mode).")
    max_duplicate_line_fraction: float = Field(
        0.3, ge=0.0, le=1.0, description="repeated_lines: Gopher's 0.3."
    )
    min_line_chars: int = Field(
        10, ge=1, description="repeated_lines: shorter lines ('}', '---') are not counted."
    )
    min_lines: int = Field(
        4, ge=2, description="repeated_lines: turns with fewer counted lines are not judged."
    )
    repetition_ngram: int = Field(10, ge=2, description="repeated_ngrams: words per n-gram.")
    max_repeated_ngram_fraction: float = Field(
        0.5, ge=0.0, le=1.0, description="repeated_ngrams: share of words in repeated n-grams."
    )
    repetition_min_words: int = Field(
        50, ge=2, description="repeated_ngrams: shorter turns are not judged."
    )
    max_sentence_repeats: int = Field(
        3, ge=1, description="repeated_sentences: most times one sentence may occur in a turn.")
    min_sentence_chars: int = Field(
        20, ge=1, description="repeated_sentences: shorter sentences ('Thank you.') are not "
        "counted.")
    repetition_roles: list[str] = Field(
        default_factory=lambda: ["assistant"],
        description="Turns judged by repeated_lines, repeated_ngrams and repeated_sentences.",
    )
    keep_languages: list[str] = Field(
        default_factory=list, description="language: codes to keep (ISO 639-1: en, zh, de, ...); "
        "[] = the rule is off. Needs postmix[langid].")
    language_roles: list[str] = Field(
        default_factory=lambda: ["user", "assistant"], description="Turns judged by language.")
    language_min_chars: int = Field(
        20, ge=1, description="language: shorter turns (code spans removed) are not judged.")
    language_min_confidence: float = Field(
        0.5, ge=0.0, le=1.0, description="language: a turn fires only when the detector gives "
        "its other language at least this probability.")
    language_chars: int = Field(
        500, ge=20, description="language: characters of each turn the detector reads.")
    script_limits: list[ScriptLimit] = Field(
        default_factory=list, description="script_share: bounds, e.g. {script: cjk, max_share: "
        "0.1}; [] = the rule is off.")
    batch_size: int = Field(65536, ge=1, description="Rows per batch (bounds memory).")
    examples: int = Field(3, ge=0, description="Rejected rows listed per rule in the report.")

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, value: list[str]) -> list[str]:
        unknown = [r for r in value if r not in BUILTIN_RULES]
        if unknown:
            raise ValueError(f"unknown rule {unknown[0]!r}: use {', '.join(BUILTIN_RULES)}, or a "
                             "custom regex rule")
        return list(dict.fromkeys(value))

    @field_validator("phrase_roles", "repetition_roles", "leaked_token_roles", "language_roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(ROLES))
        if unknown:
            raise ValueError(f"unknown roles {unknown}: use {', '.join(ROLES)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FilterConfig:
        if {"min_tokens", "max_tokens"} & set(self.rules) and not self.tokenizer:
            raise ValueError("min_tokens/max_tokens need a tokenizer (path or Hub name)")
        for rule, field in _NEEDS.items():
            if getattr(self, field) and rule not in self.rules:
                raise ValueError(f"{field} is set but rule {rule!r} is not in rules: add it")
        codes = [*self.rules, *(c.code for c in self.custom)]
        if len(set(codes)) != len(codes):
            raise ValueError(f"rule names / reason codes must be unique, got {codes}")
        return self

    def rule_codes(self) -> list[str]:
        return [*self.rules, *(c.code for c in self.custom)]


def load_filter_config(path: str | Path, **overrides: Any) -> FilterConfig:
    """A ``FilterConfig`` from YAML (a mapping of its fields; a bare list = custom rules)."""
    from pydantic import ValidationError

    from postmix.io.errors_text import one_line

    data = yamlfile.read_yaml(path, "rules file", hint="check the path")
    if data is None:
        data = {}
    if isinstance(data, list):
        data = {"custom": data}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of filter settings or a list of regex rules")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return FilterConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"bad filter rules in {path}: {one_line(exc)}") from None


# ---------------------------------------------------------------- the turn table


_PARTS = {
    "sft": ("messages",),
    "preference": ("prompt", "chosen", "rejected"),
    "rlvr": ("prompt",),
    "completion": ("prompt", "response"),
}
# role_order sequences: parts joined, and whether they end with an answer (True) or a prompt.
_SEQUENCES = {
    "sft": ((("messages",), True),),
    "preference": ((("prompt", "chosen"), True), (("prompt", "rejected"), True)),
    "rlvr": ((("prompt",), False),),
    "completion": ((("prompt", "response"), True),),
}
# system 0, user 1, assistant 2, tool 3
_ROLE_CODE = {role: code for code, role in enumerate(ROLES)}
_UNKNOWN_ROLE = len(ROLES)
# _ALLOWED[prev, cur]: which role may follow which inside one conversation
_ALLOWED = np.zeros((len(ROLES) + 1, len(ROLES) + 1), dtype=bool)
for _prev, _cur in (("system", "user"), ("user", "assistant"), ("assistant", "user"),
                    ("assistant", "tool"), ("tool", "tool"), ("tool", "assistant")):
    _ALLOWED[_ROLE_CODE[_prev], _ROLE_CODE[_cur]] = True


@dataclass
class Turns:
    """Every turn of a batch: its row, part (index into the kind's parts), position in the part,
    role code and text."""

    row: np.ndarray
    part: np.ndarray
    position: np.ndarray
    role: np.ndarray
    content: pa.Array  # large_string, nulls as ""
    parts: tuple[str, ...]
    # per batch, shared by the rules: the turns of a role set, the regex screen
    _memo: dict[Any, Any] = dataclasses.field(default_factory=dict, repr=False)

    def roles_in(self, roles: list[str]) -> np.ndarray:
        return np.isin(self.role, [_ROLE_CODE[r] for r in roles])

    def of_roles(self, roles: list[str]) -> tuple[np.ndarray, pa.Array]:
        """(indices, texts) of the turns in ``roles``, taken once per batch and role set."""
        key = ("roles", frozenset(roles))
        if key not in self._memo:
            judged = np.flatnonzero(self.roles_in(roles))
            texts = self.content if len(judged) == len(self.row) else self.content.take(judged)
            self._memo[key] = judged, texts
        return self._memo[key]

    def describe(self, turn: int) -> str:
        part = self.parts[self.part[turn]]
        where = "" if part == "messages" else f"{part} "
        return (f"{where}turn {int(self.position[turn])} "
                f"({ROLES[self.role[turn]] if self.role[turn] < len(ROLES) else '?'})")

    def text(self, turn: int) -> str:
        return self.content[turn].as_py()


def _column(table: pa.Table, name: str) -> pa.Array:
    column = table.column(name)
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def turn_table(table: pa.Table, kind: str) -> Turns:
    rows, parts, positions, roles, contents = [], [], [], [], []
    for p, name in enumerate(_PARTS[kind]):
        column = _column(table, name)
        if name == "response":  # a completion's response is one assistant turn
            n = len(column)
            rows.append(np.arange(n))
            positions.append(np.zeros(n, dtype=np.int64))
            roles.append(np.full(n, _ROLE_CODE["assistant"], dtype=np.int64))
            contents.append(column.cast(pa.large_string()).fill_null(""))
        else:
            flat = pc.list_flatten(column)
            parent = pc.list_parent_indices(column).to_numpy(zero_copy_only=False).astype(np.int64)
            # list_flatten skips null lists, so positions come from each parent's first flat index
            first = np.zeros(len(column), dtype=np.int64)
            if len(parent):
                seen = np.r_[True, parent[1:] != parent[:-1]]
                first[parent[seen]] = np.flatnonzero(seen)
            rows.append(parent)
            positions.append(np.arange(len(parent)) - first[parent])
            role_index = pc.index_in(pc.struct_field(flat, "role"), value_set=pa.array(list(ROLES)))
            roles.append(
                role_index.fill_null(_UNKNOWN_ROLE).to_numpy(zero_copy_only=False).astype(np.int64)
            )
            contents.append(pc.struct_field(flat, "content").cast(pa.large_string()).fill_null(""))
        parts.append(np.full(len(rows[-1]), p, dtype=np.int64))
    row, part, position, role = (np.concatenate(x) for x in (rows, parts, positions, roles))
    content = pa.concat_arrays(contents) if contents else pa.array([], pa.large_string())
    order = np.lexsort((position, part, row))
    if (order == np.arange(len(order))).all():  # sft rows arrive in order: no copy of the text
        return Turns(row, part, position, role, content, _PARTS[kind])
    return Turns(row[order], part[order], position[order], role[order],
                 content.take(pa.array(order)), _PARTS[kind])


# ---------------------------------------------------------------- rules


@dataclass
class RuleResult:
    """``fired[i]``: row ``i`` fails; ``detail(i)`` says why (called only for rejected rows)."""

    fired: np.ndarray
    detail: Callable[[int], str]


def _first_turn(turns: Turns, turn_mask: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(row fired, first failing turn of each row or -1)."""
    first = np.full(n, -1, dtype=np.int64)
    failing = np.flatnonzero(turn_mask)[::-1]  # reversed, so the earliest turn is written last
    first[turns.row[failing]] = failing
    return first >= 0, first


def _turn_rule(
    turns: Turns, turn_mask: np.ndarray, n: int, say: Callable[[int], str]
) -> RuleResult:
    fired, first = _first_turn(turns, turn_mask, n)
    return RuleResult(fired, lambda row: f"{turns.describe(first[row])}: {say(first[row])}")


def _clip(text: str) -> str:
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "…"


def _regex_spec(rule: str, config: FilterConfig) -> tuple[str, bool, list[str] | None] | None:
    """(RE2 pattern, ignore case, roles searched; None = every role) of a built-in regex rule."""
    if rule in refusals.REASONS:
        return config.pattern(rule), True, config.phrase_roles
    if rule == "leaked_tokens":  # with think_format on, the think tags are that rule's to judge
        return (hygiene.SPECIAL_TOKENS + ("" if "think_format" in config.rules
                                          else "|" + hygiene.THINK_TAGS),
                False, config.leaked_token_roles)
    if rule == "mojibake":
        return MOJIBAKE_PATTERN, False, None
    if rule == "control_chars":
        return CONTROL_PATTERN, False, None
    return None


def _screen(turns: Turns, config: FilterConfig, rule: str) -> np.ndarray:
    """Turns that ``rule`` (a built-in regex rule) can match, found for all the regex rules of
    ``config`` at once: ``mojibake`` and ``control_chars`` need one of ``_BYTE_SCREEN``'s bytes
    (one byte count over the column), the phrase and token rules one RE2 pass of their
    alternation (it matches where one of its branches does). Each rule then runs its own
    pattern on these few turns only and finds exactly what it would have found alone."""
    if rule in ("mojibake", "control_chars"):
        if "bytes" not in turns._memo:
            turns._memo["bytes"] = repetition.count_bytes(turns.content, _BYTE_SCREEN) > 0
        return turns._memo["bytes"]
    if "phrases" not in turns._memo:
        specs = [spec for r in config.rules if r not in ("mojibake", "control_chars")
                 and (spec := _regex_spec(r, config))]
        screened = np.ones(len(turns.row), dtype=bool)
        if len(specs) > 1:
            roles = sorted({role for _, _, r in specs for role in r})
            judged, texts = turns.of_roles(roles)
            either = "|".join(f"(?{'i' if case else ''}:{p})" for p, case, _ in specs)
            screened[:] = False
            screened[judged] = pc.match_substring_regex(texts, either).fill_null(False).to_numpy(
                zero_copy_only=False)
        turns._memo["phrases"] = screened
    return turns._memo["phrases"]


def _regex_rule(turns: Turns, n: int, pattern: str, python_pattern: str, roles: list[str] | None,
                ignore_case: bool, screened: np.ndarray | None = None) -> RuleResult:
    """``screened``: the only turns that can match (``_screen``); None: every turn."""
    in_roles = turns.roles_in(roles) if roles is not None else np.ones(len(turns.row), dtype=bool)
    if screened is not None:
        in_roles &= screened
    candidates = np.flatnonzero(in_roles)
    mask = np.zeros(len(turns.row), dtype=bool)
    compiled = re.compile(python_pattern, re.IGNORECASE if ignore_case else 0)
    if len(candidates):
        texts = turns.content.take(pa.array(candidates))
        try:
            hits = pc.match_substring_regex(texts, pattern, ignore_case=ignore_case)
            mask[candidates] = hits.fill_null(False).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:  # RE2 cannot run this pattern (look-around, back-reference)
            mask[candidates] = [compiled.search(t) is not None for t in texts.to_pylist()]

    def say(turn: int) -> str:
        match = compiled.search(turns.text(turn))
        return f"matched {_clip(match.group(0))!r}" if match else "matched"

    return _turn_rule(turns, mask, n, say)


def _repeated_lines(turns: Turns, n: int, config: FilterConfig) -> RuleResult:
    judged, texts = turns.of_roles(config.repetition_roles)
    fraction = np.zeros(len(turns.row))
    if len(judged):
        fraction[judged] = repetition.duplicate_line_fraction(texts, config.min_line_chars,
                                                              config.min_lines)
    mask = fraction > config.max_duplicate_line_fraction
    return _turn_rule(turns, mask, n, lambda t: f"{fraction[t]:.0%} of lines repeat")


def _repeated_ngrams(turns: Turns, n: int, config: FilterConfig) -> RuleResult:
    judged, texts = turns.of_roles(config.repetition_roles)
    fraction = np.zeros(len(turns.row))
    if len(judged):
        fraction[judged] = repetition.repeated_ngram_fraction(texts, config.repetition_ngram,
                                                              config.repetition_min_words)
    mask = fraction > config.max_repeated_ngram_fraction
    return _turn_rule(turns, mask, n, lambda t: f"{fraction[t]:.0%} of words in repeated "
                      f"{config.repetition_ngram}-grams")


def _leaked_tokens(turns: Turns, n: int, config: FilterConfig) -> RuleResult:
    pattern, _, roles = _regex_spec("leaked_tokens", config)
    judged = np.flatnonzero(turns.roles_in(roles) & _screen(turns, config, "leaked_tokens"))
    mask = np.zeros(len(turns.row), dtype=bool)
    if len(judged):
        mask[judged] = hygiene.leaked_tokens(turns.content.take(pa.array(judged)), pattern)
    return _turn_rule(turns, mask, n,
                      lambda t: f"leaked {hygiene.first_leak(turns.text(t), pattern)!r}")


def _think_format(turns: Turns, n: int, config: FilterConfig) -> RuleResult:
    """Judges the last assistant turn of each part (sft messages, preference chosen and
    rejected, completion response): the answer the reasoning format is trained on."""
    answers = np.flatnonzero(turns.role == _ROLE_CODE["assistant"])
    problem = np.zeros(len(turns.row), dtype=np.int64)
    if len(answers):
        key = turns.row[answers] * len(turns.parts) + turns.part[answers]
        last = answers[np.r_[key[1:] != key[:-1], True]]  # turns are ordered by row, part
        problem[last] = hygiene.think_problems(turns.content.take(pa.array(last)),
                                               config.think_allow_empty)
    return _turn_rule(turns, problem > 0, n, lambda t: hygiene.THINK_PROBLEMS[int(problem[t])])


def _repeated_sentences(turns: Turns, n: int, config: FilterConfig) -> RuleResult:
    judged, texts = turns.of_roles(config.repetition_roles)
    most = np.zeros(len(turns.row), dtype=np.int64)
    if len(judged):
        most[judged] = repetition.most_repeated_sentence(texts, config.min_sentence_chars,
                                                       config.max_sentence_repeats + 1)

    def say(turn: int) -> str:
        counts = Counter(s for s in hygiene.split_sentences_py(turns.text(turn))
                         if len(s) >= config.min_sentence_chars)
        sentence, times = counts.most_common(1)[0]
        return f"one sentence {times} times: {_clip(sentence)!r}"

    return _turn_rule(turns, most > config.max_sentence_repeats, n, say)


def _script_share(turns: Turns, n: int, config: FilterConfig) -> RuleResult:
    why: dict[int, str] = {}  # a turn's first failing limit
    for limit in config.script_limits:
        judged = np.flatnonzero(turns.roles_in(limit.roles))
        if not len(judged):
            continue
        share, letters = hygiene.script_share(turns.content.take(pa.array(judged)), limit.script)
        for bound, sign in ((limit.min_share, "<"), (limit.max_share, ">")):
            if bound is None:
                continue
            fails = share < bound if sign == "<" else share > bound
            fails &= letters >= limit.min_letters
            for turn, value in zip(judged[fails].tolist(), share[fails].tolist(), strict=True):
                why.setdefault(turn, f"{value:.0%} {limit.script} letters {sign} {bound:.0%}")
    mask = np.zeros(len(turns.row), dtype=bool)
    mask[list(why)] = True
    return _turn_rule(turns, mask, n, lambda t: why[t])


def _language(turns: Turns, n: int, config: FilterConfig) -> RuleResult:
    mask = np.zeros(len(turns.row), dtype=bool)
    found: dict[int, str] = {}
    if config.keep_languages:
        langid.require_detector()
        judged = np.flatnonzero(turns.roles_in(config.language_roles))
        texts = langid.prepare(turns.content.take(pa.array(judged)), config.language_chars)
        long_enough = pc.greater_equal(pc.utf8_length(texts), config.language_min_chars)
        long_enough = long_enough.to_numpy(zero_copy_only=False)
        judged = judged[long_enough]
        languages, scores = langid.detect(texts.filter(pa.array(long_enough)))
        keep = sorted(set(config.keep_languages))
        for turn, language, score in zip(judged.tolist(), languages, scores.tolist(), strict=True):
            if language not in keep and score >= config.language_min_confidence:
                mask[turn] = True
                found[turn] = f"language {language} ({score:.2f}), keeping {', '.join(keep)}"
    return _turn_rule(turns, mask, n, lambda t: found[t])


def _role_order(turns: Turns, n: int, kind: str, config: FilterConfig) -> RuleResult:
    fired = np.zeros(n, dtype=bool)
    problems: dict[int, str] = {}
    for parts, answers in _SEQUENCES[kind]:
        label = "+".join(parts) + " " if kind != "sft" else ""
        part_ids = [turns.parts.index(p) for p in parts]
        # already ordered by row, part, position
        idx = np.flatnonzero(np.isin(turns.part, part_ids))
        row, role = turns.row[idx], turns.role[idx]
        starts = np.r_[True, row[1:] != row[:-1]] if len(row) else np.zeros(0, dtype=bool)
        ends = np.r_[row[1:] != row[:-1], True] if len(row) else np.zeros(0, dtype=bool)
        position = np.arange(len(idx)) - np.maximum.accumulate(
            np.where(starts, np.arange(len(idx)), 0)
        )
        bad = np.zeros(len(idx), dtype=bool)
        why = np.zeros(len(idx), dtype=np.int64)  # 1 bad start, 2 bad transition, 3 bad end
        bad_start = starts & ~np.isin(role, [_ROLE_CODE["system"], _ROLE_CODE["user"]])
        transition = np.zeros(len(idx), dtype=bool)
        transition[1:] = ~starts[1:] & ~_ALLOWED[role[:-1], role[1:]]
        want_last = _ROLE_CODE["assistant"] if answers else _ROLE_CODE["user"]
        check_end = answers and config.require_final_assistant or not answers
        bad_end = ends & (role != want_last) if check_end else np.zeros(len(idx), dtype=bool)
        for code, mask in ((3, bad_end), (2, transition), (1, bad_start)):  # earliest problem wins
            why[mask] = code
            bad |= mask
        found: dict[int, str] = {}
        for k in np.flatnonzero(bad)[::-1].tolist():  # reversed: a row's earliest problem is kept
            prev = ROLES[role[k - 1]] if k and role[k - 1] < len(ROLES) else "?"
            cur = ROLES[role[k]] if role[k] < len(ROLES) else "unknown role"
            found[int(row[k])] = label + {
                1: f"starts with {cur}", 2: f"turn {position[k]}: {cur} after {prev}",
                3: f"ends with {cur}, expected {ROLES[want_last]}"}[int(why[k])]
        present = np.zeros(n, dtype=bool)
        present[row] = True
        found.update({r: f"{label}no turns" for r in np.flatnonzero(~present).tolist()})
        for r, text in found.items():  # an earlier sequence's problem wins
            problems.setdefault(r, text)
            fired[r] = True
    return RuleResult(fired, lambda row: problems[row])


def _max_turns(table: pa.Table, kind: str, n: int, config: FilterConfig) -> RuleResult:
    counts = np.zeros(n, dtype=np.int64)
    for name in _PARTS[kind]:
        if name != "response":
            counts += (pc.list_value_length(_column(table, name)).fill_null(0)
                       .to_numpy(zero_copy_only=False))
    fired = counts > config.max_turns
    return RuleResult(fired, lambda row: f"{counts[row]} turns > {config.max_turns}")


class _TokenCounter:
    """Token counts per turn with a Hugging Face tokenizer, loaded once per run."""

    def __init__(self, name: str):
        try:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(name)
        except Exception as exc:  # missing path, no network, not a tokenizer
            raise ConfigError(f"could not load tokenizer {name!r}: "
                              f"{str(exc).splitlines()[0] if str(exc) else exc} (give a local "
                              "tokenizer folder or a Hub name you can reach)") from None

    def counts(self, texts: pa.Array) -> np.ndarray:
        out = np.zeros(len(texts), dtype=np.int64)
        step = 4096
        for start in range(0, len(texts), step):
            batch = texts.slice(start, step).to_pylist()
            ids = self.tokenizer(batch, add_special_tokens=False)["input_ids"]
            out[start : start + len(batch)] = [len(x) for x in ids]
        return out


def _evaluate(rule: str, table: pa.Table, turns: Turns, kind: str, n: int, config: FilterConfig,
              tokens: _TokenCounter | None) -> RuleResult:
    if rule == "empty_turn":
        mask = pc.equal(pc.utf8_trim_whitespace(turns.content), "").to_numpy(zero_copy_only=False)
        return _turn_rule(turns, mask, n, lambda t: "empty")
    if rule in ("min_chars", "max_chars"):
        length = pc.utf8_length(turns.content).to_numpy(zero_copy_only=False)
        if rule == "min_chars":
            return _turn_rule(turns, length < config.min_chars, n,
                              lambda t: f"{length[t]} chars < {config.min_chars}")
        return _turn_rule(turns, length > config.max_chars, n,
                          lambda t: f"{length[t]} chars > {config.max_chars}")
    if rule in ("min_tokens", "max_tokens"):
        count = tokens.counts(turns.content)
        if rule == "min_tokens":
            return _turn_rule(turns, count < config.min_tokens, n,
                              lambda t: f"{count[t]} tokens < {config.min_tokens}")
        return _turn_rule(turns, count > config.max_tokens, n,
                          lambda t: f"{count[t]} tokens > {config.max_tokens}")
    if rule == "max_turns":
        return _max_turns(table, kind, n, config)
    if rule == "role_order":
        return _role_order(turns, n, kind, config)
    if rule in refusals.REASONS:
        pattern = config.pattern(rule)
        return _regex_rule(turns, n, pattern, pattern, config.phrase_roles, True,
                           _screen(turns, config, rule))
    if rule == "leaked_tokens":
        return _leaked_tokens(turns, n, config)
    if rule == "think_format":
        return _think_format(turns, n, config)
    if rule == "repeated_lines":
        return _repeated_lines(turns, n, config)
    if rule == "repeated_ngrams":
        return _repeated_ngrams(turns, n, config)
    if rule == "repeated_sentences":
        return _repeated_sentences(turns, n, config)
    if rule == "script_share":
        return _script_share(turns, n, config)
    if rule == "language":
        return _language(turns, n, config)
    if rule == "mojibake":
        return _regex_rule(turns, n, MOJIBAKE_PATTERN, _MOJIBAKE_PY, None, False,
                           _screen(turns, config, rule))
    if rule == "control_chars":
        return _regex_rule(turns, n, CONTROL_PATTERN, CONTROL_PATTERN, None, False,
                           _screen(turns, config, rule))
    raise ValueError(rule)  # unreachable: FilterConfig validates rule names


# ---------------------------------------------------------------- the stage


def apply_filters(
    ds: datasets.Dataset, config: FilterConfig | None = None, *, kind: str | None = None
) -> Verdicts:
    """One verdict per row: ``None`` keeps it; otherwise the code of the first failing rule, with
    what matched and where in the detail
    (``turn 3 (assistant): matched 'As an AI language model'``)."""
    config = config or FilterConfig()
    kind = kind or kind_of_columns(ds.column_names)
    if kind is None:
        raise ConfigError("filter needs postmix records: run `postmix ingest` on the data first")
    tokens = (_TokenCounter(config.tokenizer) if {"min_tokens", "max_tokens"} & set(config.rules)
              else None)
    codes = config.rule_codes()
    n_total = len(ds)
    reasons: list[str | None] = [None] * n_total
    details = [""] * n_total
    fired_counts = dict.fromkeys(codes, 0)
    arrow = ds.with_format("arrow")
    with progress_bar("filter", total=n_total) as bar:
        for start in range(0, n_total, config.batch_size):
            table = arrow[start : start + config.batch_size]
            n = len(table)
            turns = turn_table(table, kind)
            decided = np.zeros(n, dtype=bool)
            results: list[tuple[str, RuleResult]] = [
                (rule, _evaluate(rule, table, turns, kind, n, config, tokens))
                for rule in config.rules
            ]
            results += [(custom.code, _regex_rule(turns, n, custom.pattern, custom.pattern,
                                                  custom.roles, custom.ignore_case))
                        for custom in config.custom]
            for code, result in results:
                fired_counts[code] += int(result.fired.sum())
                for row in np.flatnonzero(result.fired & ~decided).tolist():
                    reasons[start + row] = code
                    details[start + row] = result.detail(row)
                decided |= result.fired
            bar.advance(n)
    return Verdicts(reasons, details, _report(ds, reasons, details, codes, fired_counts, config))


def rule_hits(
    ds: datasets.Dataset, config: FilterConfig | None = None, *, kind: str | None = None
) -> dict[str, np.ndarray]:
    """Every rule that fires on each row (not only the first, as ``apply_filters`` reports):
    one bool array per rule code. ``postmix curate tag`` records them as attributes, so a mix
    can filter on them later without running the filter again and without removing any row."""
    config = config or FilterConfig()
    kind = kind or kind_of_columns(ds.column_names)
    if kind is None:
        raise ConfigError("filter rules need postmix records: run `postmix ingest` on the data")
    tokens = (_TokenCounter(config.tokenizer) if {"min_tokens", "max_tokens"} & set(config.rules)
              else None)
    hits = {code: np.zeros(len(ds), dtype=bool) for code in config.rule_codes()}
    arrow = ds.with_format("arrow")
    for start in range(0, len(ds), config.batch_size):
        table = arrow[start : start + config.batch_size]
        n = len(table)
        turns = turn_table(table, kind)
        for rule in config.rules:
            hits[rule][start : start + n] = _evaluate(rule, table, turns, kind, n, config,
                                                      tokens).fired
        for custom in config.custom:
            hits[custom.code][start : start + n] = _regex_rule(
                turns, n, custom.pattern, custom.pattern, custom.roles, custom.ignore_case).fired
    return hits


def _report(ds: datasets.Dataset, reasons: list[str | None], details: list[str], codes: list[str],
            fired: dict[str, int], config: FilterConfig) -> dict[str, Any]:
    rejected = [i for i, r in enumerate(reasons) if r is not None]
    arrow = ds.with_format("arrow")
    sources = arrow["source"].take(pa.array(rejected, pa.int64())).to_pylist() if rejected else []
    ids = arrow["id"].take(pa.array(rejected, pa.int64())).to_pylist() if rejected else []
    per_rule = dict.fromkeys(codes, 0)
    per_source: dict[str, dict[str, int]] = defaultdict(dict)
    examples: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row, source, row_id in zip(rejected, sources, ids, strict=True):
        code = reasons[row]
        per_rule[code] += 1
        per_source[str(source)][code] = per_source[str(source)].get(code, 0) + 1
        if len(examples[code]) < config.examples:
            examples[code].append({"id": row_id, "detail": details[row]})
    return {"rules": codes, "rejected_per_rule": per_rule, "fired_per_rule": fired,
            "rejected_per_source": dict(sorted(per_source.items())), "examples": dict(examples)}


def filter_file(
    source: str | Path,
    output: str | Path,
    config: FilterConfig | None = None,
    *,
    format: str | None = None,
) -> StageOutput:
    """Read ``source``, filter it, write kept rows to ``output`` with rejects and report
    beside it."""
    return LocalExecutor().run_file(
        STEPS["filter"], source, output, config or FilterConfig(), format=format
    )
