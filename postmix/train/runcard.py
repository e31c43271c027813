"""The run card: one JSON file next to the checkpoint that says what this model was trained on.

It names the data (mix ``name@N`` and content hash, or the file), the model, the full resolved
config (postmix's and the TRL config built from it), the library versions, start and end times
and the final metrics; the same dict is registered in the mix registry's lineage.
"""

from __future__ import annotations

import json
import math
import secrets
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

RUN_CARD = "run_card.json"
LIBRARIES = ("postmix", "trl", "transformers", "torch", "accelerate", "peft", "datasets")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id(method: str) -> str:
    return f"{method}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def library_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "value") and isinstance(value.value, (str, int)):  # enums
        return value.value
    return str(value)


def trl_args_dict(args: Any) -> dict[str, Any]:
    """TRL's resolved config, minus nothing: ``to_dict`` already redacts tokens."""
    return _jsonable(args.to_dict())


def final_metrics(
    train_metrics: dict[str, Any], log_history: list[dict[str, Any]]
) -> dict[str, Any]:
    """The trainer's summary metrics plus the last logged value of every other metric."""
    last: dict[str, Any] = {}
    for entry in log_history:
        for key, value in entry.items():
            if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                last[key] = value
    return _jsonable({**last, **train_metrics})


def write_run_card(output_dir: str | Path, card: dict[str, Any]) -> Path:
    path = Path(output_dir) / RUN_CARD
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_jsonable(card), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
