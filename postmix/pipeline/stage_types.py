"""The stage types a recipe can run. Each handler is a thin adapter from a recipe stage to the
library function that does the work; none holds logic of its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from postmix.curate.executor import check_engine, make_executor
from postmix.curate.steps import STEPS, Step, named
from postmix.errors import ConfigError, PostmixError
from postmix.io.errors_text import checked
from postmix.pipeline.registry import STAGE_TYPES, StageContext, StageType, stage_type
from postmix.scale.ray_session import RayConfig


def _check_ingest(config: dict[str, Any]) -> None:
    unknown = set(config) - {"format", "strict", "source_name", "split"}
    if unknown:
        raise ValueError(f"unknown ingest options {sorted(unknown)}")


def _check_mix(config: dict[str, Any]) -> None:
    from postmix.mix import parse_spec

    parse_spec({k: v for k, v in config.items() if k != "home"})


def _train_checker(method: str):
    def check(config: dict[str, Any]) -> None:
        from postmix.train.config import parse_config

        parse_config(method, {k: v for k, v in config.items() if k != "model"})

    return check


def _local_path(value: str, recipe_dir: Path) -> Path | None:
    """``value`` as an existing local path, relative ones taken from the recipe's folder."""
    if not value or value.startswith("hf:"):
        return None
    from postmix.io.paths import resolve_path

    path = Path(resolve_path(value, base=recipe_dir))
    return path if path.exists() else None


def _step_files(steps: list[Any], recipe_dir: Path) -> list[Path]:
    """Files that step configs (``{step: ..., config: ...}`` or ``{dedup: {...}}``) name."""
    from postmix.mix.spec import StepSpec

    files: list[Path] = []
    for raw in steps:
        try:
            step = StepSpec.model_validate(raw)
        except ValueError:
            continue  # the spec check reports it
        if step.step in STEPS and isinstance(step.config, dict):
            files += STEPS[step.step].config_files(step.config, recipe_dir)
    return files


def _mix_files(stage: Any, recipe_dir: Path) -> list[Path]:
    """Source files a mix spec names directly (not earlier stages), and files its steps name."""
    config = stage.config
    named = [source.get(key) for source in config.get("sources", []) if isinstance(source, dict)
             for key in ("path", "attributes") if source.get(key)]
    named += [config["attributes"]] if config.get("attributes") else []
    files = [path for value in named if value not in stage.input
             and (path := _local_path(str(value), recipe_dir)) is not None]
    steps = [
        *config.get("global_steps", []),
        *(
            st
            for source in config.get("sources", [])
            if isinstance(source, dict)
            for st in source.get("steps", [])
        ),
    ]
    return files + _step_files(steps, recipe_dir)


def _model_files(stage: Any, recipe_dir: Path) -> list[Path]:
    path = _local_path(str(stage.config.get("model") or ""), recipe_dir)
    return [path] if path is not None else []


def _single_input(ctx: StageContext) -> Any:
    if len(ctx.inputs) != 1:
        raise ConfigError(f"stage {ctx.stage.name!r} ({ctx.stage.run}) takes exactly one input")
    return ctx.inputs[0]


