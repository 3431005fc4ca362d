"""An HTTP attack suite for weir's servers (router and engine), over raw sockets.

Each attack is bytes a hostile or broken client writes (some a piece at a
time, some on many connections at once) and what a sane server does with
it: an HTTP status in a given set with an OpenAI-style JSON error body, or
closing the connection within a bound. `run_suite` runs every attack
against one server, checks after each that it still answers `/healthz` and
that its RSS stays within 2x what it was idle, and counts outcomes:

- clean: the expected status (JSON error body when >= 400) or close in time;
- crash: a 500, an unhealthy server, an answer that is not JSON, or no
  answer where one is due;
- nonsense accepted: a 2xx to a request that should have been refused;
- leak: a secret (the marker `SECRET`) in any answer;
- held: a connection kept open past the bound.

It runs against any build, so the same suite gives the counts before and
after a fix (tests/router/test_router_attacks.py; `python -m router.attacks`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

Chunks = list[tuple[bytes, float]]  # (bytes, delay before writing them)


@dataclass(frozen=True)
class Attack:
    """One hostile exchange and the sane answers to it."""

    name: str
    chunks: Chunks
    expect: frozenset[int]  # statuses that are fine; 0 means "closed without answer" is fine
    connections: int = 1
    hold_s: float = 5.0  # the connection must be answered or closed within this
    responses: int = 1  # pipelined: answers expected on the connection

    @property
    def refusal(self) -> bool:
        return all(s >= 400 or s == 0 for s in self.expect)


@dataclass
class Result:
    statuses: list[int]
    bodies: list[bytes]
    closed_after_s: float | None


@dataclass
class Counts:
    tried: int = 0
    clean: int = 0
    crash: int = 0
    nonsense: int = 0
    leak: int = 0
    held: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"tried {self.tried} / clean {self.clean} / crash {self.crash} / "
            f"accepted nonsense {self.nonsense} / leaked {self.leak} / held {self.held}"
        )


def _request(
    method: bytes,
    path: bytes,
    body: bytes = b"",
    *,
    headers: bytes = b"",
    length: bytes | None = None,
    version: bytes = b"HTTP/1.1",
) -> bytes:
    cl = b"%d" % len(body) if length is None else length
    return (
        method
        + b" "
        + path
        + b" "
        + version
        + b"\r\nhost: x\r\ncontent-type: application/json\r\n"
        + headers
        + (b"content-length: " + cl + b"\r\n" if cl else b"")
        + b"\r\n"
        + body
    )


def _nested(depth: int) -> bytes:
    return b'{"model":"m","messages":' + b"[" * depth + b"]" * depth + b"}"


def attacks(
    path: bytes,
    auth: bytes,
    *,
    header_timeout_s: float,
    body_timeout_s: float,
    health: bytes = b"/healthz",
    dedupe: bool = True,
) -> list[Attack]:
    """The suite for one server; `path` is its generation route, `auth` its headers."""
    chat = json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    )
    ok = chat.encode()

    def post(body: bytes, headers: bytes = b"", length: bytes | None = None) -> bytes:
        return _request(b"POST", path, body, headers=auth + headers, length=length)

    refused = frozenset({400, 404, 405, 408, 411, 413, 415, 422, 431, 501, 505, 0})
    key_refused = refused if dedupe else refused | {200}  # engines ignore idempotency keys
    head_bound = header_timeout_s + 3.0
    body_bound = body_timeout_s + 3.0
    big_header = b"x-pad: " + b"a" * (1 << 20) + b"\r\n"
    many_headers = b"".join(b"x-h%d: v\r\n" % i for i in range(5000))
    slow_head = [(b"P", 0.0), *[(bytes([c]), 0.25) for c in b"OST / HTTP/1.1\r\nhost: x\r\n"]]
    return [
        Attack("garbage request line", [(b"\x00\x01\x02 nonsense\r\n\r\n", 0)], refused),
        Attack("HTTP/0.9 line", [(b"GET " + health + b"\r\n\r\n", 0)], refused, hold_s=head_bound),
        Attack(
            "bad version",
            [(b"GET " + health + b" HTTP/9.9\r\n\r\n", 0)],
            refused,
            hold_s=head_bound,
        ),
        Attack(
            "header without colon",
            [(b"GET " + health + b" HTTP/1.1\r\nbroken\r\n\r\n", 0)],
            refused,
        ),
        Attack(
            "control char in header",
            [(b"GET " + health + b" HTTP/1.1\r\nx: a\x00b\r\n\r\n", 0)],
            refused,
        ),
        Attack(
            "1 MiB header",
            [(b"GET " + health + b" HTTP/1.1\r\n" + big_header + b"\r\n", 0)],
            refused,
        ),
        Attack(
            "5000 headers",
            [(b"GET " + health + b" HTTP/1.1\r\n" + many_headers + b"\r\n", 0)],
            refused,
        ),
        Attack("64 KiB URL", [(b"GET /" + b"a" * 65536 + b" HTTP/1.1\r\n\r\n", 0)], refused),
        Attack(
            "1 MiB idempotency key",
            [(post(ok, headers=b"idempotency-key: " + b"k" * (1 << 20) + b"\r\n"), 0)],
            refused,
        ),
        Attack(
            "300-byte idempotency key",
            [(post(ok, headers=b"x-request-id: " + b"k" * 300 + b"\r\n"), 0)],
            key_refused,
        ),
        Attack(
            "CL and TE (smuggling)",
            [
                (
                    _request(
                        b"POST",
                        path,
                        b"0\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n",
                        headers=auth + b"transfer-encoding: chunked\r\n",
                        length=b"5",
                    ),
                    0,
                )
            ],
            refused,
        ),
        Attack(
            "two Content-Lengths",
            [(_request(b"POST", path, ok, headers=auth + b"content-length: 3\r\n"), 0)],
            refused,
        ),
        Attack("negative Content-Length", [(post(ok, length=b"-1"), 0)], refused),
        Attack(
            "bad chunk size",
            [
                (
                    _request(
                        b"POST",
                        path,
                        b"zz\r\nabc\r\n0\r\n\r\n",
                        headers=auth + b"transfer-encoding: chunked\r\n",
                        length=b"",
                    ),
                    0,
                )
            ],
            refused,
        ),
        Attack(
            "TE with obs-fold",
            [
                (
                    _request(
                        b"POST",
                        path,
                        ok,
                        headers=auth + b"transfer-encoding:\r\n chunked\r\n",
                        length=b"",
                    ),
                    0,
                )
            ],
            refused,
        ),
        Attack("declared 100 MB body", [(post(b"{", length=b"100000000"), 0)], frozenset({413, 0})),
        Attack(
            "5 MiB body sent",
            [(post(b'{"prompt":"' + b"a" * (5 << 20) + b'"}'), 0)],
            frozenset({413, 0}),
        ),
        Attack(
            "body shorter than Content-Length",
            [(post(ok[:10], length=b"%d" % len(ok)), 0)],
            frozenset({408, 400, 0}),
            hold_s=body_bound,
        ),
        Attack("nested JSON 100000", [(post(_nested(100_000)), 0)], refused),
        Attack("nested JSON 5000", [(post(_nested(5000)), 0)], refused),
        Attack(
            "NaN in JSON",
            [
                (
                    post(
                        b'{"model":"m","max_tokens":NaN,"messages":[{"role":"user","content":"x"}]}'
                    ),
                    0,
                )
            ],
            refused,
        ),
        Attack("not UTF-8", [(post(b'{"model":"\xff\xfe","messages":[]}'), 0)], refused),
        Attack("JSON array body", [(post(b"[1,2,3]"), 0)], refused),
        Attack("empty body", [(post(b""), 0)], refused),
        Attack(
            "huge int",
            [
                (
                    post(
                        b'{"max_tokens":'
                        + b"9" * 5000
                        + b',"messages":[{"role":"user","content":"x"}]}'
                    ),
                    0,
                )
            ],
            refused,
        ),
        Attack(
            "n is a string",
            [(post(b'{"n":"8","messages":[{"role":"user","content":"x"}]}'), 0)],
            refused,
        ),
        Attack("unknown route", [(_request(b"GET", b"/v1/nope"), 0)], frozenset({404})),
        Attack("wrong method", [(_request(b"DELETE", path), 0)], frozenset({404, 405})),
        Attack(
            "no token",
            [(_request(b"POST", path, ok), 0)],
            frozenset({401, 200}) if not auth else frozenset({401}),
        ),
        Attack(
            "pipelined 20 health checks",
            [(_request(b"GET", health) * 20, 0)],
            frozenset({200, 204}),
            responses=20,
        ),
        Attack(
            "pipelined chat then garbage",
            [(post(ok) + b"\x00garbage\r\n\r\n", 0)],
            frozenset({200, 400, 0}),
            responses=1,
        ),
        Attack("slowloris head", slow_head, frozenset({408, 0}), hold_s=head_bound),
        Attack("idle connections", [(b"", 0)], frozenset({0}), connections=150, hold_s=head_bound),
        Attack(
            "over the connection cap",
            [(b"", 0)],
            frozenset({0, 503}),
            connections=260,
            hold_s=head_bound,
        ),
        Attack(
            "slowloris flood",
            [(b"GET " + health + b" HTTP/1.1\r\n", 0)],
            frozenset({408, 0}),
            connections=60,
            hold_s=head_bound,
        ),
    ]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    line = await reader.readline()
    if not line:
        return None
    parts = line.split()
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
    length: int | None = None
    chunked = False
    while True:
        header = await reader.readline()
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if length is not None:
        return status, await reader.readexactly(length)
    if chunked:
        body = b""
        while True:
            size = int((await reader.readline()).strip() or b"0", 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return status, body
            body += chunk[:-2]
    return status, await reader.read()


async def _one(host: str, port: int, attack: Attack) -> Result:
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
    start = time.monotonic()
    statuses: list[int] = []
    bodies: list[bytes] = []

    async def send() -> None:
        for data, delay in attack.chunks:
            if delay:
                await asyncio.sleep(delay)
            if data and not writer.is_closing():
                writer.write(data)
                await writer.drain()

    sender = asyncio.create_task(send())
    closed: float | None = None
    try:
        async with asyncio.timeout(attack.hold_s):
            while len(statuses) < attack.responses:
                got = await _read_response(reader)
                if got is None:
                    break
                statuses.append(got[0])
                bodies.append(got[1])
            if not statuses or statuses[-1] >= 400:
                await reader.read()  # an error answer closes the connection
            closed = time.monotonic() - start
    except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError):
        if not reader.at_eof():
            closed = None if time.monotonic() - start >= attack.hold_s else time.monotonic() - start
        else:
            closed = time.monotonic() - start
    finally:
        sender.cancel()
        writer.close()
    if statuses and statuses[-1] < 400:
        closed = closed if closed is not None else 0.0  # an answered, kept-alive connection is fine
    return Result(statuses, bodies, closed)


def _json_error(body: bytes) -> bool:
    try:
        obj = json.loads(body)
    except ValueError:
        return False
    error = obj.get("error") if isinstance(obj, dict) else None
    return isinstance(error, dict) and isinstance(error.get("message"), str) and "type" in error


async def healthy(host: str, port: int, health: bytes = b"/healthz") -> bool:
    try:
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"GET " + health + b" HTTP/1.1\r\nhost: x\r\n\r\n")
            got = await _read_response(reader)
            writer.close()
            return got is not None and got[0] in (200, 204)
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False


def judge(attack: Attack, results: list[Result], counts: Counts) -> None:
    """Add one attack's outcome to the counts (the first failure that applies)."""
    counts.tried += 1
    problem = ""
    for r in results:
        statuses = r.statuses or [0]
        if any(s >= 500 and s not in attack.expect for s in statuses) or -1 in statuses:
            problem = problem or "crash"
        elif any(200 <= s < 300 for s in statuses) and not (set(statuses) <= attack.expect):
            problem = problem or "nonsense"
        elif not set(statuses) <= attack.expect:
            problem = problem or "crash"
        if any(b"SECRET" in b for b in r.bodies):
            problem = "leak"
        if any(s >= 400 and not _json_error(b) for s, b in zip(r.statuses, r.bodies, strict=True)):
            problem = problem or "crash"
        if r.closed_after_s is None:
            problem = problem or "held"
    if not problem:
        counts.clean += 1
        return
    setattr(counts, problem, getattr(counts, problem) + 1)
    counts.notes.append(f"{attack.name}: {problem} {[r.statuses for r in results][:3]}")


async def run_suite(
    host: str,
    port: int,
    pid: int,
    suite: list[Attack],
    *,
    health: bytes = b"/healthz",
    on_each: Callable[[str], None] = print,
) -> Counts:
    """Every attack in turn; unhealthy or bloated after one counts as a crash."""
    proc = psutil.Process(pid)
    idle_rss = proc.memory_info().rss
    counts = Counts()
    for attack in suite:
        try:
            results = await asyncio.gather(
                *(_one(host, port, attack) for _ in range(attack.connections))
            )
        except OSError as exc:
            results = [Result([-1], [repr(exc).encode()], 0.0)]
        clean = counts.clean
        judge(attack, list(results), counts)
        rss = proc.memory_info().rss
        if not await healthy(host, port, health) or rss > 2 * idle_rss:
            if counts.clean > clean:  # it looked clean, but the server did not survive it
                counts.clean -= 1
                counts.crash += 1
            counts.notes.append(
                f"{attack.name}: healthy? RSS {rss >> 20} MiB vs idle {idle_rss >> 20} MiB"
            )
        on_each(f"{attack.name}: {counts.line()}")
    return counts
