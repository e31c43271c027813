"""``postmix curate synth`` and ``postmix curate respond``: argument parsing only; the work is in
``postmix.curate.synth.synthesize`` and ``postmix.curate.respond.respond``. Options come from
``SynthConfig`` and ``RespondConfig``; each verb is made on first use (``postmix.cli.curate``)."""

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
    output_option,
    print_report_summary,
)


def synth(
    legacy_output: Path | None = LEGACY_OUTPUT,
    output: Path | None = output_option(
        "Output .jsonl/.parquet: prompt rows, or RLVR rows for precise-if and voted math."
    ),
    endpoints: Path = opts.endpoints_option("Endpoints YAML of the prompt-writing model."),
    config_file: Path | None = opts.config_file_option(),
    as_json: bool = json_option(),
    config_values: Any = None,
) -> None:
    """Synthesise prompts from personas and a skill template (PersonaHub / Tulu 3 style)."""
    from postmix.curate.synth import SynthConfig, synthesize
    from postmix.llm import load_endpoints

    target = chosen_output(output, legacy_output)
    config = opts.build(SynthConfig, config_values, opts.read_config_file(config_file))
    result = synthesize(target, load_endpoints(endpoints), config)
    print_report_summary(
        result.report,
        {"output": result.output, "rejects": result.rejects, "failures": result.failures},
        as_json=as_json,
    )
    if not as_json:
        diversity = result.report.details["diversity"]
        typer.echo(
            f"personas {diversity['distinct_personas']}, distinct-2 "
            f"{diversity['distinct_2']:.3f}, "
            f"distinct-3 {diversity['distinct_3']:.3f}, near-duplicates "
            f"{diversity['near_duplicate_rate']:.1%}, cost "
            f"${result.report.details['cost_usd']:.4f}"
        )


def respond(
    prompts: str = typer.Argument(
        ...,
        help="Prompts: `curate synth` output, RLVR rows, or SFT "
        "rows "
        "(answered after their last user turn).",
    ),
    legacy_output: Path | None = LEGACY_OUTPUT,
    output: Path | None = output_option("Output .jsonl/.parquet of SFT records."),
    endpoints: Path = opts.endpoints_option("Endpoints YAML of the responding model."),
    config_file: Path | None = opts.config_file_option(),
    as_json: bool = json_option(),
    config_values: Any = None,
) -> None:
    """Write assistant responses into SFT records; filter empty, refusing and self-identifying
    answers."""
    from postmix.curate.respond import RespondConfig
    from postmix.curate.respond import respond as run_respond
    from postmix.llm import load_endpoints

    target = chosen_output(output, legacy_output)
    config = opts.build(RespondConfig, config_values, opts.read_config_file(config_file))
    result = run_respond(prompts, target, load_endpoints(endpoints), config)
    print_report_summary(
        result.report,
        {"output": result.output, "rejects": result.rejects, "failures": result.failures},
        as_json=as_json,
    )


def _command(function: Any, name: str, model: Any) -> Any:
    wrapped = opts.with_config_options(function, model)
    return one_command(wrapped, name, cls=with_renames(wrapped.renames))


def synth_command() -> Any:
    from postmix.curate.synth import SynthConfig

    return _command(synth, "synth", SynthConfig)


def respond_command() -> Any:
    from postmix.curate.respond import RespondConfig

    return _command(respond, "respond", RespondConfig)
