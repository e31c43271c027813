"""The stage types a recipe can run. Each handler is a thin adapter from a recipe stage to the
library function that does the work; none holds logic of its own."""

from __future__ import annotations

from typing import Any

from postmix.errors import ConfigError
from postmix.pipeline import StageContext, stage_type


def _single_input(ctx: StageContext) -> Any:
    if len(ctx.inputs) != 1:
        raise ConfigError(f"stage {ctx.stage.name!r} ({ctx.stage.run}) takes exactly one input")
    return ctx.inputs[0]


def _outputs(output, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    from postmix.io import rejects_path, report_path

    return {"data": str(output), "rejects": str(rejects_path(output)), "report": str(report_path(output)),
            **(extra or {})}


@stage_type("ingest", "convert a public-format dataset into postmix records")
def ingest_stage(ctx: StageContext) -> dict[str, Any]:
    from postmix.io import ingest

    config = dict(ctx.stage.config)
    output = ctx.out_dir / f"{ctx.stage.name}.parquet"
    ingest(_single_input(ctx), output, format=config.pop("format", None), strict=config.pop("strict", False),
           source_name=config.pop("source_name", None), split=config.pop("split", "train"), progress=False)
    if config:
        raise ConfigError(f"stage {ctx.stage.name!r}: unknown ingest options {sorted(config)}")
    return _outputs(output)


@stage_type("mix_build", "build and version a training mix from earlier stages or files")
def mix_build_stage(ctx: StageContext) -> dict[str, Any]:
    """``config`` is a mix spec; a source whose ``path`` names one of this stage's inputs reads
    that stage's output. The registry is ``config.home``, else ``<workdir>/.postmix``."""
    from postmix.mix import build

    spec = dict(ctx.stage.config)
    home = spec.pop("home", None) or ctx.options.get("home") or ctx.out_dir.parent.parent / ".postmix"
    by_name = dict(zip(ctx.stage.input, ctx.inputs, strict=True))
    spec["sources"] = [
        {**source, "path": str(by_name.get(source.get("path"), source.get("path")))}
        for source in spec.get("sources", [])
    ]
    result = build(spec, home=home, base=ctx.recipe_dir, progress=False)
    return {"mix": result.mix.ref, "home": str(home), "data": str(result.mix.path),
            "content_hash": result.mix.content_hash}
