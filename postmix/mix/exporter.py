"""``export(ref, DIR)``: a mix version as plain files anyone can read (Parquet shards copied byte
for byte, or one JSONL file) plus its manifest; or ``hub=REPO``: ``Dataset.push_to_hub``."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from postmix.errors import ConfigError, PostmixError
from postmix.mix.registry import MANIFEST, Registry

FORMATS = ("parquet", "jsonl")


def export(ref: str, destination: str | Path | None = None, *, home: str | Path | None = None,
           format: str = "parquet", hub: str | None = None, private: bool = False) -> str:
    """Write ``ref`` to ``destination`` (a folder) or push it to the Hub repo ``hub``;
    returns where."""
    mix = Registry(home).resolve(ref)
    if hub:
        return _push(mix, hub, private=private)
    if destination is None:
        raise ConfigError("export needs a destination folder or --hub owner/name")
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}: use {' or '.join(FORMATS)}")
    out = Path(destination)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty: export into a new or empty folder")
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        if format == "parquet":
            for shard in mix.manifest["shards"]:
                target = staging / shard["file"]
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(mix.path / shard["file"], target)
        else:
            mix.dataset.to_json(str(staging / "data.jsonl"), lines=True, force_ascii=False)
        for extra in (MANIFEST, "spec.yaml", "rejects.parquet", "provenance.parquet"):
            if (mix.path / extra).exists():
                shutil.copyfile(mix.path / extra, staging / extra)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(out)


def _push(mix, repo: str, *, private: bool) -> str:
    """Untested offline: needs network and a token with write access to ``repo``."""
    try:
        mix.dataset.push_to_hub(
            repo,
            private=private,
            commit_message=f"postmix mix {mix.ref} (content {mix.content_hash})",
        )
        from huggingface_hub import HfApi

        HfApi().upload_file(
            path_or_fileobj=json.dumps(mix.manifest, indent=2).encode(),
            path_in_repo="postmix_manifest.json",
            repo_id=repo,
            repo_type="dataset",
            commit_message=f"postmix manifest of {mix.ref}",
        )
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PostmixError(
            f"could not push {mix.ref} to {repo}: {first} (check HF_TOKEN and the repo name)"
        ) from None
    return f"hf:{repo}"
