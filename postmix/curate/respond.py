"""``curate respond``: write assistant responses to prompts, keeping only usable ones.

Each prompt (a ``curate synth`` prompt row, an RLVR row, or an SFT row, whose conversation up to
the last user turn is the prompt) is answered ``n`` times through the engine; each answer becomes
a complete ``SFTRecord`` (prompt turns + the assistant turn) carrying the prompt row's ``meta``
(persona, skill, template, ...) plus the response model and sample index. The curation filters
then drop what should not be trained on: an empty answer, a refusal, an answer that talks about
being a particular model (``self_identification``), an answer that talks about its knowledge cutoff
(``knowledge_cutoff``; the three detectors are the quality filters' own,
``postmix.curate.refusals``, with the same phrase settings), an answer cut off by ``max_tokens``
(``truncated``), and, for a prompt with an answer key (an RLVR row: ``verifier`` plus
``ground_truth``, e.g. a precise-IF prompt's constraints or a GSM8K answer), an answer its verifier
scores wrong (``unverified``), so the SFT data teaches the constraint it states.

Every (prompt, sample) ends in exactly one place: the output, ``<out>.rejects.jsonl`` (unreadable
input rows and filtered answers, with the filter's reason) or ``<out>.failures.jsonl`` (the model
could not answer; a re-run retries only those, everything else comes from the request cache).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from postmix.curate import refusals
from postmix.errors import ConfigError
from postmix.llm import ChatRequest, ChatResult, PoolConfig, run_requests_into
from postmix.llm.model_stage import (
    Loaded,
    OneModelConfig,
    PromptRow,
    StageOutputs,
    StageResult,
    config_dump,
    load_prompts,
    request_seed,
)
from postmix.schemas import FEATURES, Message, Reject, SFTRecord, jsontext, stable_id

RESPONSE_FILTERS: tuple[str, ...] = ("empty", "refusal", "self_identification",
                                     "knowledge_cutoff", "truncated", "verified")
_OLD_NAMES = {"self_identity": "self_identification"}  # the name before the filters shared it
RespondResult = StageResult


class RespondConfig(OneModelConfig, refusals.PhraseSettings):
    """Settings of ``postmix curate respond``; the phrase settings are ``curate filter``'s."""

    n: int = Field(1, ge=1, description="Responses per prompt; 1 for SFT data.")
    model: str | None = Field(None, description="Responding model in the pool; None = first.")
    sampling: dict[str, Any] = Field(default_factory=lambda: {"temperature": 0.7},
                                     description="Overrides the endpoint's defaults; 0.7 as in "
                                     "`judge generate`, so n > 1 gives different answers.")
    filters: list[str] = Field(default_factory=lambda: list(RESPONSE_FILTERS),
                               description="Filters applied to each answer: empty, refusal, "
                               "self_identification, knowledge_cutoff, truncated, verified (all "
                               "by default).")
    seed: int = Field(0, description="Seeds each sample's sampling seed.")
    source: str | None = Field(None, description="Rows' source; None = the prompt row's.")

    @field_validator("filters")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        value = [_OLD_NAMES.get(n, n) for n in (name.replace("-", "_") for name in value)]
        unknown = sorted(set(value) - set(RESPONSE_FILTERS))
        if unknown:
            raise ValueError(f"unknown filter(s) {unknown}: use {', '.join(RESPONSE_FILTERS)}")
        return value


def _meta(data: dict[str, Any]) -> dict[str, Any]:
    """The row's meta, with an RLVR row's verifier and ground truth kept alongside."""
    meta = data.get("meta") or {}
    if isinstance(meta, str):
        meta = jsontext.loads(meta) if meta.strip() else {}
    if not isinstance(meta, dict):
        raise ValueError("meta must be a JSON object")
    if data.get("verifier") and data.get("ground_truth") is not None:
        meta = {**meta, "verifier": data["verifier"], "ground_truth": data["ground_truth"]}
        if data.get("constraints"):
            meta["constraints"] = data["constraints"]
    return meta


