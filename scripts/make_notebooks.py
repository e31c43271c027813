"""Write the example notebooks in ``notebooks/``, executed with their outputs and figures.

    python scripts/make_notebooks.py --execute               # regenerate and run notebooks/
    python scripts/make_notebooks.py --execute --only 03_train.ipynb
    python scripts/make_notebooks.py --out DIR               # cells only (the tests compare them)

The notebooks are committed executed, so a reader sees every table and plot without running
anything; edit the cells here and re-run with ``--execute``. Cell ids are fixed, so the same cells
always give the same cells; the outputs (timings, temporary paths) vary from run to run, which is
why the tests compare the cells and check that outputs are there, and re-execute the notebooks
themselves. Execution is offline and on the CPU (Hub offline, no GPU visible), each notebook in a
fresh temporary folder (its figures land there, not here), with the notebooks' own settings.
A new notebook is one more entry of ``NOTEBOOKS``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = Path(__file__).resolve().parents[1] / "notebooks"

SETUP = """\
import json
import tempfile
from pathlib import Path

%matplotlib inline
import matplotlib.pyplot as plt

work = Path(tempfile.mkdtemp(prefix="postmix-notebook-"))
FIGURES = Path(".")  # figures are saved next to the notebook
"""

CURATE = [
    new_markdown_cell("# 01 — Curate and mix\n\nIngest the bundled sample, filter it, remove exact and near "
                      "duplicates, decontaminate it against a GSM8K test sample, and build a versioned SFT mix. "
                      "Every step accounts for every row: `rows_in == rows_out + rejected`."),
    new_code_cell(SETUP),
    new_code_cell("""\
from postmix.curate.decontam import DecontamConfig, decontaminate_file
from postmix.curate.dedup import DedupConfig, dedup_file
from postmix.curate.filters import FilterConfig, filter_file
from postmix.io import ingest

raw = ingest("pkg://postmix/data/sample_sft.jsonl", work / "raw.parquet", progress=False)
filtered = filter_file(work / "raw.parquet", work / "filtered.parquet", FilterConfig())
deduped = dedup_file(work / "filtered.parquet", work / "deduped.parquet", DedupConfig(on="conversation", verify=True))
clean = decontaminate_file(work / "deduped.parquet", work / "clean.parquet", DecontamConfig(benchmarks=["gsm8k-sample"]))
steps = [raw.report, filtered.report, deduped.report, clean.report]
for r in steps:
    assert r.rows_in == r.rows_out + r.rejected_total
    print(r.summary())"""),
    new_markdown_cell("## Where the rows went"),
    new_code_cell("""\
fig, ax = plt.subplots(figsize=(7, 3))
names = [r.step for r in steps]
ax.bar(names, [r.rows_out for r in steps], label="kept")
ax.bar(names, [r.rejected_total for r in steps], bottom=[r.rows_out for r in steps], label="rejected")
ax.set_ylabel("rows")
ax.legend()
ax.set_title("rows kept and rejected per step")
fig.tight_layout()
fig.savefig(FIGURES / "01_rows_per_step.png")"""),
    new_markdown_cell("## Duplicate clusters\n\nThe dedup report keeps a histogram of cluster sizes."),
    new_code_cell("""\
details = deduped.report.details
hist = details["near"]["cluster_size_histogram"]
print(json.dumps(hist))
fig, ax = plt.subplots(figsize=(5, 3))
ax.bar([str(k) for k in hist], list(hist.values()))
ax.set_xlabel("cluster size")
ax.set_ylabel("clusters")
ax.set_title("near-duplicate clusters")
fig.tight_layout()
fig.savefig(FIGURES / "01_cluster_sizes.png")"""),
    new_markdown_cell("## Contamination per benchmark"),
    new_code_cell("""\
per_bench = clean.report.details["benchmarks"]
print(json.dumps(per_bench, indent=1)[:1500])
fig, ax = plt.subplots(figsize=(5, 3))
ax.bar(list(per_bench), [b["contaminated_fraction"] for b in per_bench.values()])
ax.set_ylabel("fraction of benchmark instances found")
ax.set_title("contamination")
fig.tight_layout()
fig.savefig(FIGURES / "01_contamination.png")"""),
    new_markdown_cell("## A versioned mix\n\nBuilding the same spec twice returns the same version."),
    new_code_cell("""\
from postmix import mix

