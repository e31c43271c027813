"""``postmix judge generate | rate | pairs | compare``: argument parsing only; the work is in
the library functions of the same names. Each verb's options come from its config model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from postmix.cli import options as opts
from postmix.cli.command import PostmixGroup
from postmix.cli.output import (
    LEGACY_OUTPUT,
    chosen_output,
    json_option,
    output_option,
    print_report_summary,
)
from postmix.judge.compare import CompareConfig
from postmix.judge.generate import GenerateConfig
from postmix.judge.pairs import PairsConfig
from postmix.judge.rate import RateConfig

app = typer.Typer(cls=PostmixGroup, no_args_is_help=True, add_completion=False)


@app.callback()
def judge() -> None:
    """Generate, rate and pair completions with an LLM judge."""


def _summary(result: Any, as_json: bool, *roles: str) -> None:
    paths = {role: getattr(result, role) for role in ("output", *roles)}
    print_report_summary(result.report, paths, as_json=as_json)


def generate_cmd(
    prompts: str = typer.Argument(
        ..., help="Prompts: SFT records (prompt = up to the last user turn) or rows with 'prompt'."
    ),
    legacy_output: Path | None = LEGACY_OUTPUT,
    output: Path | None = output_option("Output .jsonl/.parquet of Completion rows."),
    endpoints: Path = opts.endpoints_option("Endpoints YAML of the models to sample from."),
    config_file: Path | None = opts.config_file_option(),
    as_json: bool = json_option(),
    config_values: Any = None,
) -> None:
    """Sample K completions per prompt from a pool of models."""
    from postmix.judge.generate import generate
    from postmix.llm import load_endpoints

    target = chosen_output(output, legacy_output)
    config = opts.build(GenerateConfig, config_values, opts.read_config_file(config_file))
    _summary(generate(prompts, target, load_endpoints(endpoints), config), as_json, "failures")


def rate_cmd(
    completions: str = typer.Argument(..., help="Completion rows (from `judge generate`)."),
    legacy_output: Path | None = LEGACY_OUTPUT,
    output: Path | None = output_option(
        "Output .jsonl/.parquet: completions with rating and score."
    ),
    endpoints: Path = opts.endpoints_option("Endpoints YAML of the judge model."),
    config_file: Path | None = opts.config_file_option(),
    as_json: bool = json_option(),
    config_values: Any = None,
) -> None:
    """Rate completions on a rubric's aspects (UltraFeedback by default)."""
    from postmix.judge.rate import rate
    from postmix.llm import load_endpoints

    target = chosen_output(output, legacy_output)
    config = opts.build(RateConfig, config_values, opts.read_config_file(config_file))
    _summary(rate(completions, target, load_endpoints(endpoints), config), as_json, "failures")


def pairs_cmd(
    rated: str = typer.Argument(..., help="Rated completions (from `judge rate`)."),
    legacy_output: Path | None = LEGACY_OUTPUT,
    output: Path | None = output_option("Output .jsonl/.parquet of PreferenceRecord rows."),
    config_file: Path | None = opts.config_file_option(),
    as_json: bool = json_option(),
    config_values: Any = None,
) -> None:
    """Build chosen/rejected pairs from rated completions."""
    from postmix.judge.pairs import make_pairs

    target = chosen_output(output, legacy_output)
    config = opts.build(PairsConfig, config_values, opts.read_config_file(config_file))
    result = make_pairs(rated, target, config)
    _summary(result, as_json, "rejects")
    if not as_json:
        q = result.report.details["quality"]
        margins = ", ".join(f"{k} {v}" for k, v in q["margin_histogram"].items())
        wins = ", ".join(f"{m} {n}-{q['losses_by_model'].get(m, 0)}" for m, n in
                         sorted({**dict.fromkeys(q["losses_by_model"], 0),
                                 **q["wins_by_model"]}.items()))
        typer.echo(f"margins: {margins}")
        typer.echo(f"length chosen/rejected: median {q['length_ratio_median']:.2f}, mean "
                   f"{q['length_ratio_mean']:.2f}; chosen longer in "
                   f"{q['chosen_longer_fraction']:.0%}; on-policy side in "
                   f"{q['on_policy_share']:.0%} of pairs")
        typer.echo(f"wins-losses by model: {wins or '-'}")


def compare_cmd(
    a: str = typer.Argument(..., help="Completions A."),
    b: str = typer.Argument(..., help="Completions B (matched to A by prompt_id)."),
    legacy_output: Path | None = LEGACY_OUTPUT,
    output: Path | None = output_option("Output .jsonl/.parquet of verdicts."),
    endpoints: Path = opts.endpoints_option("Endpoints YAML of the judge model."),
    config_file: Path | None = opts.config_file_option(),
    as_json: bool = json_option(),
    config_values: Any = None,
) -> None:
    """Judge A against B pairwise, in both orders; order-dependent verdicts count as ties."""
    from postmix.judge.compare import compare
    from postmix.llm import load_endpoints

    target = chosen_output(output, legacy_output)
    config = opts.build(CompareConfig, config_values, opts.read_config_file(config_file))
    result = compare(a, b, target, load_endpoints(endpoints), config)
    _summary(result, as_json, "failures")
    if not as_json:
        d = result.report.details
        typer.echo(
            f"A wins {d['a_wins']}, B wins {d['b_wins']}, ties {d['ties']}; "
            f"win rate A {d['win_rate_a']:.1%}; position-flip rate "
            f"{d['position_flip_rate']:.1%}"
        )


opts.add_verb(app, "generate", generate_cmd, GenerateConfig)
opts.add_verb(app, "rate", rate_cmd, RateConfig)
opts.add_verb(app, "pairs", pairs_cmd, PairsConfig)
opts.add_verb(app, "compare", compare_cmd, CompareConfig)
