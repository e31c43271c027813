"""``postmix curate tag``: argument parsing only; the work is in ``postmix.mix.attributes.tag``.
Options come from ``TagConfig``; the verb is made on first use (``postmix.cli.curate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from postmix.cli import options as opts
from postmix.cli.command import one_command, with_renames
from postmix.cli.output import (
    LEGACY_OUTPUT,
    chosen_output,
    json_option,
    out,
    output_option,
    print_report_summary,
)


def tag(
    source: str = typer.Argument(..., help="Input records (.jsonl/.parquet/Arrow folder/hf:name)."),
    legacy_output: Path | None = LEGACY_OUTPUT,
    output: Path | None = output_option("Attribute sidecar to write (.parquet), keyed by id."),
    format: str | None = typer.Option(
        None, "--format", "-f", help="Input format when not postmix records."
    ),
    endpoints: Path | None = typer.Option(
        None, "--endpoints", "-e",
        help="Endpoints YAML of the scoring or reward model (with --score).",
        show_default=False),
    config_file: Path | None = opts.config_file_option(),
    as_json: bool = json_option(),
    config_values: Any = None,
) -> None:
    """Per-row attributes (lengths, tokens, language, filter rule hits, LLM and reward-model
    scores) into a sidecar Parquet keyed by id, for mix specs' `attributes:` and `where:`."""
    from postmix.llm import load_endpoints
    from postmix.mix.attributes import TagConfig
    from postmix.mix.attributes import tag as run_tag

    target = chosen_output(output, legacy_output)
    config = opts.build(TagConfig, config_values, opts.read_config_file(config_file))
    pool = load_endpoints(endpoints) if endpoints is not None else None
    report = run_tag(source, target, config, pool=pool, format=format)
    print_report_summary(report, {"output": report.outputs["data"],
                                  "rejects": report.outputs["rejects"]}, as_json=as_json)
    if not as_json:
        out.print(f"  columns  {', '.join(report.details['columns'])}", highlight=False)
        out.print(f"  fingerprint {report.details['fingerprint']}", highlight=False)


def tag_command() -> Any:
    from postmix.mix.attributes import TagConfig

    wrapped = opts.with_config_options(tag, TagConfig)
    return one_command(wrapped, "tag", cls=with_renames(wrapped.renames))