spec = {"name": "nb-sft", "kind": "sft", "seed": 0, "sources": [
    {"name": "clean", "path": str(work / "clean.parquet"), "fraction": 0.9},
    {"name": "upsampled_math", "path": str(work / "clean.parquet"), "epochs": 0.3}]}
first = mix.build(spec, home=work / ".postmix", progress=False)
again = mix.build(spec, home=work / ".postmix", progress=False)
assert again.mix.ref == first.mix.ref and not again.created
print(first.mix.ref, first.mix.rows, first.mix.content_hash)
composition = {s["name"]: s["rows"] for s in first.manifest["sources"]}
fig, ax = plt.subplots(figsize=(4, 4))
ax.pie(list(composition.values()), labels=list(composition), autopct="%1.0f%%")
ax.set_title(first.mix.ref)
fig.tight_layout()
fig.savefig(FIGURES / "01_mix_composition.png")"""),
    new_markdown_cell(
        "## Sampling by a reward model's score\n\n"
        "`curate tag --score reward` asks a reward model for a score of every conversation, and a "
        "source's `weight_by:` takes rows with probability proportional to a weight instead of uniformly "
        "(weighted sampling without replacement, Efraimidis-Spirakis keys from the id hash: as "
        "reproducible as the uniform take). Here the local test server stands in for `vllm serve "
        "<reward model>`: its `/pooling` scores an answer `log(1 + words)`. Reward-model outputs have "
        "any sign, so the weight is `exp(reward / temperature)`."),
    new_code_cell("""\
from concurrent.futures import ThreadPoolExecutor

import pyarrow.parquet as pq

from postmix.llm import EndpointConfig, PoolConfig
from postmix.mix.attributes import TagConfig, tag
from postmix.testing.openai_server import FakeOpenAIServer

# tag drives its own event loop, so it runs beside the notebook's
with FakeOpenAIServer(model="reward-model") as server, ThreadPoolExecutor(1) as thread:
    pool = PoolConfig(endpoints=[EndpointConfig(name="rm", model="reward-model", base_url=server.base_url)])
    tagged = thread.submit(tag, work / "clean.parquet", work / "tags.parquet",
                           TagConfig(scores=["reward"], language=False, rule_hits=False), pool=pool).result()
print(tagged.summary(), "| unscored:", tagged.details["reward"]["unscored"])


def take_60(weight_by=None):
    source = {"name": "clean", "path": str(work / "clean.parquet"), "count": 60}
    if weight_by is not None:
        source["weight_by"] = weight_by
    spec = {"name": "nb-by-reward", "kind": "sft", "attributes": str(work / "tags.parquet"), "sources": [source]}
    return mix.build(spec, home=work / ".postmix", progress=False)


uniform, by_reward = take_60(), take_60({"column": "reward", "temperature": 0.5})
print(uniform.mix.ref, "uniform;", by_reward.mix.ref, "weighted:",
      by_reward.manifest["sources"][0]["steps"][-1]["details"]["weight_by"])
tags = pq.read_table(work / "tags.parquet", columns=["id", "reward"]).to_pydict()
reward_of = dict(zip(tags["id"], tags["reward"], strict=True))
low, high = min(reward_of.values()), max(reward_of.values())
bins = [low + (high - low) * k / 15 for k in range(16)]  # the same bins for both
fig, ax = plt.subplots(figsize=(6, 3))
for built, label in ((uniform, "uniform"), (by_reward, "weight_by: exp(reward / 0.5)")):
    taken = [reward_of[i] for i in mix.load(built.mix.ref, home=work / ".postmix")["id"]]
    ax.hist(taken, bins=bins, alpha=0.6, label=f"{label}, mean {sum(taken) / len(taken):.2f}")
ax.set_xlabel("reward of the rows taken")
ax.set_ylabel("rows")
ax.legend()
ax.set_title("60 rows from the cleaned sample")
fig.tight_layout()
fig.savefig(FIGURES / "01_weight_by_reward.png")"""),
]

JUDGE = [
    new_markdown_cell(
        "# 02 — Judge and pairs\n\n"
        "Three models answer 40 prompts from the bundled sample (`judge generate`, 3 samples per prompt "
        "across the pool), an LLM judge rates every answer on the UltraFeedback aspects (`judge rate`), "
        "and the ratings become chosen/rejected pairs for DPO (`judge pairs`). Then the judge compares two "
        "models head to head in both orders (`judge compare`), which measures its position bias.\n\n"
        "**The models and the judge here are scripted stand-ins**, so this notebook runs offline in "
        "seconds: a local `FakeOpenAIServer` speaks the OpenAI chat API and answers from a Python "
        "function. Nothing below it knows that: the same calls work against real servers (see the end of "
        "the next section)."),
    new_code_cell(SETUP),
    new_code_cell("""\
