"""Versioned training mixes: specs, deterministic builds, the registry, lineage.

The API the trainers use::

    from postmix import mix
    ds = mix.load("tulu3-sft@3")                 # datasets.Dataset
    resolved = mix.resolve("tulu3-sft")          # latest version: .ref, .content_hash, .kind, .path
    mix.record_run(resolved.ref, {"run_id": ..., "output_dir": ..., "method": "sft", ...})
    mix.record_eval("evals/sft/results.json")    # scores -> that run and version (lineage)
    board = mix.leaderboard(["tulu3-sft"], baseline="tulu3-sft@1")

The registry lives in ``home``, else ``$POSTMIX_HOME``, else ``./.postmix``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from postmix.mix.registry import MixNotFoundError, Registry, ResolvedMix, parse_ref, registry_home
from postmix.mix.spec import MixSpec, SourceSpec, StepSpec, load_spec, parse_spec

if TYPE_CHECKING:
    import datasets

    from postmix.curate.executor import Executor
    from postmix.mix.builder import BuildResult

__all__ = [
    "MixNotFoundError",
    "MixSpec",
    "Registry",
    "ResolvedMix",
    "SourceSpec",
    "StepSpec",
    "build",
    "diff",
    "export",
    "list_mixes",
    "load",
    "load_spec",
    "parse_ref",
    "parse_spec",
    "leaderboard",
    "record_eval",
    "record_run",
    "registry_home",
    "report",
    "resolve",
]


def resolve(ref: str, *, home: str | Path | None = None) -> ResolvedMix:
    """``name@N`` or ``name`` (latest) -> the published version;
    MixNotFoundError lists what exists."""
    return Registry(home).resolve(ref)


def load(ref: str, *, home: str | Path | None = None) -> datasets.Dataset:
    """The rows of a mix version as a ``datasets.Dataset`` with the record kind's features."""
    return resolve(ref, home=home).dataset


def record_run(ref: str, run: dict[str, Any], *, home: str | Path | None = None) -> None:
    """Register a training run against a mix version (lineage);
    the same run_id is updated in place."""
    Registry(home).record_run(ref, run)


def list_mixes(*, home: str | Path | None = None, name: str | None = None) -> list[dict[str, Any]]:
    """Every published version (optionally of one mix), oldest first."""
    return Registry(home).list_versions(name)


def build(spec: Any, *, home: str | Path | None = None, tokenizer: str | None = None,
          base: str | Path | None = None, progress: bool | None = None,
          engine: str | None = None, executor: Executor | None = None) -> BuildResult:
    from postmix.mix.builder import build as run_build

    return run_build(spec, home=home, tokenizer=tokenizer, base=base, progress=progress,
                     engine=engine, executor=executor)


def diff(a: str, b: str, *, home: str | Path | None = None, sample: int = 10) -> dict[str, Any]:
    from postmix.mix.difference import diff as run_diff

    return run_diff(a, b, home=home, sample=sample)


def export(ref: str, destination: str | Path | None = None, *, home: str | Path | None = None,
           format: str = "parquet", hub: str | None = None, private: bool = False,
           license: str | None = None) -> str:
    """See ``postmix.mix.exporter.export``: files + dataset card, or a push to the Hub."""
    from postmix.mix.exporter import export as run_export

    return run_export(ref, destination, home=home, format=format, hub=hub, private=private,
                      license=license)


def report(ref: str, html: str | Path, *, home: str | Path | None = None) -> Path:
    from postmix.mix.html_report import write_report

    return write_report(ref, html, home=home)


def record_eval(result: Any, results_path: str | Path | None = None, *,
                home: str | Path | None = None, mix: str | None = None,
                run_id: str | None = None) -> dict[str, Any]:
    """See ``postmix.mix.lineage.record_eval``: an eval result tied to its mix version and run."""
    from postmix.mix.lineage import record_eval as run_record

    return run_record(result, results_path, home, mix=mix, run_id=run_id)


def leaderboard(mixes: list[str] | None = None, *, home: str | Path | None = None,
                baseline: str | None = None,
                benchmarks: list[str] | None = None) -> dict[str, Any]:
    """See ``postmix.mix.comparison.leaderboard``: versions x benchmarks against a baseline."""
    from postmix.mix.comparison import leaderboard as run_board

    return run_board(mixes, home=home, baseline=baseline, benchmarks=benchmarks)
