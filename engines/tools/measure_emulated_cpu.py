"""Measure what emulated replicas cost in CPU, to size closed-loop tests.

Starts `weir engine --backend emulated --replicas N` as its own process, drives
every replica with S closed-loop streaming clients from this process for T
seconds, and reads the engine process's CPU time (user + system) from psutil.
Prints CPU per request, per streamed token, and the share of one core used.

    .venv/bin/python engines/tools/measure_emulated_cpu.py --replicas 24 --streams 4 \
        --seconds 20 --profile engines/profiles/llama-3.1-8b-fp8-h100-tp1.yaml
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from weir.engines.client import stream_request


async def _wait_healthy(urls: list[str], proc: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(timeout=1) as client:
        deadline = time.monotonic() + 60
        for url in urls:
            while True:
                if proc.poll() is not None:
                    raise SystemExit("the engine process exited during startup")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{url}/health")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise SystemExit("engines did not start within 60 s")
                await asyncio.sleep(0.1)


async def _drive(urls: list[str], streams: int, seconds: float, max_tokens: int) -> tuple[int, int]:
    done = [0, 0]
    stop = time.monotonic() + seconds
    body = {"prompt": "x" * 200, "max_tokens": max_tokens, "ignore_eos": True}

    async def loop(client: httpx.AsyncClient) -> None:
        while time.monotonic() < stop:
            result = await stream_request(client, "/v1/completions", body)
            done[0] += 1
            done[1] += len(result.chunk_times)

    clients = [httpx.AsyncClient(base_url=u, timeout=120) for u in urls]
    try:
        await asyncio.gather(*(loop(c) for c in clients for _ in range(streams)))
    finally:
        for c in clients:
            await c.aclose()
    return done[0], done[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=24)
    parser.add_argument("--streams", type=int, default=4, help="Concurrent clients per replica.")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--profile", type=Path, required=True)
    parser.add_argument(
        "--port", type=int, default=21000, help="First port; below the ephemeral range."
    )
    args = parser.parse_args()
    base = args.port
    weir = str(Path(sys.executable).parent / "weir")
    cmd = [weir, "engine", "--backend", "emulated", "--profile", str(args.profile),
           "--replicas", str(args.replicas), "--port", str(base)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    urls = [f"http://127.0.0.1:{base + i}" for i in range(args.replicas)]
    try:
        asyncio.run(_wait_healthy(urls, proc))
        engine = psutil.Process(proc.pid)
        before = engine.cpu_times()
        start = time.monotonic()
        requests, tokens = asyncio.run(_drive(urls, args.streams, args.seconds, args.max_tokens))
        wall = time.monotonic() - start
        after = engine.cpu_times()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    cpu = (after.user - before.user) + (after.system - before.system)
    print(f"replicas={args.replicas} streams/replica={args.streams} wall={wall:.1f}s")
    print(f"requests={requests} tokens={tokens} ({tokens / wall:.0f} tokens/s in total)")
    print(f"engine process CPU {cpu:.2f}s = {cpu / wall:.2f} cores")
    print(f"CPU per request {1000 * cpu / max(requests, 1):.2f} ms (max_tokens {args.max_tokens})")
    print(f"CPU per streamed token {1e6 * cpu / max(tokens, 1):.1f} us")


if __name__ == "__main__":
    main()
