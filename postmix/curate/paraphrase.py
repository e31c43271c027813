"""The paraphrase pass of decontamination: a benchmark question reworded keeps its meaning but
few of its 8-grams, so the n-gram scan misses it. Here every row's prompt and every benchmark
question is embedded by an OpenAI-compatible ``/v1/embeddings`` endpoint (``vllm serve`` of an
embedding model), through the engine (``postmix.llm.engine.Engine.embed``: per-text cache,
retries, health, ledger), and a row whose cosine similarity to some question reaches
``threshold`` is flagged. Off unless ``DecontamConfig.paraphrase`` is set.

Rows are embedded and compared chunk by chunk (``chunk_rows``), so memory holds one chunk of
vectors and the questions' at a time. A text the endpoint could not embed after the retries
stops the run with one line (nothing is judged without its vector); a re-run pays only for
what the cache lacks.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from postmix.curate.textview import View, view_texts
from postmix.errors import PostmixError
from postmix.io.paths import cache_folder
from postmix.llm.config import PoolConfig, load_endpoints
from postmix.llm.engine import Engine


class ParaphraseConfig(BaseModel):
    """Settings of the embedding pass."""

    model_config = ConfigDict(extra="forbid")

    endpoints: str | PoolConfig = Field(
        description="Endpoints file (YAML, as for synth/judge) or the pool itself; it must serve "
        "/v1/embeddings."
    )
    model: str | None = Field(None, description="Embedding model in the pool; None = the first.")
    threshold: float = Field(
        0.9, gt=0.0, le=1.0,
        description="Cosine similarity of a row's prompt to a benchmark question at which the row "
        "is contaminated. Depends on the model: calibrate on known paraphrases.",
    )
    on: View = Field("prompt", description="Text of the row embedded (its prompt by default).")
    max_chars: int = Field(
        8000, ge=1, description="Texts are cut to this many characters (embedding models have a "
        "context limit; a prompt's start carries its question)."
    )
    batch_size: int = Field(64, ge=1, description="Texts per embeddings request.")
    chunk_rows: int = Field(16384, ge=1, description="Rows embedded and compared per chunk.")
    cache_path: str | None = Field(
        None, description="Request cache; None = embeddings.sqlite in the postmix cache folder."
    )
    use_cache: bool = True

    def pool(self) -> PoolConfig:
        return self.endpoints if isinstance(self.endpoints, PoolConfig) else load_endpoints(
            self.endpoints)

    def cache_file(self) -> Path | None:
        if not self.use_cache:
            return None
        return Path(self.cache_path) if self.cache_path else cache_folder("embeddings") / (
            "embeddings.sqlite")


class EmbeddingFailedError(PostmixError):
    """Texts could not be embedded after the engine's retries."""


def _unit(vectors: list[list[float] | None], errors: list[str], what: str) -> np.ndarray:
    if errors:
        failed = sum(v is None for v in vectors)
        raise EmbeddingFailedError(
            f"paraphrase pass: {failed} {what} could not be embedded ({errors[0]}); run again "
            "(embeddings answered so far are cached)"
        )
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def similar_pairs(rows: Any, kind: str, config: ParaphraseConfig, questions: list[str]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], dict[str, Any]]:
    """``(row, question, cosine, row text, details)`` of every pair at or above the threshold;
    ``rows`` is an Arrow-formatted dataset (sliced chunk by chunk), ``questions`` one text per
    benchmark instance. ``details``: model, threshold and the engine's ledger."""
    pool = config.pool()
    model = config.model or pool.models[0]

    async def run() -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[str],
                             dict[str, Any]]:
        found_rows, found_questions, found_scores, texts = [], [], [], []
        async with Engine(pool, cache_path=config.cache_file()) as engine:
            vectors, errors = await engine.embed_many(
                [q[: config.max_chars] for q in questions], model=model,
                batch_size=config.batch_size)
            bench = _unit(vectors, errors, "benchmark questions")
            for start in range(0, len(rows), config.chunk_rows):
                table = rows[start : start + config.chunk_rows]
                chunk = [t[: config.max_chars] for t in
                         view_texts(table, kind, config.on).to_pylist()]
                vectors, errors = await engine.embed_many(chunk, model=model,
                                                          batch_size=config.batch_size)
                cosine = _unit(vectors, errors, "rows") @ bench.T
                at_row, at_question = np.nonzero(cosine >= np.float32(config.threshold))
                found_rows.append(at_row + start)
                found_questions.append(at_question)
                found_scores.append(cosine[at_row, at_question].astype(np.float64))
                texts.extend(chunk[r] for r in at_row.tolist())
            details = {"model": model, "threshold": config.threshold, "text_view": config.on,
                       "ledger": engine.ledger.to_dict()}
        return found_rows, found_questions, found_scores, texts, details

    found_rows, found_questions, found_scores, texts, details = asyncio.run(run())

    def joined(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    return (joined(found_rows, np.int64), joined(found_questions, np.int64),
            joined(found_scores, np.float64), texts, details)


def question_texts(benchmarks: list[Any]) -> list[str]:
    """One text per instance, in instance order: its question fields joined by newlines."""
    return ["\n".join(fields) for bench in benchmarks for fields in bench.texts]

