"""The mix spec: which sources, how much of each, which curation steps, which seed.

A spec is data (YAML), validated by pydantic with ``extra="forbid"`` so a typo such as ``cuont:``
is an error rather than a silently ignored key. Relative source paths resolve against the folder
of the spec file, so a spec and its data can move together.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from postmix import yamlfile
from postmix.curate.steps import get_step
from postmix.errors import ConfigError, PostmixError
from postmix.io.errors_text import error_texts, line_of, yaml_key_lines
from postmix.io.paths import PACKAGE_PREFIX, resolve_path
from postmix.mix.where import normalise_where

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
MixKind = Literal["sft", "preference", "rlvr"]


class StepSpec(BaseModel):
    """One curation step: ``{filter: {...}}``, ``{dedup: {...}}`` or ``{decontam: {...}}``.

    The config stays a plain dict here; the step's own pydantic config class validates it when the
    spec is checked (``postmix.curate.steps``: each step's config model).
    """

    model_config = ConfigDict(extra="forbid")

    step: str
    config: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _one_key_form(cls, value: Any) -> Any:
        if isinstance(value, str):  # "- dedup" with default config
            return {"step": value, "config": {}}
        if isinstance(value, dict) and "step" not in value:
            if len(value) != 1:
                raise ValueError(
                    "a step is one key (filter, dedup or decontam) with its config, "
                    f"got {sorted(value)}"
                )
            (step, config), = value.items()
            return {"step": step, "config": config or {}}
        return value


TAKE_RULES = ("count", "fraction", "epochs", "tokens")


class WeightBySpec(BaseModel):
    """Rows sampled with probability proportional to a column's value (``weight_by: quality``)
    or to ``exp(value / temperature)`` (``weight_by: {column: reward, temperature: 1.0}``, for
    scores of any sign such as a reward model's), without replacement (Efraimidis-Spirakis)."""

    model_config = ConfigDict(extra="forbid")

    column: str = Field(min_length=1, description="A numeric record column or attribute.")
    temperature: float | None = Field(
        None, gt=0.0, description="Weights exp(value / temperature); none: the value itself "
        "(which must then be >= 0).")

    @model_validator(mode="before")
    @classmethod
    def _column_alone(cls, value: Any) -> Any:
        return {"column": value} if isinstance(value, str) else value


class SourceSpec(BaseModel):
    """One source and its take rule: at most one of ``count``, ``fraction``, ``epochs``,
    ``tokens`` (none = all rows), or a ``weight`` when the mix has a ``target``."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        None, pattern=NAME_PATTERN, description="Label in reports; default: file stem / Hub name."
    )
    path: str = Field(
        description="File, Arrow folder, hf:owner/name[@revision] or pkg://package/path."
    )
    split: str = Field("train", description="Split, for Hub datasets.")
    format: str | None = Field(
        None, description="Input format for non-postmix files (auto-detected when omitted)."
    )
    count: int | None = Field(
        None, ge=0, description="Exactly this many rows (no more than the source holds)."
    )
    fraction: float | None = Field(
        None, gt=0.0, le=1.0, description="This share of the rows, rounded half up."
    )
    epochs: float | None = Field(
        None, gt=0.0, description="Every row floor(e) times plus a fraction: upsampling."
    )
    tokens: int | None = Field(
        None, ge=1, description="As many rows as fit in this many tokens (whole passes over the "
        "source first when it holds fewer): needs a tokenizer.")
    weight: float | None = Field(
        None, gt=0.0, description="This source's share of the mix `target`, relative to the "
        "other sources' weights.")
    where: dict[str, Any] | None = Field(
        None, description="Keep only rows whose columns or attributes match "
        "(column: value, or column: {in|not_in|eq|ne|gt|gte|lt|lte: ...}).")
    weight_by: WeightBySpec | None = Field(
        None, description="Sample rows by a column or attribute (column, or {column, "
        "temperature}) instead of uniformly; needs a take rule or weight.")
    attributes: str | None = Field(
        None, description="Attribute sidecar (from `postmix curate tag`) joined by id, for "
        "`where:` and `weight_by:`; default: the mix's `attributes:`.")
    steps: list[StepSpec] = Field(
        default_factory=list, description="Curation steps run on this source alone."
    )

    @field_validator("where")
    @classmethod
    def _where(cls, value: Any) -> Any:
        return None if value is None else normalise_where(value)

    @model_validator(mode="after")
    def _one_take_rule(self) -> SourceSpec:
        given = [k for k in (*TAKE_RULES, "weight") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(
                f"source {self.path!r}: give one of {', '.join(TAKE_RULES)} or weight "
                f"(got {', '.join(given)})"
            )
        if self.weight_by is not None and not given:
            raise ValueError(
                f"source {self.path!r}: weight_by chooses which rows a take rule takes, and "
                f"without one every row is taken; give {', '.join(TAKE_RULES)} or weight")
        if self.name is None:
            self.name = default_source_name(self.path)
        return self

    def take_rule(self) -> dict[str, Any]:
        for key in TAKE_RULES:
            if getattr(self, key) is not None:
                return {key: getattr(self, key)}
        return {"fraction": 1.0}


class TargetSpec(BaseModel):
    """The size of a weighted mix: ``{rows: N}`` or ``{tokens: N}``."""

    model_config = ConfigDict(extra="forbid")

    rows: int | None = Field(None, ge=1, description="Rows in the mix.")
    tokens: int | None = Field(None, ge=1, description="Tokens in the mix (at most; needs a "
                               "tokenizer).")

    @model_validator(mode="after")
    def _one_size(self) -> TargetSpec:
        if (self.rows is None) == (self.tokens is None):
            raise ValueError("target: give exactly one of rows or tokens")
        return self

    @property
    def unit(self) -> str:
        return "rows" if self.rows is not None else "tokens"

    @property
    def size(self) -> int:
        return int(self.rows if self.rows is not None else self.tokens)


class MixSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=NAME_PATTERN, description="Registry name; versions are name@1, name@2, ..."
    )
    kind: MixKind
    description: str = ""
    sources: list[SourceSpec] = Field(min_length=1)
    global_steps: list[StepSpec] = Field(
        default_factory=list,
        description="Steps over all curated sources together (cross-source dedup, "
        "decontamination), run before the take rules so counts hold after them and upsampled "
        "copies are not deduplicated.",
    )
    seed: int = Field(0, ge=0, description="Key of the sampling hash and of the shuffle.")
    shuffle: bool = Field(
        True, description="Shuffle the final rows; otherwise sources stay in spec order."
    )
    tokenizer: str | None = Field(
        None, description="Tokenizer (path or Hub name) for token counts (its chat template "
        "applied); none = rows only."
    )
    target: TargetSpec | None = Field(
        None, description="Mix size, split between the sources by their `weight:` (largest "
        "remainder): {rows: N} or {tokens: N}.")
    attributes: str | None = Field(
        None, description="Attribute sidecar (from `postmix curate tag`) for every source that "
        "names none, joined by id.")
    engine: Literal["local", "ray"] = Field(
        "local",
        description="Where the curation steps run: local (one process, every core) or ray "
        "(Ray Data on RAY_ADDRESS or a local Ray). Both give the same rows and the same "
        "content hash.",
    )
    empty_sources: Literal["warn", "refuse"] = Field(
        "warn", description="A source that contributes no row after curation and take rules: warn "
        "(the version is still published), or refuse to publish it.")
    ray: dict[str, Any] | None = Field(
        None,
        description="Ray settings for engine ray (address, num_cpus, partitions, block_rows, "
        "shuffle).",
    )

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list[SourceSpec]) -> list[SourceSpec]:
        seen: set[str] = set()
        for source in sources:
            if source.name in seen:
                raise ValueError(
                    f"two sources are named {source.name!r}: give them distinct `name:`s"
                )
            seen.add(source.name)
        return sources

    @model_validator(mode="after")
    def _weights_with_target(self) -> MixSpec:
        weighted = [s.name for s in self.sources if s.weight is not None]
        if self.target is None and weighted:
            raise ValueError(f"source {weighted[0]!r} has a weight but the mix has no `target:` "
                             "({rows: N} or {tokens: N}) to share out")
        if self.target is not None and len(weighted) != len(self.sources):
            other = next(s.name for s in self.sources if s.weight is None)
            raise ValueError(f"with a `target:` every source gives a `weight:` (source "
                             f"{other!r} has none)")
        return self

    def needs_tokens(self) -> bool:
        return (self.target is not None and self.target.tokens is not None) or any(
            s.tokens is not None for s in self.sources)


def default_source_name(path: str) -> str:
    text = path.split("@", 1)[0] if path.startswith("hf:") else path
    stem = re.split(r"[\\/:]", text.rstrip("/"))[-1]
    for suffix in (".jsonl.gz", ".jsonl", ".ndjson", ".json", ".parquet"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip("._-")
    return stem or "source"


def resolve_source(source: SourceSpec, base: Path | None) -> str:
    """The location to read: Hub names as given, pkg:// through importlib, relative paths from
    ``base``."""
    return resolve_location(source.path, base)


def resolve_location(path: str, base: Path | None) -> str:
    """A source's or an attribute sidecar's ``path`` as the location to read."""
    if path.startswith("hf:"):
        return path
    resolved = resolve_path(path, base=None if path.startswith(PACKAGE_PREFIX) else base)
    return os.path.normpath(resolved)


def parse_spec(
    data: Any, *, origin: str = "spec", lines: dict[tuple, int] | None = None
) -> MixSpec:
    """Validate a spec mapping: every problem at once (each step's config by its own model), with
    YAML ``lines`` where known and near-miss hints for unknown keys, in one ``ConfigError``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: a mix spec is a YAML mapping with name, kind and sources")
    problems: list[str] = []
    spec = None
    try:
        spec = MixSpec.model_validate(data)
    except ValidationError as exc:
        problems += error_texts(exc, lines=lines, model=MixSpec)
    for where, raw in _raw_steps(data):  # checked even when the spec around them is not valid
        try:
            step = StepSpec.model_validate(raw)
        except ValidationError:
            continue  # the spec's own validation reported it
        try:
            model = get_step(step.step).config_class()
        except PostmixError as exc:
            line = line_of(where, lines) if lines else None
            problems.append(
                (f"line {line}: " if line else "") + f"{'.'.join(map(str, where))}: {exc}"
            )
            continue
        try:
            model.model_validate(step.config)
        except ValidationError as exc:
            problems += error_texts(exc, prefix=(*where, step.step), lines=lines, model=model)
    if problems or spec is None:
        raise _spec_error(origin, problems)
    return spec


def _raw_steps(data: dict[str, Any]) -> list[tuple[tuple, Any]]:
    sources = data.get("sources") if isinstance(data.get("sources"), list) else []
    steps = [
        (("sources", i, "steps", j), step)
        for i, source in enumerate(sources)
        if isinstance(source, dict) and isinstance(source.get("steps"), list)
        for j, step in enumerate(source["steps"])
    ]
    if isinstance(data.get("global_steps"), list):
        steps += [(("global_steps", j), step) for j, step in enumerate(data["global_steps"])]
    return steps


def _spec_error(origin: str, problems: list[str]) -> ConfigError:
    count = f"{len(problems)} problems: " if len(problems) > 1 else ""
    return ConfigError(
        f"{origin}: {count}{'; '.join(problems)} (see docs/mix.md for the spec format)"
    )


def load_spec(path: str | Path) -> tuple[MixSpec, Path]:
    """``(spec, folder relative source paths resolve against)``."""
    path = Path(path)
    data = yamlfile.read_yaml(
        path, "spec file", hint="pass a YAML mix spec, e.g. recipes/mix/sample_sft.yaml"
    )
    lines = yaml_key_lines(path.read_text(encoding="utf-8"))
    return parse_spec(data, origin=str(path), lines=lines), path.resolve().parent


def spec_to_dict(spec: MixSpec) -> dict[str, Any]:
    """The spec as recorded in manifests: defaults filled in, so a diff shows effective values."""
    return spec.model_dump(mode="json")
