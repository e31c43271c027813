"""Write the example notebooks in ``notebooks/`` (without outputs); the tests execute them.

    python scripts/make_notebooks.py
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = Path(__file__).resolve().parents[1] / "notebooks"

SETUP = """\
import json, tempfile
from pathlib import Path
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
work = Path(tempfile.mkdtemp(prefix="postmix-notebook-"))
FIGURES = Path(".")  # figures are saved next to the notebook
"""

CURATE = [
    new_markdown_cell("# 01 — Curate and mix\n\nIngest the bundled sample, filter it, remove exact and near "
                      "duplicates, decontaminate it against a GSM8K test sample, and build a versioned SFT mix. "
                      "Every step accounts for every row: `rows_in == rows_out + rejected`."),
    new_code_cell(SETUP),
    new_code_cell("""\
from postmix.io import ingest
from postmix.curate.filters import FilterConfig, filter_file
from postmix.curate.dedup import DedupConfig, dedup_file
from postmix.curate.decontam import DecontamConfig, decontaminate_file

raw = ingest("pkg://postmix/data/sample_sft.jsonl", work / "raw.parquet", progress=False)
filtered = filter_file(work / "raw.parquet", work / "filtered.parquet", FilterConfig())
deduped = dedup_file(work / "filtered.parquet", work / "deduped.parquet", DedupConfig(on="conversation", verify=True))
clean = decontaminate_file(work / "deduped.parquet", work / "clean.parquet", DecontamConfig(benchmarks=["gsm8k-sample"]))
steps = [raw.report, filtered.report, deduped.report, clean.report]
for r in steps:
    assert r.rows_in == r.rows_out + r.rejected_total
    print(r.summary())"""),
    new_markdown_cell("## Where the rows went"),
    new_code_cell("""\
fig, ax = plt.subplots(figsize=(7, 3))
names = [r.step for r in steps]
ax.bar(names, [r.rows_out for r in steps], label="kept")
ax.bar(names, [r.rejected_total for r in steps], bottom=[r.rows_out for r in steps], label="rejected")
ax.set_ylabel("rows"); ax.legend(); ax.set_title("rows kept and rejected per step")
fig.tight_layout(); fig.savefig(FIGURES / "01_rows_per_step.png")"""),
    new_markdown_cell("## Duplicate clusters\n\nThe dedup report keeps a histogram of cluster sizes."),
    new_code_cell("""\
details = deduped.report.details
hist = details["near"]["cluster_size_histogram"]
print(json.dumps(hist))
fig, ax = plt.subplots(figsize=(5, 3))
ax.bar([str(k) for k in hist], list(hist.values()))
ax.set_xlabel("cluster size"); ax.set_ylabel("clusters"); ax.set_title("near-duplicate clusters")
fig.tight_layout(); fig.savefig(FIGURES / "01_cluster_sizes.png")"""),
    new_markdown_cell("## Contamination per benchmark"),
    new_code_cell("""\
per_bench = clean.report.details["benchmarks"]
print(json.dumps(per_bench, indent=1)[:1500])
fig, ax = plt.subplots(figsize=(5, 3))
ax.bar(list(per_bench), [b["contaminated_fraction"] for b in per_bench.values()])
ax.set_ylabel("fraction of benchmark instances found"); ax.set_title("contamination")
fig.tight_layout(); fig.savefig(FIGURES / "01_contamination.png")"""),
    new_markdown_cell("## A versioned mix\n\nBuilding the same spec twice returns the same version."),
    new_code_cell("""\
from postmix import mix
spec = {"name": "nb-sft", "kind": "sft", "seed": 0, "sources": [
    {"name": "clean", "path": str(work / "clean.parquet"), "fraction": 0.9},
    {"name": "upsampled_math", "path": str(work / "clean.parquet"), "epochs": 0.3}]}
first = mix.build(spec, home=work / ".postmix", progress=False)
again = mix.build(spec, home=work / ".postmix", progress=False)
assert again.mix.ref == first.mix.ref and not again.created
print(first.mix.ref, first.mix.rows, first.mix.content_hash)
composition = {s["name"]: s["rows"] for s in first.manifest["sources"]}
fig, ax = plt.subplots(figsize=(4, 4))
ax.pie(list(composition.values()), labels=list(composition), autopct="%1.0f%%")
ax.set_title(first.mix.ref)
fig.tight_layout(); fig.savefig(FIGURES / "01_mix_composition.png")"""),
]


def main() -> None:
    OUT.mkdir(exist_ok=True)
    notebooks = {"01_curate_and_mix.ipynb": CURATE}
    for name, cells in notebooks.items():
        nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
        nbformat.write(nb, OUT / name)
        print("wrote", OUT / name)


if __name__ == "__main__":
    main()
