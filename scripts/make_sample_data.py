"""Regenerate the sample data shipped in ``postmix/data/`` (deterministic; written by the project).

The sample is small but shaped like a real SFT pool: several sources, exact duplicates across
sources, near duplicates (light edits), a few rows that copy GSM8K test questions (for the
decontamination demo), and a few malformed rows (for the rejects demo).

    python scripts/make_sample_data.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "postmix" / "data"

TOPICS = [
    "photosynthesis", "the water cycle", "compound interest", "binary search", "the French Revolution",
    "plate tectonics", "vaccines", "black holes", "supply and demand", "recursion", "climate feedback loops",
    "the immune system", "public key cryptography", "sourdough baking", "marathon training", "jazz harmony",
    "container gardening", "the Roman Republic", "neural networks", "tidal energy", "coral reefs",
    "hash tables", "inflation", "sleep cycles", "volcanoes", "the printing press", "electric motors",
    "bird migration", "gradient descent", "version control", "the Silk Road", "ocean currents",
]
AUDIENCES = ["a ten-year-old", "a first-year student", "a busy manager", "a retired engineer",
             "someone new to the subject", "a high-school teacher"]
ASKS = [
    "Explain {topic} to {aud} in a few short paragraphs.",
    "What are the three most important ideas behind {topic}? Keep it practical for {aud}.",
    "Write a short study guide on {topic} for {aud}, with one example.",
    "I keep getting confused about {topic}. Can you clear it up for {aud}?",
    "Give me a concise overview of {topic} and a common misconception about it.",
]
OPENERS = ["Sure.", "Good question.", "Here is a clear way to think about it.", "Happy to help.",
           "Let's take it step by step."]
FACT_VERBS = ["shapes", "drives", "limits", "explains", "connects to", "depends on"]
FACT_NOUNS = ["everyday decisions", "the behaviour of the whole system", "how experts reason about it",
              "the trade-offs involved", "what we can measure", "the long-term outcome", "small changes",
              "the examples people remember"]

CODE_TASKS = [
    ("reverse a linked list", "def reverse(head):\n    prev = None\n    while head:\n        head.next, prev, head = prev, head, head.next\n    return prev"),
    ("count word frequencies in a text", "from collections import Counter\n\ndef word_counts(text):\n    return Counter(text.lower().split())"),
    ("check whether a string is a palindrome", "def is_palindrome(s):\n    t = [c.lower() for c in s if c.isalnum()]\n    return t == t[::-1]"),
    ("merge two sorted lists", "def merge(a, b):\n    out, i, j = [], 0, 0\n    while i < len(a) and j < len(b):\n        if a[i] <= b[j]:\n            out.append(a[i]); i += 1\n        else:\n            out.append(b[j]); j += 1\n    return out + a[i:] + b[j:]"),
    ("flatten a nested list", "def flatten(xs):\n    for x in xs:\n        if isinstance(x, list):\n            yield from flatten(x)\n        else:\n            yield x"),
    ("compute a moving average", "def moving_average(xs, k):\n    return [sum(xs[i:i + k]) / k for i in range(len(xs) - k + 1)]"),
    ("find duplicates in a list", "def duplicates(xs):\n    seen, dup = set(), set()\n    for x in xs:\n        (dup if x in seen else seen).add(x)\n    return dup"),
    ("parse a CSV line with quotes", "import csv\n\ndef parse_line(line):\n    return next(csv.reader([line]))"),
]
LANGS = ["Python"]

NAMES = ["Maya", "Tom", "Priya", "Lucas", "Aiko", "Omar", "Elena", "Sam", "Noor", "Jonas"]
ITEMS = [("apples", 3), ("pencils", 2), ("stickers", 1), ("books", 12), ("tickets", 8), ("cupcakes", 4)]


def explain(rng: random.Random, topic: str, aud: str) -> str:
    sentences = [rng.choice(OPENERS)]
    for _ in range(rng.randint(5, 8)):
        sentences.append(
            f"In {topic}, {rng.choice(['one key idea', 'a central mechanism', 'a useful rule of thumb', 'the main pattern'])} "
            f"{rng.choice(FACT_VERBS)} {rng.choice(FACT_NOUNS)}, and {rng.choice(['this matters because', 'you can see it when', 'a good test is whether'])} "
            f"{rng.choice(['the inputs change', 'you compare two cases', 'you follow one example to the end', 'the scale grows'])}."
        )
    sentences.append(f"For {aud}, the best next step is to try one small example and check each step.")
    return " ".join(sentences)


def general(rng: random.Random, i: int) -> dict:
    topic, aud = rng.choice(TOPICS), rng.choice(AUDIENCES)
    user = rng.choice(ASKS).format(topic=topic, aud=aud)
    msgs = [{"role": "user", "content": user}, {"role": "assistant", "content": explain(rng, topic, aud)}]
    if rng.random() < 0.25:
        msgs.insert(0, {"role": "system", "content": "You are a patient, accurate tutor."})
    if rng.random() < 0.2:
        msgs += [{"role": "user", "content": f"Can you give one concrete example about {topic}?"},
                 {"role": "assistant", "content": explain(rng, topic, aud)}]
    return {"id": f"general-{i:04d}", "messages": msgs, "source": "general_chat"}


def code(rng: random.Random, i: int) -> dict:
    task, solution = rng.choice(CODE_TASKS)
    user = rng.choice([f"Write a Python function to {task}.", f"How do I {task} in Python?",
                       f"Show me idiomatic Python to {task}, please."])
    answer = (f"Here is a compact solution to {task}:\n\n```python\n{solution}\n```\n\n"
              f"It runs in linear time in the size of the input for the common case. "
              f"{rng.choice(['Add tests for empty input.', 'Check the edge cases first.', 'Type hints make it clearer.'])}")
    return {"id": f"code-{i:04d}", "messages": [{"role": "user", "content": user},
                                                  {"role": "assistant", "content": answer}],
            "source": "code_help"}


def math(rng: random.Random, i: int) -> dict:
    name, (item, price) = rng.choice(NAMES), rng.choice(ITEMS)
    a, b = rng.randint(2, 30), rng.randint(2, 15)
    total = a * price + b * price
    user = (f"{name} buys {a} {item} on Monday and {b} more on Tuesday. Each costs ${price}. "
            f"How much does {name} spend in total?")
    answer = (f"{name} buys {a} + {b} = {a + b} {item}. At ${price} each, that is {a + b} * {price} = "
              f"{total} dollars.\n#### {total}")
    return {"id": f"math-{i:04d}", "messages": [{"role": "user", "content": user},
                                                  {"role": "assistant", "content": answer}],
            "source": "math_word"}


def near_copy(rng: random.Random, row: dict, new_id: str) -> dict:
    """A light edit of the last assistant turn: one word changed or a sentence appended."""
    copy = json.loads(json.dumps(row))
    last = copy["messages"][-1]
    words = last["content"].split(" ")
    k = rng.randrange(len(words))
    words[k] = rng.choice(["really", "also", "simply", "often"])
    last["content"] = " ".join(words)
    copy["id"] = new_id
    return copy


def main() -> None:
    rng = random.Random(20261124)
    rows = [general(rng, i) for i in range(160)]
    rows += [code(rng, i) for i in range(70)]
    rows += [math(rng, i) for i in range(60)]
    near = [near_copy(rng, rows[rng.randrange(160)], f"general-near-{i:03d}") for i in range(24)]
    exact = []
    for i in range(12):
        src = json.loads(json.dumps(rows[rng.randrange(len(rows))]))
        src["id"], src["source"] = f"mirror-{i:03d}", "web_mirror"
        exact.append(src)
    gsm_path = DATA / "benchmarks" / "gsm8k_test_sample.jsonl"
    contaminated = []
    if gsm_path.exists():
        bench = [json.loads(line) for line in gsm_path.read_text().splitlines() if line.strip()]
        for i, inst in enumerate(bench[:6]):
            contaminated.append({"id": f"leak-{i:03d}", "source": "web_mirror", "messages": [
                {"role": "user", "content": inst["question"]},
                {"role": "assistant", "content": inst["answer"]}]})
    rows += near + exact + contaminated
    rng.shuffle(rows)
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    malformed = [
        '{"id": "broken-001", "messages": [{"role": "user", "content": "unterminated',
        '{"id": "broken-002", "messages": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": ""}], "source": "general_chat"}',
        '{"id": "broken-003", "messages": [{"role": "user", "content": "no answer yet"}], "source": "general_chat"}',
        "this line is not json at all",
    ]
    for k, bad in enumerate(malformed):
        lines.insert(37 + 61 * k, bad)
    (DATA / "sample_sft.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} lines ({len(rows)} good rows, {len(malformed)} malformed)")


if __name__ == "__main__":
    main()
