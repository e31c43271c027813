"""The SFT pre-flight: what TRL will train on, measured with the model's tokenizer before any
weights load (``postmix train check``, and the first thing ``train sft`` does).

It follows TRL's ``SFTTrainer`` step by step, with TRL's own functions, so what it reports is what
the trainer will do:

1. the chat template: ``trl.chat_template_path`` if set; then, with ``assistant_only_loss``, the
   model's own template if it has ``{% generation %}`` markers, else TRL's training template for
   that model family (``get_training_chat_template``), else nothing can mark the assistant's
   tokens and the pre-flight stops in one line with the fix;
2. every checked row through ``apply_chat_template(..., return_assistant_tokens_mask=True)``, as
   TRL tokenises it: the trained tokens are the assistant mask (all tokens without
   ``assistant_only_loss``);
3. the cut at ``max_length``: with packing TRL's ``bfd`` strategy truncates each conversation to
   ``max_length`` (``bfd_split`` and ``wrapped`` split it instead, cutting nothing); without
   packing ``truncation_mode`` keeps the start or the end.

Per source it reports the trainable-token share and the share of rows and tokens cut, and keeps
one example per source with its trained tokens marked (terminal and HTML). Rows are checked up to
``rows_per_source`` per source (the first ones in the data's order, a mix's order being shuffled).
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from postmix.errors import PostmixError
from postmix.train.config import SFTTrainConfig

ROWS_PER_SOURCE = 1000
TOKENIZE_BATCH = 256
PREFLIGHT_HTML = "preflight.html"
TEMPLATE_SUFFIXES = (".jinja", ".j2")
EXAMPLE_CHARS = 2400  # the terminal shows the start and the end of longer examples


class PreflightError(PostmixError):
    """The run cannot train what it says it trains (e.g. no way to mark the assistant's tokens)."""


@dataclass
class Example:
    id: str | None
    spans: list[tuple[str, str]]  # (text, "prompt" | "trained" | "cut")


@dataclass
class SourceCheck:
    source: str
    rows: int
    rows_checked: int
    tokens: int
    trained_tokens: int  # tokens with a label, after the cut
    rows_cut: int
    tokens_cut: int
    trained_tokens_cut: int  # assistant tokens lost to the cut
    rows_untrained: int  # rows the cut leaves with no trained token (TRL drops them unpacked)
    example: Example | None = None

    @property
    def trained_share(self) -> float:
        return self.trained_tokens / max(self.tokens - self.tokens_cut, 1)

    @property
    def rows_cut_share(self) -> float:
        return self.rows_cut / max(self.rows_checked, 1)

    @property
    def tokens_cut_share(self) -> float:
        return self.tokens_cut / max(self.tokens, 1)

    def numbers(self) -> dict[str, Any]:
        values = {k: v for k, v in asdict(self).items() if k != "example"}
        return values | {"trained_share": round(self.trained_share, 6),
                         "rows_cut_share": round(self.rows_cut_share, 6),
                         "tokens_cut_share": round(self.tokens_cut_share, 6)}


@dataclass
class Preflight:
    model: str
    template: str  # which chat template TRL will use, in words
    template_source: str  # "model" | "trl:<family>" | "chat_template_path"
    assistant_only_loss: bool
    max_length: int | None
    cut: str  # how max_length cuts: keep_start | keep_end | none (...)
    stop_token_trained: bool | None  # TRL's check that the end-of-turn token is in the mask
    sources: list[SourceCheck] = field(default_factory=list)

    def totals(self) -> dict[str, Any]:
        total = SourceCheck("all", *(sum(getattr(s, k) for s in self.sources) for k in (
            "rows", "rows_checked", "tokens", "trained_tokens", "rows_cut", "tokens_cut",
            "trained_tokens_cut", "rows_untrained")))
        return total.numbers()

    def to_dict(self) -> dict[str, Any]:
        """The numbers (no example text): what the run card records."""
        return {
            "model": self.model, "template": self.template, "template_source": self.template_source,
            "assistant_only_loss": self.assistant_only_loss, "max_length": self.max_length,
            "cut": self.cut, "stop_token_trained": self.stop_token_trained,
            "sources": [s.numbers() for s in self.sources], "totals": self.totals(),
        }

    def summary_lines(self) -> list[str]:
        t = self.totals()
        lines = [f"chat template: {self.template}",
                 f"loss on: {'assistant tokens only' if self.assistant_only_loss else 'all tokens'}"
                 f"; max_length {self.max_length}, cut: {self.cut}",
                 f"checked {t['rows_checked']:,} of {t['rows']:,} rows: {t['trained_share']:.1%} "
                 f"of tokens trained, {t['rows_cut_share']:.1%} of rows and "
                 f"{t['tokens_cut_share']:.1%} of tokens cut by max_length"]
        if t["rows_untrained"]:
            lines.append(f"warning: {t['rows_untrained']:,} checked rows keep no trained token "
                         "after the cut (raise max_length)")
        if self.stop_token_trained is False:
            lines.append("warning: the end-of-turn token is outside the assistant mask, so the "
                         "model may never learn to stop (TRL's check)")
        return lines

    def render(self, console: Any) -> None:
        """Numbers per source, then one example per source with its trained tokens marked."""
        from rich.table import Table
        from rich.text import Text

        for line in self.summary_lines():
            console.print(line, highlight=False)
        table = Table("source", "rows", "checked", "tokens", "trained", "rows cut", "tokens cut",
                      "trained tokens cut", title="pre-flight")
        for s in self.sources:
            table.add_row(s.source, f"{s.rows:,}", f"{s.rows_checked:,}", f"{s.tokens:,}",
                          f"{s.trained_share:.1%}", f"{s.rows_cut_share:.1%}",
                          f"{s.tokens_cut_share:.1%}", f"{s.trained_tokens_cut:,}")
        console.print(table)
        styles = {"prompt": "dim", "trained": "bold black on green", "cut": "strike red"}
        for s in self.sources:
            if s.example is None:
                continue
            console.print(f"[bold]{s.source}[/bold] example {s.example.id} "
                          "(green: trained, dim: not trained, struck out: cut by max_length)")
            text = Text()
            for piece, state in _shortened(s.example.spans, EXAMPLE_CHARS):
                text.append(piece, style=styles[state])
            console.print(text)

    def html(self) -> str:
        """A self-contained page: the numbers and the examples with trained tokens highlighted."""
        esc = html.escape
        rows = "".join(
            f"<tr><td>{esc(s.source)}</td><td>{s.rows:,}</td><td>{s.rows_checked:,}</td>"
            f"<td>{s.tokens:,}</td><td>{s.trained_share:.1%}</td><td>{s.rows_cut_share:.1%}</td>"
            f"<td>{s.tokens_cut_share:.1%}</td><td>{s.trained_tokens_cut:,}</td></tr>"
            for s in self.sources)
        tags = {"prompt": "span", "trained": "mark", "cut": "del"}
        examples = "".join(
            f"<h3>{esc(s.source)}: {esc(str(s.example.id))}</h3><pre>"
            + "".join(f"<{tags[state]}>{esc(piece)}</{tags[state]}>"
                      for piece, state in s.example.spans)
            + "</pre>"
            for s in self.sources if s.example is not None)
        summary = "".join(f"<p>{esc(line)}</p>" for line in self.summary_lines())
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>pre-flight: "
            f"{esc(self.model)}</title><style>body{{font-family:sans-serif;margin:2em}}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
            "text-align:right}pre{white-space:pre-wrap;background:#f6f6f6;padding:1em}"
            "mark{background:#b6f2b6}span{color:#777}del{color:#c00}</style></head><body>"
            f"<h1>pre-flight: {esc(self.model)}</h1>{summary}"
            "<table><tr><th>source</th><th>rows</th><th>checked</th><th>tokens</th>"
            "<th>trained</th><th>rows cut</th><th>tokens cut</th><th>trained tokens cut</th></tr>"
            f"{rows}</table><h2>One example per source</h2><p><mark>highlighted</mark>: trained;"
            " grey: not trained; <del>struck out</del>: cut by max_length.</p>"
            f"{examples}</body></html>")

    def write_html(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.html(), encoding="utf-8")
        return path


