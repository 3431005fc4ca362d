"""The attack suite (`router.attacks`) against a real router and a real engine process.

Both run as `weir router` / `weir engine` subprocesses on loopback with
short head and body deadlines, so RSS is the server's own and a crash is a
dead or unhealthy process. Acceptance: every attack clean (the expected
status with an OpenAI-style JSON error, or a close within the deadline),
no leak, no connection held past its bound, RSS within 2x idle.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from router.attacks import Counts, attacks, run_suite
from weir_lab.cluster.wait import wait_for

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.0
TOKEN = "attack-token"
_WEIR = [sys.executable, "-c", "from weir.cli import main; main()"]
_LIMITS = [
    f"--header-timeout={HEADER_TIMEOUT_S}",
    f"--body-timeout={BODY_TIMEOUT_S}",
    "--keep-alive-timeout=2",
    "--max-connections=200",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def process(
    argv: list[str], port: int, log: Path, health: str = "/healthz"
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server and wait (bounded) until its /healthz answers."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)

    def healthy() -> bool:
        assert proc.poll() is None, log.read_text()  # a crashed server fails at once
        try:
            return httpx.get(f"http://127.0.0.1:{port}{health}", timeout=1).status_code < 300
        except httpx.HTTPError:  # not listening yet: the bounded wait polls again
            return False

    try:
        wait_for(healthy, f"the server on port {port} to answer {health}", 30, interval_s=0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def engine_argv(port: int) -> list[str]:
    return [
        *_WEIR,
        "engine",
        "--backend=emulated",
        "--model-name=m",  # the suite's requests name model "m" (any other is a 404)
        "--fixed-latency",
        "0.001",
        "0.002",
        "0.001",
        "0.002",
        "--host=127.0.0.1",
        f"--port={port}",
        *_LIMITS,
    ]


def _assert_clean(counts: Counts) -> None:
    print(counts.line())
    assert counts.tried == len(attacks(b"/", b"", header_timeout_s=1, body_timeout_s=1))
    assert counts.clean == counts.tried, counts.notes
    assert (counts.crash, counts.nonsense, counts.leak, counts.held) == (0, 0, 0, 0), counts.notes


async def test_engine_survives_the_attack_suite(tmp_path: Path) -> None:
    port = free_port()
    with process(engine_argv(port), port, tmp_path / "engine.log", "/health") as proc:
        suite = attacks(
            b"/v1/chat/completions",
            b"",
            header_timeout_s=HEADER_TIMEOUT_S,
            body_timeout_s=BODY_TIMEOUT_S,
            health=b"/health",
            dedupe=False,
        )
        counts = await run_suite("127.0.0.1", port, proc.pid, suite, health=b"/health")
    _assert_clean(counts)


async def test_router_survives_the_attack_suite(tmp_path: Path) -> None:
    engine_port, port, metrics_port = free_port(), free_port(), free_port()
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN + "\n")
    argv = [
        *_WEIR,
        "router",
        "--model=m",
        f"--backend=http://127.0.0.1:{engine_port}",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--metrics-port={metrics_port}",
        f"--client-tokens-file={tokens}",
        *_LIMITS,
    ]
    with (
        process(engine_argv(engine_port), engine_port, tmp_path / "engine.log", "/health"),
        process(argv, port, tmp_path / "router.log") as proc,
    ):
        suite = attacks(
            b"/v1/chat/completions",
            f"authorization: Bearer {TOKEN}\r\n".encode(),
            header_timeout_s=HEADER_TIMEOUT_S,
            body_timeout_s=BODY_TIMEOUT_S,
        )
        counts = await run_suite("127.0.0.1", port, proc.pid, suite)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    _assert_clean(counts)
    assert metrics.status_code == 404  # spend and caps are not on the API port
