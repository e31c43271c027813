"""``postmix <stage> <verb>``: the root of the command line. Every verb parses arguments and
calls the library, nothing more. The stage groups (curate, judge, mix, train) live in their own
modules and are imported only when invoked, so ``postmix --help`` and ``--version`` start fast;
library packages never import this package.
"""

from __future__ import annotations

import sys

import typer

from postmix import __version__
from postmix.cli.command import PostmixGroup
from postmix.errors import PostmixError


class RootGroup(PostmixGroup):
    lazy = {
        "ingest": (
            "postmix.cli.toplevel:ingest_command",
            "Convert a public-format dataset into postmix records; bad rows go to a rejects file.",
        ),
        "stats": (
            "postmix.cli.toplevel:stats_command",
            "Rows, sources, turns, role counts and length distributions of a dataset.",
        ),
        "curate": (
            "postmix.cli.curate:app",
            "Filter, dedup and decontaminate datasets; synthesise prompts and responses.",
        ),
        "judge": (
            "postmix.cli.judge:app",
            "Generate, rate and pair completions with an LLM judge.",
        ),
        "mix": ("postmix.cli.mix:app", "Build, version, inspect and export training mixes."),
        "train": ("postmix.cli.train:app", "SFT, DPO and RLVR over TRL on one mix version."),
        "eval": (
            "postmix.cli.eval:eval_command",
            "Score a model on benchmarks, with intervals and a per-item file for each.",
        ),
        "leaderboard": (
            "postmix.cli.leaderboard:leaderboard_command",
            "Scores of mix versions (and their runs) per benchmark, against a baseline version.",
        ),
        "run": (
            "postmix.cli.toplevel:run_command",
            "Run a pipeline recipe; finished stages are cached by content and skipped on re-runs.",
        ),
        "quickstart": (
            "postmix.cli.toplevel:quickstart_command",
            "Run a real pipeline on the bundled sample, offline, on CPU.",
        ),
    }


app = typer.Typer(
    name="postmix",
    cls=RootGroup,
    help="Post-training data toolkit: ingest, curate, judge, mix, train, eval.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"postmix {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    _state["debug"] = debug


def _error(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    # escaped: a path or pattern in the message may hold [brackets] rich would take for markup
    Console(stderr=True).print(
        f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True
    )


INTERRUPTED = ("interrupted: nothing unfinished was published under an output's name; finished "
               "rows stay in .partial files and model answers in the request cache, so a re-run "
               "picks up from there")


def _interrupted(exc: BaseException | None) -> bool:
    """Whether ``exc`` is, or was caused by, Ctrl-C: typer turns it into ``Exit(130)``, and one
    that lands inside pydantic's serializer comes out as a ``PydanticSerializationError``."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, KeyboardInterrupt):
            return True
        # pydantic-core re-raises an interrupt inside a serializer as its own error, by message
        if type(exc).__name__ == "PydanticSerializationError" and "KeyboardInterrupt" in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def main() -> None:
    """Console entry point: user errors in one line, tracebacks only with --debug."""
    debug = "--debug" in sys.argv
    try:
        app()
    except PostmixError as exc:
        if _state["debug"] or debug:
            raise
        _error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo(INTERRUPTED, err=True)
        sys.exit(130)
    except SystemExit as exc:
        if exc.code == 130 and _interrupted(exc.__context__):
            typer.echo(INTERRUPTED, err=True)
        raise
    except OSError as exc:
        # a path that cannot be written or read (a file where a folder should be)
        if _state["debug"] or debug:
            raise
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        _error((exc.strerror or str(exc)) + where)
        sys.exit(2)
    except Exception as exc:
        if not _interrupted(exc) or _state["debug"] or debug:
            raise
        typer.echo(INTERRUPTED, err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
