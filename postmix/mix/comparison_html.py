"""The leaderboard as one self-contained HTML page: the table of ``postmix leaderboard`` (scores,
intervals, deltas, noise and decontamination marks, the diff of each version against the
baseline) and a plot of every benchmark's scores per row with their intervals (base64 PNG, like
``mix report``)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from postmix.mix.html_report import _png, _table

WITHIN_NOISE = "~"  # the difference to the baseline is within noise
NOT_DECONTAMINATED = "!"  # the version was not decontaminated against this benchmark


def row_label(row: dict[str, Any]) -> str:
    return row["ref"] + (f" / {row['run_id']}" if row.get("run_id") else "")


def cell_text(cell: dict[str, Any] | None) -> str:
    """``0.412 [0.371, 0.455] +0.031~!`` - the form the terminal table and the page share."""
    if cell is None:
        return "-"
    if cell["score"] is None:
        return f"skipped ({cell['skipped']})" if cell.get("skipped") else "-"
    text = f"{cell['score']:.3f}"
    if cell.get("ci_low") is not None and cell.get("ci_high") is not None:
        text += f" [{cell['ci_low']:.3f}, {cell['ci_high']:.3f}]"
    if cell.get("delta") is not None:
        text += f" {cell['delta']:+.3f}"
    if cell.get("noise", {}).get("within"):
        text += WITHIN_NOISE
    if not cell.get("decontaminated", True):
        text += NOT_DECONTAMINATED
    return text


def legend(board: dict[str, Any]) -> str:
    return (f"deltas against {board['baseline']}; {WITHIN_NOISE} within noise (paired bootstrap "
            f"on per-item files where both exist, else overlapping 95% intervals); "
            f"{NOT_DECONTAMINATED} the mix was not decontaminated against this benchmark")


def _plot(board: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benchmarks = board["benchmarks"]
    rows = board["rows"]
    fig, axes = plt.subplots(1, len(benchmarks), figsize=(max(4.5, 1.1 * len(rows) + 2) *
                             len(benchmarks), 4.2), squeeze=False)
    for ax, bench in zip(axes[0], benchmarks, strict=True):
        for x, row in enumerate(rows):
            cell = row["cells"].get(bench)
            if cell is None or cell["score"] is None:
                continue
            low = cell["score"] - cell["ci_low"] if cell.get("ci_low") is not None else 0.0
            high = cell["ci_high"] - cell["score"] if cell.get("ci_high") is not None else 0.0
            color = "#C44E52" if row["is_baseline"] else "#4C72B0"
            ax.errorbar([x], [cell["score"]], yerr=[[low], [high]], fmt="o", color=color,
                        capsize=4)
            if cell.get("baseline"):
                ax.axhline(cell["score"], color=color, linestyle="--", linewidth=0.8)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([row_label(r) for r in rows], rotation=30, ha="right", fontsize=8)
        ax.set_title(bench)
        ax.set_ylabel("score (95% interval)")
        ax.set_xlim(-0.5, len(rows) - 0.5)
    fig.suptitle(f"scores per version (baseline {board['baseline']}, red)")
    try:
        return _png(fig)
    finally:
        plt.close(fig)


def write_leaderboard_html(board: dict[str, Any], output: str | Path) -> Path:
    headers = ["mix version / run", *board["benchmarks"], f"diff against {board['baseline']}"]
    rows = [[row_label(row), *(cell_text(row["cells"].get(b)) for b in board["benchmarks"]),
             "baseline" if row["is_baseline"] else (row["diff"] or {}).get("text", "")]
            for row in board["rows"]]
    unevaluated = (f"<p>Not evaluated: {html.escape(', '.join(board['unevaluated']))}.</p>"
                   if board["unevaluated"] else "")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>leaderboard</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto}}\
table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}}\
img{{max-width:100%}}</style></head>
<body><h1>Leaderboard</h1>
<p>{html.escape(legend(board))}.</p>
{_table(headers, rows)}
{unevaluated}
<img alt="scores per version" src="data:image/png;base64,{_plot(board)}">
</body></html>
"""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(output)
    return output
