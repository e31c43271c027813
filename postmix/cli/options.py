"""Command-line options made from a pydantic config model, and the config made back from them:
one source of truth for names, help texts and defaults, in the spirit of TRL's ``TrlParser``.

Each field becomes one option, named the same way in every verb:

- ``snake_case`` -> ``--kebab-case``; a list field is repeatable and singular (``benchmarks`` ->
  ``--benchmark``; ``--benchmarks`` is still read, with a warning); a value without spaces may
  also list several items with commas (``--aspect helpfulness,honesty``);
- a bool is ``--x/--no-x`` (``use_cache`` -> ``--use-cache/--no-cache``); a ``Literal`` lists its
  choices (``round-robin`` and ``round_robin`` both accepted);
- a nested model is flattened: its fields keep their own names when they collide with nothing
  (``normalise.nfkc`` -> ``--nfkc/--no-nfkc``), an optional block is prefixed (``--lora-r``);
- a dict is a JSON object merged over the default; a ``sampling`` dict also gets
  ``--temperature`` and ``--max-tokens``;
- the cross-verb vocabulary of ``RENAMED`` (``cache_path`` -> ``--cache``).

An option left out is not passed, so the model's default (or a ``--config`` file's value)
stands; a bad value is a one-line ``ConfigError`` naming the option.
"""

from __future__ import annotations

import copy
import inspect
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import typer
from pydantic import BaseModel, ValidationError

from postmix.cli.command import with_renames
from postmix.errors import ConfigError

# Field names whose flag is spelled differently, the same way in every verb.
RENAMED = {"cache_path": "cache", "cache_dir": "cache", "models": "model"}
# Keys of a ``sampling`` dict that get flags of their own: key -> (type, help).
SAMPLING_FLAGS = {
    "temperature": (float, "Sampling temperature"),
    "max_tokens": (int, "Max tokens per answer"),
}
PREFIX = "cfg__"  # generated parameter names, apart from a verb's own


@dataclass(frozen=True)
class FieldOption:
    """One option: the config path it sets, its flag(s), and how its value is read."""

    path: tuple[str, ...]  # ("normalise", "nfkc"); ("sampling", "temperature") for a dict key
    flag: str  # "--nfkc"
    kind: str  # bool | scalar | choice | list | json | key (a key of a dict field)
    annotation: Any
    help: str
    choices: tuple[Any, ...] = ()
    item_model: bool = False  # list items are models/dicts: JSON objects are decoded
    alias: str | None = None  # the plural spelling read with a warning

    @property
    def param(self) -> str:
        return PREFIX + "__".join(self.path)


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _default(field: Any) -> Any:
    if field.default_factory is not None:
        return field.default_factory()
    return None if field.is_required() else field.default


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) if value else ""
    if isinstance(value, dict):
        return json.dumps(value) if value else ""
    return "" if value is None else str(value)


def _help(field: Any, name: str, default: Any, flag: str, kind: str) -> str:
    words = name.removeprefix("use_").replace("_", " ")
    fallback = (
        f"Use the {words} (--no-{words.replace(' ', '-')}: do without)."
        if name.startswith("use_")
        else words.capitalize() + "."
    )
    text = (field.description or fallback).strip()
    if field.is_required():
        return f"{text} [required]"
    if kind == "bool":
        shown = flag if default else "--no-" + flag[2:].removeprefix("use-")
        return f"{text} [default: {shown}]" if default is not None else text
    shown = _shown(default)
    return f"{text} [default: {shown}]" if shown else text


def field_options(model: type[BaseModel], *, exclude: tuple[str, ...] = ()) -> list[FieldOption]:
    """The options of ``model``'s fields (recursively through nested models)."""
    options = _collect(model, (), exclude, prefix="")
    flags = [o.flag for o in options]
    duplicated = sorted({f for f in flags if flags.count(f) > 1})
    if duplicated:
        raise RuntimeError(f"{model.__name__}: two fields give {duplicated}: add them to RENAMED")
    return options


def _collect(
    model: type[BaseModel], at: tuple[str, ...], exclude: tuple[str, ...], prefix: str
) -> list[FieldOption]:
    options: list[FieldOption] = []
    names = set(model.model_fields)
    for name, field in model.model_fields.items():
        if not at and name in exclude:
            continue
        annotation, optional = _strip_optional(field.annotation)
        default = _default(field)
        path = (*at, name)
        if _is_model(annotation):
            nested = prefix + (
                f"{name}-" if optional or set(annotation.model_fields) & names else ""
            )
            options += _collect(annotation, path, (), nested)
            continue
        options += _field(path, name, field, annotation, default, prefix)
    return options


