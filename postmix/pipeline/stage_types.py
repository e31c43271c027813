"""The stage types a recipe can run. Each handler is a thin adapter from a recipe stage to the
library function that does the work; none holds logic of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from postmix.errors import ConfigError
from postmix.pipeline.registry import StageContext, stage_type


def _checker(module: str, class_name: str, *, drop: tuple[str, ...] = ()):
    """Validate a stage config against the library's own config model (imported lazily)."""

    def check(config: dict[str, Any]) -> None:
        import importlib

        model = getattr(importlib.import_module(module), class_name)
        model.model_validate({k: v for k, v in config.items() if k not in drop})

    return check


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


def _benchmark_files(steps: list[dict[str, Any]], recipe_dir: Path) -> list[Path]:
    from postmix.curate.benchmarks import benchmark_files

    files: list[Path] = []
    for step in steps:
        config = step.get("config") or step.get("decontam") or {}
        if (step.get("step") == "decontam" or "decontam" in step) and isinstance(config, dict):
            files += benchmark_files(list(config.get("benchmarks") or []), recipe_dir)
    return files


def _mix_files(stage: Any, recipe_dir: Path) -> list[Path]:
    """Source files a mix spec names directly (not earlier stages), and decontam benchmark files."""
    config = stage.config
    files = [path for source in config.get("sources", []) if isinstance(source, dict)
             and source.get("path") not in stage.input
             and (path := _local_path(str(source.get("path", "")), recipe_dir)) is not None]
    steps = [*config.get("global_steps", []), *(st for source in config.get("sources", []) if isinstance(source, dict)
                                                for st in source.get("steps", []))]
    return files + _benchmark_files([st for st in steps if isinstance(st, dict)], recipe_dir)


def _decontam_files(stage: Any, recipe_dir: Path) -> list[Path]:
    return _benchmark_files([{"step": "decontam", "config": stage.config}], recipe_dir)


def _model_files(stage: Any, recipe_dir: Path) -> list[Path]:
    path = _local_path(str(stage.config.get("model") or ""), recipe_dir)
    return [path] if path is not None else []


def _single_input(ctx: StageContext) -> Any:
    if len(ctx.inputs) != 1:
        raise ConfigError(f"stage {ctx.stage.name!r} ({ctx.stage.run}) takes exactly one input")
    return ctx.inputs[0]


