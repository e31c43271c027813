"""Turn validation errors into one-line reasons: the rejects files carry them, and config errors
(mix specs, recipes, CLI options) print them.

A config error lists every problem at once, each with its YAML line when the file is known and,
for an unknown key, the nearest known one ("did you mean fraction?"), so one typo-fix round
fixes everything.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError


def loc_text(loc: Iterable[object]) -> str:
    """``sources.0.fraction``; a key with a space, a dot or an unprintable character (``"\\n"``)
    in it is quoted, so a hostile key in a config cannot break the message over lines."""
    return ".".join(repr(p) if isinstance(p, str) and _needs_quotes(p) else str(p) for p in loc)


def _needs_quotes(key: str) -> bool:
    return not key or "." in key or not key.isprintable() or any(c.isspace() for c in key)


def one_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(error_texts(exc))
    text = str(exc).strip().replace("\n", " ")
    return text or type(exc).__name__


def error_texts(
    exc: ValidationError,
    *,
    prefix: tuple[Any, ...] = (),
    lines: dict[tuple, int] | None = None,
    model: type[BaseModel] | None = None,
) -> list[str]:
    """One text per error of ``exc``: ``[line N: ]loc: message[ (did you mean X?)]``. ``prefix``
    is where the validated value sits in a larger document (for ``lines``, the YAML key lines of
    ``yaml_key_lines``); ``model`` supplies the known names for near-miss hints."""
    known = sorted(field_names(model)) if model is not None else []
    texts = []
    for err in exc.errors(include_url=False):
        loc = (*prefix, *err["loc"])
        msg = " ".join(err["msg"].removeprefix("Value error, ").splitlines())
        if err["type"] == "extra_forbidden" and known:
            close = difflib.get_close_matches(str(err["loc"][-1]), known, n=1, cutoff=0.6)
            msg = "unknown key" + (f" (did you mean {close[0]}?)" if close else "")
        where = loc_text(loc)
        text = f"{where}: {msg}" if where else msg
        line = line_of(loc, lines) if lines else None
        texts.append(f"line {line}: {text}" if line else text)
    return texts


class InvalidConfig(ValueError):
    """A config that ``model`` refused: the ValidationError with the model, so whoever reports it
    can add YAML lines and near-miss hints (``error_texts``)."""

    def __init__(self, error: ValidationError, model: type[BaseModel]) -> None:
        super().__init__(one_line(error))
        self.error, self.model = error, model


def checked(model: type[BaseModel], data: Any) -> BaseModel:
    """``model.model_validate(data)``, raising ``InvalidConfig`` instead of a bare
    ValidationError."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidConfig(exc, model) from None


def field_names(model: type[BaseModel], seen: set[type] | None = None) -> set[str]:
    """Every field name of ``model`` and of the models nested in it (the vocabulary of a config)."""
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    names: set[str] = set()
    for name, info in model.model_fields.items():
        names.add(name)
        for nested in _models_in(info.annotation):
            names |= field_names(nested, seen)
    return names


def _models_in(annotation: Any) -> Iterable[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        yield from _models_in(arg)


def yaml_key_lines(text: str) -> dict[tuple, int]:
    """``(key, index, key, ...) -> 1-based line`` of every mapping key and list item in ``text``;
    empty when the text does not parse (the parse error says where instead)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    lines: dict[tuple, int] = {}

    def walk(node: Any, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                here = (*path, key.value)
                lines[here] = key.start_mark.line + 1
                walk(value, here)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines[(*path, index)] = item.start_mark.line + 1
                walk(item, (*path, index))

    if root is not None:
        walk(root, ())
    return lines


def line_of(loc: tuple, lines: dict[tuple, int]) -> int | None:
    """The line of the longest prefix of ``loc`` that the document has."""
    for end in range(len(loc), 0, -1):
        key = tuple(str(p) if not isinstance(p, int) else p for p in loc[:end])
        if key in lines:
            return lines[key]
    return None
