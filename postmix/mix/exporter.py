"""``export(ref, DIR)`` / ``export(ref, hub=REPO)``: a mix version in the layout the Hub and
``datasets.load_dataset`` read as they are.

::

    README.md                        dataset card: Hub YAML metadata (configs, features, sizes,
                                     license, task categories) + composition, curation, lineage
    data/train-00000-of-00002.parquet  the version's Parquet shards, copied byte for byte
    data/train-00001-of-00002.parquet  (or data/train-00000-of-00001.jsonl with format="jsonl")
    manifest.json, spec.yaml         the version's own records
    rejects.parquet, provenance.parquet, contamination.json/.tsv (where the version has them)

The folder is written under ``DIR.partial`` and renamed into place, so ``DIR`` is either whole or
absent. ``hub=REPO`` writes the same folder to a temporary place and uploads it in one commit
(``HfApi.upload_folder``), removing data files an earlier export left in the repo.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from postmix.errors import ConfigError, PostmixError
from postmix.mix.card import write_card
from postmix.mix.registry import MANIFEST, Registry, ResolvedMix

FORMATS = ("parquet", "jsonl")
RECORDS = (MANIFEST, "spec.yaml", "rejects.parquet", "provenance.parquet")


def export(ref: str, destination: str | Path | None = None, *, home: str | Path | None = None,
           format: str = "parquet", hub: str | None = None, private: bool = False,
           license: str | None = None) -> str:
    """Write ``ref`` to ``destination`` (a new or empty folder) or push it to the Hub dataset
    repo ``hub``; returns where. ``license`` is the card's Hub license id (default: the spec's
    ``license``, else ``other``)."""
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}: use {' or '.join(FORMATS)}")
    mix = Registry(home).resolve(ref)
    if hub:
        with tempfile.TemporaryDirectory(prefix="postmix-export-") as tmp:
            folder = Path(tmp) / "export"
            write_export(mix, folder, format=format, license=license, repo=hub)
            return _push(mix, folder, hub, private=private)
    if destination is None:
        raise ConfigError("export needs a destination folder or --hub owner/name")
    out = Path(destination)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty: export into a new or empty folder")
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        write_export(mix, staging, format=format, license=license)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(out)


def write_export(mix: ResolvedMix, folder: Path, *, format: str, license: str | None = None,
                 repo: str | None = None) -> Path:
    """The export layout in ``folder`` (created): data files, the card, the version's records."""
    data = folder / "data"
    data.mkdir(parents=True)
    if format == "parquet":
        shards = mix.manifest["shards"]
        for index, shard in enumerate(shards):
            shutil.copyfile(mix.path / shard["file"],
                            data / f"train-{index:05d}-of-{len(shards):05d}.parquet")
    else:
        mix.dataset.to_json(str(data / "train-00000-of-00001.jsonl"), lines=True,
                            force_ascii=False)
    extras = list(RECORDS)
    contamination = mix.manifest.get("contamination") or {}
    extras += [name for name in (contamination.get("json"), contamination.get("tsv")) if name]
    for extra in extras:
        if (mix.path / extra).exists():
            shutil.copyfile(mix.path / extra, folder / extra)
    write_card(folder, mix, extension=format, license=license, repo=repo)
    return folder


def _push(mix: ResolvedMix, folder: Path, repo: str, *, private: bool) -> str:
    from huggingface_hub import HfApi

    try:
        api = HfApi()
        api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(
            folder_path=str(folder),
            repo_id=repo,
            repo_type="dataset",
            commit_message=f"postmix mix {mix.ref} (content {mix.content_hash})",
            # shards of an earlier export would otherwise match data/train-* too
            delete_patterns=["data/*"],
        )
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PostmixError(
            f"could not push {mix.ref} to {repo}: {first} (check HF_TOKEN and the repo name)"
        ) from None
    return f"hf:{repo}"
