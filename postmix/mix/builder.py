"""``build(spec)``: sources -> attributes and ``where`` -> per-source steps -> global steps ->
take rules (or the ``target`` shared out by weight; rows ranked by ``weight_by`` where given)
-> shuffle -> a registry version.

Order matters. Global steps (cross-source dedup, decontamination) run on every curated row of
every source *before* the take rules, so ``count: N`` is the number of rows in the mix, and
rows repeated by ``epochs`` are not then removed as duplicates of themselves.

Every row that leaves is accounted for: the manifest lists per source a step report for
loading (unreadable rows), each step, each global step (this source's share) and the take rule
(``not_sampled``); all reconcile ``in == out + rejected``. Rows removed by a step are written
whole to ``rejects.parquet`` with step, source, reason and detail. Rows a take rule leaves out
are only counted: they are still in the fingerprinted source, and the seed picks them again.
So are rows a ``where:`` leaves out (report step ``where``, reason ``where_excluded``): they belong
to another view of the same file, not to the rejects.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash
import yaml

from postmix import __version__
from postmix.curate.contamination import ContaminationMatrix
from postmix.curate.executor import Executor, make_executor
from postmix.curate.runner import REJECT_SCHEMA, apply_step, reject_table
from postmix.curate.steps import get_step
from postmix.errors import ConfigError
from postmix.io.dataset import dataset_table, load_records
from postmix.mix.content import content_hash, write_shard, write_shards
from postmix.mix.fingerprint import fingerprint, pinned_location
from postmix.mix.registry import MANIFEST, Registry, ResolvedMix
from postmix.mix.row_weights import log_weights
from postmix.mix.sampling import apportion, round_half_up, sampling_key, take
from postmix.mix.spec import (
    MixSpec,
    load_spec,
    parse_spec,
    resolve_location,
    resolve_source,
    spec_to_dict,
)
from postmix.mix.tokens import TokenCounter, cached_row_tokens, token_counter
from postmix.mix.where import where_mask
from postmix.pausepoints import pause
from postmix.progress import progress_bar
from postmix.schemas import FEATURES, StepReport

log = logging.getLogger("postmix.mix")


@dataclass
class BuildResult:
    mix: ResolvedMix
    created: bool  # False: the latest version already held exactly these rows
    manifest: dict[str, Any]


@dataclass
class _Source:
    name: str
    location: str
    fingerprint: str
    table: pa.Table
    reports: list[StepReport] = field(default_factory=list)
    attributes: dict[str, Any] | None = None  # the sidecar read, as the manifest says
    sidecar: pa.Table | None = None  # its rows, for `weight_by:` at take time
    matrices: list[ContaminationMatrix] = field(default_factory=list)  # of its decontam steps


def in_memory_dataset(table: pa.Table) -> datasets.Dataset:
    """A Dataset over ``table`` without ``datasets`` pickling the whole table to fingerprint it
    (about 1 s per million rows); nothing here uses the datasets cache that fingerprint keys."""
    return datasets.Dataset(table, fingerprint=uuid.uuid4().hex)


def _load_source(spec: MixSpec, position: int, base: Path | None, rejects: list[pa.Table],
                 executor: Executor) -> _Source:
    source = spec.sources[position]
    location = resolve_source(source, base)
    fp = fingerprint(location)
    started = time.perf_counter()
    ds, kind, load_rejects = load_records(
        pinned_location(location, fp), format=source.format, split=source.split
    )
    if kind != spec.kind and len(ds) == 0:  # an empty file has no kind to tell
        raise ConfigError(f"source {source.name!r} ({source.path}) has no rows"
                          + (f" ({len(load_rejects)} unreadable)" if load_rejects else "")
                          + ": check the step or file that wrote it (its report says why)")
    if kind != spec.kind:
        raise ConfigError(
            f"source {source.name!r} ({source.path}) holds {kind} rows but the mix is {spec.kind}: "
            "fix `kind:` or the source"
        )
    reasons: dict[str, int] = {}
    for reject in load_rejects:
        reasons[reject.reason] = reasons.get(reject.reason, 0) + 1
    if load_rejects:  # rows the input conversion could not read: the raw row as it was
        rejects.append(
            reject_table(
                r.model_copy(update={"step": "load", "source": source.name}).to_row()
                for r in load_rejects
            )
        )
    report = StepReport(step="load", rows_in=len(ds) + len(load_rejects), rows_out=len(ds),
                        rejected=dict(sorted(reasons.items())), inputs=[location],
                        timings={"load": round(time.perf_counter() - started, 3)},
                        details={"fingerprint": fp, "split": source.split, "format": source.format})
    # one schema for every source (Hub and Arrow-folder loads keep their own string/list widths)
    table = dataset_table(ds).select(list(FEATURES[kind])).cast(FEATURES[kind].arrow_schema)
    loaded = _Source(source.name, location, fp, table, [report])
    sidecar = source.attributes or spec.attributes
    view = table
    if sidecar is not None:
        loaded.sidecar, loaded.attributes = _read_attributes(resolve_location(sidecar, base),
                                                             table, source.name)
        view, found = _attach(table, loaded.sidecar)
        loaded.attributes.update(rows_matched=found, rows_missing=table.num_rows - found)
    if source.where is not None:
        keep = where_mask(view, source.where, what=f"source {source.name!r}")
        excluded = int((~keep).sum())
        loaded.table = table.filter(pa.array(keep))
        loaded.reports.append(StepReport(
            step="where", config=source.where, rows_in=table.num_rows,
            rows_out=loaded.table.num_rows,
            rejected={"where_excluded": excluded} if excluded else {},
            details={"attributes": None if loaded.attributes is None
                     else loaded.attributes["fingerprint"]}))
    for step_spec in source.steps:
        step = get_step(step_spec.step)
        config = step.parse(step_spec.config, where=f"source {source.name!r}")
        result = apply_step(
            step, executor, in_memory_dataset(loaded.table), config, kind, source=source.name
        )
        loaded.table = dataset_table(result.kept)
        loaded.reports.append(result.report)
        rejects.append(result.rejects)
        if isinstance(result.sidecar, ContaminationMatrix):
            loaded.matrices.append(result.sidecar)
    return loaded


def _read_attributes(location: str, table: pa.Table,
                     source: str) -> tuple[pa.Table, dict[str, Any]]:
    """The sidecar's rows (ids as strings), checked against the records, and what the manifest
    records of it."""
    fp = fingerprint(location)
    try:
        attributes = pq.read_table(location)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ConfigError(f"source {source!r}: cannot read attributes {location}: "
                          f"{str(exc).splitlines()[0]} (write them with `postmix curate tag`)"
                          ) from None
    if "id" not in attributes.column_names:
        raise ConfigError(f"source {source!r}: attributes {location} have no `id` column")
    ids = attributes.column("id").cast(pa.string())
    attributes = attributes.set_column(attributes.column_names.index("id"), "id", ids)
    if pc.count_distinct(ids).as_py() != attributes.num_rows:
        raise ConfigError(f"source {source!r}: attributes {location} repeat ids: one row per id")
    clash = sorted(set(attributes.column_names) & set(table.column_names) - {"id"})
    if clash:
        raise ConfigError(f"source {source!r}: attribute columns {clash} are also record "
                          "columns: rename them in the sidecar")
    return attributes, {"location": location, "fingerprint": fp,
                        "columns": [c for c in attributes.column_names if c != "id"]}


def _attach(table: pa.Table, attributes: pa.Table | None) -> tuple[pa.Table, int]:
    """``table`` with the sidecar's attribute columns beside it, matched by id (null where the
    sidecar has no row), and how many rows it matched."""
    if attributes is None:
        return table, 0
    position = pc.index_in(table.column("id"), value_set=attributes.column("id"))
    matched = attributes.drop_columns(["id"]).take(position)
    view = table
    for name, column in zip(matched.column_names, matched.columns, strict=True):
        view = view.append_column(name, column)
    return view, int(pc.sum(pc.is_valid(position)).as_py() or 0)


def _run_global_steps(spec: MixSpec, sources: list[_Source], rejects: list[pa.Table],
                      executor: Executor, matrices: list[ContaminationMatrix]
                      ) -> list[StepReport]:
    """Steps over all sources at once; each source gets a report of its own share of every step."""
    if not spec.global_steps:
        return []
    combined = pa.concat_tables([s.table for s in sources])
    owner = np.repeat(np.arange(len(sources)), [s.table.num_rows for s in sources])
    reports = []
    for step_spec in spec.global_steps:
        step = get_step(step_spec.step)
        config = step.parse(step_spec.config, where="global_steps")
        result = apply_step(step, executor, in_memory_dataset(combined), config, spec.kind,
                            source="*", label=f"global:{step.name}")
        reports.append(result.report)
        if isinstance(result.sidecar, ContaminationMatrix):
            matrices.append(result.sidecar)
        rejected_owner = owner[result.rejected_indices]
        names = np.array([s.name for s in sources], dtype=object)[rejected_owner]
        column = result.rejects.schema.get_field_index("source")  # each reject's own mix source
        rejects.append(
            result.rejects.set_column(column, "source", pa.array(names.tolist(), pa.string()))
        )
        reasons = np.array(result.rejected_reasons, dtype=object)
        for index, source in enumerate(sources):
            mine = reasons[rejected_owner == index]
            counts = {str(r): int((mine == r).sum()) for r in sorted(set(mine.tolist()))}
            rows_in = int((owner == index).sum())
            source.reports.append(StepReport(
                step=f"global:{step.name}", config=result.report.config, rows_in=rows_in,
                rows_out=rows_in - len(mine), rejected=counts, details={"scope": "all sources"},
            ))
        owner = owner[result.kept_indices] if result.kept_indices is not None else owner
        combined = dataset_table(result.kept)
    for index, source in enumerate(sources):
        source.table = combined.filter(pa.array(owner == index))
    return reports


def epochs_for(count: int, available: int) -> str:
    """The shortest ``epochs`` value that takes exactly ``count`` rows from ``available`` ones."""
    for digits in range(3, 17):
        text = f"{count / available:.{digits}g}"
        value = float(text)
        if (
            math.floor(value) * available + round_half_up((value - math.floor(value)) * available)
            == count
        ):
            return text
    return repr(count / available)


def _take_rules(spec: MixSpec) -> list[dict[str, Any]]:
    """Each source's take rule: its own, or its share of the ``target`` by largest remainder."""
    if spec.target is None:
        return [source.take_rule() for source in spec.sources]
    shares = apportion(spec.target.size, [float(s.weight) for s in spec.sources])
    return [{spec.target.unit: share} for share in shares]


