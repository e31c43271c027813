"""Safe YAML with YAML 1.2 booleans.

PyYAML follows YAML 1.1, where ``on``, ``off``, ``yes``, ``no``, ``y`` and ``n`` are booleans, so
``on: user`` (postmix's own option name) would arrive as ``{True: "user"}``. Only ``true`` and
``false`` are booleans here; everything else stays a string. Loading is always safe (no objects).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def safe_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def read_yaml(path: str | Path, what: str, *, hint: str = "") -> Any:
    """The YAML document in ``path``; a one-line ``ConfigError`` when the file is missing (naming
    ``what`` it should have been, plus ``hint``) or does not parse."""
    from postmix.errors import ConfigError

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no such {what}: {path}" + (f" ({hint})" if hint else ""))
    try:
        return safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {str(exc).strip().splitlines()[0]}") from None
