"""``postmix eval`` generation throughput, against the engine's own ceiling and a bare generate loop.

Part 1, endpoints: ``postmix.eval.evaluate`` end to end (benchmark read, prompts rendered, every
request through the engine with its request cache on, answers scored by the GSM8K verifier, the
per-item file and results.json written) on a GSM8K-style file of ``--items`` questions, against
``Engine.map`` sending the same requests with its request cache on, as every model stage runs
it, and nothing else (no scoring, no files): the engine's own ceiling on the same server; the
engine without its cache is shown too. The server is ``postmix.testing.openai_server`` in its own
process with a fixed latency, so only client work differs. Ratio = eval items/s over ceiling
requests/s; the target is >= 0.9.

Part 2, the transformers backend on CPU: the tiny random model of the tests answers the 30
bundled GSM8K questions (``max_tokens`` new tokens each; a random model never stops early)
through ``evaluate`` with the transformers backend, against a bare loop of
``model.generate`` over the same prompts in batches of the same size (left padding, greedy):
completion tokens per second and the ratio.

    python benchmarks/bench_eval.py                  # both parts
    python benchmarks/bench_eval.py --quick          # fewer items
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "postmix" / "data" / "benchmarks" / "gsm8k_test_sample.jsonl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "postmix.testing.openai_server", "--port",
                                str(port), "--latency", str(latency)], cwd=ROOT,
                               stdout=subprocess.PIPE, text=True)
    url = process.stdout.readline().strip()
    return process, url


def gsm8k_file(folder: Path, items: int) -> Path:
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    path = folder / "gsm8k_bench.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i in range(items):
            row = rows[i % len(rows)]
            f.write(json.dumps({"id": f"q{i}", "question": f"Problem {i}. {row['question']}",
                                "answer": row["answer"]}) + "\n")
    return path


def endpoint_part(items: int, concurrency: int, latency: float, repeats: int) -> dict:
    from postmix.eval import EvalConfig, evaluate
    from postmix.eval.run import load_benchmark
    from postmix.llm import ChatRequest, EndpointConfig, Engine, PoolConfig

    server, url = start_server(latency)
    try:
        pool = PoolConfig(endpoints=[EndpointConfig(name="bench", model="fake-model",
                                                    base_url=url, max_concurrency=concurrency)])
        with tempfile.TemporaryDirectory() as tmp:
            source = gsm8k_file(Path(tmp), items)
            config = EvalConfig(benchmarks=[f"gsm8k-bench={source}"])
            bench = load_benchmark(config.benchmarks[0], config)
            requests = [ChatRequest(bench.format.messages(i.question), dict(bench.sampling))
                        for i in bench.items]

            async def ceiling(cache: Path | None) -> float:
                async with Engine(pool, cache_path=cache) as engine:
                    t0 = time.perf_counter()
                    answered = [r async for r in engine.map(requests)]
                    wall = time.perf_counter() - t0
                assert all(r.ok for r in answered)
                return len(answered) / wall

            asyncio.run(ceiling(None))  # warm-up: the server's first connections are slower
            engine_rates, bare_rates, eval_rates = [], [], []
            for repeat in range(repeats):  # alternate, so drift on a shared VM hits all three
                bare_rates.append(asyncio.run(ceiling(None)))
                engine_rates.append(asyncio.run(ceiling(Path(tmp) / f"ceiling{repeat}.sqlite")))
                t0 = time.perf_counter()
                result = evaluate(pool, Path(tmp) / f"out{repeat}", config)
                eval_rates.append(items / (time.perf_counter() - t0))
                score = result.score("gsm8k-bench")
                assert score.items == items == score.scored + sum(score.rejected.values())
    finally:
        server.terminate()
        server.wait()
    best_engine, best_eval = max(engine_rates), max(eval_rates)
    return {"items": items, "concurrency": concurrency, "latency_s": latency,
            "ideal_per_s": round(concurrency / latency, 1),
            "engine_no_cache_per_s": round(max(bare_rates), 1),
            "engine_ceiling_per_s": round(best_engine, 1), "eval_items_per_s": round(best_eval, 1),
            "ratio": round(best_eval / best_engine, 3),
            "runs": {"engine_no_cache": [round(r, 1) for r in bare_rates],
                     "engine": [round(r, 1) for r in engine_rates],
                     "eval": [round(r, 1) for r in eval_rates]}}


def transformers_part(batch_size: int, max_tokens: int, items: int, threads: int) -> dict:
    import torch

    # fixed for both sides: on a shared VM torch's default (all cores) spins against the other
    # tenants and a 64-token batch of the tiny model can take 15x longer than on one thread
    torch.set_num_threads(threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from postmix.eval import EvalConfig, evaluate, local_pool
    from postmix.eval.run import load_benchmark
    from postmix.testing.tiny_model import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(build_tiny_model(Path(tmp) / "tiny"))
        config = EvalConfig(benchmarks=["gsm8k-sample"], limit=items,
                            sampling={"temperature": 0.0, "max_tokens": max_tokens})
        bench = load_benchmark("gsm8k-sample", config)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        tokenizer.padding_side = "left"
        model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        texts = [tokenizer.apply_chat_template(bench.format.messages(i.question), tokenize=False,
                                               add_generation_prompt=True) for i in bench.items]
        with torch.no_grad():  # warm-up, as the eval side's first batch pays for it
            warm = tokenizer(texts[:batch_size], return_tensors="pt", padding=True,
                             add_special_tokens=False)
            model.generate(**warm, max_new_tokens=4, do_sample=False,
                           pad_token_id=tokenizer.pad_token_id)
        t0 = time.perf_counter()
        bare_tokens = 0
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(texts[start:start + batch_size], return_tensors="pt",
                                  padding=True, add_special_tokens=False)
                out = model.generate(**batch, max_new_tokens=max_tokens, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id)
                bare_tokens += (out.shape[1] - batch["input_ids"].shape[1]) * out.shape[0]
        bare_rate = bare_tokens / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        result = evaluate(local_pool(model_dir, batch_size=batch_size), Path(tmp) / "out",
                          config.model_copy(update={"use_cache": False}))
        wall = time.perf_counter() - t0
        tokens = result.generation["ledger"]["completion_tokens"]
    return {"items": len(texts), "batch_size": batch_size, "max_tokens": max_tokens,
            "torch_threads": threads,
            "bare_generate_tokens_per_s": round(bare_rate, 1),
            "eval_tokens_per_s": round(tokens / wall, 1),
            "eval_items_per_s": round(len(texts) / wall, 2),
            "ratio": round(tokens / wall / bare_rate, 3),
            "note": "eval wall time includes loading the model and scoring"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--items", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (both sides)")
    parser.add_argument("--skip-transformers", action="store_true")
    args = parser.parse_args()
    items = 1000 if args.quick else args.items
    report = {"endpoints": endpoint_part(items, args.concurrency, args.latency,
                                         1 if args.quick else args.repeats)}
    print(json.dumps(report["endpoints"]), flush=True)
    if not args.skip_transformers:
        report["transformers_cpu"] = transformers_part(args.batch_size, args.max_tokens,
                                                       12 if args.quick else 30, args.threads)
        print(json.dumps(report["transformers_cpu"]), flush=True)


if __name__ == "__main__":
    main()
