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
from postmix.llm import ChatRequest, ChatResult, Ledger, PoolConfig, run_requests_into
from postmix.llm.model_stage import (
    OneModelConfig,
    StageOutputs,
    StageResult,
    check_models,
    config_dump,
    request_seed,
)
from postmix.schemas import FEATURES, Reject, RLVRRecord, normalise_text, stable_id

SynthResult = StageResult
# Prompt-only rows: the "prompts" form that `judge generate` and `curate respond` read.
PROMPT_FEATURES = FEATURES["prompt"]


class WrittenPrompt(BaseModel):
    """The structured answer asked of the prompt writer."""

    model_config = ConfigDict(extra="forbid")

    prompt: str


class SynthConfig(OneModelConfig):
    """Settings of ``postmix curate synth``."""

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

    @model_validator(mode="after")
    def _consistent(self) -> SynthConfig:
        if self.max_constraints < self.min_constraints:
            raise ValueError("max_constraints must be >= min_constraints")
        return self


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
         "constraints": [[] for _ in ids], "source": ["synth"] * len(ids),
         "meta": ["{}"] * len(ids)},
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
    from postmix.curate.decontam import contamination_report  # numba: only when asked

    return contamination_report(ids, texts, benchmarks) if benchmarks else {}


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


def _constraint_tools(skill: Skill):
    if skill.verifier != "ifeval":
        return None
    from postmix.curate.skills import constraints

    return constraints


def synthesize(output: str | Path, pool: PoolConfig, config: SynthConfig | None = None, *,
               progress: bool | None = None) -> StageResult:
    """Write ``config.n`` synthesised prompts (or their rejects / failures) to ``output``."""
    return _SynthRun(output, pool, config or SynthConfig(), progress).run()


