"""The click classes every postmix verb and group is made of: plain help (``SOURCE`` in usage
lines, a value word only where an option takes a value, so ``--no-cache`` never reads as taking
one), deprecated spellings rewritten with a one-line warning, and groups that import a verb
module only when that verb is asked for (``postmix --help`` stays fast).

Typer builds these from the verb functions; the help layout is written here rather than left to
typer's own renderer so it reads the same on every typer version.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

# The old spellings accepted for one release; each use prints one warning line on stderr.
DEPRECATED = {
    "--pool": "--endpoints",
    "--judge": "--endpoints",
    "--models": "--model",
    "--model-name": "--model",
    "--cache-dir": "--cache",
    "--workdir": "--output",
    "-w": "-o",
    "--case-sensitive": "--no-lowercase",
    "--keep-punctuation": "--no-strip-punctuation",
    "--aspects": "--aspect",
    "--filters": "--filter",
}

_TYPE_WORDS = {str: "TEXT", int: "INTEGER", float: "FLOAT", Path: "PATH", bool: ""}


def warn_deprecated(old: str, new: str) -> None:
    typer.echo(f"warning: {old} is deprecated; use {new}", err=True)


def rewrite_deprecated(args: list[str], known: set[str], renames: dict[str, str]) -> list[str]:
    """``args`` with old flag spellings replaced by the new ones the command knows (a flag the
    command still declares itself is left alone), one warning per old spelling."""
    done: set[str] = set()
    out: list[str] = []
    tail: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, tail = args[:cut], args[cut:]
    # before --model: an endpoints file given as --model FILE, the old synth/respond spelling
    if "--endpoints" in known and not any(
        a.split("=")[0] in ("--endpoints", "--pool", "--judge") for a in args
    ):
        for i, arg in enumerate(args[:-1]):
            if (
                arg == "--model"
                and Path(args[i + 1]).is_file()
                and args[i + 1].endswith((".yaml", ".yml", ".json"))
            ):
                warn_deprecated("--model FILE (the endpoints file)", "--endpoints FILE")
                args = [*args[:i], "--endpoints", *args[i + 1 :]]
                break
    for arg in args:
        flag, eq, value = arg.partition("=")
        new = renames.get(flag)
        if new is not None and flag not in known and new.split("/")[0] in known:
            if flag not in done:
                warn_deprecated(flag, new)
                done.add(flag)
            arg = new + eq + value
        out.append(arg)
    return out + tail


def _type_word(param: Any) -> str:
    if getattr(param, "metavar", None) is not None:
        return param.metavar
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""
    descriptor = getattr(param, "type_descriptor", None)  # typer >= 0.20 keeps the annotation
    annotation = getattr(descriptor, "annotation", None)
    if annotation in _TYPE_WORDS:
        return _TYPE_WORDS[annotation]
    name = getattr(getattr(param, "type", None), "name", "") or "text"
    return name.upper()


def _default_text(param: Any) -> str:
    if param.show_default is False or param.required:
        return ""
    if isinstance(param.show_default, str):
        return param.show_default
    default = param.default
    if callable(default) or default in (None, False, (), []):
        return ""
    if getattr(param, "is_flag", False) and getattr(param, "secondary_opts", None):
        return param.opts[0] if default else param.secondary_opts[0]
    return str(default)


def _option_record(param: Any) -> tuple[str, str]:
    names = ", ".join(sorted(param.opts, key=lambda o: (o.startswith("--"), o)))
    if param.secondary_opts:
        names += " / " + ", ".join(param.secondary_opts)
    word = _type_word(param)
    if word:
        names += f" {word}"
    extra = []
    default = _default_text(param)
    if default:
        extra.append(f"default: {default}")
    if param.required:
        extra.append("required")
    if getattr(param, "multiple", False):
        extra.append("repeatable")
    text = param.help or ""
    return names, (f"{text}  [{'; '.join(extra)}]" if extra else text)


class PostmixCommand(TyperCommand):
    """A verb: plain help, and the deprecated spellings in ``DEPRECATED`` (plus ``renames``)."""

    renames: dict[str, str] = {}

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        known = {o for p in self.params for o in (*p.opts, *getattr(p, "secondary_opts", ()))}
        args = rewrite_deprecated(list(args), known, {**DEPRECATED, **self.renames})
        return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.params:
            if param.param_type_name != "argument" or getattr(param, "hidden", False):
                continue
            name = (param.metavar or param.name or "").upper()
            name = name if param.required else f"[{name}]"
            pieces.append(name + ("..." if param.nargs != 1 else ""))
        return pieces

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.format_usage(ctx, formatter)
        self.format_help_text(ctx, formatter)
        visible = [p for p in self.get_params(ctx) if not getattr(p, "hidden", False)]
        arguments = [
            ((p.metavar or p.name or "").upper(), p.help or "")
            for p in visible
            if p.param_type_name == "argument"
        ]
        options = [_option_record(p) for p in visible if p.param_type_name == "option"]
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        self.format_epilog(ctx, formatter)


def with_renames(renames: dict[str, str]) -> type[PostmixCommand]:
    """A command class with extra old -> new spellings of its own (``mix export --format``)."""
    return type("PostmixCommand", (PostmixCommand,), {"renames": renames})


class PostmixGroup(TyperGroup):
    """A group of verbs. ``lazy`` names verbs (or sub-groups) made on first use:
    name -> ("module:attribute", short help); the attribute is a ``typer.Typer``, or a
    function returning a click command."""

    lazy: dict[str, tuple[str, str]] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in self.lazy if n not in self.commands)]

    def get_command(self, ctx: Any, name: str) -> Any:
        command = super().get_command(ctx, name)
        if command is None and name in self.lazy:
            command = load_command(self.lazy[name][0])
            command.name = name
            self.commands[name] = command
        return command

    def listed_help(self, ctx: Any, name: str, limit: int) -> str:
        if name in self.lazy and name not in self.commands:  # listing must not import the verb
            return self.lazy[name][1]
        command = self.get_command(ctx, name)
        return command.get_short_help_str(limit) if command is not None else ""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [self.options_metavar or "[OPTIONS]", "COMMAND [ARGS]..."]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.format_usage(ctx, formatter)
        self.format_help_text(ctx, formatter)
        options = [
            _option_record(p)
            for p in self.get_params(ctx)
            if p.param_type_name == "option" and not getattr(p, "hidden", False)
        ]
        with formatter.section("Options"):
            formatter.write_dl(options)
        names = [
            n for n in self.list_commands(ctx) if not getattr(self.commands.get(n), "hidden", False)
        ]
        if names:
            limit = 200  # write_dl wraps; a cut sentence reads worse than two lines
            with formatter.section("Commands"):
                formatter.write_dl([(n, self.listed_help(ctx, n, limit)) for n in names])
        self.format_epilog(ctx, formatter)


def load_command(ref: str) -> Any:
    """The click command behind ``"module:attribute"`` (a Typer app or a command factory)."""
    module_name, _, attribute = ref.partition(":")
    target = getattr(importlib.import_module(module_name), attribute)
    if isinstance(target, typer.Typer):
        return typer.main.get_command(target)
    return target()


def one_command(
    function: Callable[..., Any],
    name: str,
    *,
    help: str | None = None,
    cls: type[PostmixCommand] = PostmixCommand,
) -> Any:
    """The click command typer makes of ``function`` (for verbs built at run time)."""
    app = typer.Typer(add_completion=False)
    app.command(name, help=help, cls=cls)(function)
    command = typer.main.get_command(app)
    command.name = name
    return command
