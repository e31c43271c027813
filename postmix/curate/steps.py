"""The curation steps, each declared once: its name, what it does, its config model, its local
decider and its Ray decider. The CLI verbs (``postmix curate <step>``), the recipe stage types
and the steps a mix spec can name are all made from this table, so adding a step is one entry.

Everything is named as ``module:attribute`` and imported on first use: listing the steps (for
``--help``, or to check a spec) costs nothing, and this layer never imports the Ray engine - the
Ray executor (``postmix.scale.executor``) imports the Ray decider it is handed.

A decider is ``(ds, config, *, kind, **prepared) -> Verdicts``: it decides per row and never
writes. ``prepare`` (optional) turns a config into keyword arguments for both deciders before any
data is read, so a bad benchmark name fails before an hour of loading, and the work (an n-gram
index) is done once however many batches or workers follow.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from postmix.errors import ConfigError, PostmixError
from postmix.io.errors_text import one_line


def named(ref: str, *, what: str = "") -> Any:
    """``"package.module:attribute"`` -> the attribute; a missing module or attribute is a
    one-line error naming ``what`` needed it."""
    module_name, _, attribute = ref.partition(":")
    who = what or ref
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise PostmixError(
                f"{who} needs {module_name}, which this postmix installation lacks"
            ) from None
        raise
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise PostmixError(
            f"{who}: {module_name} has no {attribute} (this postmix version does not "
            "match the step table)"
        ) from None


@dataclass(frozen=True)
class Step:
    name: str
    description: str
    config: str  # "module:ConfigClass"
    local: str  # "module:decider"
    ray: str  # "module:decider" on Ray Data
    prepare: str | None = None  # "module:function(config) -> dict" of decider keyword arguments
    local_only: tuple[str, ...] = ()  # decider options the Ray engine does not take
    anchor: str | None = None  # "module:function(config dict, base) -> config dict", paths resolved
    files: str | None = (
        None  # "module:function(config dict, base) -> [Path]": files the config names
    )
    sidecars: tuple[str, ...] = ()  # files written beside a file stage's output (Verdicts.sidecar)

    def config_class(self) -> type[BaseModel]:
        return named(self.config, what=f"step {self.name!r}")

    def decider(self, engine: str) -> Callable[..., Any]:
        return named(
            self.ray if engine == "ray" else self.local, what=f"step {self.name!r} on {engine}"
        )

    def parse(self, config: dict[str, Any] | BaseModel | None, *, where: str = "") -> BaseModel:
        """The step's config model from a mapping (a spec, a recipe, CLI options):
        one-line errors."""
        cls = self.config_class()
        if isinstance(config, cls):
            return config
        try:
            return cls.model_validate(config or {})
        except ValidationError as exc:
            prefix = f"{where}: " if where else ""
            raise ConfigError(f"{prefix}step {self.name!r}: {one_line(exc)}") from None

    def prepared(self, config: BaseModel) -> dict[str, Any]:
        return named(self.prepare, what=f"step {self.name!r}")(config) if self.prepare else {}

    def anchored(self, config: dict[str, Any], base: Path) -> dict[str, Any]:
        """``config`` with the files it names resolved against ``base``
        (a spec's or recipe's folder)."""
        return (
            named(self.anchor, what=f"step {self.name!r}")(config, base) if self.anchor else config
        )

    def config_files(self, config: dict[str, Any], base: Path) -> list[Path]:
        """Local files ``config`` names
        (a result depends on their content: cache keys hash them)."""
        return named(self.files, what=f"step {self.name!r}")(config, base) if self.files else []


STEPS: dict[str, Step] = {
    step.name: step
    for step in (
        Step(
            "filter",
            "quality filters: empty turns, lengths, role order, refusals, self-identification, "
            "repetition, mojibake, custom regex rules",
            config="postmix.curate.filters:FilterConfig",
            local="postmix.curate.filters:apply_filters",
            ray="postmix.scale.ray_filter:filter_ray",
        ),
        Step(
            "dedup",
            "exact and MinHash-LSH near-duplicate removal; every removal names the row it "
            "duplicates",
            config="postmix.curate.dedup:DedupConfig",
            local="postmix.curate.dedup:dedup",
            ray="postmix.scale.ray_dedup:dedup_ray",
            local_only=("against", "cache_dir"),
        ),
        Step(
            "decontam",
            "remove rows that overlap named benchmarks (n-gram coverage, Tulu 3 scoring)",
            config="postmix.curate.decontam:DecontamConfig",
            local="postmix.curate.decontam:decontaminate",
            ray="postmix.scale.ray_decontam:decontaminate_ray",
            prepare="postmix.curate.decontam:prepare_index",
            anchor="postmix.curate.benchmarks:anchor_config",
            files="postmix.curate.benchmarks:config_files",
            sidecars=("contamination.tsv", "contamination.json"),
        ),
    )
}


def get_step(name: str) -> Step:
    try:
        return STEPS[name]
    except KeyError:
        raise ConfigError(f"unknown step {name!r}: use one of {', '.join(sorted(STEPS))}") from None
