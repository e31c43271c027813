"""``postmix quickstart``: the bundled quickstart recipe, run offline on the sample data (curation,
two variants of an SFT mix, a tiny model trained and scored on each, their leaderboard), plus a
preference branch (generate -> rate -> pairs -> preference mix -> DPO) when an OpenAI-compatible
endpoint is configured. The API key is never written anywhere: only the *name* of the variable
that holds it goes into the endpoint file."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from postmix.io.paths import resolve_path
from postmix.pipeline.recipe import Recipe, RunResult, StageSpec, load_recipe, run_recipe

RECIPE = "pkg://postmix/data/recipes/quickstart.yaml"
ENDPOINT_ENV = (
    "POSTMIX_ENDPOINT"  # base URL of an OpenAI-compatible server, e.g. http://localhost:8000/v1
)
MODEL_ENV = "POSTMIX_MODEL"
KEY_ENV = "POSTMIX_API_KEY"
TRAINING_STAGES = {"tiny_model", "train_sft", "train_dpo", "train_rlvr", "eval", "leaderboard"}
HOW_TO_ENABLE = (
    "preference stages skipped: no endpoint. To add generate -> rate -> pairs -> DPO, start one "
    "(e.g. `vllm serve Qwen/Qwen2.5-0.5B-Instruct`) and run `postmix quickstart --endpoint "
    "http://localhost:8000/v1 --model Qwen/Qwen2.5-0.5B-Instruct` (key, if any, in "
    "$POSTMIX_API_KEY)"
)


def _endpoint_file(workdir: Path, base_url: str, model: str) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "endpoint.yaml"
    endpoint: dict[str, Any] = {
        "name": "quickstart",
        "base_url": base_url,
        "model": model,
        "max_concurrency": 16,
    }
    if os.environ.get(KEY_ENV):
        endpoint["api_key_env"] = KEY_ENV
    path.write_text(yaml.safe_dump({"endpoints": [endpoint]}, sort_keys=False))
    return path


def preference_stages(endpoint_file: Path, prompts: int) -> list[StageSpec]:
    pool = str(endpoint_file)
    return [
        StageSpec.model_validate(s)
        for s in (
            {
                "name": "pref_prompts",
                "run": "mix_build",
                "input": "clean",
                "config": {
                    "name": "quickstart-prompts",
                    "kind": "sft",
                    "seed": 0,
                    "sources": [{"name": "clean", "path": "clean", "count": prompts}],
                },
            },
            {
                "name": "completions",
                "run": "generate",
                "input": "pref_prompts",
                "config": {
                    "pool": pool,
                    "n": 2,
                    "sampling": {"temperature": 0.9, "max_tokens": 256},
                },
            },
            {"name": "ratings", "run": "rate", "input": "completions", "config": {"judge": pool}},
            {
                "name": "pairs",
                "run": "pairs",
                "input": "ratings",
                "config": {"strategy": "best-vs-worst"},
            },
            {
                "name": "pref_mix",
                "run": "mix_build",
                "input": "pairs",
                "config": {
                    "name": "quickstart-prefs",
                    "kind": "preference",
                    "seed": 0,
                    "sources": [{"name": "judged", "path": "pairs"}],
                },
            },
            {
                "name": "dpo",
                "run": "train_dpo",
                "input": ["pref_mix", "sft"],
                "config": {
                    "max_steps": 6,
                    "per_device_train_batch_size": 2,
                    "max_length": 512,
                    "learning_rate": 1.0e-4,
                    "logging_steps": 1,
                },
            },
        )
    ]


def quickstart(
    workdir: str | Path,
    *,
    endpoint: str | None = None,
    model: str | None = None,
    prompts: int = 24,
    echo: Callable[[str], None] = print,
) -> RunResult:
    workdir = Path(workdir).resolve()  # stage configs name files in it; the recipe lives elsewhere
    recipe_path = Path(resolve_path(RECIPE))
    recipe = load_recipe(recipe_path)
    endpoint = endpoint or os.environ.get(ENDPOINT_ENV)
    stages = list(recipe.stages)
    if endpoint:
        model = model or os.environ.get(MODEL_ENV)
        if not model:
            from postmix.errors import ConfigError

            raise ConfigError(f"an endpoint needs a model name: pass --model or set ${MODEL_ENV}")
        stages += preference_stages(_endpoint_file(workdir, endpoint, model), prompts)
    if importlib.util.find_spec("trl") is None:  # the [train] extra is not installed
        stages = [s for s in stages if s.run not in TRAINING_STAGES]
        echo(
            "training stages skipped: install the [train] extra (pip install 'postmix[train]') "
            "to add them"
        )
    recipe = Recipe(name=recipe.name, description=recipe.description, stages=stages)
    result = run_recipe(
        recipe,
        workdir,
        recipe_dir=recipe_path.parent,
        options={"home": workdir / ".postmix"},
        echo=echo,
    )
    if not endpoint:
        echo(HOW_TO_ENABLE)
    for stage in result.stages.values():  # mixes live in a registry of their own: say where
        if "mix" in stage["outputs"]:
            echo(f"mix {stage['outputs']['mix']}: postmix mix show {stage['outputs']['mix']} "
                 f"--home {stage['outputs']['home']}")
    return result
