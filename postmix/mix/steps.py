"""The curation steps a mix spec can name, resolved lazily so a missing stage is a clear error.

Each entry maps a step name to the module, config class and decision function of a curation
stage. Importing lazily keeps ``postmix.mix`` importable when a stage is not installed (or not
built yet) and turns "that stage does not exist" into a one-line ``PostmixError`` at spec-check
time, before any work is done.
"""

from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ValidationError

from postmix.curate.steps import STEPS
from postmix.errors import ConfigError, PostmixError
from postmix.io.errors_text import one_line
from postmix.schemas import StepReport

# step name -> (module, config class names, decision function names); the first name that exists
# wins, so a renamed function in a curation module does not break mixes.
STEP_TABLE: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "filter": ("postmix.curate.filters", ("FilterConfig", "FiltersConfig"), ("apply_filters", "filter_rows", "filters")),
    "dedup": ("postmix.curate.dedup", ("DedupConfig",), ("dedup", "deduplicate")),
    "decontam": ("postmix.curate.decontam", ("DecontamConfig",), ("decontaminate", "decontam")),
}


@dataclass(frozen=True)
class StepImpl:
    name: str
    config_class: type[BaseModel]
    decide: Callable[..., Any]


def resolve_step(name: str) -> StepImpl:
    if name not in STEP_TABLE:
        raise ConfigError(f"unknown step {name!r}: use one of {', '.join(sorted(STEP_TABLE))}")
    module_name, config_names, fn_names = STEP_TABLE[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise PostmixError(
                f"step {name!r} needs {module_name}, which this postmix installation lacks "
                "(remove the step from the spec or upgrade postmix)"
            ) from None
        raise
    config_class = next((getattr(module, c) for c in config_names if hasattr(module, c)), None)
    decide = next((getattr(module, f) for f in fn_names if hasattr(module, f)), None)
    if config_class is None or decide is None:
        raise PostmixError(
            f"step {name!r}: {module_name} has no {config_names[0]} / {fn_names[0]} "
            "(this postmix version does not match the mix step table)"
        )
    return StepImpl(name, config_class, decide)


def check_step(step: Any, *, where: str) -> BaseModel:
    """Validate a step's config against its stage's config class; a one-line error otherwise."""
    impl = resolve_step(step.step)
    try:
        return impl.config_class.model_validate(step.config)
    except ValidationError as exc:
        raise ConfigError(f"{where}: step {step.step!r}: {one_line(exc)}") from None


@dataclass
class StepResult:
    kept: datasets.Dataset
    report: StepReport
    rejects: pa.Table | None  # rejected rows with reject_* columns, None when nothing was removed
    kept_indices: np.ndarray | None  # rows of the input that were kept; None = all of them
    rejected_indices: np.ndarray  # rows of the input that were removed, ascending
    rejected_reasons: list[str]  # reason of each removed row, aligned with rejected_indices


def _call(impl: StepImpl, ds: datasets.Dataset, config: BaseModel, kind: str):
    params = inspect.signature(impl.decide).parameters
    if "kind" in params:
        return impl.decide(ds, config, kind=kind)
    return impl.decide(ds, config)


def arrow_rows(ds: datasets.Dataset) -> pa.Table:
    """The dataset's logical rows as one Arrow table (applies a ``select`` mapping; zero-copy if none)."""
    return ds.with_format("arrow")[:]


def rejects_table(ds: datasets.Dataset, indices: np.ndarray, *, step: str, source: str,
                  reasons: list[str], details: list[str]) -> pa.Table:
    """Rejected rows, whole, plus why: every record column and reject_step/source/reason/detail."""
    rows = arrow_rows(ds.select(indices))
    n = len(indices)
    extra = {
        "reject_step": pa.array([step] * n, pa.string()),
        "reject_source": pa.array([source] * n, pa.string()),
        "reject_reason": pa.array(reasons, pa.string()),
        "reject_detail": pa.array(details, pa.string()),
    }
    for name, column in extra.items():
        rows = rows.append_column(name, column)
    return rows


def run_step(step: Any, ds: datasets.Dataset, kind: str, *, source: str, label: str | None = None,
             executor: Any = None) -> StepResult:
    """Run one step on ``ds``; the result reconciles ``in == out + rejected`` by construction."""
    impl = resolve_step(step.step)
    config = check_step(step, where=f"source {source!r}")
    started = time.perf_counter()
    # a registered step runs on the build's executor; a step only this table names runs here
    verdicts = (executor.decide(STEPS[step.step], ds, config, kind=kind)
                if executor is not None and step.step in STEPS else _call(impl, ds, config, kind))
    if len(verdicts.reasons) != len(ds):
        raise RuntimeError(f"step {step.step} returned {len(verdicts.reasons)} verdicts for {len(ds)} rows")
    decided = time.perf_counter()
    kept_idx = verdicts.kept_indices()
    rejected_idx = verdicts.rejected_indices()
    kept = ds.select(kept_idx) if len(rejected_idx) else ds
    rejects = None
    reasons = [str(verdicts.reasons[i]) for i in rejected_idx.tolist()]
    if len(rejected_idx):
        rejects = rejects_table(
            ds, rejected_idx, step=label or step.step, source=source, reasons=reasons,
            details=[str(verdicts.details[i]) for i in rejected_idx.tolist()],
        )
    report = StepReport(
        step=label or step.step,
        config=config.model_dump(mode="json"),
        rows_in=len(ds),
        rows_out=len(kept),
        rejected=verdicts.counts(),
        timings={"decide": round(decided - started, 3), "select": round(time.perf_counter() - decided, 3)},
        inputs=[source],
        details={"kind": kind, **_jsonable(verdicts.stats)},
    )
    return StepResult(kept=kept, report=report, rejects=rejects,
                      kept_indices=kept_idx if len(rejected_idx) else None,
                      rejected_indices=rejected_idx, rejected_reasons=reasons)


def _jsonable(stats: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(stats, default=str))