def _apply_take(
    spec: MixSpec, sources: list[_Source], counter: TokenCounter | None, token_stats: dict[str, int]
) -> tuple[list[pa.Table], list[np.ndarray], list[dict]]:
    tables, copies, summaries = [], [], []
    for source_spec, source, rule in zip(spec.sources, sources, _take_rules(spec), strict=True):
        available = source.table.num_rows
        if "count" in rule and rule["count"] > available:
            removed = source.reports[0].rows_in - available
            hint = f" ({removed} removed by loading, where and curation)" if removed else ""
            raise ConfigError(
                f"source {source.name!r}: count {rule['count']} but only {available} rows are "
                f"available{hint}; "
                + (
                    "lower the count or upsample with "
                    f"`epochs: {epochs_for(rule['count'], available)}`"
                    if available
                    else "lower the count"
                )
            )
        per_row = None  # tokens of each available row, where they are needed or asked for
        if "tokens" in rule:
            per_row = cached_row_tokens(source.table, spec.kind, counter, token_stats)
        key = sampling_key(spec.seed, source.name)
        logs, weighting = None, None
        if source_spec.weight_by is not None:
            logs, weighting = log_weights(_attach(source.table, source.sidecar)[0],
                                          source_spec.weight_by, what=f"source {source.name!r}")
        taken = take(source.table.column("id"), rule, key, per_row, logs)
        if counter is not None and per_row is None:  # count only the rows the mix holds
            unique = np.unique(taken.indices)
            per_row = np.zeros(available, dtype=np.int64)
            per_row[unique] = cached_row_tokens(
                source.table.take(pa.array(unique)), spec.kind, counter, token_stats)
        tokens = None if per_row is None else int(per_row[taken.indices].sum())
        emitted = len(taken.indices)
        source.reports.append(
            StepReport(
                step="take",
                config=rule,
                rows_in=available,
                rows_out=taken.unique_rows,
                rejected={"not_sampled": available - taken.unique_rows}
                if available > taken.unique_rows
                else {},
                details={
                    "rows_emitted": emitted,
                    "repeats": emitted - taken.unique_rows,
                    "sampling": "keyed xxh3/splitmix hash of id, seed and source name"
                    + ("" if weighting is None else ", Efraimidis-Spirakis keys of weight_by"),
                    **({"weight_by": weighting} if weighting is not None else {}),
                    **({"tokens": tokens} if tokens is not None else {}),
                    **({"weight": source_spec.weight} if source_spec.weight is not None else {}),
                },
            )
        )
        tables.append(source.table.take(pa.array(taken.indices)))
        copies.append(taken.copies)
        summaries.append(
            {
                "rule": rule,
                "rows_available": available,
                "unique_rows": taken.unique_rows,
                "rows": emitted,
                "tokens": tokens,
            }
        )
    return tables, copies, summaries


