"""``mix build`` with its curation steps (filter, dedup, decontam, per source and global) on Ray.

The mix builder finds a step's config class and decision function through
``postmix.mix.steps.STEP_TABLE`` (module, config names, function names). This module is such a
module for the Ray engine: it exports the same config classes and the Ray deciders under the
local names, and ``RAY_STEP_TABLE`` points the steps here. A spec with ``engine: ray`` (or
``build(spec, engine="ray")``) runs the ordinary builder with that table in place, so sampling, shuffling, registry and manifest are the
builder's own and the mix content hash equals a local build's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from postmix.curate.decontam import DecontamConfig
from postmix.curate.dedup import DedupConfig
from postmix.curate.filters import FilterConfig
from postmix.scale.ray_decontam import decontaminate_ray as decontaminate
from postmix.scale.ray_dedup import dedup_ray as dedup
from postmix.scale.ray_filter import filter_ray as apply_filters
from postmix.scale.ray_stages import check_engine

__all__ = ["RAY_STEP_TABLE", "DecontamConfig", "DedupConfig", "FilterConfig", "apply_filters", "build",
           "decontaminate", "dedup", "ray_steps"]

RAY_STEP_TABLE: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "filter": (__name__, ("FilterConfig",), ("apply_filters",)),
    "dedup": (__name__, ("DedupConfig",), ("dedup",)),
    "decontam": (__name__, ("DecontamConfig",), ("decontaminate",)),
}
_swap = threading.Lock()


@contextmanager
def ray_steps() -> Iterator[None]:
    """Mix steps resolve to the Ray deciders inside this block (one build at a time per process)."""
    from postmix.mix import steps

    with _swap:
        saved = dict(steps.STEP_TABLE)
        steps.STEP_TABLE.update(RAY_STEP_TABLE)
        try:
            yield
        finally:
            steps.STEP_TABLE.clear()
            steps.STEP_TABLE.update(saved)


def build(spec: Any, *, engine: str = "ray", **kwargs: Any) -> Any:
    """``postmix.mix.build`` with the curation steps on ``engine``; same arguments and result."""
    from postmix.mix import build as build_mix

    return build_mix(spec, engine=check_engine(engine), **kwargs)
