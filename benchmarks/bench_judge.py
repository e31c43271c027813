"""Engine throughput against a local OpenAI-compatible server with a fixed latency.

Baseline: ``openai.AsyncOpenAI`` with default settings (httpx transport, 2 SDK retries), one
client shared by all callers. Candidate: ``postmix.llm.Engine`` as the judge steps use it (aiohttp
transport, request cache on, endpoint ``max_concurrency = min(C, 256)`` so at 1024 callers it
queues instead of opening 1024 sockets). Both run in this process, one after the other, against
the same server, which runs in its own process so client CPU is measured alone.

    python benchmarks/bench_judge.py                 # C = 16, 64, 256, 1024
    python benchmarks/bench_judge.py --quick         # fewer requests per level

Prints per concurrency: req/s, ratio to ideal (C / latency), ratio to the baseline, client CPU
ms per request, and failed requests. "engine" is the engine with its SQLite request cache on
(as the judge steps run it); "no-cache" the same without the cache, to show what the cache costs;
"bare" a minimal aiohttp loop with nothing else, the ceiling any client reaches on this server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LATENCY = 0.1
LEVELS = (16, 64, 256, 1024)
ENGINE_MAX_SOCKETS = 256


def serve(port: int, latency: float) -> None:
    """A minimal chat-completions server: aiohttp's low-level server (no router or middleware,
    so the server's own CPU cost stays small next to the client's), fixed latency, fixed answer,
    default listen backlog."""
    from aiohttp import web

    reply = {"id": "bench", "object": "chat.completion", "created": 0, "model": "bench",
             "choices": [{"index": 0, "finish_reason": "stop",
                          "message": {"role": "assistant", "content": "A short answer."}}],
             "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}}
    body = json.dumps(reply).encode()

    async def chat(request: web.BaseRequest) -> web.Response:
        await request.read()
        await asyncio.sleep(latency)
        if request.path != "/v1/chat/completions":
            return web.Response(status=404)
        return web.Response(body=body, content_type="application/json")

    async def main() -> None:
        server = web.Server(chat)
        listener = await asyncio.get_running_loop().create_server(server, "127.0.0.1", port)
        async with listener:
            await listener.serve_forever()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("benchmark server did not start")


def messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Question {i}: what is {i} + {i}?"}]


async def run_baseline(base_url: str, concurrency: int, total: int) -> tuple[int, float, float]:
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench")
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> bool:
        async with gate:
            try:
                r = await client.chat.completions.create(model="bench", messages=messages(i),
                                                         temperature=0.7, max_tokens=64)
                return bool(r.choices[0].message.content)
            except Exception:
                return False

    await asyncio.gather(*(one(-i) for i in range(1, min(concurrency, 256) + 1)))  # warm up
    t0, c0 = time.perf_counter(), time.process_time()
    ok = await asyncio.gather(*(one(i) for i in range(total)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    await client.close()
    return total - sum(ok), wall, cpu


async def run_bare(base_url: str, concurrency: int, total: int) -> tuple[int, float, float]:
    """Reference ceiling: the least a client can do (one pooled aiohttp session, no retries,
    no cache, no validation). The engine is judged against it as well as the baseline."""
    import aiohttp

    url = base_url + "/chat/completions"
    headers = {"Content-Type": "application/json", "Authorization": "Bearer bench"}
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            limit=min(concurrency, ENGINE_MAX_SOCKETS))) as session:

        async def one(i: int) -> bool:
            async with gate:
                payload = json.dumps({"model": "bench", "messages": messages(i),
                                      "temperature": 0.7, "max_tokens": 64}).encode()
                async with session.post(url, data=payload, headers=headers) as response:
                    data = json.loads(await response.read())
                    return bool(data["choices"][0]["message"]["content"])

        await asyncio.gather(*(one(-i) for i in range(1, min(concurrency, 256) + 1)))
        t0, c0 = time.perf_counter(), time.process_time()
        ok = await asyncio.gather(*(one(i) for i in range(total)), return_exceptions=True)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return sum(r is not True for r in ok), wall, cpu


async def run_engine(base_url: str, concurrency: int, total: int,
                     cache_dir: str | None) -> tuple[int, float, float]:
    from postmix.llm import ChatRequest, EndpointConfig, Engine, PoolConfig

    pool = PoolConfig(endpoints=[EndpointConfig(
        name="bench", model="bench", base_url=base_url,
        max_concurrency=min(concurrency, ENGINE_MAX_SOCKETS), timeout=60)])
    cache = Path(cache_dir) / f"cache-{concurrency}-{time.time_ns()}.sqlite" if cache_dir else None
    sampling = {"temperature": 0.7, "max_tokens": 64}
    async with Engine(pool, cache_path=cache) as engine:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> bool:
            async with gate:
                return (await engine.chat(ChatRequest(messages(i), sampling))).ok

        await asyncio.gather(*(one(-i) for i in range(1, min(concurrency, 256) + 1)))
        t0, c0 = time.perf_counter(), time.process_time()
        ok = await asyncio.gather(*(one(i) for i in range(total)))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return total - sum(ok), wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--latency", type=float, default=LATENCY)
    parser.add_argument("--levels", type=int, nargs="*", default=list(LEVELS))
    parser.add_argument("--quick", action="store_true", help="fewer requests per level")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.latency)
        return
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--latency",
                               str(args.latency)])
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_for(port)
        print(f"server: aiohttp, {args.latency * 1000:.0f} ms latency, own process; "
              f"client CPUs: {os.cpu_count()}")
        header = (f"{'C':>5} {'client':>9} {'requests':>8} {'req/s':>8} {'vs ideal':>8} "
                  f"{'vs base':>8} {'CPU ms/req':>10} {'failed':>6}")
        print(header)
        with tempfile.TemporaryDirectory() as cache_dir:
            for c in args.levels:
                total = max(800, 4 * c) if args.quick else max(3200, 12 * c)
                ideal = c / args.latency
                failed_b, wall_b, cpu_b = asyncio.run(run_baseline(base_url, c, total))
                rate_b = (total - failed_b) / wall_b
                time.sleep(1.0)  # let the server drop the baseline's sockets
                print(f"{c:>5} {'openai':>9} {total:>8} {rate_b:>8.1f} {rate_b / ideal:>8.2f} "
                      f"{1.0:>8.2f} {cpu_b / total * 1000:>10.2f} {failed_b:>6}", flush=True)
                runs = (("engine", run_engine(base_url, c, total, cache_dir)),
                        ("no-cache", run_engine(base_url, c, total, None)),
                        ("bare", run_bare(base_url, c, total)))
                for label, coroutine in runs:  # created here, each awaited once below
                    failed_e, wall_e, cpu_e = asyncio.run(coroutine)
                    rate_e = (total - failed_e) / wall_e
                    time.sleep(1.0)
                    print(f"{c:>5} {label:>9} {total:>8} {rate_e:>8.1f} {rate_e / ideal:>8.2f} "
                          f"{rate_e / max(rate_b, 1e-9):>8.2f} {cpu_e / total * 1000:>10.2f} "
                          f"{failed_e:>6}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