def _outputs(output, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    from postmix.io import rejects_path, report_path

    return {
        "data": str(output),
        "rejects": str(rejects_path(output)),
        "report": str(report_path(output)),
        **(extra or {}),
    }


@stage_type("ingest", "convert a public-format dataset into postmix records", check=_check_ingest)
def ingest_stage(ctx: StageContext) -> dict[str, Any]:
    from postmix.io import ingest

    config = dict(ctx.stage.config)
    output = ctx.out_dir / f"{ctx.stage.name}.parquet"
    ingest(
        _single_input(ctx),
        output,
        format=config.pop("format", None),
        strict=config.pop("strict", False),
        source_name=config.pop("source_name", None),
        split=config.pop("split", "train"),
        progress=False,
    )
    if config:
        raise ConfigError(f"stage {ctx.stage.name!r}: unknown ingest options {sorted(config)}")
    return _outputs(output)


@stage_type(
    "mix_build",
    "build and version a training mix from earlier stages or files",
    check=_check_mix,
    files=_mix_files,
)
def mix_build_stage(ctx: StageContext) -> dict[str, Any]:
    """``config`` is a mix spec; a source whose ``path`` names one of this stage's inputs reads
    that stage's output. The registry is ``config.home``, else ``<workdir>/.postmix``."""
    from postmix.io import save_records
    from postmix.io.paths import resolve_path
    from postmix.mix import build

    spec = dict(ctx.stage.config)
    home = spec.pop("home", None)
    home = (Path(resolve_path(home, base=ctx.recipe_dir)).resolve() if home
            else (ctx.options.get("home") or ctx.out_dir.parent.parent / ".postmix"))
    by_name = dict(zip(ctx.stage.input, ctx.inputs, strict=True))
    def read(value: Any) -> Any:  # a stage name reads that stage's output
        return value if value is None else str(by_name.get(value, value))

    spec["sources"] = [
        {**source, "path": read(source.get("path")),
         **({"attributes": read(source["attributes"])} if source.get("attributes") else {})}
        for source in spec.get("sources", [])
    ]
    if spec.get("attributes"):
        spec["attributes"] = read(spec["attributes"])
    engine = None if "engine" in spec else ctx.options.get("engine")
    result = build(spec, home=home, base=ctx.recipe_dir, progress=False, engine=engine)
    # a plain file too, so later stages (generate, a second mix) read the version like any dataset
    data = save_records(result.mix.dataset, ctx.out_dir / f"{ctx.stage.name}.parquet")
    return {
        "mix": result.mix.ref,
        "home": str(home),
        "data": str(data),
        "version_dir": str(result.mix.path),
        "content_hash": result.mix.content_hash,
    }


def _check_tiny(config: dict[str, Any]) -> None:
    import inspect

    from postmix.testing.tiny_model import build_tiny_model

    known = [p for p in inspect.signature(build_tiny_model).parameters if p != "path"]
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise ValueError(f"unknown tiny_model options {unknown}; known: {', '.join(known)}")


@stage_type(
    "tiny_model",
    "build a tiny random-initialised Llama-style model (for demos and CPU checks)",
    check=_check_tiny,
)
def tiny_model_stage(ctx: StageContext) -> dict[str, Any]:
    from postmix.testing.tiny_model import build_tiny_model

    path = build_tiny_model(ctx.out_dir / "model", **ctx.stage.config)
    return {"model": str(path), "data": str(path)}


def _pool_path(
    config: dict[str, Any], options: dict[str, Any], recipe_dir: Path, key: str
) -> str | None:
    from postmix.io.paths import resolve_path

    path = config.get(key) or options.get(key)
    return None if path is None else str(resolve_path(path, base=recipe_dir))


def _pool(ctx: StageContext, config: dict[str, Any], key: str = "pool"):
    """An endpoint pool from the stage's ``pool:`` path (relative to the recipe) or the run's
    options."""
    from postmix.llm import load_endpoints

    path = _pool_path(config, ctx.options, ctx.recipe_dir, key)
    config.pop(key, None)
    if path is None:
        raise ConfigError(f"stage {ctx.stage.name!r} needs `{key}:` (an endpoints YAML)")
    return load_endpoints(path)


def _prober(key: str = "pool"):
    """The stage's endpoint problems (``postmix.llm.probe``), checked before a run starts."""

    def probe(stage: Any, recipe_dir: Path, options: dict[str, Any]) -> list[str]:
        from postmix.llm import load_endpoints
        from postmix.llm.probe import probe_pool

        path = _pool_path(dict(stage.config), options, recipe_dir, key)
        return [] if path is None else probe_pool(load_endpoints(path))

    return probe


def _model_stage(
    ctx: StageContext, fn, config_cls, *, pool_key: str = "pool", with_input: bool = True
):
    """Run a model-calling stage. Failed calls are counted in the outputs (``failed``), so the run
    does not cache the stage as finished and a re-run retries them (answers are cached outside the
    stage folder, so only the failures are sent again); a stage whose every call failed stops the
    run here, not at the first stage that finds its output empty."""
    config = dict(ctx.stage.config)
    pool = _pool(ctx, config, pool_key)
    # the request cache lives outside the stage folder so a failed stage's answers are reused
    config.setdefault("cache_path", str(ctx.out_dir.parent / f"{ctx.stage.name}.cache.sqlite"))
    output = ctx.out_dir / f"{ctx.stage.name}.jsonl"
    args = (_single_input(ctx), output) if with_input else (output,)
    result = fn(*args, pool, config_cls.model_validate(config), progress=False)
    failures = getattr(result, "failures", None)
    failed = getattr(result, "failed", {})  # model calls that failed, not unusable input rows
    if failed and result.report.rows_out == 0:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(failed.items()))
        raise PostmixError(
            f"every model call failed ({reasons}; see {failures}): check the endpoints "
            f"with `curl <base_url>/models`, then run again"
        )
    extra = {"failures": str(failures)} if failures else {}
    return _outputs(output, {**extra, "failed": str(sum(failed.values()))})


