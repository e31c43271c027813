"""Reading other projects' instruction-following ground truth into postmix constraint specs.

Two public formats besides postmix's own specs:

- IFEval's native rows (google-research ``instruction_following_eval``, ``google/IFEval``):
  ``instruction_id_list`` (``"length_constraints:number_words"``, ...) with one ``kwargs`` dict
  per instruction. The Hub copy fills every kwargs dict with every key, mostly ``None``; a
  ``None`` means "not given", as lm-eval reads it.
- RLVR-IFeval's ``ground_truth`` (allenai/RLVR-IFeval, Tulu 3): one JSON object per row with a
  ``func_name`` (open-instruct's ``if_functions``) and its arguments (``N``, ``quantifier``,
  ``keyword_list``...), unused ones ``null``.

Relations become postmix's inclusive ones: IFEval's "less than N" is ``at_most N-1``; RLVR's
"at most N" is ``at_most N``, its "around N" both bounds of open-instruct's tolerance, and its
exact counts (keyword and letter frequency) both ``at_least N`` and ``at_most N``. The specs are
checked by ``postmix.verifiers.ifeval``, whose checkers decide as the official IFEval does.

This module only reshapes dicts; ``ifeval.parse_spec`` validates what it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Spec = dict[str, Any]


class FormatError(ValueError):
    """The ground truth is in none of the known formats, or names an unknown instruction."""


def _relation(relation: str | None, bound: Any, field: str, type_name: str) -> Spec:
    """One IFEval count instruction: "less than N" is at_most N-1, "at least N" at_least N."""
    if relation not in ("less than", "at least"):
        raise FormatError(f"{type_name}: relation must be 'less than' or 'at least', "
                          f"not {relation!r}")
    if not isinstance(bound, int) or isinstance(bound, bool):
        raise FormatError(f"{type_name}: {field} must be an integer, not {bound!r}")
    if relation == "less than":
        return {"relation": "at_most", field: bound - 1}
    return {"relation": "at_least", field: bound}


def _letter(value: Any) -> str:
    if value is not None and not isinstance(value, str):
        raise FormatError(f"keywords:letter_frequency: letter must be a string, not {value!r:.80}")
    return (value or "").strip().lower()


def _keep(*names: str, rename: Mapping[str, str] | None = None) -> Callable[[dict], Spec]:
    def read(kwargs: dict) -> Spec:
        out = {}
        for name in names:
            if name in kwargs:
                out[(rename or {}).get(name, name)] = kwargs[name]
        return out
    return read


# IFEval instruction id -> (postmix type, kwargs -> params)
NATIVE: dict[str, tuple[str, Callable[[dict], Spec]]] = {
    "keywords:existence": ("keywords_include", _keep("keywords")),
    "keywords:frequency": ("keyword_frequency", lambda k: {
        "keyword": k.get("keyword"),
        **_relation(k.get("relation"), k.get("frequency"), "frequency", "keywords:frequency")}),
    "keywords:forbidden_words": ("keywords_forbidden", _keep("forbidden_words")),
    "keywords:letter_frequency": ("letter_frequency", lambda k: {
        "letter": _letter(k.get("letter")),
        **_relation(k.get("let_relation"), k.get("let_frequency"), "let_frequency",
                    "keywords:letter_frequency")}),
    "language:response_language": ("response_language", _keep("language")),
    "length_constraints:number_sentences": ("sentence_count", lambda k: _relation(
        k.get("relation"), k.get("num_sentences"), "num_sentences", "number_sentences")),
    "length_constraints:number_paragraphs": ("paragraph_count", _keep("num_paragraphs")),
    "length_constraints:number_words": ("word_count", lambda k: _relation(
        k.get("relation"), k.get("num_words"), "num_words", "number_words")),
    "length_constraints:nth_paragraph_first_word": (
        "nth_paragraph_first_word", _keep("num_paragraphs", "nth_paragraph", "first_word")),
    "detectable_content:number_placeholders": ("placeholders", _keep("num_placeholders")),
    "detectable_content:postscript": ("postscript", _keep("postscript_marker")),
    "detectable_format:number_bullet_lists": ("bullet_count", _keep("num_bullets")),
    "detectable_format:constrained_response": ("constrained_response", _keep()),
    "detectable_format:number_highlighted_sections": (
        "highlighted_sections", _keep("num_highlights")),
    "detectable_format:multiple_sections": ("sections", _keep(
        "section_spliter", "num_sections", rename={"section_spliter": "section_splitter"})),
    "detectable_format:json_format": ("json_format", _keep()),
    "detectable_format:title": ("title", _keep()),
    "combination:two_responses": ("two_responses", _keep()),
    "combination:repeat_prompt": ("repeat_prompt", _keep("prompt_to_repeat")),
    "startend:end_checker": ("end_phrase", _keep("end_phrase")),
    "startend:quotation": ("quotation", _keep()),
    "change_case:capital_word_frequency": ("capital_word_frequency", lambda k: _relation(
        k.get("capital_relation"), k.get("capital_frequency"), "capital_frequency",
        "capital_word_frequency")),
    "change_case:english_capital": ("uppercase", _keep()),
    "change_case:english_lowercase": ("lowercase", _keep()),
    "punctuation:no_comma": ("no_commas", _keep()),
}


def native_spec(instruction_id: str, kwargs: Mapping[str, Any] | None) -> Spec:
    """The postmix spec of one IFEval instruction and its kwargs."""
    entry = NATIVE.get(instruction_id) if isinstance(instruction_id, str) else None
    if entry is None:
        raise FormatError(f"unknown IFEval instruction {instruction_id!r:.80}")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise FormatError(f"{instruction_id}: kwargs must be an object, not {kwargs!r:.80}")
    type_name, read = entry
    given = {k: v for k, v in (kwargs or {}).items() if v is not None}  # the Hub fills in None
    return {"type": type_name, **read(given)}


def native_specs(instruction_id_list: list[str],
                 kwargs: list[Mapping[str, Any] | None]) -> list[Spec]:
    """The specs of an IFEval row, one per instruction, in order."""
    if not isinstance(instruction_id_list, list) or not isinstance(kwargs, list):
        raise FormatError("instruction_id_list and kwargs must be lists")
    if len(instruction_id_list) != len(kwargs):
        raise FormatError(f"{len(instruction_id_list)} instructions but {len(kwargs)} kwargs")
    return [native_spec(i, k) for i, k in zip(instruction_id_list, kwargs, strict=True)]


def _bounds(n: Any, quantifier: str | None, tolerance: int, field: str) -> list[Spec]:
    if not isinstance(n, int) or isinstance(n, bool):
        raise FormatError(f"N must be an integer, not {n!r}")
    if quantifier == "at least":
        return [{"relation": "at_least", field: n}]
    if quantifier == "at most":
        return [{"relation": "at_most", field: n}]
    if quantifier == "around":  # a lower bound of 0 or less holds anyway
        return ([{"relation": "at_least", field: n - tolerance}] if n - tolerance > 0 else []) + \
            [{"relation": "at_most", field: n + tolerance}]
    if quantifier is None:  # an exact count
        return [{"relation": "at_least", field: n}, {"relation": "at_most", field: n}]
    raise FormatError(f"quantifier must be 'at least', 'at most' or 'around', not {quantifier!r}")


def _around_words(n: Any) -> int:
    return max(round(n * 0.1), 1) if isinstance(n, int) else 0  # open-instruct's ±10%


def _rlvr(gt: dict) -> list[Spec]:
    n, q = gt.get("N"), gt.get("quantifier")
    name = gt.get("func_name")

    def counted(type_name: str, field: str, tolerance: int, **extra: Any) -> list[Spec]:
        return [{"type": type_name, **extra, **b} for b in _bounds(n, q, tolerance, field)]

    readers: dict[str, Callable[[], list[Spec]]] = {
        "verify_keywords": lambda: [
            {"type": "keywords_include", "keywords": gt.get("keyword_list")}],
        "verify_keyword_frequency": lambda: [
            {"type": "keyword_frequency", "keyword": gt.get("word"), **b}
            for b in _bounds(n, None, 0, "frequency")],
        "validate_forbidden_words": lambda: [
            {"type": "keywords_forbidden", "forbidden_words": gt.get("forbidden_words")}],
        "verify_letter_frequency": lambda: [
            {"type": "letter_frequency", "letter": gt.get("letter"), **b}
            for b in _bounds(n, None, 0, "let_frequency")],
        "validate_response_language": lambda: [
            {"type": "response_language", "language": gt.get("language")}],
        "verify_paragraph_count": lambda: [{"type": "paragraph_count", "num_paragraphs": n}],
        "validate_word_constraint": lambda: counted("word_count", "num_words", _around_words(n)),
        "verify_sentence_constraint": lambda: counted("sentence_count", "num_sentences", 1),
        "validate_paragraphs": lambda: [{"type": "nth_paragraph_first_word", "num_paragraphs": n,
                                         "nth_paragraph": gt.get("i"),
                                         "first_word": gt.get("first_word")}],
        "verify_postscript": lambda: [
            {"type": "postscript", "postscript_marker": gt.get("postscript_marker")}],
        "validate_placeholders": lambda: [{"type": "placeholders", "num_placeholders": n}],
        "verify_bullet_points": lambda: [{"type": "bullet_count", "num_bullets": n}],
        "validate_title": lambda: [{"type": "title"}],
        "validate_choice": lambda: [{"type": "constrained_response",
                                     **({"options": gt["options"]} if gt.get("options") else {})}],
        "validate_highlighted_sections": lambda: [
            {"type": "highlighted_sections", "num_highlights": n}],
        "validate_sections": lambda: [{"type": "sections", "num_sections": n,
                                       "section_splitter": gt.get("section_splitter")}],
        "validate_json_format": lambda: [{"type": "json_format"}],
        "validate_repeat_prompt": lambda: [
            {"type": "repeat_prompt", "prompt_to_repeat": gt.get("original_prompt")}],
        "validate_two_responses": lambda: [{"type": "two_responses"}],
        "validate_uppercase": lambda: [{"type": "uppercase"}],
        "validate_lowercase": lambda: [{"type": "lowercase"}],
        "validate_frequency_capital_words": lambda: counted(
            "capital_word_frequency", "capital_frequency", _around_words(n)),
        "validate_end": lambda: [{"type": "end_phrase", "end_phrase": gt.get("end_phrase")}],
        "validate_quotation": lambda: [{"type": "quotation"}],
        "validate_no_commas": lambda: [{"type": "no_commas"}],
    }
    reader = readers.get(name) if isinstance(name, str) else None
    if reader is None:
        raise FormatError(f"unknown RLVR-IFeval func_name {name!r}")
    return [{k: v for k, v in spec.items() if v is not None} for spec in reader()]


def to_specs(value: Any) -> list[Any]:
    """The specs a ground-truth value stands for, whichever of the three formats it is in.

    A postmix spec (a dict with ``type``) or a list of them comes back as a list unchanged;
    IFEval native rows and RLVR-IFeval objects are read as the module docstring says.
    """
    if isinstance(value, list):
        return value
    if not isinstance(value, dict):
        raise FormatError(f"ground truth is neither a spec nor a list of specs: {value!r:.80}")
    if "instruction_id_list" in value:
        ids = value["instruction_id_list"]
        kwargs = value.get("kwargs")
        return native_specs(ids, [{} for _ in ids] if kwargs is None and isinstance(ids, list)
                            else kwargs)
    if "func_name" in value:
        return _rlvr(value)
    return [value]
