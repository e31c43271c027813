"""A fingerprint per source, recorded in the manifest, so a mix version names exactly what it read.

Local files: xxh3-128 of their bytes (streamed). Arrow folders: a hash over each file's relative
path and bytes hash. Hub datasets: the commit sha of the revision (a pinned ``@sha`` is used as
is; otherwise the Hub is asked which commit the branch points to, and the build loads that
commit, so the data read and the fingerprint recorded cannot drift apart).
"""

from __future__ import annotations

import re
from pathlib import Path

from postmix.errors import InputNotFoundError, PostmixError
from postmix.io.fingerprint import path_hash
from postmix.io.read import HUB_PREFIX

_SHA = re.compile(r"^[0-9a-f]{40}$")


def hub_revision(location: str) -> str:
    """Commit sha of ``hf:owner/name[@revision]``."""
    repo, _, revision = location[len(HUB_PREFIX):].partition("@")
    if _SHA.match(revision):
        return revision
    try:
        from huggingface_hub import HfApi

        info = HfApi().dataset_info(repo, revision=revision or None)
    except Exception as exc:  # offline, private, misspelt: all fixable by the user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PostmixError(
            f"cannot resolve the revision of Hub dataset {repo!r}: {first} "
            "(check the name, network and HF_TOKEN, or pin it as hf:owner/name@<commit sha>)"
        ) from None
    return str(info.sha)


def fingerprint(location: str) -> str:
    """``xxh3:<hex>`` for local data, ``hf:<sha>`` for Hub data."""
    if location.startswith(HUB_PREFIX):
        return f"hf:{hub_revision(location)}"
    path = Path(location)
    if not path.exists():
        raise InputNotFoundError(
            f"no such source: {location} (relative paths resolve against the spec's folder)"
        )
    return f"xxh3:{path_hash(path)}"


def pinned_location(location: str, fingerprint_value: str) -> str:
    """The location to load: Hub sources pinned to the fingerprinted commit."""
    if location.startswith(HUB_PREFIX) and fingerprint_value.startswith("hf:"):
        repo = location[len(HUB_PREFIX):].partition("@")[0]
        return f"{HUB_PREFIX}{repo}@{fingerprint_value[3:]}"
    return location
