"""What the verbs print: a report's summary line and the files it wrote, the report as JSON
(``--json``), progress lines, and the output path a verb was given (``--output/-o``, or the old
positional OUT with a deprecation warning). Every verb module prints through here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from postmix.cli.command import warn_deprecated
from postmix.errors import ConfigError

console = Console(stderr=True)
out = Console()

OUTPUT_HELP = "Output .jsonl or .parquet; rejects and report go beside it."
JSON_HELP = "Print the report as JSON instead of the summary."
LEGACY_OUTPUT = typer.Argument(
    None,
    hidden=True,
    show_default=False,
    help="The output as a second positional argument (deprecated).",
)


def output_option(help: str = OUTPUT_HELP, default: Any = None) -> Any:
    return typer.Option(default, "--output", "-o", help=help, show_default=default is not None)


def json_option(help: str = JSON_HELP) -> Any:
    return typer.Option(False, "--json", help=help)


def chosen_output(
    output: Path | None, legacy: Path | None, *, required: bool = True
) -> Path | None:
    """``--output`` or, for one release, the positional OUT it replaces (with a warning)."""
    if legacy is not None:
        if output is not None:
            raise ConfigError(
                f"two outputs given ({legacy} and --output {output}): give --output only"
            )
        warn_deprecated("the positional OUT argument", "--output/-o OUT")
        return Path(legacy)
    if output is None and required:
        raise ConfigError("missing --output/-o: say where the output goes")
    return output


def print_report_summary(report: Any, paths: dict[str, Any], *, as_json: bool = False) -> None:
    if as_json:
        print_json(report.model_dump(mode="json"))
        return
    out.print(f"[bold]{report.summary()}[/bold]")
    for role, path in paths.items():
        if path is not None:
            out.print(f"  {role:8s} {path}")
    for warning in report.details.get("warnings", []):
        typer.secho(f"warning: {warning}", fg="yellow", err=True)


def print_json(value: Any) -> None:
    out.print_json(json.dumps(value, default=str))


def echo_line(line: str) -> None:
    """A progress line as it is: "[cached]" / "[run]" are words here, not rich markup."""
    out.print(line, markup=False, highlight=False, soft_wrap=True)  # a command stays one line