from postmix.io import load_records, save_records

sample, kind, unreadable = load_records("pkg://postmix/data/sample_sft.jsonl")
prompts = work / "prompts.jsonl"
save_records(sample.select(range(40)), prompts)  # judge generate answers the last user turn of each
print(kind, len(sample), "rows in the sample;", len(unreadable), "unreadable; 40 used as prompts")"""),
    new_markdown_cell(
        "## The scripted stand-ins\n\n"
        "Three \"models\" with clearly different styles, told apart by the request's `model` field:\n\n"
        "- `concise`: on topic, short;\n"
        "- `verbose`: on topic, padded with repetition;\n"
        "- `sloppy`: hedging and off topic.\n\n"
        "The `judge` scores what is on the page: how many of the instruction's content words the answer "
        "covers, its length, how repetitive it is and whether it hedges, plus a little deterministic noise. "
        "Like many real judges it is biased: it rewards long answers on helpfulness, and when it cannot tell "
        "two answers apart it prefers the one shown first."),
    new_code_cell('''\
import re
import zlib

FILLER = {"please", "explain", "someone", "should", "important", "practical", "example"}


def keywords(instruction):
    """Content words a relevant answer mentions (shared by the scripted models and judge)."""
    words = re.findall(r"[a-z]{6,}", instruction.lower())
    return list(dict.fromkeys(w for w in words if w not in FILLER))[:4] or ["question"]


def answer(model, instruction, seed):
    words = keywords(instruction)
    if model == "concise":
        return f"In short: {', '.join(words)}. Those are the points that matter." + (
            " Try one small example to check." if seed % 2 else "")
    if model == "verbose":
        pad = " ".join(f"It is worth stressing again that {w} is really very important here." for w in words)
        return "Great question! Let me explain everything in detail. " + " ".join([pad] * (2 + seed % 4))
    return "idk, probably something like that, maybe. " * (1 + seed % 3)  # sloppy


def judge_scores(instruction, response):
    words, text = keywords(instruction), response.lower()
    tokens = text.split()
    relevance = sum(w in text for w in words) / len(words)
    repetitive = 1 - len(set(tokens)) / len(tokens) > 0.5
    hedged = any(h in text for h in ("idk", "probably", "maybe"))
    raw = {"helpfulness": 1 + 3 * relevance + (len(tokens) > 60),  # the length bias
           "instruction_following": 2 + 3 * relevance - 2 * repetitive,
           "honesty": 5 - 2 * hedged,
           "truthfulness": 1 + 4 * relevance - hedged}
    noise = {a: zlib.crc32(f"{a}:{response}".encode()) % 3 - 1 for a in raw}  # -1, 0 or +1
    return {a: int(min(5, max(1, round(v + noise[a])))) for a, v in raw.items()}


def judge_winner(instruction, first, second):
    gap = sum(judge_scores(instruction, first).values()) - sum(judge_scores(instruction, second).values())
    if abs(gap) < 2:  # too close to call: it favours whichever it read first
        return "1"
    return "1" if gap > 0 else "2"


def scripted_endpoint(body):
    """The server's responder: one request body in, the assistant's text out."""
    text = body["messages"][-1]["content"]
    if body["model"] != "judge":
        return answer(body["model"], text, body.get("seed") or 0)
    if "## Response 1" in text:  # judge compare
        instruction, first, second = re.search(
            r"## Instruction\\n\\n(.*)\\n\\n## Response 1\\n\\n(.*)\\n\\n## Response 2\\n\\n(.*)\\n\\nWhich",
            text, re.S).groups()
        instruction = instruction.rsplit("[User]\\n", 1)[-1]  # the turn the answers respond to
        return json.dumps({"rationale": "scripted", "winner": judge_winner(instruction, first, second)})
    instruction, response = re.search(r"## Instruction\\n\\n(.*)\\n\\n## Response\\n\\n(.*)\\n\\nAnswer with",
                                      text, re.S).groups()
    instruction = instruction.rsplit("[User]\\n", 1)[-1]
    scores = judge_scores(instruction, response)
    return json.dumps({a: {"rationale": "scripted", "score": s} for a, s in scores.items()})'''),
    new_markdown_cell(
        "## Generate, rate, compare\n\n"
        "Every model call happens in this one cell, so the server is stopped even if a step fails. Two "
        "pools, as on the command line (`--endpoints pool.yaml` for the answering models, `--endpoints judge.yaml` for the judge). "
        "Jupyter runs cells inside an asyncio event loop and postmix's synchronous judge calls start "
        "their own, so `outside_event_loop` runs them in a worker thread (a script needs no such "
        "wrapper).\n\n"
        "**With real models** only the pools change. Start `vllm serve` for each model and point the "
        "endpoints at them (or load a YAML file such as `recipes/endpoints/pool.yaml`):\n\n"
        "```python\n"
        "# vllm serve Qwen/Qwen2.5-7B-Instruct --port 8000   (and one server per model)\n"
        "models_pool = PoolConfig(endpoints=[\n"
        "    EndpointConfig(name=\"qwen\", model=\"Qwen/Qwen2.5-7B-Instruct\", base_url=\"http://localhost:8000/v1\"),\n"
        "    EndpointConfig(name=\"llama\", model=\"meta-llama/Llama-3.1-8B-Instruct\", base_url=\"http://localhost:8001/v1\"),\n"
        "])\n"
        "judge_pool = load_endpoints(\"recipes/endpoints/judge.yaml\")  # from postmix.llm\n"
        "```\n\n"
        "or from the shell: `postmix judge generate prompts.jsonl -o completions.jsonl "
        "--endpoints pool.yaml --n 3`, then `postmix judge rate ... --endpoints judge.yaml` and "
        "`postmix judge pairs ...`."),
    new_code_cell("""\
