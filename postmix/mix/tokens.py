"""Token counts per row with a named tokenizer and its chat template, cached on disk.

A row's count is what a trainer feeds the model: the chat template rendered over the row
(sft: ``messages``; preference: ``prompt + chosen`` and ``prompt + rejected``, summed; rlvr:
``prompt`` with the generation prompt) and tokenised without further special tokens (the
template writes its own). A tokenizer without a chat template counts the message contents alone.

Tokenising is the slow part of a token-budget build, so counts are cached under the postmix cache
folder (``postmix.io.paths.cache_folder("token-counts")``), one folder per (tokenizer
fingerprint, chat-template hash, record kind), keyed by a 128-bit hash of each row's messages.
The tokenizer fingerprint hashes the tokenizer's own serialisation (vocabulary, merges,
normaliser, added tokens), not its name, so a re-saved or re-downloaded tokenizer that tokenises
the same shares the cache and a changed one does not. A rebuild reads its counts from the cache
and tokenises only rows it has not seen. Cache files are immutable Parquet parts written under a
temporary name and renamed, so concurrent builds never see half a file.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from postmix.io.paths import cache_folder
from postmix.mix.measure import MESSAGE_COLUMNS, TOKENIZE_BATCH_ROWS, load_tokenizer
from postmix.mix.sampling import keyed_hash, mix64

_KEYS = (0x5EED_7A11_0C0F_FEE1, 0x0DDB_A11C_AB1E_5EED)  # two 64-bit halves of the row hash
_ROLE_SALT = 0x2545_F491_4F6C_DD1D
CACHE_NAME = "token-counts"
CACHE_SCHEMA = pa.schema([("h1", pa.uint64()), ("h2", pa.uint64()), ("tokens", pa.int64())])


@dataclass
class TokenCounter:
    """A loaded tokenizer and what identifies its counts."""

    tokenizer: Any
    name: str
    revision: str | None  # the Hub commit it was loaded from, where transformers tells
    fingerprint: str  # xxh3 of the tokenizer's serialisation
    chat_template_hash: str  # xxh3 of the chat template, or "none"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "revision": self.revision, "fingerprint": self.fingerprint,
                "chat_template_hash": self.chat_template_hash}

    def cache_dir(self, kind: str) -> Path:
        key = f"{self.fingerprint[5:21]}-{self.chat_template_hash[5:21]}-{kind}"
        return cache_folder(CACHE_NAME) / key


def token_counter(name: str, *, trust_remote_code: bool = False) -> TokenCounter:
    tokenizer = load_tokenizer(name, trust_remote_code=trust_remote_code)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        serialised = backend.to_str()
    else:  # a slow (Python) tokenizer: its vocabulary is what it has to show
        serialised = repr(sorted(tokenizer.get_vocab().items()))
    template = getattr(tokenizer, "chat_template", None)
    return TokenCounter(
        tokenizer=tokenizer,
        name=name,
        revision=(getattr(tokenizer, "init_kwargs", {}) or {}).get("_commit_hash"),
        fingerprint=f"xxh3:{xxhash.xxh3_128_hexdigest(serialised.encode())}",
        chat_template_hash=(
            f"xxh3:{xxhash.xxh3_128_hexdigest(template.encode())}"
            if isinstance(template, str) else "none"
        ),
    )


def row_hashes(table: pa.Table, kind: str) -> np.ndarray:
    """``[n, 2]`` uint64: a 128-bit hash of each row's message columns (roles, contents, order)."""
    n = table.num_rows
    out = np.zeros((n, 2), dtype=np.uint64)
    for half, key in enumerate(_KEYS):
        total = np.zeros(n, dtype=np.uint64)
        for part, name in enumerate(MESSAGE_COLUMNS[kind]):
            column = table.column(name).combine_chunks()
            parents = pc.list_parent_indices(column).to_numpy(zero_copy_only=False)
            flat = pc.list_flatten(column)
            bounds = np.searchsorted(parents, np.arange(n + 1))
            position = np.arange(len(parents), dtype=np.int64) - bounds[parents]
            where = np.uint64(part << 32) | position.astype(np.uint64)
            turn = mix64(keyed_hash(flat.field("content"), key)
                         ^ mix64(keyed_hash(flat.field("role"), key ^ _ROLE_SALT) ^ where))
            with np.errstate(over="ignore"):
                cumulative = np.concatenate(([np.uint64(0)], np.cumsum(turn, dtype=np.uint64)))
                summed = cumulative[bounds[1:]] - cumulative[bounds[:-1]]
                turns = np.diff(bounds).astype(np.uint64)
                total = mix64(total ^ mix64(summed ^ mix64(turns ^ np.uint64(part))))
        out[:, half] = total
    return out


