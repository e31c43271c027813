"""``postmix curate decontam IN OUT --benchmark ...``: parse options into a ``DecontamConfig``
and call the library."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError

from postmix.errors import ConfigError


def register(group: typer.Typer) -> None:
    @group.command("decontam")
    def decontam_command(
        source: str = typer.Argument(..., help="Input records (.jsonl/.parquet/Arrow folder/hf:name)."),
        output: Path = typer.Argument(..., help="Output .jsonl or .parquet; rejects and report go beside it."),
        benchmark: list[str] = typer.Option(
            ..., "--benchmark", "-b",
            help="NAME (built-in, e.g. gsm8k, humaneval, or gsm8k-sample offline), NAME=FILE, or "
            "NAME=FILE:FIELD1,FIELD2. Repeat for several benchmarks.",
        ),
        on: str = typer.Option("user", "--on", help="Text scanned: user, prompt, assistant or conversation."),
        ngram: int = typer.Option(8, "--ngram", help="Tokens per n-gram (Tulu 3: 8)."),
        threshold: float = typer.Option(0.5, "--threshold", help="Share of an instance's tokens covered by shared n-grams that flags a row."),
        min_short_tokens: int = typer.Option(3, "--min-short-tokens", help="Shorter instances than --ngram are matched whole; below this length they are skipped."),
        workers: int | None = typer.Option(None, "--workers", help="Scan threads (default: all cores)."),
        no_nfkc: bool = typer.Option(False, "--no-nfkc", help="Skip Unicode NFKC normalisation."),
        case_sensitive: bool = typer.Option(False, "--case-sensitive", help="Do not lowercase."),
        keep_punctuation: bool = typer.Option(False, "--keep-punctuation", help="Do not strip punctuation and symbols."),
        format: str | None = typer.Option(None, "--format", "-f", help="Input format when not postmix records."),
        engine: str = typer.Option("local", "--engine", help="local (this process, every core) or ray (Ray Data on "
                                   "RAY_ADDRESS / --ray-address, else a local Ray); same results."),
        ray_address: str | None = typer.Option(None, "--ray-address", help="Ray cluster to join with --engine ray."),
    ) -> None:
        """Remove rows that contain benchmark instances (n-gram overlap, Tulu 3 scoring); no server needed."""
        from postmix.cli import out, print_report_summary
        from postmix.curate.decontam import DecontamConfig
        from postmix.curate.executor import make_executor
        from postmix.curate.steps import get_step
        from postmix.io.errors_text import one_line
        from postmix.io.write import report_path

        try:
            config = DecontamConfig(
                benchmarks=benchmark, on=on, ngram=ngram, threshold=threshold,
                min_short_tokens=min_short_tokens, workers=workers,
                normalise={"nfkc": not no_nfkc, "lowercase": not case_sensitive,
                           "strip_punctuation": not keep_punctuation},
            )
        except ValidationError as exc:
            raise ConfigError(f"bad decontam option: {one_line(exc)}") from None
        result = make_executor(engine, {"address": ray_address} if ray_address else None).run_file(
            get_step("decontam"), source, output, config, format=format)
        for name, stats in result.report.details.get("benchmarks", {}).items():
            out.print(f"  {name}: {stats['instances_hit']}/{stats['instances']} instances found in the data "
                      f"({stats['contaminated_fraction']:.2%}), {stats['rows_removed']} rows removed")
        print_report_summary(result.report, {"output": str(result.output), "rejects": str(result.rejects),
                                             "report": str(report_path(result.output))})
