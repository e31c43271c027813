"""``postmix mix build | list | show | diff | export | report | record-eval``: argument parsing
only."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from postmix.cli.command import PostmixGroup, with_renames
from postmix.cli.output import chosen_output, out, output_option

app = typer.Typer(cls=PostmixGroup, no_args_is_help=True, add_completion=False)


@app.callback()
def mix() -> None:
    """Build, version, inspect and export training mixes."""


HOME_HELP = "Registry folder (default: $POSTMIX_HOME, else ./.postmix)."


def _home_option():
    return typer.Option(None, "--home", help=HOME_HELP)


def build_cmd(
    spec: Path = typer.Argument(..., help="Mix spec (YAML)."),
    home: Path | None = _home_option(),
    tokenizer: str | None = typer.Option(
        None, "--tokenizer", help="Tokenizer for token counts (overrides the spec's)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
    engine: str | None = typer.Option(
        None,
        "--engine",
        help="Where curation steps run: local or "
        "ray (overrides "
        "the spec's `engine:`); the rows are the same.",
    ),
) -> None:
    """Build a spec into a new registry version (or return the latest if its rows are identical)."""
    from postmix.mix import build

    result = build(spec, home=home, tokenizer=tokenizer, engine=engine)
    if as_json:
        out.print_json(json.dumps(result.manifest))
        return
    status = "built" if result.created else "unchanged, same rows as"
    out.print(
        f"[bold]{status} {result.mix.ref}[/bold]: {result.mix.rows:,} rows, content "
        f"{result.mix.content_hash}"
    )
    if not result.created and (tokenizer or "") and result.manifest.get("tokens") is None:
        out.print(
            f"  note: no token counts: {result.mix.ref} was built without a tokenizer, and "
            "this build has "
            "the same rows, so no new version was made",
            highlight=False,
        )
    _composition(result.manifest)
    out.print(f"  folder   {result.mix.path}")


def list_cmd(
    name: str | None = typer.Argument(None, help="Only versions of this mix."),
    home: Path | None = _home_option(),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Every mix version in the registry."""
    from postmix.mix import list_mixes

    versions = list_mixes(home=home, name=name)
    if as_json:
        out.print_json(json.dumps(versions))
        return
    table = Table("mix", "kind", "rows", "content", "parent", "created", title="mixes")
    for v in versions:
        table.add_row(
            f"{v['name']}@{v['version']}",
            v["kind"],
            f"{v['rows']:,}",
            v["content_hash"][:12],
            "" if v["parent"] is None else f"@{v['parent']}",
            v["created_at"],
        )
    if versions:
        out.print(table)
    elif name is not None and list_mixes(home=home):
        out.print(
            f"no mix named {name!r} in this registry: `postmix mix list` shows the ones there are"
        )
    else:
        out.print("no mixes yet: build one with `postmix mix build spec.yaml`")


def _composition(manifest: dict) -> None:
    with_tokens = manifest.get("tokens") is not None
    columns = ["source", "rows", "share", "unique", "removed by steps", "take"] + (
        ["tokens"] if with_tokens else []
    )
    table = Table(*columns, title="composition")
    for s in manifest["sources"]:
        removed = sum(sum(st["rejected"].values()) for st in s["steps"]
                      if st["step"] not in ("take", "where"))  # other views, not removed
        take = ", ".join(f"{k}={v}" for k, v in s["take"].items())
        row = [
            s["name"],
            f"{s['rows']:,}",
            f"{s['share']:.1%}",
            f"{s['unique_rows']:,}",
            f"{removed:,}",
            take,
        ]
        table.add_row(*row, *([f"{s['tokens']:,}"] if with_tokens else []))
    out.print(table)
    target = manifest.get("target")
    if target:  # a weighted mix: what was asked for, how it was shared, what was reached
        unit = "rows" if "rows" in target else "tokens"
        weights = ", ".join(f"{s['source']} {s['weight']:g}" for s in target["solution"])
        out.print(f"  target {target[unit]:,} {unit} by weight ({weights}), "
                  f"{target['method']}: reached {target['reached']:,}", highlight=False)


def show_cmd(
    ref: str = typer.Argument(..., help="name or name@N."),
    home: Path | None = _home_option(),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest and runs as JSON."),
) -> None:
    """Composition, steps and training runs of one mix version."""
    from postmix.mix import Registry

    registry = Registry(home)
    mix = registry.resolve(ref)
    manifest = mix.manifest
    runs = registry.runs(mix.name, mix.version)
    evals = registry.evals(mix.name, mix.version)
    if as_json:
        out.print_json(json.dumps({"manifest": manifest, "runs": runs, "evals": evals}))
        return
    out.print(
        f"[bold]{mix.ref}[/bold] {mix.kind}, {mix.rows:,} rows, content {mix.content_hash}, "
        f"parent {manifest.get('parent')}, created {manifest.get('created_at')}, seed "
        f"{manifest.get('seed')}"
    )
    _composition(manifest)
    steps = Table("source", "step", "in", "out", "removed", title="steps")
    for s in manifest["sources"]:
        for st in s["steps"]:
            steps.add_row(
                s["name"],
                st["step"],
                f"{st['rows_in']:,}",
                f"{st['rows_out']:,}",
                ", ".join(f"{k}={v}" for k, v in st["rejected"].items()) or "-",
            )
    out.print(steps)
    out.print(
        f"rejects: {manifest['rejects']['rows']:,} rows in {mix.path / manifest['rejects']['file']}"
    )
    if runs:
        table = Table(
            "run", "method", "status", "model", "output", "finished", title="training runs"
        )
        for r in runs:  # a failed run is lineage too, but must not read like a finished one
            table.add_row(
                str(r.get("run_id", "")),
                str(r.get("method", "")),
                str(r.get("status", "")),
                str(r.get("model", "")),
                str(r.get("output_dir", "")),
                str(r.get("finished_at", "")),
            )
        out.print(table)
    else:
        out.print("training runs: none recorded")
    _evaluations(evals)


