"""The dataset card of an exported mix: ``README.md`` with the Hub's YAML metadata and a body that
says what is in the mix and how it was made.

The YAML front matter is what ``datasets.load_dataset`` and the Hub read: ``configs`` (which
files are the ``train`` split), ``dataset_info`` (features, split sizes, bytes), ``license``,
``task_categories`` and ``tags``. It is written by ``datasets``' and ``huggingface_hub``'s own
card classes, so it is the metadata ``push_to_hub`` would write. The body has the composition
per source, every curation step with its counts, the contamination matrix (when the build made
one), the lineage (parent version, fingerprints of the spec and of every input) and the spec.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import xxhash
import yaml

from postmix.mix.registry import ResolvedMix

CARD = "README.md"
DATA_PATTERN = "data/train-*.{extension}"
# The Hub's task ids: every postmix mix trains a text-generation model
TASK_CATEGORIES = ["text-generation"]
KIND_TAGS = {
    "sft": ["sft", "instruction-tuning"],
    "preference": ["dpo", "preference"],
    "rlvr": ["rlvr", "verifiable-rewards"],
}
DEFAULT_LICENSE = "other"  # a mix inherits its sources' licenses; the Hub's id for "see the card"


def spec_fingerprint(spec: dict[str, Any]) -> str:
    """xxh3-128 of the spec as canonical JSON (sorted keys): equal specs, equal fingerprints."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "xxh3:" + xxhash.xxh3_128_hexdigest(text.encode("utf-8"))


def card_text(mix: ResolvedMix, *, extension: str, data_bytes: int, dataset_bytes: int,
              license: str | None = None, repo: str | None = None) -> str:
    """The whole ``README.md``: YAML front matter, then the markdown body."""
    return f"---\n{_metadata(mix, extension, data_bytes, dataset_bytes, license)}---\n\n" + _body(
        mix, repo=repo, license=license
    )


def _metadata(mix: ResolvedMix, extension: str, data_bytes: int, dataset_bytes: int,
              license: str | None) -> str:
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from huggingface_hub import DatasetCardData

    from postmix.schemas import FEATURES

    splits = SplitDict()
    splits.add(SplitInfo(name="train", num_bytes=dataset_bytes, num_examples=mix.rows))
    info = DatasetInfo(features=FEATURES[mix.kind], splits=splits, download_size=data_bytes,
                       dataset_size=dataset_bytes)
    data = DatasetCardData(
        license=_license(mix, license),
        task_categories=TASK_CATEGORIES,
        tags=["postmix", *KIND_TAGS[mix.kind]],
        pretty_name=mix.ref,
        size_categories=[_size_category(mix.rows)],
        configs=[{"config_name": "default", "data_files": [
            {"split": "train", "path": DATA_PATTERN.format(extension=extension)}]}],
    )
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    return data.to_yaml() + "\n"


def _license(mix: ResolvedMix, license: str | None) -> str:
    return license or mix.manifest.get("spec", {}).get("license") or DEFAULT_LICENSE


