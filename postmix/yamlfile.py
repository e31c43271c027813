"""Safe YAML with YAML 1.2 booleans.

PyYAML follows YAML 1.1, where ``on``, ``off``, ``yes``, ``no``, ``y`` and ``n`` are booleans, so
``on: user`` (postmix's own option name) would arrive as ``{True: "user"}``. Only ``true`` and
``false`` are booleans here; everything else stays a string. Loading is always safe (no objects).

A key given twice in one mapping is an error here (PyYAML keeps the last one silently, so a second
``sources:`` would quietly replace the first). ``read_yaml`` turns every way a config file can be
unreadable (missing, a folder, not UTF-8, not YAML, nested past Python's recursion limit, an alias
bomb) into one ``ConfigError`` line that names the file and, for syntax errors, the line and column.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from postmix.errors import ConfigError

# Configs are small; a document that expands past this many values through aliases (``&a`` /
# ``*a``, the "billion laughs") would take minutes and gigabytes in whatever walks it next.
MAX_VALUES = 1_000_000


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # ``<<: *base`` then overriding a key is what merge keys are for
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:
                    continue  # an unhashable key: the constructor below says so
                if first is not key_node:
                    first_line = first.start_mark.line + 1
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} given twice (first on line {first_line})",
                        key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def safe_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def _too_many_values(value: Any) -> bool:
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        count += 1
        if count > MAX_VALUES:
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _syntax_error(path: Path, exc: yaml.YAMLError) -> ConfigError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
    context = getattr(exc, "context", None)
    where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
    context = f" ({context})" if context else ""
    return ConfigError(f"{path}{where}: not valid YAML: {problem}{context}")


def read_yaml(path: str | Path, what: str, *, hint: str = "") -> Any:
    """The YAML document in ``path``; a one-line ``ConfigError`` when the file is missing (naming
    ``what`` it should have been, plus ``hint``) or cannot be read as YAML."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not a YAML file: pass the {what} inside it")
    if not path.is_file():
        raise ConfigError(f"no such {what}: {path}" + (f" ({hint})" if hint else ""))
    try:
        data = safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                          f"{exc.start}): save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise _syntax_error(path, exc) from None
    except RecursionError:
        raise ConfigError(f"{path} nests deeper than a {what} can "
                          "(check its brackets and indents)") from None
    except ValueError as exc:  # an integer past Python's 4,300-digit conversion limit
        raise ConfigError(f"{path}: {str(exc).split(';')[0].strip()}") from None
    except OSError as exc:
        raise ConfigError(f"{path} could not be read: {exc.strerror or exc}") from None
    if _too_many_values(data):
        raise ConfigError(f"{path} expands to more than {MAX_VALUES:,} values through its aliases "
                          f"(&name / *name): write the {what} out")
    return data
