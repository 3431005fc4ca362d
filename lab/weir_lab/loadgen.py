"""Closed-loop streaming load generator for `weir bench router`.

Each of `concurrency` workers keeps one keep-alive connection and sends the
next streaming request as soon as the previous one ends, so the offered load
adapts to the target and the numbers compare like for like. It is a raw
asyncio protocol on uvloop (no HTTP client library), so that it costs far
less CPU than the proxies it measures; it reports its own CPU time to prove
it. TTFT is the time from writing the request to the first byte of token
text ("tok "), whichever proxy re-frames the stream; a request counts as
done at the chunked terminator after `[DONE]`. Throughput and TTFT are taken
over the requests that *end* inside the measurement window (a proxy slower
than the window, like LiteLLM at concurrency 200, still gets a TTFT).
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from dataclasses import asdict, dataclass, field
from typing import cast

_TOKEN = b"tok "


@dataclass
class LoadResult:
    """What one measurement window saw."""

    completed: int = 0
    errors: int = 0
    ttft_s: list[float] = field(default_factory=list)
    window_s: float = 0.0
    cpu_s: float = 0.0
    error_samples: list[str] = field(default_factory=list)


class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[float | None, bool]] | None = None
        self.buf = bytearray()
        self.first: float | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.first, False))

    def data_received(self, data: bytes) -> None:
        if self.first is None and _TOKEN in data:
            self.first = time.perf_counter()
        self.buf += data
        if self.buf.endswith(b"0\r\n\r\n") and b"[DONE]" in self.buf:
            ok = self.buf.startswith(b"HTTP/1.1 200")
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result((self.first, ok))

    async def request(self, payload: bytes) -> tuple[float | None, bool]:
        assert self.transport is not None
        self.buf.clear()
        self.first = None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return await self.waiter


def request_bytes(
    host: str, port: int, path: str, body: dict[str, object], token: str = "bench"
) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {token}\r\ncontent-length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def _worker(
    host: str, port: int, payload: bytes, until: list[float], result: LoadResult, timeout_s: float
) -> None:
    loop = asyncio.get_running_loop()
    conn: _Conn | None = None
    while time.perf_counter() < until[1]:
        if conn is None or conn.lost:
            _, conn = await loop.create_connection(_Conn, host, port)
        start = time.perf_counter()
        try:
            first, ok = await asyncio.wait_for(conn.request(payload), timeout_s)
        except TimeoutError:
            first, ok = None, False
            assert conn.transport is not None
            conn.transport.close()
        end = time.perf_counter()
        if not until[0] <= end <= until[1]:
            continue  # warm-up, or after the window
        if ok and first is not None:
            result.completed += 1
            result.ttft_s.append(first - start)
        else:
            result.errors += 1
            if len(result.error_samples) < 3:
                result.error_samples.append(bytes(conn.buf[:200]).decode("latin-1"))


async def _mark(at: float, line: str) -> None:
    """Tell the parent (stdout) when the window opens and closes, to sample the proxy's CPU."""
    await asyncio.sleep(max(at - time.perf_counter(), 0.0))
    print(line, flush=True)


async def run_load(
    host: str,
    port: int,
    *,
    path: str,
    body: dict[str, object],
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    timeout_s: float = 30.0,
    token: str = "bench",
) -> LoadResult:
    """Drive `concurrency` closed-loop streams; measure only after the warm-up."""
    payload = request_bytes(host, port, path, body, token)
    result = LoadResult()
    now = time.perf_counter()
    until = [now + warmup_s, now + warmup_s + duration_s]
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    workers = [
        asyncio.create_task(_worker(host, port, payload, until, result, timeout_s))
        for _ in range(concurrency)
    ]
    await _mark(until[0], "WINDOW START")
    await _mark(until[1], "WINDOW END")
    await asyncio.gather(*workers)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    result.window_s = duration_s
    result.cpu_s = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    return result


def main() -> None:  # pragma: no cover - a subprocess of the benchmark
    """`python -m weir_lab.loadgen JSON-ARGS`: prints the LoadResult as JSON."""
    import sys

    import uvloop

    args = json.loads(sys.argv[1])
    result = uvloop.run(run_load(**args))
    summary = asdict(result)
    ttft = sorted(summary.pop("ttft_s"))
    summary["ttft_ms"] = {
        str(q): ttft[min(int(q * len(ttft)), len(ttft) - 1)] * 1000 if ttft else None
        for q in (0.5, 0.99)
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":  # pragma: no cover
    main()
