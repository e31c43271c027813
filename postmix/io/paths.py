"""Where a path names data: a file, a Hub dataset (``hf:``), or a file shipped inside the package
(``pkg://postmix/data/sample_sft.jsonl``), so recipes work for installed users too."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

PACKAGE_PREFIX = "pkg://"


def resolve_path(value: str | Path, *, base: str | Path | None = None) -> Path | str:
    text = str(value)
    if text.startswith("hf:"):
        return text
    if text.startswith(PACKAGE_PREFIX):
        package, _, rest = text[len(PACKAGE_PREFIX):].partition("/")
        return Path(str(files(package).joinpath(rest)))
    path = Path(text).expanduser()
    if base is not None and not path.is_absolute():
        path = Path(base) / path
    return path


def cache_folder(name: str) -> Path:
    """``<cache>/<name>``: ``$POSTMIX_CACHE_DIR``, else ``$XDG_CACHE_HOME/postmix``, else
    ``~/.cache/postmix`` (dedup reference signatures, output locks)."""
    root = os.environ.get("POSTMIX_CACHE_DIR")
    if root:
        return Path(root) / name
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "postmix" / name