def _field(
    path: tuple[str, ...], name: str, field: Any, annotation: Any, default: Any, prefix: str
) -> list[FieldOption]:
    base = prefix + RENAMED.get(name, name).replace("_", "-")
    origin = get_origin(annotation)
    if annotation is bool:
        flag = "--" + base
        return [FieldOption(path, flag, "bool", bool, _help(field, name, default, flag, "bool"))]
    if origin is Literal:
        choices = get_args(annotation)
        text = _help(field, name, default, "", "choice")
        return [FieldOption(path, "--" + base, "choice", str, text, choices=choices)]
    if origin in (list, tuple, set) or (
        origin in (Union, types.UnionType)
        and any(get_origin(a) is list for a in get_args(annotation))
    ):
        items = [a for a in get_args(annotation) if get_origin(a) is list] or [annotation]
        item = (get_args(items[0]) or (str,))[0]
        singular = (base[:-3] + "y" if base.endswith("ies")
                    else base[:-1] if base.endswith("s") and not base.endswith("ss") else base)
        alias = "--" + base if singular != base else None
        text = _help(field, name, default, "", "list")
        return [
            FieldOption(
                path,
                "--" + singular,
                "list",
                list[str],
                text,
                item_model=_is_model(item) or get_origin(item) is dict,
                alias=alias,
            )
        ]
    if origin is dict or annotation is dict:
        text = _help(field, name, default, "", "json") + " (a JSON object)"
        options = [FieldOption(path, "--" + base, "json", str, text)]
        if name == "sampling":
            for key, (kind, words) in SAMPLING_FLAGS.items():
                shown = (default or {}).get(key)
                extra = f" [default: {shown}]" if shown is not None else ""
                options.append(
                    FieldOption(
                        (*path, key),
                        "--" + prefix + key.replace("_", "-"),
                        "key",
                        kind,
                        f"{words} (sets {name}.{key}).{extra}",
                    )
                )
        return options
    scalar = annotation if annotation in (str, int, float) else str
    return [
        FieldOption(path, "--" + base, "scalar", scalar, _help(field, name, default, "", "scalar"))
    ]


def _metavar(option: FieldOption) -> str:
    if option.kind == "choice":
        return "[" + "|".join(map(str, option.choices)) + "]"
    if option.kind == "json" or (option.kind == "list" and option.item_model):
        return "JSON" if option.kind == "json" else "VALUE"
    if option.path[-1].endswith(("_path", "_dir", "_file")):
        return "PATH"
    return {int: "INTEGER", float: "NUMBER"}.get(option.annotation, "TEXT")


def parameters(
    options: list[FieldOption], short: dict[str, str] | None = None
) -> list[inspect.Parameter]:
    """``inspect.Parameter`` objects typer turns into the options (``short``: flag -> "-x")."""
    short = short or {}
    params = []
    for option in options:
        decls = [option.flag, *([short[option.flag]] if option.flag in short else [])]
        if option.kind == "bool":
            negative = "--no-" + option.flag[2:].removeprefix("use-")
            decls[0] = f"{option.flag}/{negative}"
            annotation: Any = bool | None
            default = typer.Option(None, *decls, help=option.help, show_default=False)
        elif option.kind == "list":
            annotation = list[str] | None
            default = typer.Option(
                None, *decls, help=option.help, show_default=False, metavar=_metavar(option)
            )
        else:
            annotation = option.annotation | None
            default = typer.Option(
                None, *decls, help=option.help, show_default=False, metavar=_metavar(option)
            )
        params.append(
            inspect.Parameter(
                option.param, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
            )
        )
    return params


def aliases(options: list[FieldOption]) -> dict[str, str]:
    """Old plural spellings -> the repeatable singular flag."""
    return {o.alias: o.flag for o in options if o.alias}


def _items(values: list[str], option: FieldOption) -> list[Any]:
    items: list[Any] = []
    for value in values:
        if option.item_model and value.lstrip().startswith(("{", "[")):
            items.append(_json(value, option.flag))
        elif not option.item_model and "," in value and not any(c.isspace() for c in value):
            items += [part for part in value.split(",") if part]
        else:
            items.append(value)
    return items