def _target_solution(spec: MixSpec, takes: list[dict]) -> dict[str, Any] | None:
    """What the manifest says of a ``target``: each source's weight, exact share and result."""
    if spec.target is None:
        return None
    unit, size = spec.target.unit, spec.target.size
    total_weight = sum(float(s.weight) for s in spec.sources)
    solution = [
        {"source": source.name, "weight": source.weight,
         "share": round(float(source.weight) / total_weight, 6),
         "quota": summary["rule"][unit], "rows": summary["rows"],
         "unique_rows": summary["unique_rows"], "rows_available": summary["rows_available"],
         "tokens": summary["tokens"]}
        for source, summary in zip(spec.sources, takes, strict=True)
    ]
    reached = sum((s["rows"] if unit == "rows" else (s["tokens"] or 0)) for s in solution)
    return {unit: size, "method": "largest remainder", "reached": reached, "solution": solution}


def _check_not_empty(spec: MixSpec, sources: list[_Source], takes: list[dict]) -> None:
    """A version with no rows is never published; a source that gives none is said (or refused)."""
    def story(source: _Source) -> str:
        return ", ".join(f"{r.step} {r.rows_in}->{r.rows_out}" for r in source.reports)

    empty = [
        (source, summary)
        for source, summary in zip(sources, takes, strict=True)
        if not summary["rows"]
    ]
    if len(empty) == len(sources):
        raise ConfigError(f"mix {spec.name!r} would have no rows, so no version is published: "
                          + "; ".join(f"{s.name}: {story(s)}" for s, _ in empty)
                          + " (each source's rejects say why its rows went)")
    for source, _ in empty:
        message = (
            f"source {source.name!r} contributes no rows to mix {spec.name!r} ({story(source)})"
        )
        if spec.empty_sources == "refuse":
            raise ConfigError(
                message + "; empty_sources: refuse stops the build (use warn to publish)"
            )
        log.warning(
            "%s; publishing without it (set empty_sources: refuse to stop instead)", message
        )


