"""The curation stages with an ``engine`` choice: ``local`` (one process, all cores) or ``ray``
(Ray Data pipelines, on a cluster or a local Ray). Both return the same ``Verdicts`` for the same
data and config, so they share ``postmix.curate.runner.run_stage``: output, rejects and report are
written the same way, and a recipe or CLI flag switches engines without changing results.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from postmix.curate.runner import StageOutput, Verdicts, run_stage
from postmix.errors import ConfigError
from postmix.scale.ray_session import ENGINES, RayConfig

STEPS: tuple[str, ...] = ("dedup", "filter", "decontam")


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}: use {' or '.join(ENGINES)}")
    return engine


def config_class(step: str) -> type:
    """The config model of a curation step (``DedupConfig``, ``FilterConfig``, ``DecontamConfig``)."""
    if step == "dedup":
        from postmix.curate.dedup import DedupConfig as cls
    elif step == "filter":
        from postmix.curate.filters import FilterConfig as cls
    elif step == "decontam":
        from postmix.curate.decontam import DecontamConfig as cls
    else:
        raise ConfigError(f"unknown step {step!r}: use one of {', '.join(STEPS)}")
    return cls


def decider(step: str, engine: str = "local") -> Callable[..., Verdicts]:
    """The ``(ds, config, *, kind=...) -> Verdicts`` function of a step on an engine."""
    check_engine(engine)
    if step not in STEPS:
        raise ConfigError(f"unknown step {step!r}: use one of {', '.join(STEPS)}")
    if step == "dedup":
        if engine == "ray":
            from postmix.scale.ray_dedup import dedup_ray as fn
        else:
            from postmix.curate.dedup import dedup as fn
    elif step == "filter":
        if engine == "ray":
            from postmix.scale.ray_filter import filter_ray as fn
        else:
            from postmix.curate.filters import apply_filters as fn
    elif engine == "ray":
        from postmix.scale.ray_decontam import decontaminate_ray as fn
    else:
        from postmix.curate.decontam import decontaminate as fn
    return fn


def _file_on_ray(step: str, source: str | Path, output: str | Path, config: Any, *, format: str | None,
                 ray_config: RayConfig | None, **decider_kwargs: Any) -> StageOutput:
    """``run_stage`` with the step's Ray decider. The workers read the input themselves when it is
    a Parquet file of postmix records taken as it is (no ``format`` conversion)."""
    config = config or config_class(step)()
    decide = decider(step, "ray")
    readable = source if format is None else None
    return run_stage(step, source, output,
                     lambda ds, kind: decide(ds, config, kind=kind, ray_config=ray_config, source=readable,
                                             **decider_kwargs),
                     config, format=format)


def dedup_file_ray(source: str | Path, output: str | Path, config: Any = None, *,
                   format: str | None = None, ray_config: RayConfig | None = None) -> StageOutput:
    """``postmix.curate.dedup.dedup_file`` with the decisions made on Ray."""
    return _file_on_ray("dedup", source, output, config, format=format, ray_config=ray_config)


def filter_file_ray(source: str | Path, output: str | Path, config: Any = None, *,
                    format: str | None = None, ray_config: RayConfig | None = None) -> StageOutput:
    """``postmix.curate.filters.filter_file`` with the decisions made on Ray."""
    return _file_on_ray("filter", source, output, config, format=format, ray_config=ray_config)


def decontaminate_file_ray(source: str | Path, output: str | Path, config: Any, *,
                           format: str | None = None, ray_config: RayConfig | None = None) -> StageOutput:
    """``postmix.curate.decontam.decontaminate_file`` with the scan on Ray."""
    from postmix.curate.decontam import build_benchmark_index

    index = build_benchmark_index(config)  # before reading the data: a bad benchmark fails fast
    return _file_on_ray("decontam", source, output, config, format=format, ray_config=ray_config, index=index)


def stage_file(step: str, engine: str = "local") -> Callable[..., StageOutput]:
    """The ``(source, output, config, ...) -> StageOutput`` function of a step on an engine."""
    check_engine(engine)
    if engine == "ray":
        return {"dedup": dedup_file_ray, "filter": filter_file_ray, "decontam": decontaminate_file_ray}[step]
    if step == "dedup":
        from postmix.curate.dedup import dedup_file

        return dedup_file
    if step == "filter":
        from postmix.curate.filters import filter_file

        return filter_file
    from postmix.curate.decontam import decontaminate_file

    return decontaminate_file


def engine_stage(step: str, engine: str = "local", ray_address: str | None = None) -> Callable[..., StageOutput]:
    """``stage_file`` with a Ray address bound (the CLI's ``--engine`` / ``--ray-address``)."""
    run = stage_file(step, engine)
    if engine != "ray":
        if ray_address is not None:
            raise ConfigError("--ray-address needs --engine ray")
        return run
    ray_config = RayConfig(address=ray_address)
    return lambda *args, **kwargs: run(*args, ray_config=ray_config, **kwargs)
