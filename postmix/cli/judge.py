"""``postmix judge generate | rate | pairs | compare``: argument parsing only; the work is in
the library functions of the same names."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from postmix.errors import ConfigError


def _sampling(temperature: float | None, max_tokens: int | None, extra: str | None,
              base: dict | None = None) -> dict:
    sampling = dict(base or {})
    if extra:
        try:
            value = json.loads(extra)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--sampling must be a JSON object: {exc.msg}") from None
        if not isinstance(value, dict):
            raise ConfigError("--sampling must be a JSON object, e.g. '{\"top_p\": 0.9}'")
        sampling.update(value)
    if temperature is not None:
        sampling["temperature"] = temperature
    if max_tokens is not None:
        sampling["max_tokens"] = max_tokens
    return sampling


def _config(cls, **values):
    """A step config from CLI values; a bad value is a one-line error naming the option."""
    from pydantic import ValidationError

    try:
        return cls(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        option = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "option"
        raise ConfigError(f"{option}: {first['msg']}") from None


def _names(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _summary(report, paths: dict) -> None:
    from postmix.cli import print_report_summary

    print_report_summary(report, {k: str(v) for k, v in paths.items()})
    for warning in report.details.get("warnings", []):
        typer.secho(f"warning: {warning}", fg="yellow", err=True)


CACHE_HELP = "Request cache (SQLite); default <output>.cache.sqlite, so re-running resumes."


def generate_cmd(
    prompts: str = typer.Argument(..., help="Prompts: SFT records (prompt = up to the last user turn) or rows with 'prompt'."),
    output: Path = typer.Argument(..., help="Output .jsonl/.parquet of Completion rows."),
    pool: Path = typer.Option(..., "--pool", help="Endpoints YAML of the models to sample from."),
    n: int = typer.Option(4, "--n", help="Completions per prompt."),
    assignment: str = typer.Option("random", "--assignment", help="random | round-robin: how models are drawn per prompt."),
    models: list[str] = typer.Option(None, "--models", help="Only these pool models (comma-separated or repeated)."),
    policy: str | None = typer.Option(None, "--policy", help="On-policy model: answers every prompt once."),
    temperature: float | None = typer.Option(None, "--temperature", help="Sampling temperature (default 0.7)."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Max tokens per completion."),
    sampling: str | None = typer.Option(None, "--sampling", help="More sampling params as JSON."),
    seed: int = typer.Option(0, "--seed", help="Seeds model choice and per-sample seeds."),
    cache: Path | None = typer.Option(None, "--cache", help=CACHE_HELP),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the request cache."),
) -> None:
    """Sample K completions per prompt from a pool of models."""
    from postmix.judge.generate import GenerateConfig, generate
    from postmix.llm import load_endpoints

    config = _config(
        GenerateConfig,
        n=n, assignment=assignment.replace("-", "_"), models=_names(models), policy=policy,
        sampling=_sampling(temperature, max_tokens, sampling, GenerateConfig().sampling),
        seed=seed, cache_path=str(cache) if cache else None, use_cache=not no_cache)
    result = generate(prompts, output, load_endpoints(pool), config)
    _summary(result.report, {"output": result.output, "failures": result.failures})


def rate_cmd(
    completions: str = typer.Argument(..., help="Completion rows (from `judge generate`)."),
    output: Path = typer.Argument(..., help="Output .jsonl/.parquet: completions with rating and score."),
    judge: Path = typer.Option(..., "--judge", help="Endpoints YAML of the judge model."),
    rubric: str = typer.Option("ultrafeedback", "--rubric", help="Built-in rubric name or a rubric YAML file."),
    mode: str = typer.Option("per-completion", "--mode", help="per-completion | per-prompt (all completions of a prompt in one call)."),
    model: str | None = typer.Option(None, "--model", help="Judge model in the endpoints file (default: first)."),
    temperature: float | None = typer.Option(None, "--temperature", help="Judge temperature (default 0)."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Max tokens per judge answer."),
    cache: Path | None = typer.Option(None, "--cache", help=CACHE_HELP),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the request cache."),
) -> None:
    """Rate completions on a rubric's aspects (UltraFeedback by default)."""
    from postmix.judge.rate import RateConfig, rate
    from postmix.llm import load_endpoints

    config = _config(RateConfig, rubric=rubric, mode=mode.replace("-", "_"), model=model,
                        sampling=_sampling(temperature, max_tokens, None, RateConfig().sampling),
                        cache_path=str(cache) if cache else None, use_cache=not no_cache)
    result = rate(completions, output, load_endpoints(judge), config)
    _summary(result.report, {"output": result.output, "failures": result.failures})


def pairs_cmd(
    rated: str = typer.Argument(..., help="Rated completions (from `judge rate`)."),
    output: Path = typer.Argument(..., help="Output .jsonl/.parquet of PreferenceRecord rows."),
    strategy: str = typer.Option("best-vs-random-lower", "--strategy", help="best-vs-random-lower | best-vs-worst | all-pairs."),
    min_margin: float = typer.Option(0.0, "--min-margin", help="Drop pairs whose mean-score gap is below this."),
    aspects: list[str] = typer.Option(None, "--aspects", help="Aspects to average (comma-separated or repeated; default all)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the random lower-rated pick."),
) -> None:
    """Build chosen/rejected pairs from rated completions."""
    from postmix.judge.pairs import PairsConfig, make_pairs

    config = _config(PairsConfig, strategy=strategy, min_margin=min_margin, aspects=_names(aspects), seed=seed)
    result = make_pairs(rated, output, config)
    _summary(result.report, {"output": result.output, "rejects": result.rejects})


def compare_cmd(
    a: str = typer.Argument(..., help="Completions A."),
    b: str = typer.Argument(..., help="Completions B (matched to A by prompt_id)."),
    output: Path = typer.Argument(..., help="Output .jsonl/.parquet of verdicts."),
    judge: Path = typer.Option(..., "--judge", help="Endpoints YAML of the judge model."),
    model: str | None = typer.Option(None, "--model", help="Judge model in the endpoints file (default: first)."),
    cache: Path | None = typer.Option(None, "--cache", help=CACHE_HELP),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the request cache."),
) -> None:
    """Judge A against B pairwise, in both orders; order-dependent verdicts count as ties."""
    from postmix.judge.compare import CompareConfig, compare
    from postmix.llm import load_endpoints

    config = _config(CompareConfig, model=model, cache_path=str(cache) if cache else None,
                           use_cache=not no_cache)
    result = compare(a, b, output, load_endpoints(judge), config)
    d = result.report.details
    _summary(result.report, {"output": result.output, "failures": result.failures})
    typer.echo(f"A wins {d['a_wins']}, B wins {d['b_wins']}, ties {d['ties']}; "
               f"win rate A {d['win_rate_a']:.1%}; position-flip rate {d['position_flip_rate']:.1%}")


def register(group: typer.Typer) -> None:
    group.command("generate")(generate_cmd)
    group.command("rate")(rate_cmd)
    group.command("pairs")(pairs_cmd)
    group.command("compare")(compare_cmd)
