"""``postmix leaderboard``: mix versions (and their runs) x benchmarks, from the evals recorded in
the registry, with deltas against a baseline version and a mark where a difference is noise.

A row is one training run of one mix version (or a version's results recorded without a run),
holding the latest recorded score of each benchmark. The baseline is a mix version; its score on
a benchmark is the latest one recorded for any of its runs.

Whether a difference is within noise is decided, per cell, by the best evidence available, and the
cell says which (``noise.method``):

- ``paired_bootstrap``: both per-item files are readable and share at least ``MIN_PAIRED`` scored
  items: the 95% interval of the mean per-item difference, from ``BOOTSTRAP_SAMPLES`` resamples of
  the shared items (seeded), contains 0. Pairing removes the spread of item difficulty, so it
  resolves differences that unpaired intervals cannot.
- ``interval_overlap``: the two scores' own bootstrap 95% intervals overlap (conservative: two
  overlapping intervals can still hide a real difference).
- ``None``: no intervals to compare; nothing is claimed.

Each row also carries the summarised ``mix diff`` of its version against the baseline and, per
benchmark, whether the version was decontaminated against it: every row of it was checked, by a
global ``decontam`` step of its spec, or per source by the source's own steps or by the decontam
stage that wrote the source's file (the contamination matrix it left beside the file). A source
checked some other way (a Hub dataset cleaned elsewhere) leaves no trace and does not count.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from postmix.curate.benchmarks import parse_benchmark_spec
from postmix.errors import PostmixError
from postmix.io.write import sidecar_path
from postmix.mix.difference import diff, flatten_spec
from postmix.mix.registry import Registry, ResolvedMix, parse_ref

BOOTSTRAP_SAMPLES = 2000
MIN_PAIRED = 10  # fewer shared items than this: a paired interval would be mostly noise itself
SEED = 0


class LeaderboardError(PostmixError):
    """A leaderboard that cannot be made (no evals recorded, a baseline that is not a version)."""


# ---------------------------------------------------------------------------- decontamination


def _step_benchmarks(steps: list[Any]) -> set[str]:
    names: set[str] = set()
    for step in steps or []:
        if not isinstance(step, dict):
            continue
        config = step.get("config") if step.get("step") == "decontam" else step.get("decontam")
        for entry in (config or {}).get("benchmarks", []) if isinstance(config, dict) else []:
            if isinstance(entry, dict) and entry.get("name"):
                names.add(str(entry["name"]).lower())
            elif isinstance(entry, str):
                try:
                    names.add(parse_benchmark_spec(entry).name.lower())
                except PostmixError:
                    continue
    return names


def _upstream_benchmarks(location: str) -> set[str]:
    """Benchmarks a decontam stage checked when it wrote this source file (its contamination
    matrix beside it, ``<stem>.contamination.json``); none for Hub and bundled sources."""
    if location.startswith(("hf:", "pkg://")):
        return set()
    try:
        matrix = json.loads(sidecar_path(location, "contamination.json").read_text("utf-8"))
    except (OSError, ValueError):
        return set()
    return {str(b["name"]).lower() for b in matrix.get("benchmarks", []) if b.get("name")}


def decontaminated_against(mix: ResolvedMix) -> set[str]:
    """Lower-cased names of the benchmarks every row of the version was checked against: those of
    its global decontam steps, plus those every source was checked against (by its own steps, or
    by the decontam stage that wrote its file)."""
    manifest = mix.manifest
    spec = manifest.get("spec", {})
    covered = _step_benchmarks(spec.get("global_steps", []))
    locations = {s["name"]: s.get("location", "") for s in manifest.get("sources", [])}
    per_source = [_step_benchmarks(source.get("steps", []))
                  | _upstream_benchmarks(locations.get(source.get("name"), ""))
                  for source in spec.get("sources", [])]
    return covered | (set.intersection(*per_source) if per_source else set())


# ---------------------------------------------------------------------------- noise


def _item_scores(results: str, items_file: str | None) -> dict[str, float] | None:
    """id -> score of the scored items of a per-item file, or None when there is none to read."""
    if not items_file:
        return None
    path = Path(results).parent / items_file
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    scores: dict[str, float] = {}
    for line in lines:
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if not isinstance(item, dict) or item.get("status", "scored") != "scored":
            continue
        value = item.get("score")
        if value is None and isinstance(item.get("verdict"), bool):
            value = float(item["verdict"])
        if value is not None and "id" in item:
            scores[str(item["id"])] = float(value)
    return scores


def paired_bootstrap(a: dict[str, float], b: dict[str, float], *,
                     samples: int = BOOTSTRAP_SAMPLES, seed: int = SEED) -> dict[str, Any] | None:
    """95% interval of mean(b - a) over the items both scored, or None below ``MIN_PAIRED``."""
    shared = sorted(set(a) & set(b))
    if len(shared) < MIN_PAIRED:
        return None
    differences = np.array([b[i] - a[i] for i in shared])
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    chunk = max(1, 2_000_000 // len(shared))  # bounded memory on large benchmarks
    for start in range(0, samples, chunk):
        stop = min(samples, start + chunk)
        picks = rng.integers(0, len(shared), size=(stop - start, len(shared)))
        means[start:stop] = differences[picks].mean(axis=1)
    low, high = (float(x) for x in np.percentile(means, [2.5, 97.5]))
    return {"items": len(shared), "mean_difference": float(differences.mean()),
            "ci_low": low, "ci_high": high}


def _noise(cell: dict[str, Any], base: dict[str, Any], read=_item_scores) -> dict[str, Any]:
    paired = None
    a = read(base["results"], base.get("items_file"))
    b = read(cell["results"], cell.get("items_file"))
    if a is not None and b is not None:
        paired = paired_bootstrap(a, b)
    if paired is not None:
        within = paired["ci_low"] <= 0.0 <= paired["ci_high"]
        return {"method": "paired_bootstrap", "within": within, **paired}
    bounds = (cell["ci_low"], cell["ci_high"], base["ci_low"], base["ci_high"])
    if any(v is None for v in bounds):
        return {"method": None, "within": None}
    low, high, base_low, base_high = bounds
    return {"method": "interval_overlap", "within": low <= base_high and base_low <= high}


# ---------------------------------------------------------------------------- diff summary


def _steps_by_place(spec: dict[str, Any]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    places = {"global": spec.get("global_steps") or []}
    places |= {source["name"]: source.get("steps") or [] for source in spec.get("sources", [])}
    return {place: [(st.get("step", ""), st.get("config") or {}) for st in steps
                    if isinstance(st, dict)] for place, steps in places.items()}


def step_changes(spec_a: dict[str, Any], spec_b: dict[str, Any]) -> list[str]:
    """Steps added, removed or re-configured, per place (``global`` or a source both have):
    ``+global decontam``, ``global dedup.threshold 0.8->0.7``. Same-named steps pair in order."""
    a, b = _steps_by_place(spec_a), _steps_by_place(spec_b)
    changes: list[str] = []
    for place in [p for p in a if p in b]:
        names = list(dict.fromkeys(n for n, _ in a[place] + b[place]))
        for name in names:
            mine = [c for n, c in a[place] if n == name]
            theirs = [c for n, c in b[place] if n == name]
            changes += [f"-{place} {name}"] * max(0, len(mine) - len(theirs))
            changes += [f"+{place} {name}"] * max(0, len(theirs) - len(mine))
            for config_a, config_b in zip(mine, theirs, strict=False):  # the surplus is above
                flat_a, flat_b = flatten_spec(config_a), flatten_spec(config_b)
                changes += [f"{place} {name}.{key} {flat_a.get(key)!r}->{flat_b.get(key)!r}"
                            for key in sorted(set(flat_a) | set(flat_b))
                            if flat_a.get(key) != flat_b.get(key)]
    return changes


def summarise_diff(difference: dict[str, Any], spec_a: dict[str, Any],
                   spec_b: dict[str, Any]) -> dict[str, Any]:
    """What ``mix diff`` says, cut to what explains a score: sources in and out, counts, steps,
    and the other spec keys that changed (take rules, seed)."""
    added = [c["source"] for c in difference["source_changes"] if c["a"] is None]
    removed = [c["source"] for c in difference["source_changes"] if c["b"] is None]
    counts = {c["source"]: [c["a"], c["b"]] for c in difference["source_changes"]
              if c["a"] is not None and c["b"] is not None}
    moved = {f"sources.{name}" for name in added + removed}
    steps = step_changes(spec_a, spec_b)
    other = []
    for change in difference["spec_changes"]:
        key = change["key"]
        if (key == "name" or key.startswith("global_steps") or ".steps" in key
                or any(key == m or key.startswith(m + ".") for m in moved)):
            continue  # a variant's own name, a step (above), or a source already listed
        other.append(f"{key}: {change['a']!r} -> {change['b']!r}")
    parts = ([f"+{s}" for s in added] + [f"-{s}" for s in removed]
             + [f"{s} {a:,}->{b:,}" for s, (a, b) in counts.items()] + steps + other)
    return {"rows": [difference["rows"]["a"], difference["rows"]["b"]],
            "sources_added": added, "sources_removed": removed, "counts": counts,
            "steps": steps, "spec": other, "same_content": difference["same_content"],
            "text": "; ".join(parts) or ("same rows" if difference["same_content"] else
                                          "no spec change")}


# ---------------------------------------------------------------------------- the board


@dataclass(frozen=True)
class _Key:
    name: str
    version: int
    run_id: str


def _selected(registry: Registry, mixes: list[str] | None) -> list[tuple[str, int]]:
    """(name, version) in the order asked for: each name's versions oldest first."""
    wanted: list[tuple[str, int]] = []
    for text in mixes or registry.names():
        name, version = parse_ref(text)
        versions = ([version] if version is not None
                    else [v["version"] for v in registry.list_versions(name)])
        if not versions:
            registry.resolve(name)  # raises, listing the mixes there are
        for v in versions:
            registry.resolve(f"{name}@{v}")
            if (name, v) not in wanted:
                wanted.append((name, v))
    return wanted


