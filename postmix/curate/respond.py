"""``curate respond``: write assistant responses to prompts, keeping only usable ones.

Each prompt (a ``curate synth`` prompt row, an RLVR row, or an SFT row, whose conversation up to
the last user turn is the prompt) is answered ``n`` times through the engine; each answer becomes
a complete ``SFTRecord`` (prompt turns + the assistant turn) carrying the prompt row's ``meta``
(persona, skill, template, ...) plus the response model and sample index. The curation filters
then drop what should not be trained on: an empty answer, a refusal, an answer that talks about
being a particular model (``self_identity``), an answer cut off by ``max_tokens``
(``truncated``), and, for a prompt with an answer key (an RLVR row: ``verifier`` plus
``ground_truth``, e.g. a precise-IF prompt's constraints or a GSM8K answer), an answer its
verifier scores wrong (``unverified``), so the SFT data teaches the constraint it states.

Every (prompt, sample) ends in exactly one place: the output, ``<out>.rejects.jsonl`` (unreadable
input rows and filtered answers, with the filter's reason) or ``<out>.failures.jsonl`` (the model
could not answer; a re-run retries only those, everything else comes from the request cache).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from postmix.curate.synth import request_seed
from postmix.errors import ConfigError
from postmix.io.read import iter_raw_rows
from postmix.io.write import RowWriter, rejects_path, report_path
from postmix.judge.inputs import failures_path, prompt_messages
from postmix.judge.runner import config_dump, reject_counts, resolve_cache, run_requests_into
from postmix.llm import ChatRequest, ChatResult, PoolConfig
from postmix.schemas import FEATURES, Message, Reject, SFTRecord, StepReport, jsontext, stable_id

RESPONSE_FILTERS: tuple[str, ...] = ("empty", "refusal", "self_identity", "truncated", "verified")


class RespondConfig(BaseModel):
    """Settings of ``postmix curate respond``."""

    model_config = ConfigDict(extra="forbid")

    n: int = Field(1, ge=1, description="Responses per prompt; 1 for SFT data.")
    model: str | None = Field(None, description="Responding model in the pool; None = first.")
    sampling: dict[str, Any] = Field(default_factory=lambda: {"temperature": 0.7},
                                     description="Overrides the endpoint's defaults; 0.7 as in "
                                     "`judge generate`, so n > 1 gives different answers.")
    filters: list[str] = Field(default_factory=lambda: list(RESPONSE_FILTERS),
                               description="Filters applied to each answer: empty, refusal, "
                               "self_identity, truncated, verified (all by default).")
    seed: int = Field(0, description="Seeds each sample's sampling seed.")
    source: str | None = Field(None, description="Rows' source; None = the prompt row's.")
    cache_path: str | None = Field(None, description="Request cache; None = <output>.cache.sqlite.")
    use_cache: bool = True

    @field_validator("filters")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        value = [name.replace("-", "_") for name in value]
        unknown = sorted(set(value) - set(RESPONSE_FILTERS))
        if unknown:
            raise ValueError(f"unknown filter(s) {unknown}: use {', '.join(RESPONSE_FILTERS)}")
        return value


@dataclass
class RespondResult:
    output: Path
    rejects: Path
    failures: Path
    report: StepReport


@dataclass
class _Prompt:
    id: str
    messages: list[dict[str, str]]
    source: str
    line: int
    meta: dict[str, Any] = field(default_factory=dict)


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


def load_prompt_rows(source: str | Path) -> tuple[list[_Prompt], list[Reject]]:
    """Usable prompts (ids unique) and a reject for every other row."""
    prompts: list[_Prompt] = []
    rejects: list[Reject] = []
    seen: set[str] = set()
    default_source = Path(str(source)).name.split(".")[0]
    for raw in iter_raw_rows(source):
        if raw.data is None:
            rejects.append(Reject(reason=raw.error or "unreadable", detail=raw.detail,
                                  line=raw.line, row=raw.raw))
            continue
        data = raw.data
        try:
            messages = prompt_messages(data)
            meta = _meta(data)
        except (ValidationError, ValueError) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            rejects.append(Reject(reason="bad_prompt", detail=detail, line=raw.line,
                                  id=data.get("id"), row=data))
            continue
        if not messages:
            rejects.append(Reject(reason="no_prompt", detail="row has no 'messages' or 'prompt' "
                                  "with a user turn", line=raw.line, id=data.get("id"), row=data))
            continue
        prompt_id = str(data.get("id") or stable_id("prompt", messages))
        if prompt_id in seen:
            rejects.append(Reject(reason="duplicate_prompt", detail=f"id {prompt_id} appeared "
                                  "earlier", line=raw.line, id=prompt_id, row=data))
            continue
        seen.add(prompt_id)
        prompts.append(_Prompt(prompt_id, messages, str(data.get("source") or default_source),
                               raw.line, meta))
    return prompts, rejects


# Refusals open the answer ("I'm sorry, but I can't...", "I cannot help with..."); checking only
# the first sentence or so keeps "I can't recommend this enough" deep in an answer from matching.
REFUSAL = (r"(?i)^\W{0,5}(?:(?:(?:I['’]?m|I am) (?:sorry|afraid)|(?:my )?apologies|I apologi[sz]e|"
           r"sorry)[^.!?\n]{0,40}?\b)?I (?:can(?:no|'|’)?t|won'?t|will not|must decline to|am "
           r"unable to|['’]m unable to|am not able to|['’]m not able to)(?: \w+){0,2}? (?:help|assist|"
           r"provide|comply|fulfil|fulfill|do|create|write|answer|engage|generate|support|share)\b")
# An answer that claims to be some model or names its maker: wrong for a model trained on it.
SELF_IDENTITY = (r"(?i)\bas an? (?:AI|artificial intelligence)(?: language)?(?: model| assistant)?\b"
                 r"|\bI(?:['’]m| am) (?:an? )?(?:AI language model|large language model|LLM|ChatGPT|"
                 r"GPT-?\d|Claude|Gemini|Bard|Llama|Qwen|Mistral|DeepSeek)\b"
                 r"|\b(?:I was|I['’]m|I am)\b[^.!?\n]{0,40}?\b(?:developed|created|trained|built|"
                 r"made) by (?:OpenAI|Anthropic|Google|DeepMind|Meta|Mistral AI|Alibaba|DeepSeek)\b")


def response_verdicts(texts: list[str], finish_reasons: list[str | None], ids: list[str],
                      filters: list[str], also: list[tuple[str, str] | None] | None = None,
                      ) -> list[tuple[str, str] | None]:
    """One verdict per answer: None keeps it, else (reason, detail). Checks run over the whole
    batch with Arrow compute. ``empty`` always applies: an SFT turn cannot be empty. ``also``
    (e.g. ``verify_answers``) ranks below the listed checks and above the duplicate check."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pa.array(texts, pa.large_string())
    checks: list[tuple[str, str, Any]] = [
        ("empty", "blank answer", pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(array)), 0))]
    if "truncated" in filters:
        checks.append(("truncated", "finish_reason=length (cut off by max_tokens)",
                       pc.equal(pa.array(finish_reasons, pa.string()), "length")))
    if "refusal" in filters:
        checks.append(("refusal", "answer opens with a refusal",
                       pc.match_substring_regex(array, REFUSAL)))
    if "self_identity" in filters:
        checks.append(("self_identity", "answer claims a model identity or maker",
                       pc.match_substring_regex(array, SELF_IDENTITY)))
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