def response_verdicts(texts: list[str], finish_reasons: list[str | None], ids: list[str],
                      filters: list[str], also: list[tuple[str, str] | None] | None = None,
                      settings: refusals.PhraseSettings | None = None,
                      ) -> list[tuple[str, str] | None]:
    """One verdict per answer: None keeps it, else (reason, detail). Checks run over the whole
    batch with Arrow compute. ``empty`` always applies: an SFT turn cannot be empty. A claimed
    identity ranks above a refusal ("As an AI language model, I can't..." is both, and the
    identity is what a model trained on it must not learn). ``also`` (e.g. ``verify_answers``)
    ranks below the listed checks and above the duplicate check. ``settings`` (a
    ``RespondConfig``) picks the phrase lists, as ``curate filter``'s config does."""
    array = pa.array(texts, pa.large_string())
    checks: list[tuple[str, str, Any]] = [
        ("empty", "blank answer", pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(array)), 0))]
    if "truncated" in filters:
        checks.append(("truncated", "finish_reason=length (cut off by max_tokens)",
                       pc.equal(pa.array(finish_reasons, pa.string()), "length")))
    for reason in (refusals.SELF_IDENTIFICATION, refusals.REFUSAL, refusals.KNOWLEDGE_CUTOFF):
        if reason in filters:
            checks.append((reason, refusals.DETAILS[reason],
                           refusals.detect(array, reason, settings)))
    verdicts: list[tuple[str, str] | None] = list(also) if also is not None else [None] * len(texts)
    for reason, detail, mask in reversed(checks):  # the first check listed wins
        for index in np.flatnonzero(mask.fill_null(False).to_numpy(zero_copy_only=False)):
            verdicts[index] = (reason, detail)
    first: dict[str, int] = {}
    for index, record_id in enumerate(ids):  # same prompt, same answer: one row
        if verdicts[index] is None:
            if record_id in first:
                verdicts[index] = ("duplicate_response", f"duplicate_of={record_id} (sample "
                                   f"{first[record_id]})")
            else:
                first[record_id] = index
    return verdicts


def verify_answers(texts: list[str], metas: list[dict[str, Any]],
                   ) -> tuple[list[tuple[str, str] | None], dict]:
    """``unverified`` verdicts for answers whose prompt carries an answer key and that its
    verifier scores wrong, and per-verifier counts for the report. Rows the verifier cannot
    score (unknown verifier, bad spec) are kept and counted as ``unscorable``."""
    from postmix.verifiers import verify

    verdicts: list[tuple[str, str] | None] = [None] * len(texts)
    counts: dict[str, dict[str, int]] = {}
    for index, (text, meta) in enumerate(zip(texts, metas, strict=True)):
        name = meta.get("verifier")
        if not name or name == "none" or meta.get("ground_truth") is None:
            continue
        verdict = verify(text, meta["ground_truth"], name, meta.get("constraints"))
        tally = counts.setdefault(str(name), dict.fromkeys(
            ("checked", "passed", "failed", "unscorable"), 0))
        tally["checked"] += 1
        if verdict.correct is None:
            tally["unscorable"] += 1
        elif verdict.correct:
            tally["passed"] += 1
        else:
            tally["failed"] += 1
            shown = verdict.detail or (f"extracted {verdict.extracted!r}"
                                       if verdict.extracted else "")
            verdicts[index] = ("unverified", f"{name}: {verdict.reason or 'wrong'}"
                               + (f" ({shown})" if shown else ""))
    return verdicts, dict(sorted(counts.items()))


def _needs_math_verify(rows: list[PromptRow]) -> None:
    """math answers are checked with math-verify (the train extra): say so before any request."""
    if not any(str(r.meta.get("verifier", "")).lower() == "math" for r in rows):
        return
    try:
        import math_verify  # noqa: F401
    except ImportError:
        raise ConfigError("answers to math prompts are checked with math-verify: pip install "
                          "math-verify (or 'postmix[train]'), or leave 'verified' out of the "
                          "filters") from None


