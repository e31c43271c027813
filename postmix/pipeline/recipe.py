"""``postmix run recipe.yaml``: a pipeline of stages whose outputs are content-addressed and cached.

Each stage's cache key is a hash of its type, its config, the keys of the stages it reads and the
content of the files it reads (plus the postmix version). A stage whose key already has a finished
folder is skipped, so a re-run costs nothing and a failed run resumes at the stage that failed.
A stage counts as finished only when its ``stage.json`` has been written, after all its outputs.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xxhash
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from postmix import __version__, yamlfile
from postmix.errors import ConfigError, EndpointError, PostmixError
from postmix.io.claims import OutputBusyError, lock_output
from postmix.io.errors_text import InvalidConfig, error_texts, one_line, yaml_key_lines
from postmix.io.fingerprint import path_hash
from postmix.io.paths import resolve_path
from postmix.pipeline import stage_types
from postmix.pipeline.ablation import Ablation, expand
from postmix.pipeline.registry import StageContext


class StageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    run: str
    input: list[str] = Field(default_factory=list, description="earlier stage names or paths")
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("input", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value or []


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    workdir: str | None = None
    stages: list[StageSpec] = Field(default_factory=list)
    ablation: Ablation | None = Field(
        None, description="a base mix and its variants, expanded into stages after `stages`")
    _lines: dict[tuple, int] = PrivateAttr(default_factory=dict)  # YAML key -> line, for errors

    @model_validator(mode="after")
    def _check(self) -> Recipe:
        if self.ablation is not None:
            names = [stage.name for stage in self.stages]
            added = [StageSpec.model_validate(stage) for stage in expand(self.ablation, names)]
            if not {stage.name for stage in added} <= set(names):  # a dump read back: expanded
                self.stages = [*self.stages, *added]
        if not self.stages:
            raise ValueError("a recipe needs `stages:` or an `ablation:`")
        seen: set[str] = set()
        for stage in self.stages:
            if stage.name in seen:
                raise ValueError(f"stage name {stage.name!r} is used twice")
            if stage_types.lookup(stage.run) is None:
                raise ValueError(f"stage {stage.name!r}: unknown run {stage.run!r}; "
                                 f"known: {', '.join(stage_types.known())}")
            seen.add(stage.name)
        return self


def load_recipe(path: str | Path) -> Recipe:

    resolved = Path(resolve_path(path))
    data = yamlfile.read_yaml(resolved, "recipe")
    lines = yaml_key_lines(resolved.read_text(encoding="utf-8"))
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        problems = error_texts(exc, lines=lines, model=Recipe)
        raise ConfigError(f"{path}: " + "; ".join(problems)) from None
    recipe._lines = lines
    return recipe


@dataclass
class PlannedStage:
    spec: StageSpec
    key: str
    folder: Path
    inputs: list[Path | str]  # paths, or names of earlier stages
    cached: bool


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def plan(recipe: Recipe, workdir: Path, recipe_dir: Path) -> list[PlannedStage]:
    keys: dict[str, str] = {}
    planned = []
    problems: list[str] = []  # every problem of every stage, reported at once
    for position, stage in enumerate(recipe.stages):
        parts: list[str] = []
        inputs: list[Path | str] = []
        for ref in stage.input:
            if ref in keys:
                parts.append(f"stage:{keys[ref]}")
                inputs.append(ref)
                continue
            path = resolve_path(ref, base=recipe_dir)
            if not str(path).startswith("hf:") and not Path(path).exists():
                problems.append(
                    f"stage {stage.name!r}: input {ref!r} is neither an earlier stage nor an "
                    "existing path"
                )
                continue
            parts.append(
                f"file:{path_hash(Path(path)) if not str(path).startswith('hf:') else path}"
            )
            inputs.append(Path(path) if not str(path).startswith("hf:") else str(path))
        kind = stage_types.lookup(stage.run)
        if kind.check is not None:  # a typo in a config fails at plan time, not hours into a run
            try:
                kind.check(dict(stage.config))
            except InvalidConfig as exc:
                at = ("stages", position, "config")
                texts = error_texts(exc.error, prefix=at, lines=recipe._lines, model=exc.model)
                problems += [f"stage {stage.name!r} ({stage.run}): {t}" for t in texts]
            except (ValidationError, ValueError, TypeError, PostmixError) as exc:
                text = one_line(exc) if isinstance(exc, ValidationError) else str(exc)
                problems.append(f"stage {stage.name!r} ({stage.run}): {text}")
        if kind.files is not None:  # a file named in the config changes the result as an input does
            try:
                named_files = kind.files(stage, recipe_dir)
            except (PostmixError, ValueError, TypeError) as exc:
                problems.append(f"stage {stage.name!r} ({stage.run}): {exc}")
                named_files = []
            for path in named_files:
                parts.append(f"config-file:{path.name}:{path_hash(path, contents=path.is_file())}")
        key = xxhash.xxh3_64_hexdigest(
            _canonical([stage.run, stage.config, parts, __version__]).encode()
        )
        keys[stage.name] = key
        folder = workdir / "stages" / f"{stage.name}-{key}"
        planned.append(PlannedStage(stage, key, folder, inputs, (folder / "stage.json").exists()))
    if problems:
        count = f"{len(problems)} problems: " if len(problems) > 1 else ""
        raise ConfigError(count + "; ".join(problems))
    return planned


def _probe(planned: list[PlannedStage], recipe_dir: Path, options: dict[str, Any]) -> None:
    """Check the endpoints of every model stage that will run, before the first stage runs."""
    problems: list[str] = []
    for step in planned:
        kind = stage_types.lookup(step.spec.run)
        if not step.cached and kind.probe is not None:
            problems += [
                f"stage {step.spec.name!r}: {p}" for p in kind.probe(step.spec, recipe_dir, options)
            ]
    if problems:
        raise EndpointError(
            "; ".join(dict.fromkeys(problems)) + " - nothing was run; start the server or "
            "fix the endpoints file, then run again"
        )


@dataclass
class RunResult:
    workdir: Path
    stages: dict[str, dict[str, Any]]  # name -> {"status", "folder", "outputs", "seconds"}


def run_recipe(
    recipe: Recipe,
    workdir: str | Path,
    *,
    recipe_dir: str | Path = ".",
    options: dict[str, Any] | None = None,
    echo: Callable[[str], None] = print,
) -> RunResult:
    # Absolute from here on: stage outputs are handed to later stages, which may resolve relative
    # paths against the recipe's folder (mix specs do), and a re-run may start from another cwd.
    workdir = Path(workdir).resolve()
    recipe_dir = Path(recipe_dir).resolve()
    planned = plan(recipe, workdir, recipe_dir)
    _probe(planned, recipe_dir, options or {})
    try:  # one run per workdir: a second would wipe the stage folders the first is writing
        with lock_output(workdir):
            return _run(planned, workdir, recipe_dir, options, echo)
    except OutputBusyError:
        raise OutputBusyError(f"another `postmix run` is using {workdir}: wait for it, or give "
                              "this one another workdir (-o)") from None


def _run(planned: list[PlannedStage], workdir: Path, recipe_dir: Path,
         options: dict[str, Any] | None, echo: Callable[[str], None]) -> RunResult:
    results: dict[str, dict[str, Any]] = {}
    for step in planned:
        record_path = step.folder / "stage.json"
        if record_path.exists():
            record = json.loads(record_path.read_text())
            results[step.spec.name] = {**record, "status": "cached"}
            echo(f"[cached] {step.spec.name} ({step.spec.run}) -> {step.folder}")
            continue
        inputs = [Path(results[i]["outputs"]["data"]) if isinstance(i, str) and i in results else i
                  for i in step.inputs]
        upstream = [
            results[i]["outputs"] if isinstance(i, str) and i in results else None
            for i in step.inputs
        ]
        # A stage folder counts as finished only once its stage.json exists (written last,
        # atomically); a folder without one is what a failed or killed attempt left, and is wiped.
        shutil.rmtree(step.folder, ignore_errors=True)
        step.folder.mkdir(parents=True)
        echo(f"[run]    {step.spec.name} ({step.spec.run})")
        started = time.perf_counter()
        ctx = StageContext(step.spec, inputs, upstream, step.folder, recipe_dir, options or {})
        try:
            outputs = stage_types.lookup(step.spec.run).handler(ctx)
        except PostmixError as exc:
            raise PostmixError(
                f"stage {step.spec.name!r} failed: {exc} "
                "(fix it and run again: finished stages are cached)"
            ) from exc
        record = {"name": step.spec.name, "run": step.spec.run, "key": step.key,
                  "outputs": {k: str(v) for k, v in outputs.items()},
                  "seconds": round(time.perf_counter() - started, 2), "config": step.spec.config}
        # A stage with failed model calls, or one that read such a stage's output, is not cached:
        # a re-run retries the failures (their answers are not in the request cache) and then
        # recomputes what was built on the incomplete output.
        failed = int(outputs.get("failed") or 0)
        after = [
            i
            for i in step.inputs
            if isinstance(i, str) and results.get(i, {}).get("status") == "incomplete"
        ]
        if failed or after:
            results[step.spec.name] = {**record, "status": "incomplete"}
            why = (
                f"{failed} model calls failed" if failed else f"reads incomplete {', '.join(after)}"
            )
            echo(
                f"         incomplete in {record['seconds']}s ({why}); not cached: run again "
                f"to retry -> {step.folder}"
            )
            continue
        tmp = record_path.with_name("stage.json.tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.replace(record_path)
        results[step.spec.name] = {**record, "status": "ran"}
        echo(f"         done in {record['seconds']}s -> {step.folder}")
    (workdir / "last_run.json").write_text(json.dumps(results, indent=2) + "\n")
    return RunResult(workdir, results)