def _json(value: str, flag: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{flag} must be JSON, e.g. '{{\"top_p\": 0.9}}': {exc.msg}") from None


def _choice(value: str, option: FieldOption) -> Any:
    for candidate in (value, value.replace("-", "_"), value.replace("_", "-")):
        if candidate in option.choices:
            return candidate
    return value  # pydantic names the choices


def _field_default(model: type[BaseModel], path: tuple[str, ...]) -> Any:
    for name in path[:-1]:
        model = _strip_optional(model.model_fields[name].annotation)[0]
    return _default(model.model_fields[path[-1]])


def values_from(
    model: type[BaseModel],
    options: list[FieldOption],
    given: dict[str, Any],
    base: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The config mapping: ``base`` (a config file's fields) with the options given on top."""
    data = copy.deepcopy(base or {})
    for option in options:
        value = given.get(option.param)
        if value is None or (option.kind == "list" and not value):
            continue
        if option.kind == "choice":
            value = _choice(value, option)
        elif option.kind == "list":
            value = _items(value, option)
            value = [] if value == ["none"] else value  # "--filter none": the empty list
        elif option.kind == "json":
            value = _json(value, option.flag)
            if not isinstance(value, dict):
                raise ConfigError(f"{option.flag} must be a JSON object, e.g. '{{\"top_p\": 0.9}}'")
        where = data
        for name in option.path[:-1]:
            if not isinstance(where.get(name), dict):
                default = _field_default(model, option.path[: option.path.index(name) + 1])
                where[name] = dict(default) if isinstance(default, dict) else {}
            where = where[name]
        last = option.path[-1]
        if option.kind == "json":
            current = where.get(last)
            if current is None:
                current = _field_default(model, option.path)
            value = {**(current or {}), **value}
        where[last] = value
    return data


def validate(
    model: type[BaseModel],
    data: dict[str, Any],
    options: list[FieldOption],
    *,
    what: str = "option",
) -> BaseModel:
    """``model`` from ``data``; the first error in one line, naming the option it came from."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = tuple(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        matches = [o for o in options if loc[: len(o.path)] == o.path]
        if matches:
            where = max(matches, key=lambda o: len(o.path)).flag
        elif loc:
            where = ".".join(loc)
        else:
            where = f"bad {what}"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{where}: {message}{more}") from None


def with_config_options(
    function: Callable[..., Any],
    model: type[BaseModel],
    *,
    exclude: tuple[str, ...] = (),
    short: dict[str, str] | None = None,
    extra: list[inspect.Parameter] = (),
    parameter: str = "config_values",
) -> Callable[..., Any]:
    """``function`` with ``model``'s options (and ``extra`` parameters, passed on as keyword
    arguments) added to its signature. The wrapper collects the options' values into one keyword
    argument, ``parameter``: ``(options, given values)``, for ``build``."""
    options = field_options(model, exclude=exclude)
    signature = inspect.signature(function)
    own = [
        p
        for p in signature.parameters.values()
        if p.name != parameter and p.kind is not inspect.Parameter.VAR_KEYWORD
    ] + list(extra)
    taken = {
        d
        for p in own
        if isinstance(p.default, typer.models.OptionInfo)
        for d in (p.default.param_decls or ())
        for d in d.split("/")
    }
    clashes = sorted(taken & {o.flag for o in options})
    if clashes:
        raise RuntimeError(
            f"{function.__name__}: {clashes} are both config fields and its own options"
        )
    hints = typing.get_type_hints(function)
    own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in own]
    generated = parameters(options, short)

    def wrapper(**kwargs: Any) -> Any:
        given = {o.param: kwargs.pop(o.param, None) for o in options}
        return function(**kwargs, **{parameter: (options, given)})

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    wrapper.__signature__ = signature.replace(parameters=[*own, *generated])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in [*own, *generated]}
    wrapper.renames = aliases(options)  # type: ignore[attr-defined]
    return wrapper


def build(
    model: type[BaseModel],
    config_values: tuple[list[FieldOption], dict[str, Any]],
    base: dict[str, Any] | None = None,
    *,
    what: str = "option",
) -> BaseModel:
    """The config from a verb's collected option values (over ``base``)."""
    options, given = config_values
    return validate(model, values_from(model, options, given, base), options, what=what)


def read_config_file(path: str | Path | None) -> dict[str, Any]:
    """A ``--config`` YAML file's mapping of config fields ({} without one)."""
    if path is None:
        return {}
    from postmix import yamlfile

    data = yamlfile.read_yaml(path, "config file") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of config fields")
    return data


def endpoints_option(help: str = "Endpoints YAML of the models to call.") -> Any:
    """``--endpoints FILE``: the one spelling of the endpoints file (``--pool``/``--judge`` and
    synth/respond's ``--model FILE`` are read, with a warning, for one release)."""
    return typer.Option(..., "--endpoints", "-e", help=help, show_default=False)


def config_file_option(
    help: str = "YAML file of config fields; options given here override it.",
) -> Any:
    return typer.Option(None, "--config", "-c", help=help, show_default=False)


def add_verb(
    group: typer.Typer,
    name: str,
    function: Callable[..., Any],
    model: type[BaseModel],
    *,
    short: dict[str, str] | None = None,
    exclude: tuple[str, ...] = (),
) -> None:
    """Register ``function`` on ``group`` as ``name``, with ``model``'s options."""
    wrapped = with_config_options(function, model, short=short, exclude=exclude)
    group.command(name, cls=with_renames(wrapped.renames))(wrapped)
