"""``postmix curate <step>``: one verb per entry of the step registry
(``postmix.curate.steps.STEPS``), its options made from the step's config model, run by the
executor ``--engine`` names. Adding a step to the registry adds its verb; nothing here names a
step except the optional extras below. ``synth`` and ``respond`` (model-calling stages, not
registry steps) live in ``postmix.cli.curate_synth``; ``tag`` (attributes for mixes) in
``postmix.cli.curate_tag``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import typer

from postmix.cli import options as opts
from postmix.cli.command import PostmixGroup, one_command, with_renames
from postmix.cli.output import (
    LEGACY_OUTPUT,
    chosen_output,
    json_option,
    out,
    output_option,
    print_report_summary,
)
from postmix.curate.steps import STEPS, Step

SOURCE_HELP = "Input records (.jsonl/.parquet/Arrow folder/hf:name)."
SHORT = {"--benchmark": "-b", "--rule": "-r"}  # short flags the README and scripts use
# Help of decider options (Step.options may carry its own); a new option without either still
# gets a flag, with its name for help.
OPTION_HELP = {
    "against": "Reference dataset or mix: remove rows that duplicate it (local engine only).",
    "cache_dir": "Where the reference's signatures are cached (with --against).",
}


def _filter_rules(path: Path | None) -> dict[str, Any]:
    """``--rules FILE``: the filter's YAML (a mapping of its fields, or a bare list of custom
    regex rules), read by the library's own loader."""
    if path is None:
        return {}
    from postmix.curate.filters import load_filter_config

    return load_filter_config(path).model_dump(exclude_unset=True)


def _decontam_lines(report: Any) -> None:
    for name, stats in report.details.get("benchmarks", {}).items():
        out.print(
            f"  {name}: {stats['instances_hit']}/{stats['instances']} instances found in the "
            f"data ({stats['contaminated_fraction']:.2%}), {stats['rows_removed']} rows "
            "removed"
        )


# Step extras that are not config fields: a config-file spelling of its own, extra summary lines.
CONFIG_FILES = {
    "filter": (
        "--rules",
        "YAML with FilterConfig fields (thresholds, phrase lists, "
        "`custom:` regex rules), or a list of regex rules.",
        _filter_rules,
    )
}
SUMMARY_LINES = {"decontam": _decontam_lines}


def _decider_parameters(step: Step) -> list[inspect.Parameter]:
    documented = getattr(step, "options", None) or {}  # decider option -> help, where declared
    names = [*documented, *(n for n in step.local_only if n not in documented)]
    params = []
    for name in names:
        flag = "--" + opts.RENAMED.get(name, name).replace("_", "-")
        help = documented.get(name) or OPTION_HELP.get(name) or name.replace("_", " ") + "."
        option = typer.Option(None, flag, help=help, metavar="PATH", show_default=False)
        params.append(
            inspect.Parameter(
                f"option__{name}",
                inspect.Parameter.KEYWORD_ONLY,
                default=option,
                annotation=str | None,
            )
        )
    if step.name in CONFIG_FILES:
        flag, help, _ = CONFIG_FILES[step.name]
        params.append(
            inspect.Parameter(
                "step_config_file",
                inspect.Parameter.KEYWORD_ONLY,
                default=typer.Option(None, flag, help=help, show_default=False),
                annotation=Path | None,
            )
        )
    return params


def step_command(step: Step) -> Any:
    """The click command of ``postmix curate <step.name>``."""
    model = step.config_class()

    def command(
        source: str = typer.Argument(..., help=SOURCE_HELP),
        legacy_output: Path | None = LEGACY_OUTPUT,
        output: Path | None = output_option(),
        format: str | None = typer.Option(
            None, "--format", "-f", help="Input format when not postmix records."
        ),
        config_file: Path | None = opts.config_file_option(),
        engine: str = typer.Option(
            "local",
            "--engine",
            help="local (this process, every core) or "
            "ray (Ray "
            "Data on RAY_ADDRESS / --ray-address, else a local Ray); same "
            "results.",
        ),
        ray_address: str | None = typer.Option(
            None, "--ray-address", help="Ray cluster to join with --engine ray."
        ),
        as_json: bool = json_option(),
        config_values: Any = None,
        **extra: Any,
    ) -> None:
        from postmix.curate.executor import make_executor
        from postmix.io.write import report_path

        target = chosen_output(output, legacy_output)
        base = opts.read_config_file(config_file)
        if step.name in CONFIG_FILES:
            base = {**base, **CONFIG_FILES[step.name][2](extra.pop("step_config_file", None))}
        config = opts.build(model, config_values, base, what=f"{step.name} option")
        executor = make_executor(engine, {"address": ray_address} if ray_address else None)
        decider = {k.removeprefix("option__"): v for k, v in extra.items() if v is not None}
        result = executor.run_file(step, source, target, config, format=format, **decider)
        if not as_json and step.name in SUMMARY_LINES:
            SUMMARY_LINES[step.name](result.report)
        print_report_summary(
            result.report,
            {
                "output": result.output,
                "rejects": result.rejects,
                "report": report_path(result.output),
            },
            as_json=as_json,
        )

    function = opts.with_config_options(
        command, model, short=SHORT, extra=_decider_parameters(step)
    )
    help = step.description[:1].upper() + step.description[1:] + "."
    return one_command(function, step.name, help=help, cls=with_renames(function.renames))


class CurateGroup(PostmixGroup):
    """The registry's steps, then synth and respond."""

    lazy = {
        "synth": (
            "postmix.cli.curate_synth:synth_command",
            "Synthesise prompts from personas and a skill template (PersonaHub / Tulu 3 style).",
        ),
        "respond": (
            "postmix.cli.curate_synth:respond_command",
            "Write assistant responses into SFT records; filter empty, refusing and "
            "self-identifying answers.",
        ),
        "tag": (
            "postmix.cli.curate_tag:tag_command",
            "Per-row attributes (lengths, tokens, language, filter rule hits, LLM scores) into a "
            "sidecar keyed by id, for mix `where:` filters.",
        ),
    }

    def list_commands(self, ctx: Any) -> list[str]:
        return [*STEPS, *(n for n in super().list_commands(ctx) if n not in STEPS)]

    def get_command(self, ctx: Any, name: str) -> Any:
        if name in STEPS:  # read at call time: a step registered after import has its verb too
            return step_command(STEPS[name])
        return super().get_command(ctx, name)

    def listed_help(self, ctx: Any, name: str, limit: int) -> str:
        if name in STEPS:
            text = STEPS[name].description
            return text[:1].upper() + text[1:] + "."
        return super().listed_help(ctx, name, limit)


app = typer.Typer(cls=CurateGroup, no_args_is_help=True, add_completion=False)


@app.callback()
def curate() -> None:
    """Filter, dedup and decontaminate datasets; synthesise prompts and responses."""