def build(
    spec: str | Path | MixSpec | dict[str, Any],
    *,
    home: str | Path | None = None,
    tokenizer: str | None = None,
    base: str | Path | None = None,
    progress: bool | None = None,
    engine: str | None = None,
    executor: Executor | None = None,
) -> BuildResult:
    """Build ``spec`` (a YAML path, a dict or a ``MixSpec``) into the registry at ``home``.

    Returns the new version, or the latest one (``created=False``) when it already holds exactly
    the rows this build produced. ``base`` resolves relative source paths of a dict / MixSpec
    (a YAML file's own folder is used for a path). The curation steps run on ``executor``, else
    on one made for ``engine`` (local|ray), else for the spec's ``engine:`` and ``ray:``; the rows
    are the same either way.
    """
    started = time.perf_counter()
    if isinstance(spec, (str, Path)):
        spec_obj, base_dir = load_spec(spec)
    else:
        spec_obj = spec if isinstance(spec, MixSpec) else parse_spec(spec)
        base_dir = Path(base).resolve() if base is not None else Path.cwd()
    tokenizer_name = tokenizer or spec_obj.tokenizer
    if spec_obj.needs_tokens() and not tokenizer_name:
        raise ConfigError(f"mix {spec_obj.name!r} takes rows by tokens: give `tokenizer:` in the "
                          "spec or --tokenizer (a path or Hub name)")
    spec_obj = anchor_benchmarks(spec_obj, base_dir)
    if engine is not None:
        spec_obj = spec_obj.model_copy(update={"engine": engine})
    if executor is None:
        executor = make_executor(spec_obj.engine, spec_obj.ray)
    elif executor.name != spec_obj.engine:
        # the manifest says where it ran
        spec_obj = spec_obj.model_copy(update={"engine": executor.name})
    return _build(spec_obj, base_dir, home, tokenizer_name, progress, started, executor)