def _cell(evaluation: dict[str, Any], score: dict[str, Any]) -> dict[str, Any]:
    return {"score": score.get("score"), "ci_low": score.get("ci_low"),
            "ci_high": score.get("ci_high"), "metric": score.get("metric"),
            "items": score.get("items"), "skipped": score.get("skipped"),
            "results": evaluation["results"], "items_file": score.get("items_file")}


def leaderboard(mixes: list[str] | None = None, *, home: str | Path | None = None,
                baseline: str | None = None, benchmarks: list[str] | None = None
                ) -> dict[str, Any]:
    """The board as data (what ``--json`` prints): ``baseline``, ``benchmarks``, ``rows`` (one per
    run, with ``cells`` per benchmark and ``diff`` against the baseline), ``unevaluated``."""
    registry = Registry(home)
    selected = _selected(registry, mixes)
    if baseline is not None:
        name, version = parse_ref(baseline)
        if version is None:
            raise LeaderboardError(f"--baseline {baseline!r}: pin a version, as name@N")
        baseline = registry.resolve(baseline).ref  # name@v2 and name@2 are one version
        if (name, version) not in selected:
            selected.insert(0, (name, version))
    order = {key: i for i, key in enumerate(selected)}
    rows: dict[_Key, dict[str, Any]] = {}
    seen_benchmarks: list[str] = []
    for evaluation in registry.evals():  # oldest first: a later score of a benchmark wins
        key = _Key(evaluation["name"], evaluation["version"], evaluation["run_id"])
        if (key.name, key.version) not in order:
            continue
        row = rows.setdefault(key, {"ref": evaluation["ref"], "run_id": key.run_id or None,
                                    "cells": {}, "evaluated_at": evaluation["recorded_at"]})
        row["evaluated_at"] = evaluation["recorded_at"]
        for score in evaluation["result"]["scores"]:
            bench = score["benchmark"]
            if benchmarks and bench not in benchmarks:
                continue
            if bench not in seen_benchmarks:
                seen_benchmarks.append(bench)
            row["cells"][bench] = _cell(evaluation, score)
    rows = {key: row for key, row in rows.items() if row["cells"]}
    if not rows:
        only = f" on {', '.join(benchmarks)}" if benchmarks else ""
        raise LeaderboardError(
            f"no eval results recorded for these mixes{only}: run `postmix eval RUN_DIR` (it "
            "records its result) or `postmix mix record-eval RESULTS.json`")
    ordered = sorted(rows.items(), key=lambda kv: (order[(kv[0].name, kv[0].version)],
                                                   kv[1]["evaluated_at"], kv[0].run_id))
    evaluated = {(k.name, k.version) for k in rows}
    if baseline is None:
        first = ordered[0][0]
        baseline = f"{first.name}@{first.version}"
    base_name, base_version = parse_ref(baseline)
    if (base_name, base_version) not in evaluated:
        raise LeaderboardError(f"baseline {baseline} has no eval results recorded; evaluated: "
                               + ", ".join(sorted({r["ref"] for r in rows.values()})))
    base_cells: dict[str, dict[str, Any]] = {}
    for key, row in ordered:  # evaluated order: the latest run's score of the baseline wins
        if (key.name, key.version) == (base_name, base_version):
            base_cells.update(row["cells"])
    runs = {(r["ref"], r["run_id"]): r for name in {k.name for k in rows}
            for r in registry.runs(name)}
    read = functools.lru_cache(maxsize=None)(_item_scores)  # the baseline's file, once
    diffs: dict[str, dict[str, Any]] = {}
    decontaminated: dict[str, set[str]] = {}
    out_rows = []
    for key, row in ordered:
        ref = row["ref"]
        if ref not in decontaminated:
            decontaminated[ref] = decontaminated_against(registry.resolve(ref))
            diffs[ref] = None if ref == baseline else summarise_diff(
                diff(baseline, ref, home=registry.home, sample=0),
                registry.resolve(baseline).manifest["spec"], registry.resolve(ref).manifest["spec"])
        run = runs.get((ref, key.run_id), {})
        for bench, cell in row["cells"].items():
            cell["decontaminated"] = bench.lower() in decontaminated[ref]
            base = base_cells.get(bench)
            comparable = (base is not None and cell["score"] is not None
                          and base["score"] is not None and base["metric"] == cell["metric"])
            is_base = base is cell
            cell["delta"] = cell["score"] - base["score"] if comparable and not is_base else None
            cell["noise"] = (_noise(cell, base, read) if comparable and not is_base
                             else {"method": None, "within": None})
            cell["baseline"] = is_base
        out_rows.append({**row, "name": key.name, "version": key.version,
                         "is_baseline": ref == baseline,
                         "run": {k: run.get(k) for k in ("method", "model", "output_dir",
                                                         "status")} if run else None,
                         "diff": diffs[ref]})
    unevaluated = [f"{n}@{v}" for n, v in selected if (n, v) not in evaluated]
    return {"baseline": baseline, "benchmarks": seen_benchmarks, "rows": out_rows,
            "unevaluated": unevaluated, "noise_methods": ["paired_bootstrap", "interval_overlap"]}
