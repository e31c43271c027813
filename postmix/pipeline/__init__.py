"""Recipes: pipelines of stages whose outputs are content-addressed and cached.

``registry`` holds the stage-type table, ``stage_types`` the built-in handlers (thin adapters onto
the library), ``recipe`` the reading, planning and running, ``quickstart`` the bundled demo.
"""

from postmix.pipeline.recipe import (
           PlannedStage,
           Recipe,
           RunResult,
           StageSpec,
           load_recipe,
           plan,
           run_recipe,
)
from postmix.pipeline.registry import STAGE_TYPES, StageContext, StageType, stage_type

__all__ = [
    "STAGE_TYPES",
    "PlannedStage",
    "Recipe",
    "RunResult",
    "StageContext",
    "StageSpec",
    "StageType",
    "load_recipe",
    "plan",
    "run_recipe",
    "stage_type",
]