def anchor_benchmarks(spec: MixSpec, base: Path) -> MixSpec:
    """Files named in step configs (decontam benchmarks) resolved against the spec's folder, like
    its sources."""

    def fix(steps: list[Any]) -> list[Any]:
        return [
            s.model_copy(update={"config": get_step(s.step).anchored(s.config, base)})
            for s in steps
        ]

    sources = [src.model_copy(update={"steps": fix(src.steps)}) for src in spec.sources]
    return spec.model_copy(update={"sources": sources, "global_steps": fix(spec.global_steps)})


def _build(spec_obj: MixSpec, base_dir: Path, home: str | Path | None, tokenizer_name: str | None,
           progress: bool | None, started: float, executor: Executor) -> BuildResult:
    registry = Registry(home)
    staged = registry.staging_dir()
    try:
        rejects: list[pa.Table] = []
        sources = []
        with progress_bar("loading sources", total=len(spec_obj.sources), enabled=progress) as bar:
            for position in range(len(spec_obj.sources)):
                sources.append(_load_source(spec_obj, position, base_dir, rejects, executor))
                bar.advance(1)
        matrices: list[ContaminationMatrix] = []  # of the global decontam steps
        global_reports = _run_global_steps(spec_obj, sources, rejects, executor, matrices)
        counter = token_counter(tokenizer_name) if tokenizer_name else None
        token_stats: dict[str, int] = {"cached": 0, "computed": 0}
        tables, copies, takes = _apply_take(spec_obj, sources, counter, token_stats)
        _check_not_empty(spec_obj, sources, takes)
        final = (
            pa.concat_tables(tables)
            if tables
            else FEATURES[spec_obj.kind].arrow_schema.empty_table()
        )
        owner = np.repeat(np.arange(len(tables), dtype=np.int32), [t.num_rows for t in tables])
        copy = np.concatenate(copies) if copies else np.zeros(0, np.int32)
        if spec_obj.shuffle and final.num_rows:
            order = np.random.default_rng(spec_obj.seed).permutation(final.num_rows)
            final, owner, copy = final.take(pa.array(order)), owner[order], copy[order]
        digest = content_hash(final)
        tokens = None if counter is None else [int(t["tokens"]) for t in takes]
        shards = write_shards(final, staged / "data")
        names = [s.name for s in sources]
        provenance = pa.table(
            {
                "mix_source": pa.DictionaryArray.from_arrays(
                    pa.array(owner, pa.int32()), pa.array(names, pa.string())
                ),
                "copy": pa.array(copy, pa.int32()),
            }
        )
        write_shard(provenance, staged / "provenance.parquet")
        matrices = [m for source in sources for m in source.matrices] + matrices
        contamination = ContaminationMatrix.merged(matrices).write(staged) if matrices else None
        reject_rows = pa.concat_tables(rejects) if rejects else REJECT_SCHEMA.empty_table()
        pq.write_table(reject_rows, staged / "rejects.parquet", compression="zstd")
        spec_dict = spec_to_dict(spec_obj)
        (staged / "spec.yaml").write_text(
            yaml.safe_dump(spec_dict, sort_keys=False, allow_unicode=True)
        )
        total = final.num_rows
        source_entries = []
        for index, (source, summary) in enumerate(zip(sources, takes, strict=True)):
            source_entries.append({
                "name": source.name, "location": source.location, "fingerprint": source.fingerprint,
                "split": spec_obj.sources[index].split, "take": summary["rule"],
                "rows_read": source.reports[0].rows_in, "rows_available": summary["rows_available"],
                "unique_rows": summary["unique_rows"], "rows": summary["rows"],
                "share": round(summary["rows"] / total, 6) if total else 0.0,
                "tokens": None if tokens is None else tokens[index],
                **({"attributes": source.attributes} if source.attributes else {}),
                "steps": [r.model_dump(mode="json") for r in source.reports],
            })
        selection = _selection_fingerprint(spec_obj, sources)
        manifest: dict[str, Any] = {
            "name": spec_obj.name, "kind": spec_obj.kind, "content_hash": digest, "rows": total,
            "postmix_version": __version__, "seed": spec_obj.seed, "shuffle": spec_obj.shuffle,
            "tokenizer": tokenizer_name, "tokens": None if tokens is None else int(sum(tokens)),
            "token_counts": None if counter is None else {
                **counter.describe(), "rows_from_cache": token_stats["cached"],
                "rows_tokenized": token_stats["computed"]},
            "target": _target_solution(spec_obj, takes),
            "selection_fingerprint": selection,
            "spec": spec_dict, "sources": source_entries,
            "global_steps": [r.model_dump(mode="json") for r in global_reports],
            "shards": shards, "provenance": "provenance.parquet",
            "rejects": {"file": "rejects.parquet", "rows": reject_rows.num_rows,
                        "by_step_and_reason": _reject_counts(reject_rows)},
            "contamination": contamination,
            "build_seconds": None,
        }
        pause("mix:before_publish")

        def finish_manifest(version: int, parent: int | None, created_at: str) -> None:
            manifest.update(
                version=version,
                ref=f"{spec_obj.name}@{version}",
                parent=parent,
                created_at=created_at,
                build_seconds=round(time.perf_counter() - started, 3),
            )
            (staged / MANIFEST).write_text(
                json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
            )

        mix, created = registry.publish(
            staged,
            name=spec_obj.name,
            kind=spec_obj.kind,
            content_hash=digest,
            rows=total,
            spec=spec_dict,
            selection=selection,
            sources=[
                {
                    "name": e["name"],
                    "location": e["location"],
                    "fingerprint": e["fingerprint"],
                    "rows": e["rows"],
                    "tokens": e["tokens"],
                }
                for e in source_entries
            ],
            finish_manifest=finish_manifest,
        )
        return BuildResult(mix=mix, created=created, manifest=mix.manifest)
    finally:
        if staged.exists():  # failed or unchanged builds leave nothing behind
            shutil.rmtree(staged, ignore_errors=True)