# name -> (description, config model, function, endpoints key, reads an input)
MODEL_STAGES: dict[str, tuple[str, str, str, str, bool]] = {
    "synth": (
        "persona-driven prompt synthesis through the engine",
        "postmix.curate.synth:SynthConfig",
        "postmix.curate.synth:synthesize",
        "pool",
        False,
    ),
    "respond": (
        "write assistant responses for prompts, then filter them",
        "postmix.curate.respond:RespondConfig",
        "postmix.curate.respond:respond",
        "pool",
        True,
    ),
    "generate": (
        "sample K completions per prompt from a model pool",
        "postmix.judge.generate:GenerateConfig",
        "postmix.judge.generate:generate",
        "pool",
        True,
    ),
    "rate": (
        "rate completions with an LLM judge (UltraFeedback rubric by default)",
        "postmix.judge.rate:RateConfig",
        "postmix.judge.rate:rate",
        "judge",
        True,
    ),
}


def _register_model_stage(name: str, description: str, config: str, function: str, key: str,
                          with_input: bool) -> None:
    def check(values: dict[str, Any]) -> None:  # against the library's own config model
        checked(named(config), {k: v for k, v in values.items() if k != key})

    def handler(ctx: StageContext) -> dict[str, Any]:
        return _model_stage(
            ctx, named(function), named(config), pool_key=key, with_input=with_input
        )

    stage_type(name, description, check=check, probe=_prober(key))(handler)


for _name, _spec in MODEL_STAGES.items():
    _register_model_stage(_name, *_spec)


@stage_type(
    "pairs",
    "build chosen/rejected preference pairs from rated completions",
    check=lambda config: checked(named("postmix.judge.pairs:PairsConfig"), config),
)
def pairs_stage(ctx: StageContext) -> dict[str, Any]:
    from postmix.judge.pairs import PairsConfig, make_pairs

    output = ctx.out_dir / f"{ctx.stage.name}.jsonl"
    result = make_pairs(_single_input(ctx), output, PairsConfig.model_validate(ctx.stage.config))
    return _outputs(output, {"rejects": str(result.rejects)})


def _executor(config: dict[str, Any], options: dict[str, Any]):
    """Pop ``engine:`` (local|ray, default the run's ``--engine``) and ``ray:`` (Ray settings) from
    a curation stage's config, and make the executor they name."""
    return make_executor(
        config.pop("engine", None) or options.get("engine") or "local", config.pop("ray", None)
    )


def curation_stage_type(step: Step) -> StageType:
    """The recipe stage type of a curation step of the registry: ``run: <step>`` over one input,
    with ``engine:`` / ``ray:`` beside the step's own config."""

    def check(config: dict[str, Any]) -> None:
        config = dict(config)
        engine, ray = config.pop("engine", None) or "local", config.pop("ray", None)
        check_engine(engine)
        if ray is not None:
            if engine != "ray":
                raise ValueError("ray: settings need engine: ray")
            RayConfig.model_validate(ray)
        checked(step.config_class(), config)

    def handler(ctx: StageContext) -> dict[str, Any]:
        config = dict(ctx.stage.config)
        executor = _executor(config, ctx.options)
        config = step.anchored(config, ctx.recipe_dir)
        output = ctx.out_dir / f"{ctx.stage.name}.parquet"
        executor.run_file(
            step, _single_input(ctx), output, step.parse(config, where=f"stage {ctx.stage.name!r}")
        )
        return _outputs(output)

    return StageType(handler, step.description, check,
                     files=lambda stage, recipe_dir: step.config_files(stage.config, recipe_dir))


