"""Where a curation step's decisions are made: an executor object handed down from the CLI, a
recipe or a mix build, never a process-wide switch. ``LocalExecutor`` runs the step's local
decider in this process (every core); ``postmix.scale.executor.RayExecutor`` runs its Ray decider
on Ray Data and has the workers write the outputs. Both give the same verdicts for the same data
and config, and both apply them with ``postmix.curate.runner``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from postmix.curate.runner import StageOutput, Verdicts, call_decider, run_stage
from postmix.curate.steps import Step, named
from postmix.errors import ConfigError

ENGINES = ("local", "ray")
RAY_EXECUTOR = "postmix.scale.executor:RayExecutor"


class Executor(Protocol):
    name: str

    def decide(
        self, step: Step, ds: Any, config: BaseModel, *, kind: str, **options: Any
    ) -> Verdicts: ...

    def run_file(self, step: Step, source: str | Path, output: str | Path, config: BaseModel, *,
                 format: str | None = None, **options: Any) -> StageOutput: ...


class LocalExecutor:
    """The step's local decider in this process."""

    name = "local"

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name}

    def decide(
        self, step: Step, ds: Any, config: BaseModel, *, kind: str, **options: Any
    ) -> Verdicts:
        options = {**step.prepared(config), **options}
        return call_decider(step.decider("local"), ds, config, kind=kind, **options)

    def run_file(self, step: Step, source: str | Path, output: str | Path, config: BaseModel, *,
                 format: str | None = None, **options: Any) -> StageOutput:
        prepared = {**step.prepared(config), **options}  # before reading: a bad config fails fast
        decide = step.decider("local")
        extra = [str(v) for k, v in options.items() if k == "against" and v is not None]
        return run_stage(
            step.name,
            source,
            output,
            lambda ds, kind: call_decider(decide, ds, config, kind=kind, **prepared),
            config,
            format=format,
            extra_inputs=extra,
            sidecars=step.sidecars,
        )


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}: use {' or '.join(ENGINES)}")
    return engine


def make_executor(engine: str = "local", ray: dict[str, Any] | BaseModel | None = None) -> Executor:
    """The executor for ``engine`` (local|ray); ``ray`` holds the Ray connection settings
    (``RayConfig`` fields: address, block rows, ...), and needs ``engine="ray"``."""
    if check_engine(engine) == "local":
        if ray is not None and (
            dict(ray) if isinstance(ray, dict) else ray.model_dump(exclude_defaults=True)
        ):
            raise ConfigError("Ray settings (ray:, --ray-address) need engine ray")
        return LocalExecutor()
    return named(RAY_EXECUTOR)(ray)
