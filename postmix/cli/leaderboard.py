"""``postmix leaderboard [MIX ...]``: mix versions x benchmarks from the recorded evals, deltas
against a baseline, noise and decontamination marks, and each version's diff; argument parsing
and printing only (``postmix.mix.comparison`` makes the board)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from postmix.cli.command import one_command
from postmix.cli.output import json_option, out, print_json


def print_board(board: dict[str, Any]) -> None:
    """The board as a terminal table, its legend, the diff lines and what was not evaluated."""
    from postmix.mix.comparison_html import cell_text, legend, row_label

    table = Table("mix version / run", *board["benchmarks"], title="leaderboard")
    for row in board["rows"]:
        label = row_label(row) + (" (baseline)" if row["is_baseline"] else "")
        table.add_row(label, *(cell_text(row["cells"].get(b)) for b in board["benchmarks"]))
    out.print(table)
    out.print(legend(board), highlight=False)
    diffs = {row["ref"]: row["diff"] for row in board["rows"] if row["diff"]}
    for ref, summary in diffs.items():
        out.print(f"  {ref} vs {board['baseline']}: rows {summary['rows'][0]:,} -> "
                  f"{summary['rows'][1]:,}; {summary['text']}", highlight=False, markup=False)
    if board["unevaluated"]:
        out.print(f"  not evaluated: {', '.join(board['unevaluated'])}", highlight=False)


def leaderboard(
    mixes: list[str] | None = typer.Argument(
        None, help="Mix names (every version) or name@N; default: every mix in the registry."),
    baseline: str | None = typer.Option(
        None, "--baseline", help="The version deltas are against, name@N (default: the first)."),
    benchmark: list[str] | None = typer.Option(
        None, "--benchmark", help="Only this benchmark (repeatable)."),
    html_path: Path | None = typer.Option(
        None, "--html", help="Also write the board with its plot as one HTML file."),
    home: Path | None = typer.Option(
        None, "--home", help="Registry folder (default: $POSTMIX_HOME, else ./.postmix)."),
    as_json: bool = json_option("Print the board as JSON."),
) -> None:
    """Scores of mix versions (and their runs) per benchmark, against a baseline version."""
    from postmix.mix import leaderboard as make_board

    board = make_board(mixes or None, home=home, baseline=baseline, benchmarks=benchmark or None)
    if html_path is not None:
        from postmix.mix.comparison_html import write_leaderboard_html

        written = write_leaderboard_html(board, html_path)
        if not as_json:
            out.print(f"wrote {written}", highlight=False)
    if as_json:
        print_json(board)
        return
    print_board(board)


def leaderboard_command() -> Any:
    return one_command(leaderboard, "leaderboard")