def lookup(run: str) -> StageType | None:
    """The stage type ``run:`` names: a registered one, else a curation step of the registry (so a
    step added to ``postmix.curate.steps.STEPS`` is a recipe stage with no other edit)."""
    if run in STAGE_TYPES:
        return STAGE_TYPES[run]
    return curation_stage_type(STEPS[run]) if run in STEPS else None


def known() -> list[str]:
    return sorted({*STAGE_TYPES, *STEPS})


def _train_stage(ctx: StageContext, method: str) -> dict[str, Any]:
    """Inputs: a ``mix_build`` stage (its version is what gets trained) or a data file, and
    optionally a stage that produced a model (``tiny_model``, an earlier training run); otherwise
    ``config.model`` names it. The rest of ``config`` is the trainer config."""
    from postmix.train import train

    config = dict(ctx.stage.config)
    model = config.pop("model", None)
    if model is not None:  # a local folder named relative to the recipe, else a Hub name as it is
        local = _local_path(str(model), ctx.recipe_dir)
        model = str(local) if local is not None else model
    mix = home = data = None
    for upstream, path in zip(ctx.input_outputs, ctx.inputs, strict=True):
        if upstream and "model" in upstream:  # before "mix": a training run names its mix too
            model = upstream["model"]
        elif upstream and "mix" in upstream:
            mix, home = upstream["mix"], upstream.get("home")
        else:
            data = path
    if model is None:
        raise ConfigError(
            f"stage {ctx.stage.name!r} needs a model: `config.model` or a model-producing input"
        )
    output = ctx.out_dir / "run"
    result = train(method, str(model), output=output, mix=mix, data=None if mix else data,
                   config=config, home=home)
    lineage = {"mix": mix, "home": str(home), "run_id": result.run_card["run_id"]} if mix else {}
    return {"model": str(output), "data": str(output), "run_card": str(output / "run_card.json"),
            "final_loss": str(result.run_card.get("metrics", {}).get("train_loss", "")),
            **lineage}


TRAIN_STAGES = {
    "sft": "supervised fine-tuning over TRL on one mix version",
    "dpo": "DPO over TRL on one preference mix version",
    "rlvr": "GRPO with verifiable rewards over TRL on one RLVR mix version",
}

for _method, _description in TRAIN_STAGES.items():
    stage_type(f"train_{_method}", _description, check=_train_checker(_method), files=_model_files)(
        lambda ctx, method=_method: _train_stage(ctx, method))


EVAL_SERVING = ("model", "backend", "batch_size")  # how the model is served, beside EvalConfig


def _check_eval(config: dict[str, Any]) -> None:
    from postmix.eval import EvalConfig

    eval_config = checked(EvalConfig, {k: v for k, v in config.items() if k not in EVAL_SERVING})
    eval_config.benchmark_names()  # at least one benchmark, and a known suite


@stage_type("eval", "score the model of an earlier stage (a training run, tiny_model) or "
            "config.model on benchmarks; recorded in the lineage of the run's mix version",
            check=_check_eval, files=_model_files)
