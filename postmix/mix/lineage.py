"""Eval results in the lineage: ``record_eval`` ties one ``EvalResult`` to the mix version and the
training run it measures, so *mix version -> run -> scores* reads from the registry.

``postmix eval`` calls it at its end when its result names a run or a mix; ``postmix mix
record-eval RESULTS.json`` does the same for results produced elsewhere (with ``--mix`` / ``--run``
when the result names neither). Which version a result belongs to is, in order: the ``mix`` given,
the result's ``mix``, the registered run of its ``run_id``, the run card in its ``run_dir``. An
unpinned reference (``name`` without ``@N``) is refused: "latest" would move under the score.

The registry row is the record; the run card (``run_dir/run_card.json``) gets a copy under
``evals`` so the card read alone still says how its model scored. The copy is written inside the
registry's write transaction, so two recorders never lose each other's entry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from postmix.errors import PostmixError
from postmix.mix.registry import Registry, parse_ref
from postmix.schemas.eval import RESULTS_FILE, EvalResult, read_result

RUN_CARD = "run_card.json"  # postmix.train.runcard.RUN_CARD: the file format is the contract


class LineageError(PostmixError):
    """An eval result that cannot be tied to a mix version."""


def _run_card(run_dir: str | None) -> dict[str, Any] | None:
    if not run_dir:
        return None
    path = Path(run_dir) / RUN_CARD
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def attribution(result: EvalResult, registry: Registry, *, mix: str | None = None,
                run_id: str | None = None) -> tuple[str, str | None]:
    """``(name@N, run_id or None)`` the result belongs to; LineageError when there is none."""
    card = _run_card(result.run_dir)
    run_id = run_id or result.run_id or (card or {}).get("run_id")
    ref = mix or result.mix
    if ref is None and run_id:
        run = registry.find_run(run_id)
        ref = run["ref"] if run else None
    if ref is None and card:
        ref = card.get("mix")
    if ref is None:
        raise LineageError(
            f"the eval of {result.model!r} names no mix version (no mix, no registered run, no "
            "run card): pass --mix name@N (and --run RUN_ID) to record it")
    if parse_ref(ref)[1] is None:
        raise LineageError(f"{ref!r} names no version: pin it as name@N, so the score stays with "
                           "the rows it measured")
    return ref, run_id


def _card_entry(entry: dict[str, Any]) -> dict[str, Any]:
    scores = {s["benchmark"]: {k: s.get(k) for k in ("metric", "score", "ci_low", "ci_high")}
              for s in entry["result"]["scores"]}
    return {"results": entry["results"], "mix": entry["ref"], "recorded_at": entry["recorded_at"],
            "scores": scores}


def _copy_to_run_card(run_dir: str | None, run_id: str | None):
    def write(entry: dict[str, Any]) -> None:
        card = _run_card(run_dir)
        if card is None or not run_id or card.get("run_id") != run_id:
            return  # no card of this run to annotate: the registry row is the record
        evals = [e for e in card.get("evals", []) if e.get("results") != entry["results"]]
        card["evals"] = [*evals, _card_entry(entry)]
        path = Path(run_dir) / RUN_CARD
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        partial.replace(path)

    return write


def record_eval(result: EvalResult | str | Path, results_path: str | Path | None = None,
                registry: Registry | str | Path | None = None, *, mix: str | None = None,
                run_id: str | None = None) -> dict[str, Any]:
    """Record ``result`` (an EvalResult, or the path of its results.json or folder) in the
    registry (a Registry, or its home) against its mix version and run; returns the entry."""
    if not isinstance(result, EvalResult):
        results_path = results_path or result
        result = read_result(result)
    if results_path is None:
        raise ValueError("record_eval needs results_path: where the result's results.json is")
    results_path = Path(results_path)
    if results_path.is_dir():
        results_path = results_path / RESULTS_FILE
    registry = registry if isinstance(registry, Registry) else Registry(registry)
    ref, run_id = attribution(result, registry, mix=mix, run_id=run_id)
    return registry.record_eval(ref, run_id, results_path, result.model_dump(mode="json"),
                                inside=_copy_to_run_card(result.run_dir, run_id))
