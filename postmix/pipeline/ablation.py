"""Ablations as recipes: a base mix spec and named variants of it, each built, trained and
evaluated as ordinary stages, ending in one leaderboard stage.

A recipe's ``ablation:`` block is expanded into stages when the recipe is read, so ``--dry-run``
shows them, every stage is cached by content like any other, and the stages a variant shares
with the others (the ingest and curation stages before the mix, the model it starts from) run
once. For each variant ``V`` of a base mix named ``M`` the expansion adds ``mix-V`` (the mix
``M-V``: each variant is its own mix, so a re-run never renumbers another variant's versions),
``train-V`` and ``eval-V``; then ``leaderboard`` reads every eval stage, with the baseline
variant's version as the baseline.

A variant is data, applied to a copy of the base spec in this order:

- ``drop: [source, ...]`` removes sources;
- ``sources: {source: {key: value}}`` changes a source's keys; a take rule given (``count``,
  ``fraction``, ``epochs``, ``tokens``, ``weight``) replaces the source's take rule;
- ``add_sources: [...]`` appends sources;
- ``add_steps: {global | source: [step, ...]}`` appends curation steps;
- ``set: {dotted.path: value}`` sets one value anywhere in the spec. In a list, a segment is an
  index, the ``name`` of a source, or the name of a step (``global_steps.dedup.threshold``).
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

TAKE_KEYS = ("count", "fraction", "epochs", "tokens", "weight")
STAGE_NAME = r"^[A-Za-z0-9_.-]+$"


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=STAGE_NAME)
    description: str = ""
    drop: list[str] = Field(default_factory=list, description="sources removed")
    sources: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="source -> keys changed (a take rule replaces the old)")
    add_sources: list[dict[str, Any]] = Field(default_factory=list)
    add_steps: dict[str, list[Any]] = Field(
        default_factory=dict, description="'global' or a source -> steps appended")
    set: dict[str, Any] = Field(default_factory=dict, description="dotted.path -> value")


class Ablation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mix: dict[str, Any] = Field(description="the base mix spec (sources may name earlier stages)")
    input: list[str] = Field(default_factory=list,
                             description="earlier stages the mix reads (default: those its "
                                         "sources name)")
    variants: list[Variant] = Field(min_length=2)
    baseline: str | None = Field(None, description="the variant deltas are against (the first)")
    model: str = Field(description="an earlier stage that makes the model, or a model path/name")
    train: dict[str, Any] = Field(default_factory=dict,
                                  description="run: train_sft|train_dpo|train_rlvr, config: {...}")
    eval: dict[str, Any] = Field(default_factory=dict, description="the eval stage's config")


def _select(container: Any, segment: str, path: str) -> Any:
    """The child ``segment`` names: a key, a list index, a source name or a step name."""
    if isinstance(container, dict):
        if segment not in container:
            raise ValueError(f"set {path!r}: no key {segment!r} (have {sorted(container)})")
        return container[segment]
    if isinstance(container, list):
        if segment.isdigit() and int(segment) < len(container):
            return container[int(segment)]
        for item in container:
            if isinstance(item, dict) and item.get("name") == segment:
                return item
            if isinstance(item, dict) and item.get("step") == segment:
                return item.setdefault("config", {})
            if isinstance(item, dict) and len(item) == 1 and segment in item:
                if item[segment] is None:
                    item[segment] = {}
                return item[segment]
            if item == segment:  # "- dedup": a step with its default config, made explicit
                index = container.index(item)
                container[index] = {segment: {}}
                return container[index][segment]
        raise ValueError(f"set {path!r}: no item {segment!r} in the list")
    raise ValueError(f"set {path!r}: the parent of {segment!r} holds a value, not a mapping or "
                     "list")


def set_path(spec: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    target: Any = spec
    for segment in parents:
        target = _select(target, segment, path)
    if isinstance(target, list) and last.isdigit() and int(last) < len(target):
        target[int(last)] = value
    elif isinstance(target, dict):
        target[last] = value
    else:
        raise ValueError(f"set {path!r}: the parent of {last!r} holds a value, not a mapping or "
                         "list")


def apply_variant(base: dict[str, Any], variant: Variant) -> dict[str, Any]:
    """A new spec: ``base`` changed as ``variant`` says (``base`` is left as it was)."""
    spec = copy.deepcopy(base)
    sources = spec.setdefault("sources", [])
    names = [s.get("name") for s in sources]
    for name in [*variant.drop, *variant.sources]:
        if name not in names:
            raise ValueError(f"variant {variant.name!r}: no source {name!r} in the base mix "
                             f"(sources: {', '.join(map(str, names))})")
    spec["sources"] = sources = [s for s in sources if s.get("name") not in variant.drop]
    for source in sources:
        changes = variant.sources.get(source.get("name"), {})
        if any(key in changes for key in TAKE_KEYS):
            for key in TAKE_KEYS:
                source.pop(key, None)
        source.update(copy.deepcopy(changes))
    sources += copy.deepcopy(variant.add_sources)
    for place, steps in variant.add_steps.items():
        if place == "global":
            spec.setdefault("global_steps", []).extend(copy.deepcopy(steps))
            continue
        source = next((s for s in sources if s.get("name") == place), None)
        if source is None:
            raise ValueError(f"variant {variant.name!r}: add_steps names no source {place!r}")
        source.setdefault("steps", []).extend(copy.deepcopy(steps))
    for path, value in variant.set.items():
        try:
            set_path(spec, path, copy.deepcopy(value))
        except ValueError as exc:
            raise ValueError(f"variant {variant.name!r}: {exc}") from None
    return spec


def expand(ablation: Ablation, earlier: list[str]) -> list[dict[str, Any]]:
    """The stages (as StageSpec mappings) of an ablation, after the ``earlier`` stage names."""
    base_name = ablation.mix.get("name")
    if not base_name:
        raise ValueError("ablation.mix needs a name (each variant's mix is <name>-<variant>)")
    names = [v.name for v in ablation.variants]
    if len(set(names)) != len(names):
        raise ValueError(f"ablation variant names repeat: {names}")
    baseline = ablation.baseline or names[0]
    if baseline not in names:
        raise ValueError(f"ablation baseline {baseline!r} is not a variant ({', '.join(names)})")
    reads = ablation.input or list(dict.fromkeys(
        str(s.get("path")) for s in ablation.mix.get("sources", [])
        if isinstance(s, dict) and s.get("path") in earlier))
    train = dict(ablation.train)
    train_run = train.pop("run", "train_sft")
    train_config = train.pop("config", {})
    if train:
        raise ValueError(f"ablation.train: unknown keys {sorted(train)} (run, config)")
    model_input = [ablation.model] if ablation.model in earlier else []
    if not model_input:
        train_config = {**train_config, "model": ablation.model}
    stages: list[dict[str, Any]] = []
    for variant in ablation.variants:
        spec = apply_variant(ablation.mix, variant)
        spec["name"] = f"{base_name}-{variant.name}"
        if variant.description:
            spec["description"] = variant.description
        stages += [
            {"name": f"mix-{variant.name}", "run": "mix_build", "input": reads, "config": spec},
            {"name": f"train-{variant.name}", "run": train_run,
             "input": [f"mix-{variant.name}", *model_input], "config": train_config},
            {"name": f"eval-{variant.name}", "run": "eval", "input": f"train-{variant.name}",
             "config": ablation.eval},
        ]
    stages.append({"name": "leaderboard", "run": "leaderboard",
                   "input": [f"eval-{v}" for v in names],
                   "config": {"baseline": f"eval-{baseline}"}})
    return stages