from concurrent.futures import ThreadPoolExecutor

from postmix.judge import CompareConfig, GenerateConfig, RateConfig, compare, generate, rate
from postmix.llm import EndpointConfig, PoolConfig
from postmix.testing.openai_server import FakeOpenAIServer


def outside_event_loop(step, *args, **kwargs):
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(step, *args, **kwargs).result()


MODELS = ["concise", "verbose", "sloppy"]
server = FakeOpenAIServer(scripted_endpoint).start()
try:
    models_pool = PoolConfig(endpoints=[EndpointConfig(name=m, model=m, base_url=server.base_url)
                                        for m in MODELS])
    judge_pool = PoolConfig(endpoints=[EndpointConfig(name="judge", model="judge", base_url=server.base_url)])
    generated = outside_event_loop(generate, prompts, work / "completions.jsonl", models_pool,
                                   GenerateConfig(n=3, models=MODELS, seed=0), progress=False)
    rated = outside_event_loop(rate, generated.output, work / "rated.jsonl", judge_pool,
                               RateConfig(rubric="ultrafeedback"), progress=False)
    # Head to head on 12 prompts: concise (A) against verbose (B), each pair judged in both orders.
    completions, _, _ = load_records(generated.output)
    save_records(completions.filter(lambda m: m == "concise", input_columns="model").select(range(12)),
                 work / "a.jsonl")
    save_records(completions.filter(lambda m: m == "verbose", input_columns="model").select(range(12)),
                 work / "b.jsonl")
    compared = outside_event_loop(compare, work / "a.jsonl", work / "b.jsonl", work / "compared.jsonl",
                                  judge_pool, CompareConfig(), progress=False)
finally:
    server.stop()
for r in (generated.report, rated.report, compared.report):
    assert r.rows_in == r.rows_out + r.rejected_total
    print(r.summary())
print("completions per model:", generated.report.details["completions_per_model"])"""),
    new_markdown_cell("## Rating distributions\n\nPer aspect over all answers, then per model."),
    new_code_cell("""\
SCORES = ["1", "2", "3", "4", "5"]
aspects = list(rated.report.details["histogram"])
fig, ax = plt.subplots(figsize=(7, 3))
width = 0.8 / len(aspects)
for i, aspect in enumerate(aspects):
    counts = rated.report.details["histogram"][aspect]
    ax.bar([int(s) + (i - 1.5) * width for s in SCORES], [counts[s] for s in SCORES], width, label=aspect)
ax.set_xlabel("score")
ax.set_ylabel("answers")
ax.legend(fontsize=7)
ax.set_title("judge scores per aspect")
fig.tight_layout()
fig.savefig(FIGURES / "02_ratings_by_aspect.png")