class _SynthRun:
    """One ``synthesize`` call: its settings, items and outputs, and what it counts on the way."""

    def __init__(self, output: str | Path, pool: PoolConfig, config: SynthConfig,
                 progress: bool | None):
        self.started = time.perf_counter()
        self.output, self.pool, self.config, self.progress = Path(output), pool, config, progress
        self.skill = skill = load_skill(config.skill, config.template)
        self.writer_model = config.model or pool.models[0]
        self.solver_model = config.solver_model or self.writer_model
        self.voting = config.vote_k > 0
        check_models(pool, self.writer_model, self.solver_model if self.voting else None)
        if self.voting and skill.solve is None:
            raise ConfigError(f"skill {skill.name!r} has no solve template, so it cannot vote: use "
                              "--skill gsm or math, or add 'solve:' to the template file")
        self.personas = load_personas(config.personas, field=config.persona_field,
                                      subset=config.persona_subset, split=config.persona_split,
                                      limit=config.persona_limit)
        self.constraints = _constraint_tools(skill)
        self.order = persona_order(len(self.personas), config.n, config.seed)
        self.items = [_Item(i, self.personas.personas[p])
                      for i, p in enumerate(self.order.tolist())]
        self.source = config.source or f"synth-{skill.name}"
        self.rlvr = self.voting or self.constraints is not None
        self.verifier = skill.verifier or (skill.solve.answer_format if skill.solve else None)
        self.cache = config.cache_file(output)
        self.seen: dict[str, int] = {}  # normalised prompt text -> index of its first item
        self.candidates: list[_Item] = []  # written prompts waiting for the vote
        self.votes: dict[str, Any] = {}
        self.agreement: list[float] = []  # the winning share of each vote
        self.pending: list[ChatResult] = []  # the solutions of the prompt being voted on
        self.equivalent: Any = None  # math answers: symbolic equality where math-verify is there
        self.ledgers: dict[str, Ledger] = {}
        self.outputs: StageOutputs | None = None

    def run(self) -> StageResult:
        schema = (FEATURES["rlvr"] if self.rlvr else PROMPT_FEATURES).arrow_schema
        with StageOutputs(self.output, schema=schema, started=self.started) as self.outputs:
            self._ask("synthesis", self._write_requests(), self._on_written, len(self.items),
                      f"synth {self.skill.name}")
            if self.voting:
                self._vote()
        return self.outputs.report(
            "curate.synth",
            config=config_dump(self.config, self.pool) | {
                "skill_template": self.skill.model_dump(mode="json")},
            rows_in=len(self.items), inputs=[self.personas.source], details=self._details())

    def _ask(self, name: str, requests: Any, handle: Any, total: int, description: str) -> None:
        self.ledgers[name] = run_requests_into(self.pool, requests, handle, total=total,
                                               description=description, cache_path=self.cache,
                                               progress=self.progress)

    def meta(self, item: _Item) -> dict[str, Any]:
        data = {"persona": item.persona.text, "persona_id": item.persona.id,
                "skill": self.skill.name, "template": self.skill.fingerprint,
                "template_source": self.config.template or "builtin",
                "synth_model": self.writer_model, "index": item.index, "seed": self.config.seed}
        if item.constraints:
            data["written_prompt"] = item.written
            data["constraint_ids"] = [spec["type"] for spec in item.constraints]
        return data

    def entry(self, reason: str, detail: str, item: _Item, row: dict[str, Any]) -> Reject:
        return Reject(reason=reason, detail=detail, id=item.id or None, row=row)

    def prompt_row(self, item: _Item, meta: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"id": item.id, "prompt": item.messages, "source": self.source,
                "meta": json.dumps(self.meta(item) if meta is None else meta, sort_keys=True,
                                   ensure_ascii=False, separators=(",", ":"))}

    def _write_requests(self):
        config = self.config
        for item in self.items:
            shown = ""
            if self.constraints is not None:
                item.constraints = self.constraints.sample_constraints(
                    config.seed, item.index, config.min_constraints, config.max_constraints)
                shown = self.constraints.describe_all(item.constraints)
            sampling = {**self.skill.sampling, **config.sampling,
                        "seed": request_seed(config.seed, "synth", item.index)}
            yield ChatRequest(self.skill.messages(item.persona.text, shown), sampling,
                              schema=WrittenPrompt, model=self.writer_model, tag=item)

    def _on_written(self, result: ChatResult) -> None:
        item: _Item = result.request.tag
        outputs = self.outputs
        if not result.ok:
            outputs.fail(self.entry(result.error_kind or "error", result.error or "", item,
                                    {"index": item.index, **self.meta(item)}))
            return
        item.written = result.parsed.prompt.strip()
        if not item.written:
            outputs.reject(self.entry("empty_prompt", "the model wrote an empty prompt", item,
                                      {"index": item.index, **self.meta(item)}))
            return
        item.text = item.written
        if item.constraints:
            item.text += "\n\n" + self.constraints.describe_all(item.constraints)
        item.messages = [{"role": "user", "content": item.text}]
        item.id = stable_id("prompt", item.messages)
        key = normalise_text(item.text).lower()
        if key in self.seen:
            outputs.reject(self.entry("duplicate_prompt",
                                      f"duplicate_of={self.items[self.seen[key]].id}", item,
                                      self.prompt_row(item)))
            item.id = ""  # not an output row
            return
        self.seen[key] = item.index
        if self.voting:
            self.candidates.append(item)
        elif item.constraints:
            outputs.keep(_ifeval_row(item, self.source, self.meta(item)))
        else:
            outputs.keep(self.prompt_row(item))

    # ------------------------------------------------------------ the vote (gsm, math)

    def _vote(self) -> None:
        """Sample k solutions per written prompt; keep prompts whose answers agree (RLVR rows)."""
        solve, config = self.skill.solve, self.config
        # boxed (math) answers vote by symbolic equality where math-verify is there; gsm8k
        # answers are already plain decimals
        self.equivalent = math_equivalence() if solve.answer_format == "boxed" else None
        self._ask("solutions", self._solve_requests(), self._on_solution,
                  len(self.candidates) * config.vote_k, f"synth {self.skill.name}: solutions")
        voted, kept = len(self.agreement), self.outputs.out.rows
        self.votes = {
            "k": config.vote_k, "min_agreement": config.min_agreement, "voted": voted,
            "answers_equal_by": "math-verify" if self.equivalent is not None
            else "normalised text", "kept": kept, "no_majority": voted - kept,
            "mean_agreement": round(float(np.mean(self.agreement)), 4) if voted else 0.0}

    def _solve_requests(self):
        solve = self.skill.solve
        for item in self.candidates:
            for j in range(self.config.vote_k):
                sampling = {**solve.sampling,
                            "seed": request_seed(self.config.seed, "solve", item.id, j)}
                yield ChatRequest(solve.messages(item.text), sampling, model=self.solver_model,
                                  salt=f"solution={j}", tag=(item, j))

    def _on_solution(self, result: ChatResult) -> None:
        k, solve = self.config.vote_k, self.skill.solve
        self.pending.append(result)
        if len(self.pending) < k:
            return
        results, self.pending = self.pending, []
        item: _Item = results[0].request.tag[0]
        failed = [r for r in results if not r.ok]
        if failed:  # a vote over fewer samples would mean something else: retry on re-run
            first = failed[0]
            self.outputs.fail(self.entry(first.error_kind or "error",
                                         f"{len(failed)} of {k} solutions failed: "
                                         f"{first.error or ''}", item, self.prompt_row(item)))
            return
        answers = [extract_answer(r.content or "", solve.answer_format) for r in results]
        if self.equivalent is not None:
            answers = merge_equivalent(answers, self.equivalent)
        winner, share = majority_vote(answers, self.config.min_agreement)
        self.agreement.append(share)
        tally = dict(Counter(a if a is not None else "<none>" for a in answers).most_common())
        row_meta = {**self.meta(item), "votes": tally, "agreement": round(share, 4),
                    "vote_k": k, "solver_model": self.solver_model}
        if winner is None:
            self.outputs.reject(self.entry(
                "no_majority", f"answers={json.dumps(tally, ensure_ascii=False)} "
                f"min_agreement={self.config.min_agreement}", item,
                self.prompt_row(item, row_meta)))
            return
        self.outputs.keep(RLVRRecord(
            id=stable_id("rlvr", [item.messages, winner]), prompt=item.messages,
            ground_truth=winner, verifier=self.verifier or solve.answer_format,
            source=self.source, meta=row_meta).to_row())

    def _details(self) -> dict[str, Any]:
        personas, items = self.personas, self.items
        return {
            "unit": "one requested prompt", "skill": self.skill.name,
            "kind": "rlvr" if self.rlvr else "prompt", "writer_model": self.writer_model,
            "personas": {"source": personas.source, "available": len(personas),
                         "rows_read": personas.rows_read, "skipped": personas.skipped,
                         "distinct_requested": int(len(np.unique(self.order)))},
            "diversity": diversity_details(items, self.config),
            **({"constraints": dict(sorted(Counter(
                spec["type"] for it in items if it.id for spec in it.constraints).items()))}
               if self.constraints is not None else {}),
            **({"vote": self.votes} if self.voting else {}),
            "ledger": {name: ledger.to_dict() for name, ledger in self.ledgers.items()},
            "cost_usd": round(sum(ledger.to_dict()["cost_usd"]
                                  for ledger in self.ledgers.values()), 6),
        }


def _ifeval_row(item: _Item, source: str, meta: dict[str, Any]) -> dict[str, Any]:
    ground_truth = json.dumps(item.constraints, sort_keys=True, ensure_ascii=False,
                              separators=(",", ":"))
    return RLVRRecord(id=stable_id("rlvr", [item.messages, ground_truth]), prompt=item.messages,
                      ground_truth=ground_truth, verifier="ifeval", constraints=item.constraints,
                      source=source, meta=meta).to_row()