def verify_answers(texts: list[str], metas: list[dict[str, Any]]) -> tuple[list[tuple[str, str] | None], dict]:
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
        tally = counts.setdefault(str(name), {"checked": 0, "passed": 0, "failed": 0, "unscorable": 0})
        tally["checked"] += 1
        if verdict.correct is None:
            tally["unscorable"] += 1
        elif verdict.correct:
            tally["passed"] += 1
        else:
            tally["failed"] += 1
            shown = verdict.detail or (f"extracted {verdict.extracted!r}" if verdict.extracted else "")
            verdicts[index] = ("unverified", f"{name}: {verdict.reason or 'wrong'}" + (f" ({shown})" if shown else ""))
    return verdicts, dict(sorted(counts.items()))


def _needs_math_verify(rows: list[_Prompt]) -> None:
    """math answers are checked with math-verify (the train extra): say so before any request."""
    if not any(str(r.meta.get("verifier", "")).lower() == "math" for r in rows):
        return
    try:
        import math_verify  # noqa: F401
    except ImportError:
        raise ConfigError("answers to math prompts are checked with math-verify: pip install math-verify "
                          "(or 'postmix[train]'), or leave 'verified' out of the filters") from None


def _record(row: _Prompt, k: int, result: ChatResult, source: str | None) -> SFTRecord:
    """The prompt turns plus the answer. ``model_construct`` because an empty answer must still
    become a row (for its rejects entry); every other field is valid by construction."""
    messages = [*row.messages, {"role": "assistant", "content": result.content or ""}]
    meta = {**row.meta, "prompt_id": row.id, "response_model": result.model, "sample_index": k,
            "finish_reason": result.finish_reason}
    return SFTRecord.model_construct(
        id=stable_id("sft", messages), messages=[Message.model_construct(**m) for m in messages],
        source=source or row.source, meta=meta)