def _record(row: PromptRow, k: int, result: ChatResult, source: str | None) -> SFTRecord:
    """The prompt turns plus the answer. ``model_construct`` because an empty answer must still
    become a row (for its rejects entry); every other field is valid by construction."""
    messages = [*row.prompt, {"role": "assistant", "content": result.content or ""}]
    meta = {**row.meta, "prompt_id": row.id, "response_model": result.model, "sample_index": k,
            "finish_reason": result.finish_reason}
    return SFTRecord.model_construct(
        id=stable_id("sft", messages), messages=[Message.model_construct(**m) for m in messages],
        source=source or row.source, meta=meta)


def read_prompts(source: str | Path) -> Loaded:
    """The prompts ``respond`` answers: rows with a user turn, each with its meta (answer keys
    included); every other row a reject with its line."""
    return load_prompts(source, meta=_meta)


def respond(prompts: str | Path, output: str | Path, pool: PoolConfig,
            config: RespondConfig | None = None, *, progress: bool | None = None) -> StageResult:
    """Answer every prompt ``config.n`` times; write kept answers as ``SFTRecord`` rows."""
    config = config or RespondConfig()
    started = time.perf_counter()
    model = config.pick_model(pool)
    loaded = read_prompts(prompts)
    rows: list[PromptRow] = loaded.items
    if "verified" in config.filters:
        _needs_math_verify(rows)

    def requests():
        for row in rows:
            for k in range(config.n):
                sampling = {**config.sampling, "seed": request_seed(config.seed, row.id, k)}
                yield ChatRequest(row.prompt, sampling, model=model, salt=f"sample={k}",
                                  tag=(row, k))

    answers: list[tuple[PromptRow, int, ChatResult]] = []
    with StageOutputs(output, inputs=[prompts], schema=FEATURES["sft"].arrow_schema,
                      started=started) as outputs:
        for reject in loaded.rejects:
            outputs.reject(reject)

        def handle(result: ChatResult) -> None:
            row, k = result.request.tag
            if result.ok:
                answers.append((row, k, result))
                return
            outputs.fail(Reject(reason=result.error_kind or "error", detail=result.error or "",
                                line=row.line, id=row.id, source=row.source,
                                row={"prompt_id": row.id, "sample_index": k,
                                     "prompt": row.prompt, "model": model}))

        ledger = run_requests_into(pool, requests(), handle, total=len(rows) * config.n,
                                   description="curate respond",
                                   cache_path=config.cache_file(output), progress=progress)
        records = [_record(row, k, result, config.source) for row, k, result in answers]
        texts = [r.messages[-1].content for r in records]
        wrong, checked = (verify_answers(texts, [r.meta for r in records])
                          if "verified" in config.filters else (None, {}))
        verdicts = response_verdicts(texts, [result.finish_reason for _, _, result in answers],
                                     [r.id for r in records], config.filters, also=wrong,
                                     settings=config)
        for (row, _, _), record, verdict in zip(answers, records, verdicts, strict=True):
            if verdict is None:
                outputs.keep(record.to_row())
            else:
                outputs.reject(Reject(reason=verdict[0], detail=verdict[1], line=row.line,
                                      id=record.id, source=record.source, row=record.to_row()))
    finish = Counter(result.finish_reason or "unknown" for _, _, result in answers)
    return outputs.report(
        "curate.respond", config=config_dump(config, pool),
        rows_in=len(rows) * config.n + len(loaded.rejects), inputs=[str(prompts)],
        details={"unit": "one (prompt, sample) request; an unusable prompt row counts once",
                 "prompts": len(rows), "n": config.n, "model": model,
                 "finish_reasons": dict(sorted(finish.items())), "verified": checked,
                 "ledger": ledger.to_dict(), "cost_usd": ledger.to_dict()["cost_usd"]})
