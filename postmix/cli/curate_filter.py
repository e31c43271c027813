"""``postmix curate filter IN OUT [--rule NAME ...] [--rules rules.yaml]``: build a ``FilterConfig``
and call the library."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError

from postmix.errors import ConfigError


def register(group: typer.Typer) -> None:
    @group.command("filter")
    def filter_command(
        source: str = typer.Argument(..., help="Input records (.jsonl/.parquet/Arrow folder/hf:name)."),
        output: Path = typer.Argument(..., help="Output .jsonl or .parquet; rejects and report go beside it."),
        rule: list[str] | None = typer.Option(
            None, "--rule", "-r",
            help="Built-in rule to run (repeat; order = priority). Default: empty_turn, role_order, max_chars, "
            "control_chars, mojibake, refusal, self_identification, repeated_lines, repeated_ngrams. Others: "
            "min_chars, min_tokens, max_tokens, max_turns.",
        ),
        rules_file: Path | None = typer.Option(None, "--rules", help="YAML with FilterConfig fields (thresholds, phrase "
                                               "lists, `custom:` regex rules), or a list of regex rules."),
        tokenizer: str | None = typer.Option(None, "--tokenizer", help="Tokenizer for min_tokens/max_tokens."),
        format: str | None = typer.Option(None, "--format", "-f", help="Input format when not postmix records."),
        engine: str = typer.Option("local", "--engine", help="local (this process, every core) or ray (Ray Data on "
                                   "RAY_ADDRESS / --ray-address, else a local Ray); same results."),
        ray_address: str | None = typer.Option(None, "--ray-address", help="Ray cluster to join with --engine ray."),
    ) -> None:
        """Drop rows failing quality rules (empty turns, role order, refusals, self-identification,
        repetition, mojibake, custom regex); each reject names the rule and what matched."""
        from postmix.cli import print_report_summary
        from postmix.curate.executor import make_executor
        from postmix.curate.filters import FilterConfig, load_filter_config
        from postmix.curate.steps import get_step
        from postmix.io.errors_text import one_line
        from postmix.io.write import report_path

        overrides = {"rules": rule or None, "tokenizer": tokenizer}
        if rules_file is not None:
            config = load_filter_config(rules_file, **overrides)
        else:
            try:
                config = FilterConfig(**{k: v for k, v in overrides.items() if v is not None})
            except ValidationError as exc:
                raise ConfigError(f"bad filter option: {one_line(exc)}") from None
        result = make_executor(engine, {"address": ray_address} if ray_address else None).run_file(
            get_step("filter"), source, output, config, format=format)
        print_report_summary(result.report, {"output": str(result.output), "rejects": str(result.rejects),
                                             "report": str(report_path(result.output))})