def _size_category(rows: int) -> str:
    """The Hub's size buckets (n<1K, 1K<n<10K, ... 1B<n<10B, n>1T)."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
              (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"),
              (1_000_000_000, "100M<n<1B"), (10_000_000_000, "1B<n<10B")]
    return next((label for bound, label in bounds if rows < bound), "n>1T")


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _body(mix: ResolvedMix, *, repo: str | None, license: str | None) -> str:
    manifest = mix.manifest
    description = manifest.get("spec", {}).get("description") or ""
    tokens = manifest.get("tokens")
    token_note = (f", {tokens:,} tokens ({manifest.get('tokenizer')})" if tokens is not None
                  else "")
    where = repo or "path/to/this/folder"
    parts = [
        f"# {mix.ref}\n",
        (description + "\n") if description else "",
        f"{mix.rows:,} {mix.kind} rows{token_note}, built by postmix "
        f"{manifest.get('postmix_version')} on {manifest.get('created_at')}. Content hash "
        f"`{mix.content_hash}` (xxh3-128 of the rows' values, in order).\n",
        "```python\nfrom datasets import load_dataset\n\n"
        f'ds = load_dataset("{where}", split="train")\n```\n',
        "## Composition\n",
        _composition(manifest),
        "## Curation\n",
        _curation(manifest),
        "## Contamination\n",
        _contamination(mix),
        "## Lineage\n",
        _lineage(mix),
        "## License\n",
        f"`{_license(mix, license)}`. A mix is made of its sources: each source's own license "
        "and terms apply to its rows (see the locations above).\n",
        "## Spec\n",
        "```yaml\n" + yaml.safe_dump(manifest.get("spec", {}), sort_keys=False,
                                    allow_unicode=True) + "```\n",
    ]
    return "\n".join(part for part in parts if part)


def _composition(manifest: dict[str, Any]) -> str:
    with_tokens = manifest.get("tokens") is not None
    header = ["source", "location", "rows", "share", "unique rows", "take"] + (
        ["tokens"] if with_tokens else [])
    rows = []
    for s in manifest["sources"]:
        take = ", ".join(f"{k}={v}" for k, v in s["take"].items())
        row = [s["name"], f"`{s['location']}`", f"{s['rows']:,}", f"{s['share']:.1%}",
               f"{s['unique_rows']:,}", take]
        rows.append(row + ([f"{s['tokens']:,}"] if with_tokens else []))
    return _table(header, rows)


def _curation(manifest: dict[str, Any]) -> str:
    """Every step report of every source: in, out and removed by reason (they reconcile)."""
    rows = []
    for s in manifest["sources"]:
        for step in s["steps"]:
            removed = ", ".join(f"{reason}: {n:,}" for reason, n in step["rejected"].items())
            rows.append([s["name"], step["step"], f"{step['rows_in']:,}",
                         f"{step['rows_out']:,}", removed or "-"])
    text = ("Per source, every step with the rows in and out and the rows it removed, by "
            "reason (`rows in = rows out + removed`). `take` rows not sampled stay in the "
            "source; rows removed by any other step are in `rejects.parquet` with step, "
            "reason and detail.\n\n")
    text += _table(["source", "step", "rows in", "rows out", "removed"], rows)
    rejects = manifest.get("rejects", {})
    text += f"\n{rejects.get('rows', 0):,} rows in `rejects.parquet`"
    counts = rejects.get("by_step_and_reason") or {}
    if counts:
        text += ": " + "; ".join(
            f"{step} ({', '.join(f'{r} {n:,}' for r, n in reasons.items())})"
            for step, reasons in counts.items())
    return text + ".\n"


def _has_decontam_step(manifest: dict[str, Any]) -> bool:
    return any("decontam" in step["step"] for s in manifest["sources"] for step in s["steps"])


def _contamination(mix: ResolvedMix) -> str:
    entry = mix.manifest.get("contamination")
    if not entry:
        if _has_decontam_step(mix.manifest):
            return ("A decontamination step ran (its counts are under Curation), but this "
                    "version records no contamination matrix.\n")
        return "No decontamination step: this mix was not checked against any benchmark.\n"
    matrix = json.loads((mix.path / entry["json"]).read_text(encoding="utf-8"))
    benchmarks = ", ".join(f"{b['name']} ({b['instances']:,} instances)"
                           for b in matrix.get("benchmarks", []))
    rows = [[c["source"], c["benchmark"], c.get("side", ""), f"{c['rows_flagged']:,}",
             f"{c['instances_hit']:,} / {c['benchmark_instances']:,}", f"{c['share']:.2%}"]
            for c in matrix.get("cells", [])]
    text = (f"Checked against {benchmarks}. Per source and benchmark: rows flagged as "
            "overlapping, and the benchmark instances they hit (`share` of the benchmark). "
            f"Also in `{entry['json']}`" + (f" and `{entry['tsv']}`" if entry.get("tsv") else "")
            + ".\n\n")
    return text + _table(["source", "benchmark", "side", "rows flagged", "instances hit",
                          "share"], rows)


def _lineage(mix: ResolvedMix) -> str:
    manifest = mix.manifest
    parent = manifest.get("parent")
    lines = [
        f"- version: `{mix.ref}`, parent: "
        + (f"`{mix.name}@{parent}`" if parent is not None else "none (first version)"),
        f"- content hash: `{mix.content_hash}`",
        f"- spec fingerprint: `{spec_fingerprint(manifest.get('spec', {}))}`",
        f"- seed: {manifest.get('seed')}, shuffle: {manifest.get('shuffle')}",
        "- inputs:",
    ]
    lines += [f"  - {s['name']}: `{s['location']}` fingerprint `{s['fingerprint']}`"
              for s in manifest["sources"]]
    lines.append("\n`manifest.json` holds all of it, with every step's report and config.")
    return "\n".join(lines) + "\n"


def write_card(folder: Path, mix: ResolvedMix, *, extension: str, license: str | None = None,
               repo: str | None = None) -> Path:
    """Write ``folder/README.md`` for the data files already in ``folder/data``."""
    data_bytes = sum(p.stat().st_size for p in (folder / "data").glob(f"train-*.{extension}"))
    path = folder / CARD
    path.write_text(card_text(mix, extension=extension, data_bytes=data_bytes,
                              dataset_bytes=mix.table().nbytes, license=license, repo=repo),
                    encoding="utf-8")
    return path
