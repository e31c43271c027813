"""What every model-calling stage shares (``curate synth``/``respond``, ``judge generate``/
``rate``/``compare``): a base config, the prompt loader, the outputs and the report.

A stage is: config in, prompts loaded (``load_prompts``), requests answered in input order
through one handler (``postmix.llm.run_requests_into``), every (prompt, sample) ending in exactly
one of three files owned by ``StageOutputs`` (the output, ``<out>.rejects.jsonl`` for final
decisions, ``<out>.failures.jsonl`` for what the model could not answer, which a re-run retries
from the request cache), and a ``StepReport`` whose counts reconcile. ``StageOutputs`` publishes
the three files together on success; on an exception none gets its final name and the
``.partial`` files keep what was finished.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import xxhash
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from postmix.errors import ConfigError
from postmix.io.claims import claim_outputs
from postmix.io.read import iter_raw_rows
from postmix.io.write import RowWriter, rejects_path, report_path
from postmix.llm.config import PoolConfig
from postmix.pausepoints import pause
from postmix.schemas import Message, Reject, StepReport, jsontext, stable_id


def _sibling(output: str | Path, suffix: str) -> Path:
    rejects = rejects_path(output)
    return rejects.with_name(rejects.name.removesuffix(".rejects.jsonl") + suffix)


def failures_path(output: str | Path) -> Path:
    """``out/rated.jsonl`` -> ``out/rated.failures.jsonl``."""
    return _sibling(output, ".failures.jsonl")


def default_cache_path(output: str | Path) -> Path:
    """``out/rated.jsonl`` -> ``out/rated.cache.sqlite``: re-running the command resumes it."""
    return _sibling(output, ".cache.sqlite")


class ModelStageConfig(BaseModel):
    """Settings every model-calling stage has; a stage redeclares ``sampling`` with its default."""

    model_config = ConfigDict(extra="forbid")

    sampling: dict[str, Any] = Field(default_factory=dict, description="Sampling parameters "
                                     "(temperature, max_tokens, ...) over the endpoints' defaults.")
    cache_path: str | None = Field(None, description="Request cache; None = <output>.cache.sqlite.")
    use_cache: bool = True

    def cache_file(self, output: str | Path) -> Path | None:
        if not self.use_cache:
            return None
        return Path(self.cache_path) if self.cache_path else default_cache_path(output)


class OneModelConfig(ModelStageConfig):
    """A stage that asks one model of the pool."""

    model: str | None = Field(None, description="Model in the pool; None = the first.")

    def pick_model(self, pool: PoolConfig) -> str:
        model = self.model or pool.models[0]
        check_models(pool, model)
        return model


def request_seed(seed: int, *parts: Any) -> int:
    """A per-request sampling seed: reproducible samples (vLLM honours it), and one cache entry
    per (item, sample) even when the messages are the same."""
    key = ":".join(str(p) for p in (seed, *parts))
    return xxhash.xxh32_intdigest(key.encode()) & 0x7FFFFFFF


def check_models(pool: PoolConfig, *names: str | None) -> None:
    unknown = sorted({n for n in names if n} - set(pool.models))
    if unknown:
        raise ConfigError(f"model(s) {', '.join(unknown)} not in the pool; the pool has: "
                          f"{', '.join(pool.models)}")


def config_dump(config: BaseModel, pool: PoolConfig | None = None) -> dict[str, Any]:
    """The config as the report records it, with the pool minus its secrets."""
    data = config.model_dump(mode="json")
    if pool is not None:
        data["pool"] = pool.public_dict()
    return data


def reject_counts(reasons: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(reasons).items()))


# ---------------------------------------------------------------- prompts in


@dataclass
class PromptRow:
    id: str
    prompt: list[dict[str, str]]
    source: str
    line: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Loaded:
    """Usable items plus rejects for the rest, in input order."""

    items: list[Any] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def validation_text(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(row)"
    return f"{where}: {first['msg']}"


def prompt_messages(data: dict[str, Any]) -> list[dict[str, str]] | None:
    """The conversation up to and including the last user turn, from SFT or prompt-only rows."""
    value = data.get("messages")
    if value is None:
        value = data.get("prompt")
    if isinstance(value, str):
        value = jsontext.loads(value) if value.lstrip().startswith("[") else [
            {"role": "user", "content": value}]
    if not isinstance(value, list):
        return None
    messages = [Message.model_validate(m).model_dump() for m in value]
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    return messages[: last_user + 1] if last_user >= 0 else None


class BadRow(ValueError):
    """Raised by a row parser of ``load_rows``: the row becomes a reject with this reason."""

    def __init__(self, reason: str, detail: Any):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def load_rows(source: str | Path, parse: Callable[[dict[str, Any], int], tuple[str, Any]],
              duplicate: str) -> Loaded:
    """``parse(row, line) -> (id, item)`` over every row of ``source``, ids unique; an unreadable
    row, a ``BadRow`` and a repeated id (reason ``duplicate``) each become a reject."""
    loaded = Loaded()
    seen: set[str] = set()
    for raw in iter_raw_rows(source):
        data, row_id = raw.data, None
        try:
            if data is None:
                raise BadRow(raw.error or "unreadable", raw.detail)
            row_id, item = parse(data, raw.line)
            if row_id in seen:
                raise BadRow(duplicate, f"id {row_id} appeared earlier")
        except BadRow as exc:
            loaded.rejects.append(Reject(reason=exc.reason, detail=exc.detail, line=raw.line,
                                         id=row_id or (data or {}).get("id"),
                                         row=raw.raw if data is None else data))
            continue
        seen.add(row_id)
        loaded.items.append(item)
    return loaded


def load_prompts(source: str | Path,
                 meta: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Loaded:
    """``PromptRow``s (ids unique) and a reject for every other row. ``meta`` makes a row's
    ``PromptRow.meta``; a ``ValueError`` from it rejects the row as ``bad_prompt``."""
    default_source = Path(str(source)).name.split(".")[0]

    def parse(data: dict[str, Any], line: int) -> tuple[str, PromptRow]:
        try:
            prompt = prompt_messages(data)
            row_meta = meta(data) if meta is not None else {}
        except (ValidationError, ValueError) as exc:
            raise BadRow("bad_prompt", validation_text(exc) if isinstance(exc, ValidationError)
                         else str(exc)) from None
        if not prompt:
            raise BadRow("no_prompt", "row has no 'messages' or 'prompt' with a user turn")
        prompt_id = str(data.get("id") or stable_id("prompt", prompt))
        source_name = str(data.get("source") or default_source)
        return prompt_id, PromptRow(prompt_id, prompt, source_name, line, row_meta)

    return load_rows(source, parse, "duplicate_prompt")


# ---------------------------------------------------------------- rows out


class StageOutputs:
    """The output, rejects (when the stage has them) and failures writers of one run, the reason
    of every row not kept, and the report. Use as a context manager: a clean exit publishes
    all three files, an exception leaves each as ``.partial`` with its finished rows."""

    def __init__(self, output: str | Path, *, inputs: Sequence[str | Path] = (),
                 schema: pa.Schema | None = None, rejects_file: bool = True,
                 started: float | None = None):
        self.path = Path(output)
        # claimed before any writer opens its .partial: no output may be an input, and a second
        # run on the same output is refused instead of splicing its rows into this one's
        files = [self.path, failures_path(self.path), report_path(self.path)]
        files += [rejects_path(self.path)] if rejects_file else []
        self._claim = ExitStack()
        self._claim.enter_context(claim_outputs(files, inputs=inputs))
        try:
            self._open(schema, rejects_file)
        except BaseException:
            self._claim.close()
            raise
        self.started = time.perf_counter() if started is None else started

    def _open(self, schema: pa.Schema | None, rejects_file: bool) -> None:
        self.reasons: list[str] = []
        self.failed: Counter = Counter()  # reasons of the model calls that failed (fail())
        self.out = RowWriter(self.path, schema=schema)
        self.failures = RowWriter(failures_path(self.path))
        # stages without a rejects file (the judge steps) list unusable input among the failures
        self.rejects = RowWriter(rejects_path(self.path)) if rejects_file else self.failures
        # closed in this order: the output is renamed into place last
        self._writers = [self.failures] + ([self.rejects] if rejects_file else []) + [self.out]

    def keep(self, row: dict[str, Any]) -> None:
        self.out.write(row)

    def reject(self, reject: Reject) -> None:
        """A final decision: the row is not wanted (``<out>.rejects.jsonl``)."""
        self.reasons.append(reject.reason)
        self.rejects.write(reject.to_row())

    def fail(self, reject: Reject) -> None:
        """The model could not answer (``<out>.failures.jsonl``): a re-run retries it."""
        self.reasons.append(reject.reason)
        self.failed[reject.reason] += 1
        self.failures.write(reject.to_row())

    def __enter__(self) -> StageOutputs:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            pause("model_stage:answered")
        try:
            for writer in self._writers:
                writer.abort() if exc_type is not None else writer.close()
        except BaseException:
            for writer in self._writers:  # one writer failed: the rest keep their partials
                writer.abort()
            self._claim.close()
            raise
        if exc_type is not None:
            self._claim.close()

    def report(self, step: str, *, config: dict[str, Any], rows_in: int, inputs: list[str],
               details: dict[str, Any]) -> StageResult:
        """Write the reconciled report next to the output (call after the ``with`` block)."""
        rejects = self.rejects.path if self.rejects is not self.failures else None
        outputs = {"data": str(self.path), **({"rejects": str(rejects)} if rejects else {}),
                   "failures": str(self.failures.path)}
        report = StepReport(step=step, config=config, rows_in=rows_in, rows_out=self.out.rows,
                            rejected=reject_counts(self.reasons),
                            timings={"total": round(time.perf_counter() - self.started, 3)},
                            inputs=inputs, outputs=outputs, details=details)
        try:
            report.write(report_path(self.path))
        finally:
            self._claim.close()  # the outputs are complete: another run may take them now
        return StageResult(self.path, self.failures.path, report, rejects, dict(self.failed))


@dataclass
class StageResult:
    """Where a model-calling stage wrote, and its report (``rejects``: None for the judge steps,
    which list unusable input among the failures)."""

    output: Path
    failures: Path
    report: StepReport
    rejects: Path | None = None
    failed: dict[str, int] = field(default_factory=dict)  # failed model calls by reason
