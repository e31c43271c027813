"""``postmix curate synth`` and ``postmix curate respond``: argument parsing only; the work is in
``postmix.curate.synth.synthesize`` and ``postmix.curate.respond.respond``."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError

from postmix.errors import ConfigError

CACHE_HELP = "Request cache (SQLite); default <output>.cache.sqlite, so re-running resumes."


def _names(values: list[str] | None) -> list[str]:
    return [name.strip() for value in values or [] for name in value.split(",") if name.strip()]


def _summary(report, paths: dict) -> None:
    from postmix.cli import print_report_summary

    print_report_summary(report, {k: str(v) for k, v in paths.items()})


def _config(cls, **values):
    from postmix.io.errors_text import one_line

    try:
        return cls(**values)
    except ValidationError as exc:
        raise ConfigError(f"bad option: {one_line(exc)}") from None


def synth_cmd(
    output: Path = typer.Argument(..., help="Output .jsonl/.parquet: prompt rows, or RLVR rows for precise-if and voted math."),
    model: Path = typer.Option(..., "--model", help="Endpoints YAML of the prompt-writing model."),
    skill: str = typer.Option("general", "--skill", help="general | code | gsm | math | precise-if (or a skill defined in --template)."),
    n: int = typer.Option(100, "--n", help="Prompts to synthesise."),
    personas: str | None = typer.Option(None, "--personas", help="Persona file (.jsonl/.parquet/Arrow folder) or hf:owner/name; default: the bundled set."),
    persona_field: str = typer.Option("persona", "--persona-field", help="Column holding the persona text."),
    persona_subset: str | None = typer.Option(None, "--persona-subset", help="Hub subset, e.g. 'persona' for hf:proj-persona/PersonaHub."),
    persona_split: str = typer.Option("train", "--persona-split", help="Split of a Hub or Arrow persona source."),
    persona_limit: int | None = typer.Option(None, "--persona-limit", help="Read only the first N personas."),
    template: Path | None = typer.Option(None, "--template", help="YAML file overriding the skill's template fields."),
    model_name: str | None = typer.Option(None, "--model-name", help="Model in the endpoints file (default: first)."),
    temperature: float | None = typer.Option(None, "--temperature", help="Prompt-writing temperature (skill default 1.0)."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Max tokens per written prompt."),
    seed: int = typer.Option(0, "--seed", help="Seeds persona order, constraints and sampling seeds."),
    min_constraints: int = typer.Option(1, "--min-constraints", help="precise-if: fewest constraints per prompt."),
    max_constraints: int = typer.Option(3, "--max-constraints", help="precise-if: most constraints per prompt."),
    vote_k: int = typer.Option(0, "--vote-k", help="gsm/math: solutions per prompt for a majority vote (0 = off)."),
    min_agreement: float = typer.Option(0.6, "--min-agreement", help="Share of the k solutions the winning answer needs."),
    solver: str | None = typer.Option(None, "--solver-model", help="Model that samples the solutions (default: the writer)."),
    benchmark: list[str] = typer.Option(None, "--benchmark", help="Report contamination against these benchmarks (comma-separated or repeated)."),
    source: str | None = typer.Option(None, "--source", help="Rows' source name (default synth-<skill>)."),
    cache: Path | None = typer.Option(None, "--cache", help=CACHE_HELP),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the request cache."),
) -> None:
    """Synthesise prompts from personas and a skill template (PersonaHub / Tulu 3 style)."""
    from postmix.curate.synth import SynthConfig, synthesize
    from postmix.llm import load_endpoints

    sampling = {k: v for k, v in (("temperature", temperature), ("max_tokens", max_tokens))
                if v is not None}
    config = _config(
        SynthConfig, skill=skill, n=n, personas=personas, persona_field=persona_field,
        persona_subset=persona_subset, persona_split=persona_split, persona_limit=persona_limit,
        template=str(template) if template else None, model=model_name, sampling=sampling,
        seed=seed, min_constraints=min_constraints, max_constraints=max_constraints,
        vote_k=vote_k, min_agreement=min_agreement, solver_model=solver,
        benchmarks=_names(benchmark), source=source, cache_path=str(cache) if cache else None,
        use_cache=not no_cache)
    result = synthesize(output, load_endpoints(model), config)
    _summary(result.report, {"output": result.output, "rejects": result.rejects,
                             "failures": result.failures})
    diversity = result.report.details["diversity"]
    typer.echo(f"personas {diversity['distinct_personas']}, distinct-2 {diversity['distinct_2']:.3f}, "
               f"distinct-3 {diversity['distinct_3']:.3f}, near-duplicates "
               f"{diversity['near_duplicate_rate']:.1%}, cost ${result.report.details['cost_usd']:.4f}")


def respond_cmd(
    prompts: str = typer.Argument(..., help="Prompts: `curate synth` output, RLVR rows, or SFT rows (answered after their last user turn)."),
    output: Path = typer.Argument(..., help="Output .jsonl/.parquet of SFT records."),
    model: Path = typer.Option(..., "--model", help="Endpoints YAML of the responding model."),
    n: int = typer.Option(1, "--n", help="Responses per prompt."),
    model_name: str | None = typer.Option(None, "--model-name", help="Model in the endpoints file (default: first)."),
    temperature: float | None = typer.Option(None, "--temperature", help="Sampling temperature (default 0.7)."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Max tokens per response."),
    filters: list[str] = typer.Option(None, "--filters", help="Filters to apply (default all: empty, refusal, self_identity, truncated, verified; 'none' for none)."),
    seed: int = typer.Option(0, "--seed", help="Seeds each sample's sampling seed."),
    source: str | None = typer.Option(None, "--source", help="Rows' source name (default: the prompt's)."),
    cache: Path | None = typer.Option(None, "--cache", help=CACHE_HELP),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the request cache."),
) -> None:
    """Write assistant responses into SFT records; filter empty, refusing and self-identifying answers."""
    from postmix.curate.respond import RespondConfig, respond
    from postmix.llm import load_endpoints

    sampling = {"temperature": 0.7 if temperature is None else temperature}
    if max_tokens is not None:
        sampling["max_tokens"] = max_tokens
    values = {"n": n, "model": model_name, "sampling": sampling, "seed": seed, "source": source,
              "cache_path": str(cache) if cache else None, "use_cache": not no_cache}
    if filters:
        names = _names(filters)
        values["filters"] = [] if names == ["none"] else names
    result = respond(prompts, output, load_endpoints(model), _config(RespondConfig, **values))
    _summary(result.report, {"output": result.output, "rejects": result.rejects,
                             "failures": result.failures})


def register(group: typer.Typer) -> None:
    group.command("synth")(synth_cmd)
    group.command("respond")(respond_cmd)