def respond(prompts: str | Path, output: str | Path, pool: PoolConfig,
            config: RespondConfig | None = None, *, progress: bool | None = None) -> RespondResult:
    """Answer every prompt ``config.n`` times; write kept answers as ``SFTRecord`` rows."""
    config = config or RespondConfig()
    started = time.perf_counter()
    model = config.model or pool.models[0]
    if model not in pool.models:
        raise ConfigError(f"model {model!r} is not in the pool; the pool has: "
                          f"{', '.join(pool.models)}")
    rows, load_rejects = load_prompt_rows(prompts)
    if "verified" in config.filters:
        _needs_math_verify(rows)
    output = Path(output)
    reasons = [r.reason for r in load_rejects]

    def requests():
        for row in rows:
            for k in range(config.n):
                sampling = {**config.sampling, "seed": request_seed(config.seed, row.id, k)}
                yield ChatRequest(row.messages, sampling, model=model, salt=f"sample={k}",
                                  tag=(row, k))

    answers: list[tuple[_Prompt, int, ChatResult]] = []
    with RowWriter(failures_path(output)) as failed:

        def handle(result: ChatResult) -> None:
            row, k = result.request.tag
            if result.ok:
                answers.append((row, k, result))
                return
            reasons.append(result.error_kind or "error")
            failed.write(Reject(reason=result.error_kind or "error", detail=result.error or "",
                                line=row.line, id=row.id, source=row.source,
                                row={"prompt_id": row.id, "sample_index": k,
                                     "prompt": row.messages, "model": model}).to_row())

        ledger = run_requests_into(pool, requests(), handle, total=len(rows) * config.n,
                                   description="curate respond",
                                   cache_path=resolve_cache(output, config.cache_path,
                                                            config.use_cache), progress=progress)
    records = [_record(row, k, result, config.source) for row, k, result in answers]
    texts = [r.messages[-1].content for r in records]
    wrong, checked = (verify_answers(texts, [r.meta for r in records]) if "verified" in config.filters
                      else (None, {}))
    verdicts = response_verdicts(texts, [result.finish_reason for _, _, result in answers],
                                 [r.id for r in records], config.filters, also=wrong)
    finish = Counter(result.finish_reason or "unknown" for _, _, result in answers)
    with RowWriter(output, schema=FEATURES["sft"].arrow_schema) as out, \
            RowWriter(rejects_path(output)) as rejected:
        for reject in load_rejects:
            rejected.write(reject.to_row())
        for (row, _, _), record, verdict in zip(answers, records, verdicts, strict=True):
            if verdict is None:
                out.write(record.to_row())
                continue
            reasons.append(verdict[0])
            rejected.write(Reject(reason=verdict[0], detail=verdict[1], line=row.line,
                                  id=record.id, source=record.source,
                                  row=record.to_row()).to_row())
        rows_out = out.rows
    report = StepReport(
        step="curate.respond", config=config_dump(config, pool),
        rows_in=len(rows) * config.n + len(load_rejects), rows_out=rows_out,
        rejected=reject_counts(reasons), timings={"total": round(time.perf_counter() - started, 3)},
        inputs=[str(prompts)],
        outputs={"data": str(output), "rejects": str(rejects_path(output)),
                 "failures": str(failures_path(output))},
        details={"unit": "one (prompt, sample) request; an unusable prompt row counts once",
                 "prompts": len(rows), "n": config.n, "model": model,
                 "finish_reasons": dict(sorted(finish.items())), "verified": checked,
                 "ledger": ledger.to_dict(),
                 "cost_usd": ledger.to_dict()["cost_usd"]})
    report.write(report_path(output))
    return RespondResult(output, rejects_path(output), failures_path(output), report)
