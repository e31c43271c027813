"""``postmix <stage> <verb>``: every verb parses arguments and calls the library, nothing more."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from postmix import __version__
from postmix.errors import PostmixError

console = Console(stderr=True)
out = Console()

app = typer.Typer(
    name="postmix",
    help="Post-training data toolkit: ingest, curate, judge, mix, train.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
curate_app = typer.Typer(help="Dedup, decontaminate and filter datasets.", no_args_is_help=True)
judge_app = typer.Typer(help="Generate, rate and pair completions with an LLM judge.", no_args_is_help=True)
mix_app = typer.Typer(help="Build, version, inspect and export training mixes.", no_args_is_help=True)
train_app = typer.Typer(help="SFT, DPO and RLVR over TRL on one mix version.", no_args_is_help=True)
app.add_typer(curate_app, name="curate")
app.add_typer(judge_app, name="judge")
app.add_typer(mix_app, name="mix")
app.add_typer(train_app, name="train")

_state = {"debug": False}

# Each stage package contributes its verbs through a ``register(group)`` function in its own
# module, so the stages stay independent and this file stays a table of contents.
_VERB_MODULES = {
    curate_app: ("postmix.cli.curate_dedup", "postmix.cli.curate_decontam",
                 "postmix.cli.curate_filter", "postmix.cli.curate_synth"),
    judge_app: ("postmix.cli.judge",),
    mix_app: ("postmix.cli.mix",),
    train_app: ("postmix.cli.train",),
}


def _register_verbs() -> None:
    import importlib

    for group, modules in _VERB_MODULES.items():
        for name in modules:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name == name:  # that stage is not built yet
                    continue
                raise
            module.register(group)


def _version(value: bool) -> None:
    if value:
        out.print(f"postmix {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    _state["debug"] = debug


def print_report_summary(report, paths: dict[str, str]) -> None:
    out.print(f"[bold]{report.summary()}[/bold]")
    for role, path in paths.items():
        out.print(f"  {role:8s} {path}")


@app.command()
def ingest(
    source: str = typer.Argument(..., help="Input: .jsonl/.json/.parquet, an Arrow folder, or hf:owner/name."),
    output: Path = typer.Argument(..., help="Output .jsonl or .parquet (rejects and report go beside it)."),
    format: str | None = typer.Option(None, "--format", "-f", help="Input format; auto-detected when omitted: messages, sharegpt, alpaca, prompt_completion, trl_preference, ultrafeedback, rlvr."),
    strict: bool = typer.Option(False, "--strict", help="Fail on the first bad row instead of collecting rejects."),
    source_name: str | None = typer.Option(None, "--source", help="Source name for rows that carry none (default: file name)."),
    split: str = typer.Option("train", "--split", help="Split, for Hub datasets."),
) -> None:
    """Convert a public-format dataset into postmix records; bad rows go to a rejects file."""
    from postmix.io import ingest as run_ingest
    from postmix.io.write import report_path

    result = run_ingest(source, output, format=format, strict=strict, source_name=source_name, split=split)
    print_report_summary(result.report, {"output": str(result.output), "rejects": str(result.rejects),
                                         "report": str(report_path(result.output))})
    if result.report.rows_in and not result.report.rows_out:
        reasons = ", ".join(sorted(result.report.rejected))
        console.print(f"warning: no row was kept ({escape(reasons)}): "
                      + ("check --format" if format else "see the rejects file for why"), highlight=False)


@app.command()
def stats(
    path: str = typer.Argument(..., help="A dataset in any supported format."),
    tokenizer: str | None = typer.Option(None, "--tokenizer", help="Tokenizer (path or Hub name) for token counts."),
    format: str | None = typer.Option(None, "--format", "-f", help="Input format when not postmix records."),
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow custom tokenizer code."),
) -> None:
    """Rows, sources, turns, role counts and length distributions of a dataset."""
    from postmix.mix.stats import dataset_stats

    result = dataset_stats(path, tokenizer=tokenizer, format=format, trust_remote_code=trust_remote_code)
    if as_json:
        out.print_json(json.dumps(result))
        return
    out.print(f"[bold]{result['path']}[/bold]: {result['rows']} {result['kind']} rows"
              + (f", {result['unreadable_rows']} unreadable" if result["unreadable_rows"] else ""))
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
            table.add_row(name, f"{d['mean']:.1f}", *(f"{d[k]:.0f}" for k in ("p10", "p50", "p90", "p99", "p100")))
        out.print(table)
        out.print("roles: " + ", ".join(f"{r}={n}" for r, n in col["roles"].items()))


@app.command("run")
def run_recipe_command(
    recipe: str = typer.Argument(..., help="Recipe YAML (a path, or pkg://postmix/... for a bundled one)."),
    workdir: Path | None = typer.Option(None, "--workdir", "-w", help="Where stage outputs go (default: the recipe's workdir, relative to the recipe, else ./postmix-runs/<name>)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (stages, cache keys, cached or not) and stop."),
    engine: str | None = typer.Option(None, "--engine", help="Default engine (local or ray) of the dedup, decontam, "
                                      "filter and mix_build stages that do not set `engine:`; results are the same."),
) -> None:
    """Run a pipeline recipe; finished stages are cached by content and skipped on re-runs."""
    from postmix.io.paths import resolve_path
    from postmix.pipeline import load_recipe, plan, run_recipe

    recipe_path = Path(resolve_path(recipe))
    spec = load_recipe(recipe_path)
    # a recipe's own `workdir:` is relative to the recipe, like every other path in it
    target = workdir or (recipe_path.parent / spec.workdir if spec.workdir else Path("postmix-runs") / spec.name)
    if dry_run:
        table = Table("stage", "run", "inputs", "key", "status", title=f"plan: {spec.name} -> {target}")
        for step in plan(spec, target, recipe_path.parent):
            table.add_row(step.spec.name, step.spec.run, ", ".join(map(str, step.spec.input)) or "-",
                          step.key, "cached" if step.cached else "to run")
        out.print(table)
        return
    if engine is not None:
        from postmix.curate.executor import check_engine

        check_engine(engine)
    result = run_recipe(spec, target, recipe_dir=recipe_path.parent, echo=echo_line,
                        options={"engine": engine} if engine else None)
    out.print(f"[bold]done[/bold]: {len(result.stages)} stages, summary in {target / 'last_run.json'}")


def _from_cwd(value: str) -> str:
    """A path under the current folder as a relative one (short enough for a terminal table)."""
    if not os.path.isabs(value):
        return value
    relative = os.path.relpath(value)
    return value if relative.startswith("..") else relative


@app.command()
def quickstart(
    out: Path = typer.Option(Path("quickstart-out"), "--out", "-o", help="Where every output, report and run card goes."),
    endpoint: str | None = typer.Option(None, "--endpoint", help="OpenAI-compatible base URL (or $POSTMIX_ENDPOINT); adds generate -> rate -> pairs -> DPO."),
    model: str | None = typer.Option(None, "--model", help="Model name at the endpoint (or $POSTMIX_MODEL)."),
    prompts: int = typer.Option(24, "--prompts", help="Prompts sent to the endpoint for the preference branch."),
) -> None:
    """Run a real pipeline on the bundled sample: ingest, filter, dedup, decontaminate, version an
    SFT mix and train a tiny model on CPU. Offline; no GPU, server or API key needed."""
    from postmix.pipeline.quickstart import quickstart as run_quickstart

    result = run_quickstart(out, endpoint=endpoint, model=model, prompts=prompts, echo=echo_line)
    table = Table("stage", "status", "seconds", title=f"quickstart -> {out}")
    table.add_column("outputs", overflow="fold")  # wrap long paths: they are what this table is for
    for name, stage in result.stages.items():
        shown = {k: v for k, v in stage["outputs"].items() if k in ("data", "rejects", "report", "mix", "run_card", "failures")}
        table.add_row(name, stage["status"], str(stage.get("seconds", "")),
                      "\n".join(f"{k}: {_from_cwd(v)}" for k, v in shown.items()))
    out_console_print(table)


def out_console_print(message: object) -> None:
    out.print(message)


def echo_line(line: str) -> None:
    """A progress line as it is: "[cached]" / "[run]" are words here, not rich markup."""
    out.print(line, markup=False, highlight=False)


_register_verbs()


def main() -> None:
    """Console entry point: user errors in one line, tracebacks only with --debug."""
    try:
        app()
    except PostmixError as exc:
        if _state["debug"] or "--debug" in sys.argv:
            raise
        # escaped: a path or pattern in the message may hold [brackets] rich would take for markup
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except OSError as exc:  # a path that cannot be written or read (a file where a folder should be, ...)
        if _state["debug"] or "--debug" in sys.argv:
            raise
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        console.print(f"[red]error:[/red] {escape((exc.strerror or str(exc)) + where)}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted: finished rows are kept in the .partial files beside the outputs")
        sys.exit(130)


if __name__ == "__main__":
    main()