def _conversations(table: pa.Table, kind: str) -> list[tuple[list[dict], bool]]:
    """(messages, add_generation_prompt) per sequence the trainer sees, in row order."""
    def messages(name: str) -> list[list[dict]]:
        return [[{"role": m["role"], "content": m["content"]} for m in row or []]
                for row in table.column(name).to_pylist()]

    if kind == "sft":
        return [(m, False) for m in messages("messages")]
    if kind == "rlvr":
        return [(m, True) for m in messages("prompt")]
    prompts, chosen, rejected = messages("prompt"), messages("chosen"), messages("rejected")
    return [pair for p, c, r in zip(prompts, chosen, rejected, strict=True)
            for pair in ((p + c, False), (p + r, False))]


def _content_tokens(table: pa.Table, kind: str, tokenizer: Any) -> np.ndarray:
    total = np.zeros(table.num_rows, dtype=np.int64)
    for name in MESSAGE_COLUMNS[kind]:
        column = table.column(name).combine_chunks()
        parents = pc.list_parent_indices(column).to_numpy(zero_copy_only=False)
        texts = [t or "" for t in pc.list_flatten(column).field("content").to_pylist()]
        if texts:
            counts = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
            total += np.bincount(parents, weights=counts, minlength=table.num_rows).astype(np.int64)
    return total


def row_tokens(table: pa.Table, kind: str, counter: TokenCounter) -> np.ndarray:
    """Tokens per row, computed (no cache): the chat template rendered and tokenised."""
    tokenizer = counter.tokenizer
    total = np.zeros(table.num_rows, dtype=np.int64)
    for start in range(0, table.num_rows, TOKENIZE_BATCH_ROWS):
        part = table.slice(start, TOKENIZE_BATCH_ROWS)
        if counter.chat_template_hash == "none":
            total[start : start + part.num_rows] = _content_tokens(part, kind, tokenizer)
            continue
        sequences = _conversations(part, kind)
        texts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=g)
                 for m, g in sequences]
        counts = np.fromiter(
            (len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]),
            dtype=np.int64, count=len(texts))
        per_sequence = len(sequences) // max(part.num_rows, 1)
        total[start : start + part.num_rows] = counts.reshape(part.num_rows, per_sequence).sum(1)
    return total


def _read_cache(folder: Path) -> pa.Table:
    parts = sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
    tables = [pq.read_table(p, schema=CACHE_SCHEMA) for p in parts]
    return pa.concat_tables(tables) if tables else CACHE_SCHEMA.empty_table()


def cached_row_tokens(table: pa.Table, kind: str, counter: TokenCounter,
                      stats: dict[str, int] | None = None) -> np.ndarray:
    """Tokens per row, from the cache where it has them; the rest computed and added to it.
    ``stats`` (if given) gets ``cached`` and ``computed`` row counts added."""
    hashes = row_hashes(table, kind)
    folder = counter.cache_dir(kind)
    known = _read_cache(folder)
    keys = pa.table({"h1": hashes[:, 0], "h2": hashes[:, 1],
                     "row": np.arange(table.num_rows, dtype=np.int64)})
    found = keys.join(known.group_by(["h1", "h2"]).aggregate([("tokens", "max")]),
                      keys=["h1", "h2"], join_type="inner")
    tokens = np.full(table.num_rows, -1, dtype=np.int64)
    tokens[found.column("row").to_numpy()] = found.column("tokens_max").to_numpy()
    missing = np.flatnonzero(tokens < 0)
    if len(missing):
        tokens[missing] = row_tokens(table.take(pa.array(missing)), kind, counter)
        _, first = np.unique(hashes[missing], axis=0, return_index=True)
        new = missing[np.sort(first)]
        part = pa.table({"h1": hashes[new, 0], "h2": hashes[new, 1], "tokens": tokens[new]},
                        schema=CACHE_SCHEMA)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"part-{uuid.uuid4().hex}.parquet"
        pq.write_table(part, folder / f".{name}.partial", compression="zstd")
        os.replace(folder / f".{name}.partial", folder / name)
    if stats is not None:
        stats["cached"] = stats.get("cached", 0) + table.num_rows - len(missing)
        stats["computed"] = stats.get("computed", 0) + len(missing)
    return tokens