def _selection_fingerprint(spec: MixSpec, sources: list[_Source]) -> str | None:
    """A hash of what chose the rows besides the rows themselves (the attribute sidecars read,
    the ``where`` filters and ``weight_by``), so a changed threshold, attribute set or weighting
    is a new version even where it happens to select the same rows. None when no source uses
    any: versions are then decided by the content hash alone, as always."""
    chosen = [{"source": s.name, "where": spec_s.where,
               "attributes": None if s.attributes is None else s.attributes["fingerprint"],
               "weight_by": None if spec_s.weight_by is None else spec_s.weight_by.model_dump()}
              for spec_s, s in zip(spec.sources, sources, strict=True)]
    if not any(c["where"] is not None or c["attributes"] is not None
               or c["weight_by"] is not None for c in chosen):
        return None
    # sources without weight_by hash as before it existed, so older versions keep their identity
    for c in chosen:
        if c["weight_by"] is None:
            del c["weight_by"]
    text = json.dumps(chosen, sort_keys=True, separators=(",", ":"))
    return f"xxh3:{xxhash.xxh3_128_hexdigest(text.encode())}"


def _reject_counts(table: pa.Table) -> dict[str, dict[str, int]]:
    if not table.num_rows:
        return {}
    grouped = table.group_by(["step", "reason"]).aggregate([("reason", "count")]).to_pylist()
    out: dict[str, dict[str, int]] = {}
    for row in sorted(grouped, key=lambda r: (r["step"], r["reason"])):
        out.setdefault(row["step"], {})[row["reason"]] = row["reason_count"]
    return out
