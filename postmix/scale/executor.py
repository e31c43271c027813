"""The Ray executor: a curation step's Ray decider on Ray Data, with the connection settings it
was built with. It is handed down like the local one (``postmix.curate.executor``), so two builds
in two threads - one local, one on Ray - never share state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from postmix.curate.runner import StageOutput, Verdicts, call_decider, run_stage
from postmix.curate.steps import Step
from postmix.errors import ConfigError
from postmix.scale.ray_session import RayConfig


class RayExecutor:
    name = "ray"

    def __init__(self, config: RayConfig | dict[str, Any] | None = None) -> None:
        self.config = config if isinstance(config, RayConfig) else RayConfig.model_validate(config or {})

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name, "ray": self.config.model_dump(exclude_defaults=True)}

    def _refuse_local_only(self, step: Step, options: dict[str, Any]) -> None:
        given = [name for name in step.local_only if options.get(name) is not None]
        if given:
            raise ConfigError(f"{step.name}: {', '.join(given)} runs on the local engine only: "
                              "drop the Ray engine for this step")

    def decide(self, step: Step, ds: Any, config: BaseModel, *, kind: str, source: str | Path | None = None,
               **options: Any) -> Verdicts:
        self._refuse_local_only(step, options)
        options = {**step.prepared(config), **options}
        return call_decider(step.decider("ray"), ds, config, kind=kind, ray_config=self.config, source=source,
                            **options)

    def run_file(self, step: Step, source: str | Path, output: str | Path, config: BaseModel, *,
                 format: str | None = None, **options: Any) -> StageOutput:
        """The workers read the input themselves when it is a Parquet file of postmix records
        taken as it is (no ``format`` conversion)."""
        self._refuse_local_only(step, options)
        prepared = {**step.prepared(config), **options}  # before reading: a bad config fails fast
        decide = step.decider("ray")
        readable = source if format is None else None
        return run_stage(step.name, source, output,
                         lambda ds, kind: decide(ds, config, kind=kind, ray_config=self.config, source=readable,
                                                 **prepared),
                         config, format=format)