def _shortened(spans: list[tuple[str, str]], limit: int) -> list[tuple[str, str]]:
    """The spans, with the middle of a text longer than ``limit`` characters left out."""
    if sum(len(text) for text, _ in spans) <= limit:
        return spans
    half = limit // 2

    def take(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
        out, used = [], 0
        for text, state in items:
            if used >= half:
                break
            out.append((text[: half - used], state))
            used += len(out[-1][0])
        return out

    head = take(spans)
    tail = [(text[::-1], state) for text, state in take([(t[::-1], s) for t, s in spans[::-1]])]
    return [*head, ("\n[...]\n", "prompt"), *tail[::-1]]


# ---------------------------------------------------------------------------- the template


def _load_tokenizer(model: str, trust_remote_code: bool) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        problem: Exception = exc
        try:  # a folder that is not a model says so better through its config
            from transformers import AutoConfig

            AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as config_exc:
            problem = config_exc
        first = (str(problem).strip().splitlines() or [type(problem).__name__])[0]
        raise PreflightError(f"cannot set up sft on model {model!r}: {first[:300]} (check the "
                             "path or Hub name, your network, and HF_TOKEN for gated models)"
                             ) from None


def _trl_family(template: str) -> str:
    """The name TRL gives the training template it picked (``qwen3``, ``llama3``, ...)."""
    from trl import chat_template_utils

    suffix = "_training_chat_template"
    for name, value in vars(chat_template_utils).items():
        if name.endswith(suffix) and value == template:
            return name[: -len(suffix)]
    return "this model family"


def choose_template(tokenizer: Any, config: SFTTrainConfig, model: str) -> tuple[str | None,
                                                                                  str, str]:
    """``(template to pass to apply_chat_template or None for the tokenizer's, description,
    source)``, as ``SFTTrainer`` chooses; stops when assistant-only loss cannot work."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    source, origin = "model", f"{model}'s own"
    path = config.trl.get("chat_template_path")
    if path:
        if Path(path).is_file() and str(path).endswith(TEMPLATE_SUFFIXES):
            tokenizer.chat_template = Path(path).read_text(encoding="utf-8")
        else:  # TRL clones the template of another tokenizer (adding its special tokens)
            tokenizer.chat_template = _load_tokenizer(path, config.trust_remote_code).chat_template
        source, origin = "chat_template_path", f"{path} (trl.chat_template_path)"
    if not tokenizer.chat_template:
        raise PreflightError(
            f"{model} has no chat template, so its conversations cannot be tokenised for SFT; "
            "fix: set trl: {chat_template_path: FILE.jinja} (or a tokenizer with a chat template)")
    if not config.assistant_only_loss:
        return None, origin + " (loss on every token)", source
    if has_generation_markers(tokenizer.chat_template):
        return None, origin + ", with {% generation %} markers", source
    try:
        swapped = get_training_chat_template(tokenizer)
    except ValueError:
        swapped = None
    if swapped is None:
        raise PreflightError(
            f"assistant-only loss cannot work with {origin} chat template: it has no "
            "{% generation %} markers to mark the assistant's tokens and TRL has no training "
            "template for it; fix: set assistant_only_loss: false (loss on every token), or "
            "trl: {chat_template_path: FILE.jinja} with a template that wraps each assistant "
            "message in {% generation %}...{% endgeneration %}")
    family = _trl_family(swapped)
    return (swapped, f"TRL's training template for {family} ({origin} has no "
            "{% generation %} markers)", f"trl:{family}")


def _cut_rule(config: SFTTrainConfig) -> str:
    import trl

    defaults = {f.name: f.default for f in trl.SFTConfig.__dataclass_fields__.values()}
    if config.max_length is None:
        return "none (no max_length)"
    if config.packing:
        strategy = config.trl.get("packing_strategy", defaults["packing_strategy"])
        if strategy == "bfd":
            return "keep_start (bfd packing truncates each conversation)"
        return f"none ({strategy} packing splits long conversations)"
    return str(config.trl.get("truncation_mode", defaults["truncation_mode"]))


# ---------------------------------------------------------------------------- the rows


def _spans(tokenizer: Any, ids: list[int], states: list[str]) -> list[tuple[str, str]]:
    """Consecutive tokens of one state decoded together (a lone byte-level token may be half a
    character)."""
    spans: list[tuple[str, str]] = []
    start = 0
    for end in range(1, len(ids) + 1):
        if end == len(ids) or states[end] != states[start]:
            spans.append((tokenizer.decode(ids[start:end]), states[start]))
            start = end
    return spans


def _check_source(name: str, indices: np.ndarray, rows: int, dataset: Any, ids: list[Any],
                  tokenizer: Any, template: str | None, config: SFTTrainConfig,
                  cut: str, model: str) -> SourceCheck:
    check = SourceCheck(name, rows, len(indices), 0, 0, 0, 0, 0, 0)
    limit = config.max_length if not cut.startswith("none") else None
    for start in range(0, len(indices), TOKENIZE_BATCH):
        batch = indices[start:start + TOKENIZE_BATCH].tolist()
        conversations = [row["messages"] for row in dataset.select(batch)]
        out = tokenizer.apply_chat_template(
            conversations, tokenize=True, return_dict=True, chat_template=template,
            return_assistant_tokens_mask=config.assistant_only_loss)
        masks = out.get("assistant_masks") if config.assistant_only_loss else None
        for position, row_ids in enumerate(out["input_ids"]):
            mask = np.asarray(masks[position] if masks is not None else [1] * len(row_ids))
            if not mask.any():
                raise PreflightError(
                    f"row {ids[batch[position]]} of source {name!r} gets no trained token under "
                    f"{model}'s chat template (TRL stops on it too); fix: a chat template whose "
                    "{% generation %} markers cover the assistant messages (trl: "
                    "{chat_template_path: FILE.jinja}), or assistant_only_loss: false")
            kept = np.ones(len(row_ids), dtype=bool)
            if limit is not None and len(row_ids) > limit:
                if cut.startswith("keep_end"):
                    kept[: len(row_ids) - limit] = False
                else:
                    kept[limit:] = False
            check.tokens += len(row_ids)
            trained = int((mask.astype(bool) & kept).sum())
            check.trained_tokens += trained
            check.rows_untrained += int(trained == 0)
            check.rows_cut += int(not kept.all())
            check.tokens_cut += int((~kept).sum())
            check.trained_tokens_cut += int((mask.astype(bool) & ~kept).sum())
            if check.example is None:
                states = ["cut" if not k else "trained" if m else "prompt"
                          for m, k in zip(mask.tolist(), kept.tolist(), strict=True)]
                check.example = Example(ids[batch[position]],
                                        _spans(tokenizer, list(row_ids), states))
    return check


def preflight(model: str, dataset: Any, config: SFTTrainConfig, *,
              sources: list[str] | None = None, ids: list[Any] | None = None,
              rows_per_source: int = ROWS_PER_SOURCE, tokenizer: Any = None) -> Preflight:
    """Check ``dataset`` (rows with ``messages``) for SFT of ``model`` under ``config``.

    ``sources`` names each row's source (one group when absent); ``ids`` labels the examples.
    Raises ``PreflightError`` (one line, with the fix) when the run cannot work as configured.
    """
    if tokenizer is None:
        tokenizer = _load_tokenizer(model, config.trust_remote_code)
    template, described, origin = choose_template(tokenizer, config, model)
    stop_trained = None
    if config.assistant_only_loss:
        from trl.chat_template_utils import is_chat_template_stop_token_trained

        stop_trained = bool(is_chat_template_stop_token_trained(tokenizer, chat_template=template))
    cut = _cut_rule(config)
    report = Preflight(model, described, origin, config.assistant_only_loss, config.max_length,
                       cut, stop_trained)
    labels = np.asarray(sources if sources else ["all"] * len(dataset), dtype=object)
    ids = list(ids) if ids is not None else list(range(len(dataset)))
    for name in dict.fromkeys(labels.tolist()):  # sources in order of first appearance
        where = np.flatnonzero(labels == name)
        report.sources.append(_check_source(
            str(name), where[:rows_per_source], len(where), dataset, ids, tokenizer, template,
            config, cut, model))
    return report
