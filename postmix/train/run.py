"""One training run: data in, TRL trainer built, trained, saved, run card and lineage out.

``train("sft", model, mix="tulu3-sft@3", config=..., output="runs/sft")`` reads like the run:

1. resolve the data (a mix version or a postmix file) and cut it to TRL's columns;
2. for SFT, the pre-flight (``postmix.train.preflight``): the chat template TRL will use, the
   trainable-token share and what ``max_length`` cuts, per source; it stops a run whose
   assistant-only loss cannot work before any weights load;
3. build the TRL trainer for the method from the postmix config;
4. train, then save the final model and tokenizer to ``output``;
5. write ``output/run_card.json`` and, for a mix, register the run in the registry's lineage.

A failed run still writes its card (``status: failed`` and the error) before re-raising, so a
crashed run is never mistaken for one that never started.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postmix import __version__
from postmix.errors import PostmixError
from postmix.io.write import RowWriter
from postmix.train.config import TrainConfig, load_config, parse_config
from postmix.train.data import TrainingData, load_training_data
from postmix.train.launch import RUN_ID_ENV, launch_from_environment
from postmix.train.preflight import PREFLIGHT_HTML, preflight
from postmix.train.runcard import (
    final_metrics,
    library_versions,
    new_run_id,
    now,
    trl_args_dict,
    write_run_card,
)


def _builders() -> dict[str, Callable[..., Any]]:
    from postmix.train.dpo import build_dpo_trainer
    from postmix.train.rlvr import build_rlvr_trainer
    from postmix.train.sft import build_sft_trainer

    return {"sft": build_sft_trainer, "dpo": build_dpo_trainer, "rlvr": build_rlvr_trainer}


@dataclass
class TrainResult:
    output_dir: Path
    run_card: dict[str, Any]
    log_history: list[dict[str, Any]]
    trainer: Any


def _resolve_config(
    method: str, config: TrainConfig | dict[str, Any] | str | Path | None
) -> TrainConfig:
    if isinstance(config, TrainConfig):
        return config
    if isinstance(config, dict):
        return parse_config(method, config)
    return load_config(method, config)


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _check_local_model(model: str) -> None:
    """A path that is clearly local (absolute, ./, ~, or more than org/name) must exist; anything
    else may be a Hub name, which only the download can check."""
    looks_local = model.startswith(("/", ".", "~")) or model.count("/") > 1
    if looks_local and not Path(model).expanduser().exists():
        raise PostmixError(
            f"no such model folder: {model} (pass a local model folder or a Hub name "
            "such as org/model)"
        )


def _build_trainer(
    method: str, model: Any, training: TrainingData, cfg: TrainConfig, output: Path
) -> Any:
    try:
        return _builders()[method](model, training.dataset, cfg, output)
    except (OSError, ValueError) as exc:
        # transformers' "not a folder nor a Hub repo" / "unrecognized model", and TRL's checks of
        # the config against the model and data: all fixable by the user, so one line.
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        hint = (" (check the path or Hub name, your network, and HF_TOKEN for gated models)"
                if isinstance(exc, OSError) else "")
        raise PostmixError(f"cannot set up {method} on model {_model_name(model)!r}: "
                           f"{first[:300]}{hint}") from None


def _model_name(model: Any) -> str:
    if isinstance(model, str):
        return model
    return getattr(getattr(model, "config", None), "name_or_path", None) or type(model).__name__


log = logging.getLogger("postmix.train")


def _preflight(model: Any, training: TrainingData, cfg: TrainConfig, output: Path,
               main: bool) -> dict[str, Any]:
    """The SFT pre-flight's numbers for the run card (and its page beside the model)."""
    report = preflight(_model_name(model), training.dataset, cfg, sources=training.sources,
                       ids=training.ids)
    for line in report.summary_lines():
        log.info("pre-flight: %s", line)
    numbers = report.to_dict()
    if main:
        numbers["html"] = str(report.write_html(output / PREFLIGHT_HTML))
    return numbers


def _write_data_rejects(output: Path, data: TrainingData) -> str | None:
    """Rows of a --data file that are not valid records never reach TRL;
    keep them beside the run."""
    if not data.rejects:
        return None
    path = output / "data.rejects.jsonl"
    with RowWriter(path) as writer:
        for reject in data.rejects:
            writer.write(reject.to_row())
    return str(path)


def train(
    method: str,
    model: Any,
    *,
    output: str | Path,
    mix: str | None = None,
    data: str | Path | None = None,
    config: TrainConfig | dict[str, Any] | str | Path | None = None,
    home: str | Path | None = None,
    launch: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` (a folder, a Hub name or a loaded model) with ``method`` ("sft", "dpo",
    "rlvr") on one mix version or data file."""
    if method not in ("sft", "dpo", "rlvr"):
        raise ValueError(f"unknown method {method!r}")
    cfg = _resolve_config(method, config)
    if isinstance(model, (str, Path)):
        model = str(model)
        _check_local_model(model)
    training = load_training_data(method, mix=mix, data=data, home=home)
    output = Path(output)
    main = _is_main_process()
    card: dict[str, Any] = {
        "run_id": os.environ.get(RUN_ID_ENV) or new_run_id(method),
        "method": method,
        "model": _model_name(model),
        "mix": training.mix_ref,
        "content_hash": training.content_hash,
        "data": training.describe(),
        "output_dir": str(output.resolve()),
        "config": cfg.model_dump(mode="json"),
        "versions": library_versions() | {"postmix": __version__},
        "launch": launch or launch_from_environment()
        or {"mode": "single", "world_size": int(os.environ.get("WORLD_SIZE", "1"))},
        "started_at": now(),
        "status": "running",
    }
    if main:
        output.mkdir(parents=True, exist_ok=True)
        card["data"]["rejects"] = _write_data_rejects(output, training)
    trainer = None
    try:
        if method == "sft":
            card["preflight"] = _preflight(model, training, cfg, output, main)
        trainer = _build_trainer(method, model, training, cfg, output)
        card["trl_config"] = trl_args_dict(trainer.args)
        result = trainer.train()
        trainer.save_model(str(output))
        card["metrics"] = final_metrics(result.metrics, trainer.state.log_history)
        card["status"] = "completed"
    except BaseException as exc:
        card["status"] = "failed"
        card["error"] = f"{type(exc).__name__}: {exc}"[:500]
        raise
    finally:
        card["finished_at"] = now()
        if main:
            write_run_card(output, card)
            if training.mix_ref is not None:
                from postmix import mix as mixes

                mixes.record_run(training.mix_ref, card, home=home)
    return TrainResult(output, card, list(trainer.state.log_history), trainer)
