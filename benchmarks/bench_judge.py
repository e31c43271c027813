"""Engine throughput against a local OpenAI-compatible server with a fixed latency.

Baseline: ``openai.AsyncOpenAI`` with default settings (httpx transport, 2 SDK retries), one
client shared by all callers. Candidate: ``postmix.llm.Engine`` as the judge steps use it (aiohttp
transport, request cache on, endpoint ``max_concurrency = min(C, 256)`` so at 1024 callers it
queues instead of opening 1024 sockets). Both run in this process, one after the other, against
the same server, which runs in its own process so client CPU is measured alone.

    python benchmarks/bench_judge.py                 # C = 16, 64, 256, 1024
    python benchmarks/bench_judge.py --quick         # fewer requests per level
    python benchmarks/bench_judge.py --heavy-tail    # the CLI stage under log-normal latency

Prints per concurrency: req/s, ratio to ideal (C / latency), ratio to the baseline, client CPU
ms per request, and failed requests. "engine" is the engine with its SQLite request cache on
(as the judge steps run it); "no-cache" the same without the cache, to show what the cache costs;
"bare" a minimal aiohttp loop with nothing else, the ceiling any client reaches on this server.

``--heavy-tail``: real generation latency is heavy-tailed, so a slow answer must not hold back
the rest. The server (its own process) waits a seeded log-normal time per request (median
``--median``, shape ``--sigmas``), drawn from the request itself
(``postmix.testing.openai_server.request_latency``), so every client faces exactly the same
waits. It is the lean server of ``serve`` by default: ``postmix.testing.openai_server``
(``--test-server``) spends about twice the CPU per request, which on a small machine is taken
from the clients. Per (sigma, C): the real CLI stage ``postmix judge generate --n 1`` on
``--requests`` prompts with the request cache on, in a subprocess ("stage": its report's time;
"cli": the subprocess's wall time, interpreter start-up and imports included), a plain
``openai.AsyncOpenAI`` loop (a semaphore of C and ``asyncio.gather``) and a bare aiohttp loop,
both sending the same bodies. "bare" is the least any client can do, so it shows what the
server and machine allow. Bound = max(total latency / C, slowest single request): no client
can beat it. "order" is the makespan of sending the requests in input order to C slots, each as
soon as one frees (greedy list scheduling, computed from the waits, zero overhead): what the
engine's dispatch reaches at best, and about what any client reaches that does not know the
latencies in advance; it exceeds the bound when a slow request comes late. CPU columns: ms per
request of each client (cli: the whole subprocess) and of the server (over all three clients);
"load": the machine's 1-minute load average after the row.
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


def serve(port: int, latency: float, sigma: float = 0.0) -> None:
    """A minimal chat-completions server: aiohttp's low-level server (no router or middleware,
    so the server's own CPU cost stays small next to the client's), fixed answer, default listen
    backlog; a fixed latency, or with ``sigma`` the test server's seeded log-normal one
    (``request_latency``: the same wait for the same request as ``postmix.testing``'s server)."""
    from aiohttp import web

    from postmix.testing.openai_server import request_latency

    reply = {"id": "bench", "object": "chat.completion", "created": 0, "model": "bench",
             "choices": [{"index": 0, "finish_reason": "stop",
                          "message": {"role": "assistant", "content": "A short answer."}}],
             "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}}
    body = json.dumps(reply).encode()

    async def chat(request: web.BaseRequest) -> web.Response:
        raw = await request.read()
        await asyncio.sleep(request_latency(json.loads(raw), latency, sigma) if sigma else latency)
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


def serve_lognormal(port: int, median: float, sigma: float, test_server: bool
                    ) -> subprocess.Popen:
    """The lean server of ``serve`` (default), or ``postmix.testing.openai_server`` (request
    log, faults, router: about twice the CPU per request), in a process of its own."""
    command = ([sys.executable, "-m", "postmix.testing.openai_server", "--port", str(port),
                "--latency", str(median), "--latency-sigma", str(sigma), "--model", "bench"]
               if test_server else [sys.executable, __file__, "--serve", str(port), "--latency",
                                    str(median), "--sigma", str(sigma)])
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    wait_for(port)
    return server


def process_cpu(pid: int) -> float | None:
    """CPU seconds a process has used so far (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def stage_bodies(prompts: list[dict]) -> list[dict]:
    """The bodies `judge generate --n 1` sends for these prompts (its default sampling and each
    sample's seed), so the plain loop sends the same requests and meets the same latencies."""
    from postmix.judge.generate import GenerateConfig
    from postmix.llm.model_stage import request_seed

    config = GenerateConfig(n=1)
    return [{"model": "bench", "messages": [{"role": "user", "content": p["prompt"]}],
             **config.sampling, "seed": request_seed(config.seed, p["id"], 0)} for p in prompts]


async def run_plain(base_url: str, concurrency: int, bodies: list[dict]
                    ) -> tuple[int, float, float]:
    """(failed, wall s, CPU s): the plain openai loop."""
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0, timeout=600)
    gate = asyncio.Semaphore(concurrency)

    async def one(body: dict) -> bool:
        async with gate:
            try:
                r = await client.chat.completions.create(
                    model=body["model"], messages=body["messages"],
                    extra_body={k: v for k, v in body.items() if k not in ("model", "messages")})
                return bool(r.choices[0].message.content)
            except Exception:
                return False

    t0, c0 = time.perf_counter(), time.process_time()
    ok = await asyncio.gather(*(one(b) for b in bodies))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    await client.close()
    return len(bodies) - sum(ok), wall, cpu


async def run_bare_bodies(base_url: str, concurrency: int, bodies: list[dict]
                          ) -> tuple[int, float, float]:
    """(failed, wall s, CPU s): one pooled aiohttp session and nothing else, the least any
    client can do: what it reaches is what this server and machine allow."""
    import aiohttp

    url = base_url + "/chat/completions"
    headers = {"Content-Type": "application/json", "Authorization": "Bearer bench"}
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one(body: dict) -> bool:
            async with gate, session.post(url, data=json.dumps(body).encode(),
                                    headers=headers) as response:
                data = json.loads(await response.read())
                return bool(data["choices"][0]["message"]["content"])

        t0, c0 = time.perf_counter(), time.process_time()
        ok = await asyncio.gather(*(one(b) for b in bodies), return_exceptions=True)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return sum(r is not True for r in ok), wall, cpu


def run_cli_stage(workdir: Path, base_url: str, concurrency: int,
                  prompts_path: Path) -> tuple[int, float, float, float]:
    """(failed, stage seconds from the report, wall seconds of the subprocess, its CPU
    seconds, start-up and imports included)."""
    endpoints = workdir / f"endpoints-{concurrency}.yaml"
    endpoints.write_text(f"endpoints:\n  - name: bench\n    model: bench\n    base_url: {base_url}\n"
                         f"    max_concurrency: {concurrency}\n    timeout: 600\n")
    out = workdir / f"out-{concurrency}-{time.time_ns()}" / "completions.jsonl"
    command = [sys.executable, "-m", "postmix.cli", "judge", "generate", str(prompts_path), "-o",
               str(out), "--endpoints", str(endpoints), "--n", "1", "--json"]
    t0, c0 = time.perf_counter(), children_cpu()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall, cpu = time.perf_counter() - t0, children_cpu() - c0
    report = json.loads(out.with_name("completions.report.json").read_text())
    assert report["rows_out"] + sum(report["rejected"].values()) == report["rows_in"]
    return sum(report["rejected"].values()), report["timings"]["total"], wall, cpu


def in_order_makespan(waits: list[float], concurrency: int) -> float:
    """When the last answer arrives if each request, in input order, takes the first free slot."""
    import heapq

    slots = [0.0] * concurrency
    end = 0.0
    for wait in waits:
        finish = heapq.heappop(slots) + wait
        heapq.heappush(slots, finish)
        end = max(end, finish)
    return end


def heavy_tail(args: argparse.Namespace) -> None:
    from postmix.testing.openai_server import request_latency

    prompts = [{"id": f"p{i}", "prompt": f"Question {i}: explain step {i} of the proof."}
               for i in range(args.requests)]
    bodies = stage_bodies(prompts)
    n = len(bodies)
    which = "postmix.testing.openai_server" if args.test_server else "lean aiohttp server"
    print(f"server: {which} in its own process, log-normal latency, median "
          f"{args.median * 1000:.0f} ms; {n} requests; CPUs: {os.cpu_count()}; load average "
          f"before: {os.getloadavg()[0]:.1f}")
    print("times in s; CPU in ms per request (cli: the whole subprocess, start-up included)")
    print(f"{'sigma':>5} {'C':>4} {'slowest':>7} {'bound':>6} {'order':>6} {'plain':>6} "
          f"{'stage':>6} {'cli':>6} {'bare':>6} {'st/bound':>8} {'st/order':>8} "
          f"{'plain/st':>8} {'st/bare':>7} {'CPU plain':>9} {'cli':>5} {'bare':>5} "
          f"{'server':>6} {'load':>4} {'failed':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        prompts_path = workdir / "prompts.jsonl"
        prompts_path.write_text("".join(json.dumps(p) + "\n" for p in prompts))
        for sigma in args.sigmas:
            waits = [request_latency(b, args.median, sigma) for b in bodies]
            port = free_port()
            server = serve_lognormal(port, args.median, sigma, args.test_server)
            base_url = f"http://127.0.0.1:{port}/v1"
            try:
                for c in args.levels:
                    bound = max(sum(waits) / c, max(waits))
                    ordered = in_order_makespan(waits, c)
                    s0 = process_cpu(server.pid)
                    failed_p, plain, cpu_p = asyncio.run(run_plain(base_url, c, bodies))
                    time.sleep(1.0)  # let the server drop the last run's sockets
                    failed_s, stage, wall, cpu_s = run_cli_stage(workdir, base_url, c,
                                                                 prompts_path)
                    time.sleep(1.0)
                    failed_b, bare, cpu_b = asyncio.run(run_bare_bodies(base_url, c, bodies))
                    s1 = process_cpu(server.pid)
                    server_ms = (f"{(s1 - s0) / (3 * n) * 1000:>6.2f}"
                                 if s0 is not None and s1 is not None else f"{'?':>6}")
                    print(f"{sigma:>5.1f} {c:>4} {max(waits):>7.2f} {bound:>6.2f} "
                          f"{ordered:>6.2f} {plain:>6.2f} {stage:>6.2f} {wall:>6.2f} "
                          f"{bare:>6.2f} {stage / bound:>8.3f} {stage / ordered:>8.3f} "
                          f"{plain / stage:>8.2f} {stage / bare:>7.3f} "
                          f"{cpu_p / n * 1000:>9.2f} {cpu_s / n * 1000:>5.2f} "
                          f"{cpu_b / n * 1000:>5.2f} {server_ms} {os.getloadavg()[0]:>4.1f} "
                          f"{failed_p}/{failed_s}/{failed_b}", flush=True)
                    time.sleep(1.0)
            finally:
                server.terminate()
                server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--latency", type=float, default=LATENCY)
    parser.add_argument("--levels", type=int, nargs="*", default=list(LEVELS))
    parser.add_argument("--quick", action="store_true", help="fewer requests per level")
    parser.add_argument("--heavy-tail", action="store_true",
                        help="the judge generate stage under log-normal latency (see above)")
    parser.add_argument("--median", type=float, default=0.15, help="--heavy-tail: median s")
    parser.add_argument("--sigmas", type=float, nargs="*", default=[1.0, 1.5])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--test-server", action="store_true", help="--heavy-tail against "
                        "postmix.testing.openai_server instead of the lean server")
    parser.add_argument("--sigma", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.latency, args.sigma)
        return
    if args.heavy_tail:
        if args.levels == list(LEVELS):
            args.levels = [64, 256]
        heavy_tail(args)
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
