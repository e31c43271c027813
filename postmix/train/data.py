"""The rows a run trains on: one mix version (``--mix name@N``) or one postmix file (``--data``).

Either way the result says exactly what was read (mix ref and content hash, or file path and
bytes hash) so the run card can name it, and the dataset is cut down to the columns TRL reads:

- SFT: ``messages`` (TRL's conversational language-modelling format);
- DPO: ``prompt``, ``chosen``, ``rejected`` (TRL's conversational preference format);
- RLVR: ``prompt`` plus ``ground_truth``, ``verifier``, ``constraints``, which GRPO hands to the
  reward function as keyword arguments.

It also keeps, beside the dataset, which source each row came from (the mix's source names, from
its provenance; a file's ``source`` column) and a mix's token counts, for the pre-flight and the
run card.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postmix.errors import ConfigError, PostmixError
from postmix.io.fingerprint import path_hash

KIND_OF_METHOD = {"sft": "sft", "dpo": "preference", "rlvr": "rlvr"}
COLUMNS = {
    "sft": ["messages"],
    "dpo": ["prompt", "chosen", "rejected"],
    "rlvr": ["prompt", "ground_truth", "verifier", "constraints"],
}


@dataclass
class TrainingData:
    dataset: Any  # datasets.Dataset with only the columns TRL reads
    kind: str
    rows: int
    mix_ref: str | None = None
    content_hash: str | None = None
    path: str | None = None
    rejects: list[Any] = field(default_factory=list)  # rows of --data that are not records
    sources: list[str] = field(default_factory=list)  # per row: the source it came from
    ids: list[str] = field(default_factory=list)  # per row: its id (the dataset keeps no ids)
    # a mix's token counts, from its manifest: {"tokenizer", "total", "per_source"}
    tokens: dict[str, Any] | None = None

    def describe(self) -> dict[str, Any]:
        return {"mix": self.mix_ref, "content_hash": self.content_hash, "path": self.path,
                "kind": self.kind, "rows": self.rows, "rejected_rows": len(self.rejects),
                "tokens": self.tokens}


def _mix_sources(resolved: Any) -> list[str]:
    import pyarrow.parquet as pq

    provenance = resolved.path / resolved.manifest.get("provenance", "provenance.parquet")
    if not provenance.exists():
        return []
    return pq.read_table(provenance, columns=["mix_source"]).column("mix_source").to_pylist()


def _mix_tokens(manifest: dict[str, Any]) -> dict[str, Any] | None:
    if manifest.get("tokens") is None:
        return None
    return {"tokenizer": manifest.get("tokenizer"), "total": manifest["tokens"],
            "per_source": {s["name"]: s.get("tokens") for s in manifest["sources"]}}


def load_training_data(method: str, *, mix: str | None = None, data: str | Path | None = None,
                       home: str | Path | None = None) -> TrainingData:
    """Resolve ``mix`` (preferred) or read ``data``; check the record kind fits ``method``."""
    if (mix is None) == (data is None):
        raise ConfigError("pass exactly one of --mix name@N or --data PATH")
    if mix is not None:
        from postmix import mix as mixes

        resolved = mixes.resolve(mix, home=home)
        result = TrainingData(resolved.dataset, resolved.kind, resolved.rows, mix_ref=resolved.ref,
                              content_hash=resolved.content_hash, path=str(resolved.path),
                              sources=_mix_sources(resolved),
                              tokens=_mix_tokens(resolved.manifest))
        origin = f"mix {resolved.ref}"
    else:
        from postmix.io import load_records

        ds, kind, rejects = load_records(data)
        path = Path(str(data))
        digest = path_hash(path)[:24] if path.exists() else getattr(ds, "_fingerprint", None)
        result = TrainingData(
            ds, kind, len(ds), content_hash=digest, path=str(data), rejects=rejects
        )
        origin = str(data)
    expected = KIND_OF_METHOD[method]
    if result.kind != expected:
        raise PostmixError(
            f"{origin} holds {result.kind} rows but `train {method}` needs {expected} "
            f"rows; pick a {expected} mix or file"
        )
    if result.rows == 0:
        raise PostmixError(f"{origin} has no {expected} rows to train on")
    if not result.sources and "source" in result.dataset.column_names:
        result.sources = [str(s) for s in result.dataset["source"]]
    if "id" in result.dataset.column_names:
        result.ids = [str(i) for i in result.dataset["id"]]
    result.dataset = result.dataset.select_columns(COLUMNS[method])
    return result