def eval_stage(ctx: StageContext) -> dict[str, Any]:
    """Input: a stage that made a model (its ``model`` output); a training run on a mix also
    names the version and run, so the result is recorded against them. ``config``: the
    ``EvalConfig`` fields, plus ``model`` (without an input), ``backend`` and ``batch_size``."""
    from postmix.eval import EvalConfig, ModelInfo, evaluate, local_pool
    from postmix.mix import record_eval

    config = dict(ctx.stage.config)
    model = config.pop("model", None)
    serving = {"backend": config.pop("backend", "transformers"),
               "batch_size": config.pop("batch_size", 8)}
    upstream = ctx.input_outputs[0] if len(ctx.input_outputs) == 1 else None
    if len(ctx.inputs) > 1:
        raise ConfigError(f"stage {ctx.stage.name!r} (eval) takes one input: the model's stage")
    if upstream and upstream.get("model"):
        model = upstream["model"]
    elif model is not None:
        local = _local_path(str(model), ctx.recipe_dir)
        model = str(local) if local is not None else str(model)
    if model is None:
        raise ConfigError(f"stage {ctx.stage.name!r} needs a model: an input stage that made "
                          "one, or `config.model`")
    lineage = {k: upstream[k] for k in ("mix", "home", "run_id") if upstream and upstream.get(k)}
    info = ModelInfo(model, "run" if lineage.get("run_id") else "local",
                     run_id=lineage.get("run_id"), run_dir=model if lineage else None,
                     mix=lineage.get("mix"))
    # answers cached outside the stage folder: a failed stage's folder is wiped, not its answers
    config.setdefault("cache_path", str(ctx.out_dir.parent / f"{ctx.stage.name}.cache.sqlite"))
    result = evaluate(local_pool(model, **serving), ctx.out_dir, EvalConfig.model_validate(config),
                      model=model, info=info)
    results = ctx.out_dir / "results.json"
    if lineage.get("mix") and lineage.get("home"):
        record_eval(result, results, home=lineage["home"], mix=lineage["mix"],
                    run_id=lineage.get("run_id"))
    failed = sum(s.rejected.get("generation_failed", 0) for s in result.scores)
    return {"results": str(results), "data": str(results), "failed": str(failed), **lineage}


def _check_leaderboard(config: dict[str, Any]) -> None:
    unknown = set(config) - {"baseline", "benchmarks"}
    if unknown:
        raise ValueError(f"unknown leaderboard options {sorted(unknown)} (baseline, benchmarks)")


@stage_type("leaderboard", "the leaderboard of the mix versions its eval stages measured; "
            "baseline: the eval stage whose version deltas are against", check=_check_leaderboard)
def leaderboard_stage(ctx: StageContext) -> dict[str, Any]:
    """Inputs: eval stages (their outputs name ``results``, ``mix`` and the registry ``home``).
    Records each result in the lineage (again: recording is idempotent), then writes the board
    as ``leaderboard.json`` and ``leaderboard.html``."""
    from postmix.mix import leaderboard, record_eval
    from postmix.mix.comparison_html import write_leaderboard_html

    config = dict(ctx.stage.config)
    evals = dict(zip(ctx.stage.input, ctx.input_outputs, strict=True))
    bad = [name for name, upstream in evals.items()
           if not upstream or not upstream.get("results") or not upstream.get("mix")]
    if bad:
        raise ConfigError(f"stage {ctx.stage.name!r} reads eval stages of trained mix versions; "
                          f"{', '.join(bad)} is not one")
    homes = {upstream["home"] for upstream in evals.values()}
    if len(homes) != 1:
        raise ConfigError(f"stage {ctx.stage.name!r}: its mixes live in {len(homes)} registries")
    home = homes.pop()
    for upstream in evals.values():
        record_eval(upstream["results"], home=home, mix=upstream["mix"],
                    run_id=upstream.get("run_id") or None)
    chosen = config.get("baseline")
    if chosen is not None and chosen not in evals:
        raise ConfigError(f"stage {ctx.stage.name!r}: baseline {chosen!r} is not one of its inputs")
    baseline = evals[chosen]["mix"] if chosen else None
    board = leaderboard(list(dict.fromkeys(u["mix"] for u in evals.values())), home=home,
                        baseline=baseline, benchmarks=config.get("benchmarks"))
    data = ctx.out_dir / "leaderboard.json"
    data.write_text(json.dumps(board, indent=2, default=str) + "\n", encoding="utf-8")
    page = write_leaderboard_html(board, ctx.out_dir / "leaderboard.html")
    return {"data": str(data), "leaderboard": str(data), "html": str(page),
            "baseline": board["baseline"], "home": home}
