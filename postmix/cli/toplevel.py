"""The verbs directly under ``postmix``: ``ingest``, ``stats``, ``run`` (a recipe) and
``quickstart``. Each is made on first use (``postmix.cli.RootGroup``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from postmix.cli.command import one_command
from postmix.cli.output import (
    LEGACY_OUTPUT,
    chosen_output,
    console,
    echo_line,
    json_option,
    out,
    output_option,
    print_json,
    print_report_summary,
)

FORMATS = "messages, sharegpt, alpaca, prompt_completion, trl_preference, ultrafeedback, rlvr"


def ingest(
    source: str = typer.Argument(
        ..., help="Input: .jsonl/.json/.parquet, an Arrow folder, or hf:owner/name."
    ),
    legacy_output: Path | None = LEGACY_OUTPUT,
    output: Path | None = output_option(
        "Output .jsonl or .parquet (rejects and report go beside it)."
    ),
    format: str | None = typer.Option(
        None, "--format", "-f", help=f"Input format; auto-detected when omitted: {FORMATS}."
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Fail on the first bad row instead of collecting rejects."
    ),
    source_name: str | None = typer.Option(
        None, "--source", help="Source name for rows that carry none (default: file name)."
    ),
    split: str = typer.Option("train", "--split", help="Split, for Hub datasets."),
    as_json: bool = json_option(),
) -> None:
    """Convert a public-format dataset into postmix records; bad rows go to a rejects file."""
    from postmix.io import ingest as run_ingest
    from postmix.io.write import report_path

    target = chosen_output(output, legacy_output)
    result = run_ingest(
        source, target, format=format, strict=strict, source_name=source_name, split=split
    )
    print_report_summary(
        result.report,
        {"output": result.output, "rejects": result.rejects, "report": report_path(result.output)},
        as_json=as_json,
    )
    if result.report.rows_in and not result.report.rows_out:
        reasons = ", ".join(sorted(result.report.rejected))
        console.print(
            f"warning: no row was kept ({escape(reasons)}): "
            + ("check --format" if format else "see the rejects file for why"),
            highlight=False,
        )


def stats(
    path: str = typer.Argument(..., help="A dataset in any supported format."),
    tokenizer: str | None = typer.Option(
        None, "--tokenizer", help="Tokenizer (path or Hub name) for token counts."
    ),
    format: str | None = typer.Option(
        None, "--format", "-f", help="Input format when not postmix records."
    ),
    as_json: bool = json_option("Print the statistics as JSON."),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="Allow custom tokenizer code."
    ),
) -> None:
    """Rows, sources, turns, role counts and length distributions of a dataset."""
    from postmix.mix.stats import dataset_stats

    result = dataset_stats(
        path, tokenizer=tokenizer, format=format, trust_remote_code=trust_remote_code
    )
    if as_json:
        out.print_json(json.dumps(result))
        return
    out.print(
        f"[bold]{result['path']}[/bold]: {result['rows']} {result['kind']} rows"
        + (f", {result['unreadable_rows']} unreadable" if result["unreadable_rows"] else "")
    )
    sources = Table("source", "rows", "share", title="sources")
    for name, count in result["sources"].items():
        sources.add_row(name, str(count), f"{count / max(result['rows'], 1):.1%}")
    out.print(sources)
    for column, col in result["columns"].items():
        table = Table("measure", "mean", "p10", "p50", "p90", "p99", "max", title=f"{column}")
        rows = [("turns", col["turns"]), ("chars/row", col["chars_per_row"])]
        rows += [(f"chars/{role} turn", d) for role, d in col["chars_per_turn"].items()]
        if "tokens_per_row" in col:
            rows.append(("tokens/row", col["tokens_per_row"]))
        for name, d in rows:
            table.add_row(
                name,
                f"{d['mean']:.1f}",
                *(f"{d[k]:.0f}" for k in ("p10", "p50", "p90", "p99", "p100")),
            )
        out.print(table)
        out.print("roles: " + ", ".join(f"{r}={n}" for r, n in col["roles"].items()))


def run_recipe(
    recipe: str = typer.Argument(
        ..., help="Recipe YAML (a path, or pkg://postmix/... for a bundled one)."
    ),
    output: Path | None = output_option(
        "Working folder: where stage outputs go (default: the recipe's "
        "workdir, relative to the recipe, else ./postmix-runs/<name>)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the plan (stages, cache keys, cached or not) and stop."
    ),
    engine: str | None = typer.Option(
        None,
        "--engine",
        help="Default engine (local or ray) of the dedup, decontam, "
        "filter and mix_build stages that do not set `engine:`; results are the same.",
    ),
    as_json: bool = json_option("Print the run summary (last_run.json) as JSON."),
) -> None:
    """Run a pipeline recipe; finished stages are cached by content and skipped on re-runs."""
    from postmix.curate.executor import check_engine
    from postmix.io.paths import resolve_path
    from postmix.pipeline import load_recipe, plan, run_recipe

    recipe_path = Path(resolve_path(recipe))
    spec = load_recipe(recipe_path)
    # a recipe's own `workdir:` is relative to the recipe, like every other path in it
    target = output or (
        recipe_path.parent / spec.workdir if spec.workdir else Path("postmix-runs") / spec.name
    )
    if dry_run:
        table = Table(
            "stage", "run", "inputs", "key", "status", title=f"plan: {spec.name} -> {target}"
        )
        for step in plan(spec, target, recipe_path.parent):
            table.add_row(
                step.spec.name,
                step.spec.run,
                ", ".join(map(str, step.spec.input)) or "-",
                step.key,
                "cached" if step.cached else "to run",
            )
        out.print(table)
        return
    if engine is not None:
        check_engine(engine)
    result = run_recipe(
        spec,
        target,
        recipe_dir=recipe_path.parent,
        echo=echo_line,
        options={"engine": engine} if engine else None,
    )
    if as_json:
        print_json(result.stages)
        return
    out.print(
        f"[bold]done[/bold]: {len(result.stages)} stages, summary in {target / 'last_run.json'}"
    )
    print_leaderboards(result.stages)


def print_leaderboards(stages: dict[str, dict[str, Any]]) -> None:
    """An ablation ends with its leaderboard: print the board of every leaderboard stage."""
    from postmix.cli.leaderboard import print_board

    for stage in stages.values():
        if stage.get("run") == "leaderboard" and stage["outputs"].get("leaderboard"):
            print_board(json.loads(Path(stage["outputs"]["leaderboard"]).read_text("utf-8")))
            out.print(f"  page: {stage['outputs']['html']}", highlight=False)


def _from_cwd(value: str) -> str:
    """A path under the current folder as a relative one (short enough for a terminal table)."""
    if not os.path.isabs(value):
        return value
    relative = os.path.relpath(value)
    return value if relative.startswith("..") else relative


def quickstart(
    output: Path = typer.Option(
        Path("quickstart-out"),
        "--output",
        "-o",
        "--out",
        help="Where every output, report and run card goes (--out: the same).",
    ),
    endpoint: str | None = typer.Option(
        None,
        "--endpoint",
        help="OpenAI-compatible base URL (or $POSTMIX_ENDPOINT); adds generate -> rate -> pairs -> "
        "DPO.",
    ),
    model: str | None = typer.Option(
        None, "--model", help="Model name at the endpoint (or $POSTMIX_MODEL)."
    ),
    prompts: int = typer.Option(
        24, "--prompts", help="Prompts sent to the endpoint for the preference branch."
    ),
    as_json: bool = json_option("Print the run summary as JSON."),
) -> None:
    """Run a real pipeline on the bundled sample: ingest, filter, dedup, decontaminate, version an
    SFT mix, train a tiny model on CPU, score it on a GSM8K sample and compare two variants of the
    mix in a leaderboard. Offline; no GPU, server or API key needed."""
    from postmix.pipeline.quickstart import quickstart as run_quickstart

    result = run_quickstart(output, endpoint=endpoint, model=model, prompts=prompts, echo=echo_line)
    if as_json:
        print_json(result.stages)
        return
    table = Table("stage", "status", "seconds", title=f"quickstart -> {output}")
    table.add_column("outputs", overflow="fold")  # wrap long paths: they are what this table is for
    keys = ("data", "rejects", "report", "mix", "run_card", "failures", "results", "html")
    for name, stage in result.stages.items():
        shown = {k: v for k, v in stage["outputs"].items() if k in keys}
        table.add_row(
            name,
            stage["status"],
            str(stage.get("seconds", "")),
            "\n".join(f"{k}: {_from_cwd(v)}" for k, v in shown.items()),
        )
    out.print(table)
    print_leaderboards(result.stages)


def ingest_command() -> Any:
    return one_command(ingest, "ingest")


def stats_command() -> Any:
    return one_command(stats, "stats")


def run_command() -> Any:
    return one_command(run_recipe, "run")


def quickstart_command() -> Any:
    return one_command(quickstart, "quickstart")
