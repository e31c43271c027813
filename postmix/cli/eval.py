"""``postmix eval MODEL --benchmark NAME ... | --suite NAME --output DIR``: argument parsing and
telling what MODEL is; the work is ``postmix.eval.evaluate``. Options come from ``EvalConfig``.

MODEL is, in the order tried: an endpoints file (``.yaml``/``.yml``), a training run folder (it
holds ``run_card.json``: the run id, its folder and the mix version it trained on are recorded),
a local model folder, or a Hub model name. The last three are served in this process by the
``transformers`` backend (``--backend vllm`` on a GPU node).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from postmix.cli import options as opts
from postmix.cli.command import one_command, with_renames
from postmix.cli.output import echo_line, json_option, out, output_option, print_json
from postmix.errors import ConfigError, PostmixError
from postmix.eval.run import EvalConfig


def _model_source(model: str, backend: str, batch_size: int, endpoint_model: str | None,
                  ) -> tuple[Any, str, Any]:
    """(pool, model name in the pool, ModelInfo) for MODEL as given."""
    from postmix.eval import ModelInfo, local_pool
    from postmix.llm import load_endpoints
    from postmix.train.runcard import RUN_CARD

    path = Path(model).expanduser()
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        pool = load_endpoints(path)
        name = endpoint_model or pool.models[0]
        return pool, name, ModelInfo(name, "endpoint")
    if endpoint_model is not None:
        raise ConfigError("--endpoint-model picks a model of an endpoints file; MODEL is not one")
    if path.is_dir() and (path / RUN_CARD).is_file():
        try:
            card = json.loads((path / RUN_CARD).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path / RUN_CARD} is not readable JSON: {exc}") from None
        if card.get("status") not in (None, "completed"):
            raise ConfigError(f"run {card.get('run_id')} in {path} is {card.get('status')}, not "
                              "completed: it saved no final model to evaluate")
        resolved = str(path.resolve())
        return (local_pool(resolved, backend=backend, batch_size=batch_size), resolved,
                ModelInfo(model, "run", run_id=card.get("run_id"),
                          run_dir=card.get("output_dir") or resolved, mix=card.get("mix")))
    if path.is_dir():
        resolved = str(path.resolve())
        return (local_pool(resolved, backend=backend, batch_size=batch_size), resolved,
                ModelInfo(model, "local"))
    if path.suffix in (".yaml", ".yml") or "/" not in model.strip("/") and path.suffix:
        raise ConfigError(f"MODEL {model!r} is neither a file nor a folder here, nor a Hub name")
    return (local_pool(model, backend=backend, batch_size=batch_size), model,
            ModelInfo(model, "hub"))


def eval_cmd(
    model: str = typer.Argument(..., help="A local model folder, a Hub model name, a training "
                                "run folder (run_card.json) or an endpoints YAML file."),
    output: Path = output_option("Folder for results.json, the per-item files and the cache."),
    backend: str = typer.Option("transformers", "--backend", help="How a local or Hub model is "
                                "served: transformers (CPU or GPU) or vllm (GPU)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Prompts per generate() call of a "
                                   "local model."),
    endpoint_model: str | None = typer.Option(None, "--endpoint-model", help="Model of the "
                                              "endpoints file to evaluate (default: its first)."),
    judge_endpoints: Path | None = typer.Option(None, "--judge-endpoints", help="Endpoints YAML "
                                                "of the judge, for judged benchmarks."),
    home: Path | None = typer.Option(None, "--home", help="Mix registry the result is recorded "
                                     "in when MODEL is a training run of a mix (default: "
                                     "$POSTMIX_HOME, else ./.postmix)."),
    config_file: Path | None = opts.config_file_option(),
    as_json: bool = json_option("Print results.json instead of the table."),
    config_values: Any = None,
) -> None:
    """Score a model on benchmarks: verifiable ones by the verifiers, code in a sandbox (only
    with --allow-code-execution), judged ones pairwise against reference answers."""
    from postmix.eval import evaluate
    from postmix.llm import load_endpoints

    if output is None:
        raise ConfigError("missing --output/-o: say which folder the results go to")
    config = opts.build(EvalConfig, config_values, opts.read_config_file(config_file))
    pool, name, info = _model_source(model, backend, batch_size, endpoint_model)
    judge_pool = load_endpoints(judge_endpoints) if judge_endpoints is not None else None
    result = evaluate(pool, output, config, model=name, info=info, judge_pool=judge_pool,
                      echo=None if as_json else echo_line)
    recorded = _record(result, output, home, quiet=as_json)
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    table = Table("benchmark", "metric", "score", "95% interval", "items", "scored", "rejected",
                  title=f"{info.model} -> {output}")
    for score in result.scores:
        if score.skipped is not None:
            table.add_row(score.benchmark, score.metric, "skipped", "", str(score.items), "", "")
            continue
        shown = "-" if score.score is None else f"{score.score:.3f}"
        interval = "" if score.ci_low is None else f"{score.ci_low:.3f} - {score.ci_high:.3f}"
        rejected = ", ".join(f"{k} {v}" for k, v in score.rejected.items()) or "0"
        table.add_row(score.benchmark, score.metric, shown, interval, str(score.items),
                      str(score.scored), rejected)
    out.print(table)
    out.print(f"results: {output / 'results.json'}", markup=False, highlight=False)
    if recorded:
        out.print(recorded, markup=False, highlight=False, soft_wrap=True)


def _record(result: Any, output: Path, home: Path | None, *, quiet: bool) -> str | None:
    """Record a result that names a run or mix in the lineage (``postmix.mix.record_eval``); a
    registry that does not hold that version is a note, not a failure: the scores are written."""
    from postmix.mix import record_eval

    if result.run_id is None and result.mix is None:
        return None
    try:
        entry = record_eval(result, output / "results.json", home=home)
    except PostmixError as exc:
        note = (f"not recorded in the lineage ({exc}); record it with `postmix mix record-eval "
                f"{output / 'results.json'} --home REGISTRY`")
        if quiet:
            typer.echo(note, err=True)
        return note
    run = f" run {entry['run_id']}" if entry["run_id"] else ""
    return f"recorded against {entry['ref']}{run} (postmix mix show {entry['ref']})"


def eval_command() -> Any:
    wrapped = opts.with_config_options(eval_cmd, EvalConfig)
    return one_command(wrapped, "eval", cls=with_renames(wrapped.renames))