by_model = rated.report.details["histogram_by_model"]
fig, axes = plt.subplots(1, len(aspects), figsize=(12, 3), sharey=True)
width = 0.8 / len(MODELS)
for ax, aspect in zip(axes, aspects, strict=True):
    for i, model in enumerate(MODELS):
        counts = by_model[model][aspect]
        ax.bar([int(s) + (i - 1) * width for s in SCORES], [counts[s] for s in SCORES], width, label=model)
    ax.set_title(aspect, fontsize=9)
    ax.set_xlabel("score")
axes[0].set_ylabel("answers")
axes[0].legend(fontsize=7)
fig.tight_layout()
fig.savefig(FIGURES / "02_ratings_by_model.png")
print("mean score per model:", rated.report.details["mean_score_by_model"])"""),
    new_markdown_cell(
        "## Pairs\n\n"
        "Chosen is the best-rated answer of a prompt, rejected a random lower-rated one (binarized "
        "UltraFeedback / Tulu 3). A model's win rate is how often it is chosen among the pairs it appears in."),
    new_code_cell("""\
from postmix.judge import PairsConfig, make_pairs

pairs = make_pairs(rated.output, work / "pairs.jsonl", PairsConfig(strategy="best-vs-random-lower"))
assert pairs.report.rows_in == pairs.report.rows_out + pairs.report.rejected_total
print(pairs.report.summary())
win_rate = pairs.report.details["win_rate_by_model"]
fig, ax = plt.subplots(figsize=(5, 3))
ax.bar(list(win_rate), list(win_rate.values()))
ax.set_ylim(0, 1)
ax.set_ylabel("win rate")
ax.set_title(f"chosen share per model ({pairs.report.rows_out} pairs)")
fig.tight_layout()
fig.savefig(FIGURES / "02_win_rates.png")"""),
    new_markdown_cell(
        "## Length bias\n\n"
        "If chosen answers are mostly longer than rejected ones, DPO learns to ramble. `judge pairs` reports "
        "the fraction and warns above `length_bias_warn` (70% by default)."),
    new_code_cell("""\
import numpy as np

preferences, _, _ = load_records(pairs.output)
chosen_chars = np.array([len(c[0]["content"]) for c in preferences["chosen"]])
rejected_chars = np.array([len(r[0]["content"]) for r in preferences["rejected"]])
gap = chosen_chars - rejected_chars
longer = pairs.report.details["chosen_longer_fraction"]
assert longer == round(float((gap > 0).mean()), 4)
print(f"chosen longer than rejected in {longer:.0%} of pairs; warnings: {pairs.report.details['warnings']}")
fig, ax = plt.subplots(figsize=(6, 3))
ax.hist(gap, bins=20)
ax.axvline(0, color="black", linewidth=1)
ax.set_xlabel("chosen minus rejected length (characters)")
ax.set_ylabel("pairs")
ax.set_title(f"length bias: chosen longer in {longer:.0%} of pairs")
fig.tight_layout()
fig.savefig(FIGURES / "02_length_bias.png")"""),
    new_markdown_cell(
        "## Pairwise comparison and position bias\n\n"
        "Each pair was judged twice, with the answers swapped. A verdict that follows the position instead "
        "of the answer flips with the order; it counts as a tie, and the share of flips is the judge's "
        "position-flip rate."),
    new_code_cell("""\
d = compared.report.details
print(f"concise wins {d['a_wins']}, verbose wins {d['b_wins']}, ties {d['ties']}; "
      f"position-flip rate {d['position_flip_rate']:.0%}")
verdicts = [json.loads(line) for line in compared.output.read_text().splitlines()]
flipped = next((v for v in verdicts if v["flipped"]), None)
if flipped:
    print("a flipped verdict: winner in order (A, B) =", flipped["winner_ab"],
          "and in order (B, A) =", flipped["winner_ba"])
