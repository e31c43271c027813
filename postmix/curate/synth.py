"""``curate synth``: persona-driven prompt synthesis (PersonaHub / Tulu 3 style).

For each of ``n`` items: take the next persona (seeded order, no repeat until the set is used up),
fill the skill's template, and ask the model for a new prompt as structured output
(``{"prompt": ...}``). What is written depends on the skill:

- ``general``, ``code`` (and ``gsm`` / ``math`` without a vote): prompt-only rows
  ``{id, prompt: [user turn], source, meta}``, the form ``judge generate`` and ``curate respond``
  read. They are not ``SFTRecord``s, which need a final assistant turn.
- ``precise-if``: ``RLVRRecord`` rows with verifier ``ifeval``. The constraints are sampled by
  postmix (seeded, never by the model), shown to the writer so the task fits them, and appended
  to the written text with ``describe(spec)``; the specs are the row's ``constraints`` and, as
  canonical JSON, its ``ground_truth``.
- ``gsm`` / ``math`` with ``vote_k > 0``: ``k`` solutions are sampled per prompt and their final
  answers extracted; a prompt is kept as an ``RLVRRecord`` (verifier ``gsm8k`` / ``math``, the
  majority answer as ground truth) when one answer wins with at least ``min_agreement`` of the
  samples, otherwise it is rejected as ``no_majority``.

Every item ends in exactly one place: the output, ``<out>.rejects.jsonl`` (final decisions:
``empty_prompt``, ``duplicate_prompt``, ``no_majority``) or ``<out>.failures.jsonl`` (the model
could not be asked or answered badly: ``parse_error``, ``server_error``...; a re-run retries only
those, the rest comes from the request cache). The report's ``details`` hold the diversity of
what was written: personas used, distinct-2/3, the near-duplicate rate (MinHash dedup) and, with
``benchmarks``, contamination.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from pydantic import BaseModel, ConfigDict, Field, model_validator

from postmix.curate.personas import Persona, load_personas, persona_order
from postmix.curate.skills import Skill, load_skill
from postmix.curate.skills.answers import (
    extract_answer,
    majority_vote,
    math_equivalence,
    merge_equivalent,
)
from postmix.errors import ConfigError
from postmix.io.write import RowWriter, rejects_path, report_path
from postmix.judge.inputs import failures_path
from postmix.judge.runner import config_dump, reject_counts, resolve_cache, run_requests_into
from postmix.llm import ChatRequest, ChatResult, Ledger, PoolConfig
from postmix.schemas import FEATURES, Reject, RLVRRecord, StepReport, normalise_text, stable_id

# Prompt-only rows: the "prompts" form that `judge generate` and `curate respond` read.
PROMPT_FEATURES = FEATURES["prompt"]


class WrittenPrompt(BaseModel):
    """The structured answer asked of the prompt writer."""

    model_config = ConfigDict(extra="forbid")

    prompt: str


class SynthConfig(BaseModel):
    """Settings of ``postmix curate synth``."""

    model_config = ConfigDict(extra="forbid")

    skill: str = Field("general", description="Built-in skill (general, code, gsm, math, "
                       "precise-if) or one defined in the template file.")
    n: int = Field(100, ge=1, description="Prompts to synthesise (items requested).")
    personas: str | None = Field(None, description="JSONL/JSON/Parquet file, Arrow folder or "
                                 "hf:owner/name; None = the 64 bundled personas.")
    persona_field: str = Field("persona", description="Column holding the persona text.")
    persona_subset: str | None = Field(None, description="Hub dataset subset (config), e.g. "
                                       "'persona' for proj-persona/PersonaHub.")
    persona_split: str = "train"
    persona_limit: int | None = Field(None, ge=1, description="Read only the first rows of the "
                                      "persona source.")
    template: str | None = Field(None, description="YAML file whose fields override the skill's.")
    model: str | None = Field(None, description="Prompt-writing model in the pool; None = first.")
    sampling: dict[str, Any] = Field(default_factory=dict, description="Overrides the skill's "
                                     "sampling (temperature 1.0 by default: diversity first).")
    seed: int = Field(0, description="Seeds persona order, constraints and per-request seeds.")
    min_constraints: int = Field(1, ge=1, description="precise-if: fewest constraints per prompt.")
    max_constraints: int = Field(3, ge=1, description="precise-if: most constraints per prompt; "
                                 "IFEval prompts carry 1-3.")
    vote_k: int = Field(0, ge=0, description="gsm/math: solutions sampled per prompt for the "
                        "majority vote; 0 = no vote, prompt-only rows.")
    min_agreement: float = Field(0.6, gt=0.0, le=1.0, description="Share of the k solutions the "
                                 "winning answer needs (0.6: 3 of 5, 3 of 4); a tie never wins.")
    solver_model: str | None = Field(None, description="Model that samples solutions; None = "
                                     "the prompt-writing model.")
    benchmarks: list[str] = Field(default_factory=list, description="Benchmarks to measure "
                                  "contamination against (report only; `curate decontam` "
                                  "removes).")
    source: str | None = Field(None, description="Rows' source; None = synth-<skill>.")
    cache_path: str | None = Field(None, description="Request cache; None = <output>.cache.sqlite.")
    use_cache: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> SynthConfig:
        if self.max_constraints < self.min_constraints:
            raise ValueError("max_constraints must be >= min_constraints")
        return self


@dataclass
class SynthResult:
    output: Path
    rejects: Path
    failures: Path
    report: StepReport


@dataclass
class _Item:
    """One requested prompt, from persona to row."""

    index: int
    persona: Persona
    constraints: list[dict[str, Any]] = field(default_factory=list)
    written: str = ""  # the model's text
    text: str = ""  # the final user turn (written + constraint text)
    messages: list[dict[str, str]] = field(default_factory=list)
    id: str = ""


def request_seed(seed: int, *parts: Any) -> int:
    """A per-request sampling seed: reproducible samples, and one cache entry per item."""
    key = ":".join(str(p) for p in (seed, *parts))
    return xxhash.xxh32_intdigest(key.encode()) & 0x7FFFFFFF


# ---------------------------------------------------------------- diversity


def _word_tokens(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(token ids, row of each token) for lowercased word tokens, built with Arrow compute."""
    words = pc.split_pattern_regex(pc.utf8_lower(pa.array(texts, pa.large_string())), r"[^\w]+")
    flat = pc.list_flatten(words)
    rows = pc.list_parent_indices(words).to_numpy(zero_copy_only=False)
    keep = pc.not_equal(flat, "").fill_null(False)
    flat, rows = flat.filter(keep), rows[keep.to_numpy(zero_copy_only=False)]
    ids = pc.dictionary_encode(flat).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return ids, rows


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct n-grams / all n-grams over the corpus (Li et al., 2016); 0 with no n-grams."""
    ids, rows = _word_tokens(texts)
    if len(ids) < n:
        return 0.0
    starts = np.flatnonzero(rows[: len(rows) - n + 1] == rows[n - 1:])  # n-gram within one row
    if not len(starts):
        return 0.0
    grams = np.stack([ids[starts + k] for k in range(n)], axis=1)
    return round(len(np.unique(grams, axis=0)) / len(grams), 4)


def near_duplicate_stats(ids: list[str], texts: list[str]) -> dict[str, Any]:
    """Share of prompts that ``curate dedup`` (default settings) would remove."""
    from postmix.curate.dedup import DedupConfig, dedup

    if not texts:
        return {"near_duplicate_rate": 0.0, "exact_duplicates": 0, "near_duplicates": 0}
    ds = datasets.Dataset.from_dict(
        {"id": ids, "prompt": [[{"role": "user", "content": t}] for t in texts],
         "ground_truth": [""] * len(ids), "verifier": ["none"] * len(ids),
         "constraints": [[] for _ in ids], "source": ["synth"] * len(ids), "meta": ["{}"] * len(ids)},
        features=FEATURES["rlvr"])
    config = DedupConfig()
    verdicts = dedup(ds, config, kind="rlvr")
    counts = Counter(r for r in verdicts.reasons if r is not None)
    removed = sum(counts.values())
    return {"near_duplicate_rate": round(removed / len(texts), 4),
            "exact_duplicates": counts.get("exact_duplicate", 0),
            "near_duplicates": counts.get("near_duplicate", 0),
            "dedup_threshold": config.threshold}


def contamination_stats(ids: list[str], texts: list[str], benchmarks: list[str]) -> dict[str, Any]:
    """Contamination of the written prompts against named benchmarks (via ``curate decontam``)."""
    if not benchmarks:
        return {}
    try:
        from postmix.curate.decontam import contamination_report
    except ImportError:
        return {"skipped": "postmix.curate.decontam is not available in this installation"}
    return contamination_report(ids, texts, benchmarks)


def diversity_details(items: list[_Item], config: SynthConfig) -> dict[str, Any]:
    written = [it for it in items if it.written]
    texts = [it.written for it in written]
    ids = [it.id or stable_id("prompt", [it.index]) for it in written]
    details: dict[str, Any] = {
        "text": "the model-written prompt text (precise-if: before the constraints)",
        "prompts": len(texts),
        "distinct_personas": len({it.persona.id for it in written}),
        "distinct_2": distinct_n(texts, 2), "distinct_3": distinct_n(texts, 3),
        **near_duplicate_stats(ids, texts)}
    if config.benchmarks:
        details["contamination"] = contamination_stats(ids, texts, config.benchmarks)
    return details


# ---------------------------------------------------------------- the stage


def _check_models(pool: PoolConfig, *names: str | None) -> None:
    unknown = sorted({n for n in names if n} - set(pool.models))
    if unknown:
        raise ConfigError(f"model(s) {', '.join(unknown)} not in the pool; the pool has: "
                          f"{', '.join(pool.models)}")


def _constraint_tools(skill: Skill):
    if skill.verifier != "ifeval":
        return None
    from postmix.curate.skills import constraints

    return constraints


class _Outcomes:
    """The three places an item can end, with counts for the report."""

    def __init__(self, output: Path, schema: pa.Schema):
        self.out = RowWriter(output, schema=schema)
        self.rejects = RowWriter(rejects_path(output))
        self.failures = RowWriter(failures_path(output))
        self.reasons: list[str] = []

    def reject(self, writer: RowWriter, reason: str, detail: str, item: _Item,
               row: dict[str, Any]) -> None:
        self.reasons.append(reason)
        writer.write(Reject(reason=reason, detail=detail, id=item.id or None,
                            row=row).to_row())

    def close(self, ok: bool) -> None:
        for writer in (self.out, self.rejects, self.failures):
            if ok:
                writer.close()
            else:
                writer.abort()  # the .partial files keep what was finished


def synthesize(output: str | Path, pool: PoolConfig, config: SynthConfig | None = None, *,
               progress: bool | None = None) -> SynthResult:
    """Write ``config.n`` synthesised prompts (or their rejects / failures) to ``output``."""
    config = config or SynthConfig()
    started = time.perf_counter()
    skill = load_skill(config.skill, config.template)
    writer_model = config.model or pool.models[0]
    solver_model = config.solver_model or writer_model
    _check_models(pool, writer_model, solver_model if config.vote_k else None)
    if config.vote_k and skill.solve is None:
        raise ConfigError(f"skill {skill.name!r} has no solve template, so it cannot vote: use "
                          "--skill gsm or math, or add 'solve:' to the template file")
    personas = load_personas(config.personas, field=config.persona_field,
                             subset=config.persona_subset, split=config.persona_split,
                             limit=config.persona_limit)
    constraint_tools = _constraint_tools(skill)
    order = persona_order(len(personas), config.n, config.seed)
    items = [_Item(i, personas.personas[p]) for i, p in enumerate(order.tolist())]
    source = config.source or f"synth-{skill.name}"
    template_source = config.template or "builtin"
    voting = config.vote_k > 0
    rlvr = voting or constraint_tools is not None
    verifier = skill.verifier or (skill.solve.answer_format if skill.solve else None)

    def meta(item: _Item) -> dict[str, Any]:
        data = {"persona": item.persona.text, "persona_id": item.persona.id, "skill": skill.name,
                "template": skill.fingerprint, "template_source": template_source,
                "synth_model": writer_model, "index": item.index, "seed": config.seed}
        if item.constraints:
            data["written_prompt"] = item.written
            data["constraint_ids"] = [spec["type"] for spec in item.constraints]
        return data

    def synth_requests():
        for item in items:
            shown = ""
            if constraint_tools is not None:
                item.constraints = constraint_tools.sample_constraints(
                    config.seed, item.index, config.min_constraints, config.max_constraints)
                shown = constraint_tools.describe_all(item.constraints)
            sampling = {**skill.sampling, **config.sampling,
                        "seed": request_seed(config.seed, "synth", item.index)}
            yield ChatRequest(skill.messages(item.persona.text, shown), sampling,
                              schema=WrittenPrompt, model=writer_model, tag=item)

    cache = resolve_cache(output, config.cache_path, config.use_cache)
    output = Path(output)
    schema = (FEATURES["rlvr"] if rlvr else PROMPT_FEATURES).arrow_schema
    outcomes = _Outcomes(output, schema)
    seen: dict[str, int] = {}
    candidates: list[_Item] = []
    votes: dict[str, Any] = {}
    ledgers: dict[str, Ledger] = {}
    ok = False
    try:
        def on_written(result: ChatResult) -> None:
            item: _Item = result.request.tag
            if not result.ok:
                outcomes.reject(outcomes.failures, result.error_kind or "error",
                                result.error or "", item, {"index": item.index, **meta(item)})
                return
            item.written = result.parsed.prompt.strip()
            if not item.written:
                outcomes.reject(outcomes.rejects, "empty_prompt", "the model wrote an empty "
                                "prompt", item, {"index": item.index, **meta(item)})
                return
            item.text = item.written
            if item.constraints:
                item.text += "\n\n" + constraint_tools.describe_all(item.constraints)
            item.messages = [{"role": "user", "content": item.text}]
            item.id = stable_id("prompt", item.messages)
            key = normalise_text(item.text).lower()
            if key in seen:
                outcomes.reject(outcomes.rejects, "duplicate_prompt",
                                f"duplicate_of={items[seen[key]].id}", item,
                                _prompt_row(item, source, meta(item)))
                item.id = ""  # not an output row
                return
            seen[key] = item.index
            if voting:
                candidates.append(item)
            elif item.constraints:
                outcomes.out.write(_ifeval_row(item, source, meta(item)))
            else:
                outcomes.out.write(_prompt_row(item, source, meta(item)))

        ledgers["synthesis"] = run_requests_into(
            pool, synth_requests(), on_written, total=len(items),
            description=f"synth {skill.name}", cache_path=cache, progress=progress)
        if voting:
            ledgers["solutions"] = _vote(pool, candidates, skill, config, solver_model, cache,
                                         outcomes, votes, source, meta, verifier, progress)
        ok = True
    finally:
        outcomes.close(ok)

    report = StepReport(
        step="curate.synth",
        config=config_dump(config, pool) | {"skill_template": skill.model_dump(mode="json")},
        rows_in=len(items), rows_out=outcomes.out.rows, rejected=reject_counts(outcomes.reasons),
        timings={"total": round(time.perf_counter() - started, 3)},
        inputs=[personas.source],
        outputs={"data": str(output), "rejects": str(outcomes.rejects.path),
                 "failures": str(outcomes.failures.path)},
        details={
            "unit": "one requested prompt", "skill": skill.name, "kind": "rlvr" if rlvr else "prompt",
            "writer_model": writer_model,
            "personas": {"source": personas.source, "available": len(personas),
                         "rows_read": personas.rows_read, "skipped": personas.skipped,
                         "distinct_requested": int(len(np.unique(order)))},
            "diversity": diversity_details(items, config),
            **({"constraints": dict(sorted(Counter(
                spec["type"] for it in items if it.id for spec in it.constraints).items()))}
               if constraint_tools is not None else {}),
            **({"vote": votes} if voting else {}),
            "ledger": {name: ledger.to_dict() for name, ledger in ledgers.items()},
            "cost_usd": round(sum(ledger.to_dict()["cost_usd"] for ledger in ledgers.values()), 6),
        })
    report.write(report_path(output))
    return SynthResult(output, outcomes.rejects.path, outcomes.failures.path, report)


def _prompt_row(item: _Item, source: str = "", meta: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": item.id, "prompt": item.messages, "source": source,
            "meta": json.dumps(meta or {}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))}


def _ifeval_row(item: _Item, source: str, meta: dict[str, Any]) -> dict[str, Any]:
    ground_truth = json.dumps(item.constraints, sort_keys=True, ensure_ascii=False,
                              separators=(",", ":"))
    return RLVRRecord(id=stable_id("rlvr", [item.messages, ground_truth]), prompt=item.messages,
                      ground_truth=ground_truth, verifier="ifeval", constraints=item.constraints,
                      source=source, meta=meta).to_row()


def _vote(pool: PoolConfig, candidates: list[_Item], skill: Skill, config: SynthConfig,
          solver_model: str, cache: Path | None, outcomes: _Outcomes, votes: dict[str, Any],
          source: str, meta, verifier: str | None, progress: bool | None) -> Ledger:
    """Sample k solutions per prompt; keep prompts whose answers agree, as RLVR rows."""
    solve = skill.solve
    k = config.vote_k
    agreement: list[float] = []
    kept = 0

    def requests():
        for item in candidates:
            for j in range(k):
                sampling = {**solve.sampling, "seed": request_seed(config.seed, "solve", item.id, j)}
                yield ChatRequest(solve.messages(item.text), sampling, model=solver_model,
                                  salt=f"solution={j}", tag=(item, j))

    pending: list[ChatResult] = []
    # boxed (math) answers vote by symbolic equality where math-verify is there; gsm8k answers
    # are already plain decimals
    equivalent = math_equivalence() if solve.answer_format == "boxed" else None

    def on_solution(result: ChatResult) -> None:
        nonlocal kept
        pending.append(result)
        if len(pending) < k:
            return
        results = pending[:]
        pending.clear()
        item: _Item = results[0].request.tag[0]
        failed = [r for r in results if not r.ok]
        if failed:  # a vote over fewer samples would mean something else: retry on re-run
            first = failed[0]
            outcomes.reject(outcomes.failures, first.error_kind or "error",
                            f"{len(failed)} of {k} solutions failed: {first.error or ''}", item,
                            _prompt_row(item, source, meta(item)))
            return
        answers = [extract_answer(r.content or "", solve.answer_format) for r in results]
        if equivalent is not None:
            answers = merge_equivalent(answers, equivalent)
        winner, share = majority_vote(answers, config.min_agreement)
        agreement.append(share)
        tally = dict(Counter(a if a is not None else "<none>" for a in answers).most_common())
        row_meta = {**meta(item), "votes": tally, "agreement": round(share, 4), "vote_k": k,
                    "solver_model": solver_model}
        if winner is None:
            outcomes.reject(outcomes.rejects, "no_majority",
                            f"answers={json.dumps(tally, ensure_ascii=False)} "
                            f"min_agreement={config.min_agreement}", item,
                            _prompt_row(item, source, row_meta))
            return
        kept += 1
        outcomes.out.write(RLVRRecord(
            id=stable_id("rlvr", [item.messages, winner]), prompt=item.messages,
            ground_truth=winner, verifier=verifier or solve.answer_format, source=source,
            meta=row_meta).to_row())

    ledger = run_requests_into(pool, requests(), on_solution, total=len(candidates) * k,
                               description=f"synth {skill.name}: solutions", cache_path=cache,
                               progress=progress)
    votes.update({"k": k, "min_agreement": config.min_agreement, "voted": len(agreement),
                  "answers_equal_by": "math-verify" if equivalent is not None else "normalised text",
                  "kept": kept, "no_majority": len(agreement) - kept,
                  "mean_agreement": round(float(np.mean(agreement)), 4) if agreement else 0.0})
    return ledger