def _evaluations(evals: list[dict]) -> None:
    """mix version -> run -> scores: one line per benchmark of every recorded result."""
    if not evals:
        out.print("evaluations: none recorded (postmix eval RUN_DIR records its result)")
        return
    table = Table("run", "benchmark", "metric", "score", "95% interval", "items", "results",
                  title="evaluations")
    for e in evals:
        for s in e["result"]["scores"]:
            interval = ("" if s.get("ci_low") is None
                        else f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}]")
            score = "skipped" if s["score"] is None else f"{s['score']:.3f}"
            table.add_row(e["run_id"] or "-", s["benchmark"], s["metric"], score, interval,
                          f"{s['items']:,}", e["results"])
    out.print(table)


def diff_cmd(
    a: str = typer.Argument(..., help="First version, name@N."),
    b: str = typer.Argument(..., help="Second version, name@M."),
    home: Path | None = _home_option(),
    sample: int = typer.Option(10, "--sample", help="Ids listed per direction."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Spec changes, per-source count changes and rows added/removed by id."""
    from postmix.mix import diff

    result = diff(a, b, home=home, sample=sample)
    if as_json:
        out.print_json(json.dumps(result, default=str))
        return
    out.print(
        f"[bold]{result['a']} -> {result['b']}[/bold]: rows {result['rows']['a']:,} -> "
        f"{result['rows']['b']:,}" + (" (identical content)" if result["same_content"] else "")
    )
    for change in result["spec_changes"]:
        out.print(f"  spec {change['key']}: {change['a']!r} -> {change['b']!r}")
    for change in result["source_changes"]:
        note = " (source data changed)" if change["fingerprint_changed"] else ""
        out.print(
            f"  source {change['source']}: {change['a']} -> {change['b']} "
            f"({change['delta']:+d}){note}"
        )
    out.print(f"  rows added {result['rows_added']:,}, removed {result['rows_removed']:,}")
    for label, key in (("added", "added_sample"), ("removed", "removed_sample")):
        if result[key]:
            out.print(f"  e.g. {label}: {', '.join(result[key])}")


def export_cmd(
    ref: str = typer.Argument(..., help="name@N."),
    legacy_output: Path | None = typer.Argument(None, hidden=True, help="The folder (deprecated)."),
    output: Path | None = output_option("Empty or new folder for the data and manifest."),
    hub: str | None = typer.Option(
        None, "--hub", help="Push to this Hub dataset repo instead (owner/name)."
    ),
    to: str = typer.Option(
        "parquet", "--to", help="Output format: parquet (shards copied as-is) or jsonl."
    ),
    private: bool = typer.Option(False, "--private", help="With --hub: create a private repo."),
    license: str | None = typer.Option(
        None, "--license", help="Hub license id for the card (default: the spec's, else other)."
    ),
    home: Path | None = _home_option(),
) -> None:
    """Write a mix version with its dataset card (README.md) to a folder, in the layout
    `datasets.load_dataset(FOLDER)` reads, or push the same to a Hub dataset repo."""
    from postmix.mix import export

    destination = chosen_output(output, legacy_output, required=False)
    where = export(ref, destination, home=home, format=to, hub=hub, private=private,
                   license=license)
    out.print(f"exported {ref} to {where}")


def report_cmd(
    ref: str = typer.Argument(..., help="name or name@N."),
    html_path: Path = typer.Option(..., "--html", help="Output HTML file (self-contained)."),
    home: Path | None = _home_option(),
) -> None:
    """An HTML page with the composition chart and length histograms of a mix version."""
    from postmix.mix import report

    out.print(f"wrote {report(ref, html_path, home=home)}")


def record_eval_cmd(
    results: Path = typer.Argument(..., help="An eval's results.json, or the folder holding it."),
    mix_ref: str | None = typer.Option(
        None, "--mix", help="The version it measures, name@N (default: what the result names)."),
    run_id: str | None = typer.Option(
        None, "--run", help="The training run it measures (default: the result's run)."),
    home: Path | None = _home_option(),
) -> None:
    """Record an eval result against its mix version and run (what `postmix eval` does at its end),
    so `mix show`, `mix report` and `postmix leaderboard` list it."""
    from postmix.mix import record_eval

    entry = record_eval(results, home=home, mix=mix_ref, run_id=run_id)
    run = f" run {entry['run_id']}" if entry["run_id"] else ""
    out.print(f"recorded {entry['results']} against {entry['ref']}{run}", highlight=False)


for _name, _function in (
    ("build", build_cmd),
    ("list", list_cmd),
    ("show", show_cmd),
    ("diff", diff_cmd),
    ("report", report_cmd),
    ("record-eval", record_eval_cmd),
):
    app.command(_name, cls=with_renames({}))(_function)
# --format always names an input format; export's output format is --to
app.command("export", cls=with_renames({"--format": "--to"}))(export_cmd)