fig, ax = plt.subplots(figsize=(5, 3))
ax.bar(["concise (A)", "verbose (B)", "tie / flipped"], [d["a_wins"], d["b_wins"], d["ties"]])
ax.set_ylabel("prompts")
ax.set_title(f"judge compare: position-flip rate {d['position_flip_rate']:.0%}")
fig.tight_layout()
fig.savefig(FIGURES / "02_compare.png")"""),
]

TRAIN = [
    new_markdown_cell(
        "# 03 — Train\n\n"
        "SFT on a versioned mix built from the bundled sample, then a tiny RLVR (GRPO) run with a verifier "
        "as the reward, both through `postmix.train.train`, which maps a postmix config onto TRL and writes "
        "a run card naming exactly the data it trained on.\n\n"
        "The model is a tiny random-weight Llama built on the spot (`build_tiny_model`), so this runs on a "
        "laptop CPU in well under a minute; its curves show the plumbing, not a useful model. For a real "
        "run, pass a model folder or Hub name and a config such as `recipes/train/sft.yaml` (Tulu 3 8B "
        "settings), or from the shell: `postmix train sft --mix nb-sft@1 --model <model> "
        "--config recipes/train/sft.yaml --output runs/sft`."),
    new_code_cell(SETUP),
    new_code_cell("""\
from postmix import mix
from postmix.testing.tiny_model import build_tiny_model

home = work / ".postmix"  # the mix registry; by default $POSTMIX_HOME or ./.postmix
model_dir = build_tiny_model(work / "tiny-model")
built = mix.build({"name": "nb-sft", "kind": "sft", "seed": 0, "sources": [
    {"name": "sample", "path": "pkg://postmix/data/sample_sft.jsonl", "count": 120}]},
    home=home, progress=False)
print(built.mix.ref, built.mix.rows, "rows, content hash", built.mix.content_hash)"""),
    new_markdown_cell(
        "## SFT\n\n"
        "20 steps of 4 packed sequences of up to 256 tokens, with a learning rate (1e-3) far above Tulu's "
        "5e-6 so the loss moves visibly in so few steps. Fields carry TRL's names; `trl:` passes anything "
        "else to `trl.SFTConfig`."),
    new_code_cell("""\
from postmix.train import train

sft_config = {"learning_rate": 1e-3, "max_steps": 20, "per_device_train_batch_size": 4,
              "gradient_accumulation_steps": 1, "max_length": 256, "warmup_steps": 0,
              "gradient_checkpointing": False, "logging_steps": 1, "trl": {"dataloader_num_workers": 0}}
sft = train("sft", str(model_dir), mix=built.mix.ref, home=home, output=work / "runs" / "sft", config=sft_config)
losses = [(h["step"], h["loss"]) for h in sft.log_history if "loss" in h]
print(f"loss {losses[0][1]:.2f} at step 1 -> {losses[-1][1]:.2f} at step {losses[-1][0]}")
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(*zip(*losses, strict=True), marker=".")
ax.set_xlabel("step")
ax.set_ylabel("training loss")
ax.set_title(f"SFT on {built.mix.ref}")
fig.tight_layout()
fig.savefig(FIGURES / "03_sft_loss.png")"""),
    new_markdown_cell(
        "## RLVR\n\n"
        "Reinforcement learning with verifiable rewards: each row names a verifier (`gsm8k`, `math`, "
        "`ifeval`, `exact`, `regex`) that checks a completion against its ground truth; a verified answer "
        "earns 10, anything else 0 (Tulu 3). Here 16 prompts ask for a number, and GRPO samples 4 "
        "completions per prompt from the SFT model. A random model rarely says the right number, so the "
        "reward stays low; the point is the loop and what it logs."),
    new_code_cell("""\
rows = [{"id": f"number-{n}", "prompt": [{"role": "user", "content": f"Reply with the number {n}."}],
         "ground_truth": str(n), "verifier": "gsm8k", "constraints": None, "source": "notebook", "meta": "{}"}
        for n in range(16)]
rlvr_data = work / "numbers.jsonl"
rlvr_data.write_text("".join(json.dumps(r) + "\\n" for r in rows))
rlvr_config = {"learning_rate": 1e-3, "max_steps": 8, "per_device_train_batch_size": 8, "num_generations": 4,
               "max_completion_length": 16, "gradient_checkpointing": False, "logging_steps": 1}
rlvr = train("rlvr", str(sft.output_dir), data=rlvr_data, output=work / "runs" / "rlvr", config=rlvr_config)
steps = [h for h in rlvr.log_history if "reward" in h]
print("logged per step:", sorted(steps[0]))"""),
    new_code_cell("""\
import numpy as np

