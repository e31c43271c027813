"""``postmix curate tag``: per-row attributes computed once, written to a sidecar Parquet keyed by
row id, for mix specs to filter on (``attributes:`` and ``where:``) without recomputing them.

Columns (each present when asked for):

``id``                    the row's id (unique: a repeated id is rejected, ``duplicate_id``)
``chars``, ``words``      characters / whitespace-separated words of all message contents
``turns``                 messages in the conversation (the prompt for preference and RLVR rows)
``tokens``                tokens with ``tokenizer`` and its chat template, as a mix counts them
                          (``postmix.mix.tokens``, whose cache it shares)
``language``              ISO 639-1 code of the row's text (fastText lid.176 through
                          ``postmix.curate.langid``, as the ``language`` filter rule; null: no
                          letters)
``filter_<rule>``         true where that filter rule fires (every rule, not only the first; no
                          row is removed: ``postmix.curate.filters.rule_hits``)
``quality``, ``complexity``  an LLM's 1-6 score in the style of DEITA (Liu et al., 2024): the
                          complexity of the last user instruction, the quality of the response to
                          it; asked through the engine (cached, resumable); null where the model
                          gave no usable answer (counted in the report)
``reward``                a reward model's score of the conversation (preference rows: of the
                          chosen answer, with ``reward_rejected`` beside it), from an endpoint
                          serving one (``vllm serve <reward model>``: vLLM's ``/pooling``),
                          through the engine (cached, retried); null where there was no answer
                          to score or the endpoint gave none, counted by reason in the report

The sidecar lives in this layer, not in ``curate``, because its token counts are the mix's own
definition and cache. Its fingerprint (xxh3 of the file, in the report) is what a mix manifest
records, and what makes a mix over changed attributes a new version.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from postmix.curate import langid
from postmix.curate.filters import load_filter_config, rule_hits
from postmix.errors import ConfigError
from postmix.io.dataset import dataset_table, load_records
from postmix.io.fingerprint import path_hash
from postmix.io.write import RowWriter, rejects_path, report_path
from postmix.llm import ChatRequest, ChatResult, PoolConfig, run_requests_into
from postmix.llm.engine import run_rewards
from postmix.llm.model_stage import OneModelConfig, check_models
from postmix.mix.measure import MESSAGE_COLUMNS, row_chars, row_turns
from postmix.mix.tokens import cached_row_tokens, token_counter
from postmix.schemas import StepReport

LANGUAGE_CHARS = 2000  # the detector is sure long before this; it bounds the per-row cost
SCORE_RANGE = (1, 6)  # DEITA's scorers answer 1-6

# DEITA's scorer prompts, with one sentence added so a general instruction-following model
# answers in the form the fine-tuned scorers were trained to.
COMPLEXITY_PROMPT = (
    "You are a helpful assistant. Please identify the complexity score of the following user "
    "query. Answer with a score from 1 (very simple) to 6 (very complex).\n"
    "##Query: {instruction}\n##Complexity: "
)
QUALITY_PROMPT = (
    "You are a helpful assistant. Please identify the quality score of the Response "
    "corresponding to the Question. Answer with a score from 1 (very poor) to 6 (excellent).\n"
    "#Question#:\n{instruction}\n#Response#:\n{response}\n##Quality: "
)


class ScoreAnswer(BaseModel):
    score: int = Field(ge=SCORE_RANGE[0], le=SCORE_RANGE[1])


class TagConfig(OneModelConfig):
    """What ``postmix curate tag`` computes. Lengths always; the rest as asked."""

    tokenizer: str | None = Field(None, description="Tokenizer (path or Hub name): a `tokens` "
                                  "column, counted with its chat template.")
    language: bool = Field(True, description="A `language` column (fastText lid.176, per row; "
                           "needs postmix[langid]).")
    rule_hits: bool = Field(True, description="A `filter_<rule>` column per filter rule.")
    rules_file: str | None = Field(None, description="Filter settings YAML for the rule hits "
                                   "(as `curate filter --rules`); default: the filter's defaults.")
    scores: list[Literal["quality", "complexity", "reward"]] = Field(
        default_factory=list, description="LLM scores, DEITA style, and a reward model's score "
        "(needs --endpoints).")
    reward_model: str | None = Field(
        None, description="Model in the endpoints that serves the reward model (/pooling); "
        "None = `model`, else the first.")
    reward_label: int = Field(0, ge=0, description="Which of the reward model's outputs is the "
                              "score (0: a single-head reward model's only one).")
    reward_activation: bool = Field(False, description="Let the server apply its classifier "
                                    "activation; off: the raw head output, the usual reward "
                                    "scale.")
    sampling: dict[str, Any] = Field(
        default_factory=lambda: {"temperature": 0.0, "max_tokens": 32},
        description="Greedy and short by default: a score is one number.")


def _words(table: pa.Table, kind: str) -> np.ndarray:
    total = np.zeros(table.num_rows, dtype=np.int64)
    for name in MESSAGE_COLUMNS[kind]:
        column = table.column(name).combine_chunks()
        parents = pc.list_parent_indices(column).to_numpy(zero_copy_only=False)
        contents = pc.fill_null(pc.list_flatten(column).field("content"), "")
        words = pc.list_value_length(pc.utf8_split_whitespace(contents))
        counts = pc.fill_null(words, 0).to_numpy(zero_copy_only=False)
        total += np.bincount(parents, weights=counts, minlength=table.num_rows).astype(np.int64)
    return total


def _turn_texts(row: dict[str, Any], kind: str) -> tuple[str, str | None]:
    """(last user instruction, the response to it or None) of one row."""
    turns = row["messages"] if kind == "sft" else row["prompt"]
    user = [i for i, m in enumerate(turns) if m["role"] == "user"]
    instruction = turns[user[-1]]["content"] if user else ""
    if kind == "preference":
        response = next((m["content"] for m in row["chosen"] if m["role"] == "assistant"), None)
    elif kind == "sft" and user:
        response = next((m["content"] for m in turns[user[-1] + 1 :] if m["role"] == "assistant"),
                        None)
    else:
        response = None
    return instruction, response


def _languages(table: pa.Table, kind: str) -> pa.Array:
    """One language per row, of all its turns' text read as the filter's language rule reads a
    turn (code spans out, whitespace runs as one space); null for a row without letters."""
    texts = [" ".join(m["content"] or "" for name in MESSAGE_COLUMNS[kind] for m in row[name] or [])
             for row in table.select(list(MESSAGE_COLUMNS[kind])).to_pylist()]
    prepared = langid.prepare(pa.array(texts, pa.large_string()), LANGUAGE_CHARS)
    judged = np.flatnonzero(pc.match_substring_regex(prepared, r"\pL").to_numpy(
        zero_copy_only=False))
    out: list[str | None] = [None] * len(texts)
    found, _ = langid.detect(prepared.take(pa.array(judged, pa.int64())))
    for index, language in zip(judged.tolist(), found, strict=True):
        out[index] = language
    return pa.array(out, pa.string())


def _conversations(row: dict[str, Any], kind: str) -> dict[str, list[dict[str, str]] | None]:
    """What the reward model scores: ``reward`` (the conversation, or the prompt with the chosen
    answer) and, for preference rows, ``reward_rejected``; None where there is no answer."""
    def plain(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
        return [{"role": m["role"], "content": m["content"] or ""} for m in messages]

    if kind == "preference":
        return {"reward": plain(row["prompt"] + row["chosen"]),
                "reward_rejected": plain(row["prompt"] + row["rejected"])}
    if kind == "sft":  # a record ends with an assistant turn
        return {"reward": plain(row["messages"])}
    return {"reward": None}  # RLVR rows: a prompt, no answer


def _rewards(table: pa.Table, kind: str, config: TagConfig, pool: PoolConfig,
             cache: Path | None) -> tuple[dict[str, list[float | None]], dict[str, Any]]:
    model = config.reward_model or config.model or pool.models[0]
    check_models(pool, model)
    rows = table.select(list(MESSAGE_COLUMNS[kind])).to_pylist()
    wanted = _conversations(rows[0], kind).keys() if rows else ["reward"]
    values: dict[str, list[float | None]] = {c: [None] * len(rows) for c in wanted}
    failed: dict[str, dict[str, int]] = {c: {} for c in wanted}
    asked: list[tuple[int, str]] = []
    conversations = []
    for index, row in enumerate(rows):
        for column, messages in _conversations(row, kind).items():
            if messages is None:
                failed[column]["no_response"] = failed[column].get("no_response", 0) + 1
            else:
                asked.append((index, column))
                conversations.append(messages)
    results, ledger = run_rewards(pool, conversations, model=model, label=config.reward_label,
                                  use_activation=config.reward_activation,
                                  description="curate tag rewards", cache_path=cache)
    for (index, column), result in zip(asked, results, strict=True):
        if result.ok:
            values[column][index] = result.score
        else:
            reason = result.error_kind or "error"
            failed[column][reason] = failed[column].get(reason, 0) + 1
    return values, {"model": model, "calls": len(conversations), "label": config.reward_label,
                    "activation": config.reward_activation, "unscored": failed,
                    "ledger": ledger.to_dict()}


def _scores(table: pa.Table, kind: str, config: TagConfig, pool: PoolConfig,
            cache: Path | None) -> tuple[dict[str, list[float | None]], dict[str, Any]]:
    model = config.pick_model(pool)
    rows = table.select(list(MESSAGE_COLUMNS[kind])).to_pylist()
    judged = [s for s in config.scores if s != "reward"]
    values: dict[str, list[float | None]] = {s: [None] * len(rows) for s in judged}
    failed: dict[str, dict[str, int]] = {s: {} for s in judged}
    requests = []
    for index, row in enumerate(rows):
        instruction, response = _turn_texts(row, kind)
        for score in judged:
            if score == "quality" and response is None:
                failed[score]["no_response"] = failed[score].get("no_response", 0) + 1
                continue
            prompt = (COMPLEXITY_PROMPT.format(instruction=instruction) if score == "complexity"
                      else QUALITY_PROMPT.format(instruction=instruction, response=response))
            requests.append(ChatRequest([{"role": "user", "content": prompt}],
                                        dict(config.sampling), schema=ScoreAnswer, model=model,
                                        tag=(index, score)))

    def handle(result: ChatResult) -> None:
        index, score = result.request.tag
        if result.ok and isinstance(result.parsed, ScoreAnswer):
            values[score][index] = float(result.parsed.score)
        else:
            reason = result.error_kind or "error"
            failed[score][reason] = failed[score].get(reason, 0) + 1

    ledger = run_requests_into(pool, requests, handle, total=len(requests),
                               description="curate tag scores", cache_path=cache)
    return values, {"model": model, "calls": len(requests), "unscored": failed,
                    "ledger": ledger.to_dict()}


def tag(source: str | Path, output: str | Path, config: TagConfig | None = None, *,
        pool: PoolConfig | None = None, format: str | None = None) -> StepReport:
    """Compute the attributes of every row of ``source`` into the sidecar ``output`` (Parquet),
    with ``<output>.rejects.jsonl`` (rows that cannot be tagged) and a report beside it."""
    config = config or TagConfig()
    started = time.perf_counter()
    output = Path(output)
    if output.suffix != ".parquet":
        raise ConfigError(f"{output}: an attribute sidecar is a .parquet file")
    if config.scores and pool is None:
        raise ConfigError("scores need a model: pass --endpoints (an endpoints YAML)")
    counter = token_counter(config.tokenizer) if config.tokenizer else None  # fail fast
    if config.language:
        langid.require_detector()
    filter_config = load_filter_config(config.rules_file) if config.rules_file else None
    ds, kind, load_rejects = load_records(source, format=format)
    table = dataset_table(ds)
    ids = table.column("id").to_numpy(zero_copy_only=False)
    _, first = np.unique(ids, return_index=True)
    unique = np.zeros(len(ids), dtype=bool)
    unique[first] = True
    rejected: dict[str, int] = {}
    with RowWriter(rejects_path(output)) as writer:
        for reject in load_rejects:
            writer.write(reject.model_copy(update={"step": "load"}).to_row())
            rejected[reject.reason] = rejected.get(reject.reason, 0) + 1
        for index in np.flatnonzero(~unique).tolist():
            row = table.slice(index, 1).to_pylist()[0]
            writer.write({"step": "tag", "reason": "duplicate_id", "detail":
                          f"id {row['id']} appeared earlier", "line": None, "id": row["id"],
                          "source": row.get("source"), "row": row})
            rejected["duplicate_id"] = rejected.get("duplicate_id", 0) + 1
    if (~unique).any():
        table = table.filter(pa.array(unique))
        ds = ds.select(np.flatnonzero(unique))
    columns: dict[str, Any] = {"id": table.column("id"), "chars": row_chars(table, kind),
                               "words": _words(table, kind), "turns": row_turns(table, kind)}
    details: dict[str, Any] = {"kind": kind}
    if counter is not None:
        stats: dict[str, int] = {}
        columns["tokens"] = cached_row_tokens(table, kind, counter, stats)
        details["tokenizer"] = {**counter.describe(), "rows_from_cache": stats["cached"],
                                "rows_tokenized": stats["computed"]}
    if config.language:
        columns["language"] = _languages(table, kind)
        details["language_detector"] = langid.DETECTOR
    if config.rule_hits:
        hits = rule_hits(ds, filter_config, kind=kind)
        columns.update({f"filter_{code}": fired for code, fired in hits.items()})
        details["rule_hits"] = {code: int(fired.sum()) for code, fired in hits.items()}
    if any(s != "reward" for s in config.scores):
        scores, details["scores"] = _scores(table, kind, config, pool,
                                            config.cache_file(output))
        columns.update({name: pa.array(v, pa.float64()) for name, v in scores.items()})
    if "reward" in config.scores:
        rewards, details["reward"] = _rewards(table, kind, config, pool,
                                              config.cache_file(output))
        columns.update({name: pa.array(v, pa.float64()) for name, v in rewards.items()})
    attributes = pa.table(columns)
    partial = output.with_name(output.name + ".partial")
    output.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(attributes, partial, compression="zstd")
    os.replace(partial, output)
    details.update(columns=[c for c in attributes.column_names if c != "id"],
                   fingerprint=f"xxh3:{path_hash(output)}")
    report = StepReport(
        step="tag", config=config.model_dump(mode="json"),
        rows_in=len(ids) + len(load_rejects), rows_out=attributes.num_rows,
        rejected=dict(sorted(rejected.items())), inputs=[str(source)],
        outputs={"data": str(output), "rejects": str(rejects_path(output))},
        timings={"total": round(time.perf_counter() - started, 3)}, details=details)
    report.write(report_path(output))
    return report
