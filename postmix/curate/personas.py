"""Personas for prompt synthesis, and the seeded order they are used in.

PersonaHub-style synthesis gets its diversity from the persona, so each persona is used once
before any is used again: the order is a seeded permutation of the whole set, followed by a fresh
permutation when the set runs out. The order of the first ``n`` never depends on ``n`` (asking for
more extends the run, it does not reshuffle it), which keeps request cache keys stable when a run
is resumed with a larger ``n``.

Sources: the bundled set (``postmix/data/personas.jsonl``, 64 short personas written for postmix),
a local JSONL/JSON/Parquet file or Arrow folder, or a Hub dataset ``hf:owner/name`` (e.g.
``hf:proj-persona/PersonaHub`` with subset ``persona``), each read from one text field.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from postmix.errors import ConfigError, PostmixError
from postmix.io.paths import resolve_path
from postmix.io.read import HUB_PREFIX, iter_raw_rows
from postmix.schemas import content_hash, normalise_text

BUNDLED_PERSONAS = "pkg://postmix/data/personas.jsonl"


@dataclass(frozen=True)
class Persona:
    id: str  # hash of the normalised text: the same persona has the same id in every source
    text: str


@dataclass
class PersonaSet:
    personas: list[Persona]
    source: str
    rows_read: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows not used

    def __len__(self) -> int:
        return len(self.personas)


def _hub_rows(name: str, subset: str | None, split: str) -> Iterator[dict[str, Any]]:
    import datasets

    repo, _, revision = name[len(HUB_PREFIX):].partition("@")
    try:
        dataset = datasets.load_dataset(repo, subset, split=split, streaming=True,
                                        revision=revision or None)
        yield from dataset
    except Exception as exc:  # network, auth, missing subset: all user-fixable
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PostmixError(f"could not read personas from {repo!r} (subset {subset!r}, split "
                           f"{split!r}): {text} (check the name, --persona-subset, your network "
                           "and HF_TOKEN, or download it and pass a local file)") from None


def _file_rows(path: str, split: str) -> Iterator[dict[str, Any]]:
    for raw in iter_raw_rows(path, split=split):
        yield raw.data if raw.data is not None else {}


def personas_from_texts(texts: Iterable[Any], source: str = "inline") -> PersonaSet:
    """Blank and non-text values are skipped, repeats after normalisation are dropped."""
    result = PersonaSet([], source)
    seen: set[str] = set()
    for value in texts:
        result.rows_read += 1
        if not isinstance(value, str) or not value.strip():
            result.skipped["no_text"] = result.skipped.get("no_text", 0) + 1
            continue
        text = normalise_text(value)
        persona_id = content_hash(text, length=16)
        if persona_id in seen:
            result.skipped["duplicate"] = result.skipped.get("duplicate", 0) + 1
            continue
        seen.add(persona_id)
        result.personas.append(Persona(persona_id, text))
    return result


def load_personas(source: str | None = None, *, field: str = "persona", subset: str | None = None,
                  split: str = "train", limit: int | None = None) -> PersonaSet:
    """Personas from ``source`` (None: the bundled set), read from column ``field``.

    ``limit`` reads only the first rows (useful for the 200k-row PersonaHub set).
    """
    name = source or BUNDLED_PERSONAS
    if name.startswith(HUB_PREFIX):
        rows: Iterator[dict[str, Any]] = _hub_rows(name, subset, split)
    else:
        rows = _file_rows(str(resolve_path(name)), split)
    if limit is not None:
        rows = itertools.islice(rows, limit)
    columns: set[str] = set()

    def texts() -> Iterator[Any]:
        for row in rows:
            columns.update(row)
            yield row.get(field)

    result = personas_from_texts(texts(), name)
    if not result.personas:
        seen = ", ".join(sorted(columns)[:12]) or "none"
        raise ConfigError(f"no personas in {name}: no row has a text field {field!r} (columns "
                          f"seen: {seen}); name the field with --persona-field")
    return result


def persona_order(count: int, n: int, seed: int) -> np.ndarray:
    """Indices (into a set of ``count``) of the personas for ``n`` items.

    Epoch ``e`` is the permutation drawn from ``default_rng([seed, e])``: every persona appears
    once per epoch, and the first ``n`` indices do not depend on ``n``.
    """
    if count < 1:
        raise ValueError("no personas to sample from")
    epochs = -(-n // count)
    if epochs == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.random.default_rng([seed, e]).permutation(count)
                           for e in range(epochs)])[:n]