step = np.array([h["step"] for h in steps])
reward = np.array([h["reward"] for h in steps])
spread = np.array([h["reward_std"] for h in steps])
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3))
left.plot(step, reward, marker=".", label="mean reward")
left.fill_between(step, reward - spread, reward + spread, alpha=0.2, label="± std over the step's completions")
left.set_xlabel("step")
left.set_ylabel("reward (0 or 10 per completion)")
left.legend(fontsize=7)
left.set_title("RLVR reward")
right.plot(step, [h["verifier/gsm8k/accuracy"] for h in steps], marker=".", label="gsm8k verifier accuracy")
right.plot(step, [h["kl"] for h in steps], marker=".", label="KL to the SFT model")
right.set_xlabel("step")
right.legend(fontsize=7)
right.set_title("accuracy and KL")
fig.tight_layout()
fig.savefig(FIGURES / "03_rlvr_reward.png")"""),
    new_markdown_cell(
        "## The run card\n\n"
        "`run_card.json` sits next to the saved model: the data (mix version and content hash, or the file "
        "and its hash), the model, postmix's config and the full TRL config built from it, library versions, "
        "times and final metrics. A run on a mix is also recorded in the registry's lineage."),
    new_code_cell("""\
card = json.loads((sft.output_dir / "run_card.json").read_text())
assert card["run_id"] == sft.run_card["run_id"] and card["status"] == "completed"
shown = ("run_id", "method", "model", "mix", "content_hash", "data", "status", "metrics", "versions")
print(json.dumps({k: card[k] for k in shown}, indent=1))
print("TRL config fields recorded:", len(card["trl_config"]))
print("runs on", built.mix.ref, ":", [r["run_id"] for r in mix.Registry(home).runs("nb-sft")])
print("RLVR run:", rlvr.run_card["status"], "on", rlvr.run_card["data"]["path"],
      {k: v for k, v in rlvr.run_card["metrics"].items() if k in ("reward", "train_runtime")})"""),
]


NOTEBOOKS = {
    "01_curate_and_mix.ipynb": CURATE,
    "02_judge_and_pairs.ipynb": JUDGE,
    "03_train.ipynb": TRAIN,
}
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def build_notebook(name: str, cells: list) -> nbformat.NotebookNode:
    """A notebook whose bytes depend only on its cells: nbformat gives new cells random ids, so
    each cell gets one derived from the notebook's name and its position instead."""
    stem = name.split("_", 1)[0]
    numbered = [nbformat.from_dict({**cell, "id": f"nb{stem}-{index:02d}"}) for index, cell in enumerate(cells)]
    return new_notebook(cells=numbered, metadata={"kernelspec": KERNELSPEC})


# what the kernel sees: nothing downloads, nothing runs on a GPU, no progress bars
OFFLINE_CPU = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false", "TQDM_DISABLE": "1",
               "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
CELL_TIMEOUT = 600  # seconds; the slowest cell (notebook 03's training) takes well under that


def execute(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Run ``nb`` top to bottom in a fresh python3 kernel, in a temporary folder that is also
    its TMPDIR (so the notebook's work folders go with it); raises on the first failing cell."""
    import nbclient

    saved = {k: os.environ.get(k) for k in [*OFFLINE_CPU, "TMPDIR", "PYTHONPATH"]}
    # the kernel imports this checkout's postmix, whatever is installed
    path = os.pathsep.join(p for p in (str(OUT.parent), saved["PYTHONPATH"]) if p)
    with tempfile.TemporaryDirectory(prefix="postmix-make-notebooks-") as folder:
        os.environ.update(OFFLINE_CPU, TMPDIR=folder, PYTHONPATH=path)
        try:
            client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                             record_timing=False,
                                             resources={"metadata": {"path": folder}})
            client.execute()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    # stderr is progress bars and library warnings: noise to a reader (the tests, which execute
    # the notebooks again, still see it); stdout, tables and figures stay
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs
                            if not (o.output_type == "stream" and o.name == "stderr")]
    return nb


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"Folder to write to (default {OUT}).")
    parser.add_argument("--execute", action="store_true",
                        help="Run each notebook and keep its outputs (how notebooks/ is committed).")
    parser.add_argument("--only", action="append", choices=sorted(NOTEBOOKS), default=None,
                        help="Write only this notebook (repeatable); default: all.")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or list(NOTEBOOKS):
        nb = build_notebook(name, NOTEBOOKS[name])
        nbformat.validate(nb)
        if args.execute:
            nb = execute(nb)
            nbformat.validate(nb)
        nbformat.write(nb, args.out / name)
        print("wrote", args.out / name, "(executed)" if args.execute else "")


if __name__ == "__main__":
    main()