def _outputs(output, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    from postmix.io import rejects_path, report_path

    return {"data": str(output), "rejects": str(rejects_path(output)), "report": str(report_path(output)),
            **(extra or {})}


@stage_type("ingest", "convert a public-format dataset into postmix records", check=_check_ingest)
def ingest_stage(ctx: StageContext) -> dict[str, Any]:
    from postmix.io import ingest

    config = dict(ctx.stage.config)
    output = ctx.out_dir / f"{ctx.stage.name}.parquet"
    ingest(_single_input(ctx), output, format=config.pop("format", None), strict=config.pop("strict", False),
           source_name=config.pop("source_name", None), split=config.pop("split", "train"), progress=False)
    if config:
        raise ConfigError(f"stage {ctx.stage.name!r}: unknown ingest options {sorted(config)}")
    return _outputs(output)


@stage_type("mix_build", "build and version a training mix from earlier stages or files", check=_check_mix,
            files=_mix_files)
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
    spec["sources"] = [
        {**source, "path": str(by_name.get(source.get("path"), source.get("path")))}
        for source in spec.get("sources", [])
    ]
    engine = None if "engine" in spec else ctx.options.get("engine")
    result = build(spec, home=home, base=ctx.recipe_dir, progress=False, engine=engine)
    # a plain file too, so later stages (generate, a second mix) can read the version like any dataset
    data = save_records(result.mix.dataset, ctx.out_dir / f"{ctx.stage.name}.parquet")
    return {"mix": result.mix.ref, "home": str(home), "data": str(data), "version_dir": str(result.mix.path),
            "content_hash": result.mix.content_hash}


def _check_tiny(config: dict[str, Any]) -> None:
    import inspect

    from postmix.testing.tiny_model import build_tiny_model

    known = [p for p in inspect.signature(build_tiny_model).parameters if p != "path"]
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise ValueError(f"unknown tiny_model options {unknown}; known: {', '.join(known)}")


@stage_type("tiny_model", "build a tiny random-initialised Llama-style model (for demos and CPU checks)",
            check=_check_tiny)
def tiny_model_stage(ctx: StageContext) -> dict[str, Any]:
    from postmix.testing.tiny_model import build_tiny_model

    path = build_tiny_model(ctx.out_dir / "model", **ctx.stage.config)
    return {"model": str(path), "data": str(path)}


def _pool(ctx: StageContext, config: dict[str, Any], key: str = "pool"):
    """An endpoint pool from the stage's ``pool:`` path (relative to the recipe) or the run's options."""
    from postmix.io.paths import resolve_path
    from postmix.llm import load_endpoints

    path = config.pop(key, None) or ctx.options.get(key)
    if path is None:
        raise ConfigError(f"stage {ctx.stage.name!r} needs `{key}:` (an endpoints YAML)")
    return load_endpoints(resolve_path(path, base=ctx.recipe_dir))


def _model_stage(ctx: StageContext, fn, config_cls, *, pool_key: str = "pool", with_input: bool = True):
    config = dict(ctx.stage.config)
    pool = _pool(ctx, config, pool_key)
    # the request cache lives outside the stage folder so a failed stage's answers are reused
    config.setdefault("cache_path", str(ctx.out_dir.parent / f"{ctx.stage.name}.cache.sqlite"))
    output = ctx.out_dir / f"{ctx.stage.name}.jsonl"
    args = (_single_input(ctx), output) if with_input else (output,)
    result = fn(*args, pool, config_cls.model_validate(config), progress=False)
    failures = getattr(result, "failures", None)
    return _outputs(output, {"failures": str(failures)} if failures else None)


@stage_type("synth", "persona-driven prompt synthesis through the engine", check=_checker('postmix.curate.synth', 'SynthConfig', drop=('pool',)))
def synth_stage(ctx: StageContext) -> dict[str, Any]:
    from postmix.curate.synth import SynthConfig, synthesize

    return _model_stage(ctx, synthesize, SynthConfig, with_input=False)


@stage_type("respond", "write assistant responses for prompts, then filter them", check=_checker('postmix.curate.respond', 'RespondConfig', drop=('pool',)))
def respond_stage(ctx: StageContext) -> dict[str, Any]:
    from postmix.curate.respond import RespondConfig, respond

    return _model_stage(ctx, respond, RespondConfig)


@stage_type("generate", "sample K completions per prompt from a model pool", check=_checker('postmix.judge.generate', 'GenerateConfig', drop=('pool',)))
def generate_stage(ctx: StageContext) -> dict[str, Any]:
    from postmix.judge.generate import GenerateConfig, generate

    return _model_stage(ctx, generate, GenerateConfig)


@stage_type("rate", "rate completions with an LLM judge (UltraFeedback rubric by default)", check=_checker('postmix.judge.rate', 'RateConfig', drop=('judge',)))
def rate_stage(ctx: StageContext) -> dict[str, Any]:
    from postmix.judge.rate import RateConfig, rate

    return _model_stage(ctx, rate, RateConfig, pool_key="judge")


@stage_type("pairs", "build chosen/rejected preference pairs from rated completions", check=_checker('postmix.judge.pairs', 'PairsConfig'))
def pairs_stage(ctx: StageContext) -> dict[str, Any]:
    from postmix.judge.pairs import PairsConfig, make_pairs

    output = ctx.out_dir / f"{ctx.stage.name}.jsonl"
    result = make_pairs(_single_input(ctx), output, PairsConfig.model_validate(ctx.stage.config))
    return _outputs(output, {"rejects": str(result.rejects)})


def _engine_options(config: dict[str, Any], options: dict[str, Any]) -> tuple[str, Any]:
    """Pop ``engine:`` (local|ray, default the run's ``--engine`` option) and ``ray:`` (a
    ``RayConfig`` mapping) from a curation stage's config."""
    from postmix.curate.executor import check_engine

    engine = check_engine(config.pop("engine", None) or options.get("engine") or "local")
    return engine, config.pop("ray", None)


def _curate_checker(step: str):
    def check(config: dict[str, Any]) -> None:
        from postmix.curate.steps import get_step

        config = dict(config)
        _engine_options(config, {})
        get_step(step).config_class().model_validate(config)

    return check


def _curate_stage(ctx: StageContext, step: str) -> dict[str, Any]:
    from postmix.curate.executor import make_executor
    from postmix.curate.steps import get_step

    config = dict(ctx.stage.config)
    engine, ray_config = _engine_options(config, ctx.options)
    if step == "decontam" and config.get("benchmarks"):
        from postmix.curate.benchmarks import anchored

        config["benchmarks"] = anchored(list(config["benchmarks"]), ctx.recipe_dir)
    output = ctx.out_dir / f"{ctx.stage.name}.parquet"
    spec = get_step(step)
    make_executor(engine, ray_config).run_file(spec, _single_input(ctx), output,
                                               spec.config_class().model_validate(config))
    return _outputs(output)


@stage_type("filter", "quality filters: empty turns, lengths, role order, refusals, self-identity, ...",
            check=_curate_checker("filter"))
def filter_stage(ctx: StageContext) -> dict[str, Any]:
    return _curate_stage(ctx, "filter")


@stage_type("dedup", "exact and MinHash-LSH near-duplicate removal", check=_curate_checker("dedup"))
def dedup_stage(ctx: StageContext) -> dict[str, Any]:
    return _curate_stage(ctx, "dedup")


@stage_type("decontam", "remove rows that overlap named benchmarks (n-gram coverage)",
            check=_curate_checker("decontam"), files=_decontam_files)
def decontam_stage(ctx: StageContext) -> dict[str, Any]:
    return _curate_stage(ctx, "decontam")


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
        if upstream and "mix" in upstream:
            mix, home = upstream["mix"], upstream.get("home")
        elif upstream and "model" in upstream:
            model = upstream["model"]
        else:
            data = path
    if model is None:
        raise ConfigError(f"stage {ctx.stage.name!r} needs a model: `config.model` or a model-producing input")
    output = ctx.out_dir / "run"
    result = train(method, str(model), output=output, mix=mix, data=None if mix else data,
                   config=config, home=home)
    return {"model": str(output), "data": str(output), "run_card": str(output / "run_card.json"),
            "final_loss": str(result.run_card.get("metrics", {}).get("train_loss", ""))}


@stage_type("train_sft", "supervised fine-tuning over TRL on one mix version", check=_train_checker('sft'), files=_model_files)
def train_sft_stage(ctx: StageContext) -> dict[str, Any]:
    return _train_stage(ctx, "sft")


@stage_type("train_dpo", "DPO over TRL on one preference mix version", check=_train_checker('dpo'), files=_model_files)
def train_dpo_stage(ctx: StageContext) -> dict[str, Any]:
    return _train_stage(ctx, "dpo")


@stage_type("train_rlvr", "GRPO with verifiable rewards over TRL on one RLVR mix version", check=_train_checker('rlvr'), files=_model_files)
def train_rlvr_stage(ctx: StageContext) -> dict[str, Any]:
    return _train_stage(ctx, "rlvr")
