"""``mix report name@N --html FILE``: one self-contained HTML page (charts as base64 PNG) with the
composition of the mix, length histograms per source, what each step removed, the
contamination matrix of its decontam steps (training source x benchmark, per side), its training
runs and their recorded evaluations."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from postmix.mix.measure import row_chars, row_turns
from postmix.mix.registry import Registry, ResolvedMix


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _composition_chart(manifest: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    names = [s["name"] for s in manifest["sources"]]
    rows = [s["rows"] for s in manifest["sources"]]
    with_tokens = manifest.get("tokens") is not None
    fig, axes = plt.subplots(
        1,
        2 if with_tokens else 1,
        figsize=(10 if with_tokens else 6, 0.5 * len(names) + 1.5),
        squeeze=False,
    )
    axes[0][0].barh(names, rows, color="#4C72B0")
    axes[0][0].set_xlabel("rows")
    axes[0][0].invert_yaxis()
    total = max(sum(rows), 1)
    for y, value in enumerate(rows):
        axes[0][0].text(value, y, f" {value:,} ({value / total:.1%})", va="center", fontsize=8)
    if with_tokens:
        tokens = [s["tokens"] or 0 for s in manifest["sources"]]
        axes[0][1].barh(names, tokens, color="#DD8452")
        axes[0][1].set_xlabel("tokens")
        axes[0][1].invert_yaxis()
    fig.suptitle(f"{manifest['ref']}: composition")
    try:
        return _png(fig)
    finally:
        plt.close(fig)


def _histograms(mix: ResolvedMix, owner: np.ndarray, names: list[str]) -> str:
    import matplotlib.pyplot as plt

    table = mix.table()
    chars = row_chars(table, mix.kind)
    turns = row_turns(table, mix.kind)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    upper = max(float(np.percentile(chars, 99)) if len(chars) else 1.0, 1.0)
    bins = np.linspace(0, upper, 40)
    for index, name in enumerate(names):
        mine = owner == index
        if mine.any():
            axes[0].hist(np.clip(chars[mine], 0, upper), bins=bins, alpha=0.5, label=name)
            axes[1].hist(
                turns[mine],
                bins=np.arange(0.5, max(int(turns.max()), 1) + 1.5),
                alpha=0.5,
                label=name,
            )
    axes[0].set_xlabel("characters per row (clipped at p99)")
    axes[1].set_xlabel("messages per row")
    for ax in axes:
        ax.set_ylabel("rows")
    axes[0].legend(fontsize=7)
    fig.suptitle("length distributions per source")
    try:
        return _png(fig)
    finally:
        plt.close(fig)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _contamination(mix: ResolvedMix) -> str:
    """The version's contamination matrix as a table, or why there is none."""
    entry = mix.manifest.get("contamination")
    if not entry:
        return "<p>no decontam step in this build</p>"
    matrix = json.loads((mix.path / entry["json"]).read_text(encoding="utf-8"))
    sizes = ", ".join(f"{b['name']} ({b['instances']:,} instances)" for b in matrix["benchmarks"])
    rows = [[c["source"], c["benchmark"], c["side"], f"{c['rows_flagged']:,}",
             f"{c['instances_hit']:,} / {c['benchmark_instances']:,}", f"{c['share']:.2%}"]
            for c in matrix["cells"]]
    table = _table(["training source", "benchmark", "side", "rows flagged", "instances hit",
                    "share of benchmark"], rows)
    return f"<p>Benchmarks: {html.escape(sizes)}.</p>\n{table}"


def write_report(ref: str, output: str | Path, *, home: str | Path | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display, deterministic backend
    registry = Registry(home)
    mix = registry.resolve(ref)
    manifest = mix.manifest
    provenance = pq.read_table(mix.path / manifest["provenance"])
    names = [s["name"] for s in manifest["sources"]]
    owner = pc.index_in(provenance.column("mix_source").cast("string"),
                        value_set=pa.array(names, pa.string())).to_numpy(zero_copy_only=False)
    composition = [[s["name"], f"{s['rows']:,}", f"{s['share']:.1%}", s["unique_rows"],
                    "" if s["tokens"] is None else f"{s['tokens']:,}", s["fingerprint"][:22]]
                   for s in manifest["sources"]]
    steps = []
    for source in manifest["sources"]:
        for step in source["steps"]:
            removed = ", ".join(f"{k}={v}" for k, v in step["rejected"].items()) or "-"
            steps.append([source["name"], step["step"], step["rows_in"], step["rows_out"], removed])
    runs = registry.runs(mix.name, mix.version)
    run_rows = [
        [r.get("run_id", ""), r.get("method", ""), r.get("model", ""), r.get("output_dir", "")]
        for r in runs
    ]
    eval_rows = [
        [e["run_id"] or "-", s["benchmark"], s["metric"],
         "skipped" if s["score"] is None else f"{s['score']:.3f}",
         "" if s.get("ci_low") is None else f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}]",
         s["items"], e["results"]]
        for e in registry.evals(mix.name, mix.version) for s in e["result"]["scores"]
    ]
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(mix.ref)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}\
table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}}\
img{{max-width:100%}}</style></head>
<body><h1>{html.escape(mix.ref)}</h1>
<p>{html.escape(mix.kind)} mix, {mix.rows:,} rows, content hash <code>\
{html.escape(mix.content_hash)}</code>,
built {html.escape(manifest.get("created_at", ""))}\
 with postmix {html.escape(manifest.get("postmix_version", ""))},
seed {manifest.get("seed")}, parent {html.escape(str(manifest.get("parent")))}.</p>
<h2>Composition</h2>
{_table(["source", "rows", "share", "unique rows", "tokens", "fingerprint"], composition)}
<img alt="composition" src="data:image/png;base64,{_composition_chart(manifest)}">
<h2>Lengths</h2>
<img alt="length histograms" src="data:image/png;base64,{_histograms(mix, owner, names)}">
<h2>Steps</h2>
{_table(["source", "step", "in", "out", "removed"], steps)}
<h2>Contamination</h2>
{_contamination(mix)}
<h2>Training runs</h2>
{_table(["run", "method", "model", "output"], run_rows) if run_rows else "<p>none recorded</p>"}
<h2>Evaluations</h2>
{_table(["run", "benchmark", "metric", "score", "95% interval", "items", "results"], eval_rows)
 if eval_rows else "<p>none recorded</p>"}
</body></html>
"""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".partial")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(output)
    return output
