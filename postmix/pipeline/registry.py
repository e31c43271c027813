"""The recipe stage types: what a stage of ``postmix run`` can be, and what its handler gets.

Only the table and its types live here; the built-in handlers are in ``stage_types`` and the code
that plans and runs recipes in ``recipe``, so reading a recipe never depends on how a stage runs.
A plugin (or a test) adds a stage type with ``@stage_type(...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from postmix.pipeline.recipe import StageSpec


@dataclass
class StageContext:
    """What a stage handler gets: resolved inputs, its config, a folder to write into."""

    stage: StageSpec
    inputs: list[Path]
    # per input: the upstream stage's outputs, None for a file
    input_outputs: list[dict[str, str] | None]
    out_dir: Path
    recipe_dir: Path
    options: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[StageContext], dict[str, Any]]


@dataclass(frozen=True)
class StageType:
    handler: Handler
    description: str
    check: Callable[[dict[str, Any]], None] | None = None  # validates a config without running
    # files the stage reads besides its inputs (named in its config): part of its cache key
    files: Callable[[StageSpec, Path], list[Path]] | None = None
    # problems that would make the stage fail at once (an endpoint down), found before a run starts
    probe: Callable[[StageSpec, Path, dict[str, Any]], list[str]] | None = None


STAGE_TYPES: dict[str, StageType] = {}


def stage_type(
    name: str,
    description: str,
    *,
    check: Callable[[dict[str, Any]], None] | None = None,
    files: Callable[[StageSpec, Path], list[Path]] | None = None,
    probe: Callable[[StageSpec, Path, dict[str, Any]], list[str]] | None = None,
) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        STAGE_TYPES[name] = StageType(fn, description, check, files, probe)
        return fn

    return register
