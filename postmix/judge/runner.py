"""What the model-calling judge steps share: an engine over the pool, results streamed in input
order into the output and failures files, a progress bar, and the engine's ledger for the report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from postmix.judge.inputs import default_cache_path
from postmix.llm import ChatRequest, ChatResult, Engine, Ledger, PoolConfig
from postmix.progress import progress_bar


def resolve_cache(output: str | Path, cache_path: str | Path | None, use_cache: bool) -> Path | None:
    if not use_cache:
        return None
    return Path(cache_path) if cache_path else default_cache_path(output)


def run_requests_into(pool: PoolConfig, requests: Iterable[ChatRequest],
                      handle: Callable[[ChatResult], None], *, total: int, description: str,
                      cache_path: Path | None, progress: bool | None = None) -> Ledger:
    """Answer ``requests`` (in input order) through ``handle``; returns the engine's ledger."""

    async def _drive() -> Ledger:
        async with Engine(pool, cache_path=cache_path) as engine:
            with progress_bar(description, total, enabled=progress) as bar:
                async for result in engine.map(requests):
                    handle(result)
                    bar.advance(1)
            return engine.ledger

    return asyncio.run(_drive())


def histogram(scores: Iterable[int]) -> dict[str, int]:
    counts = dict.fromkeys(("1", "2", "3", "4", "5"), 0)
    for score in scores:
        counts[str(score)] += 1
    return counts


def reject_counts(reasons: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for reason in reasons:
        out[reason] = out.get(reason, 0) + 1
    return dict(sorted(out.items()))


def config_dump(config: Any, pool: PoolConfig | None = None) -> dict[str, Any]:
    data = config.model_dump(mode="json")
    if pool is not None:
        data["pool"] = pool.public_dict()
    return data
