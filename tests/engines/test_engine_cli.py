"""`weir engine` as a real process and `weir profile` against it."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from weir.api.profile import load_profile
from weir.cli import main


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def engine_process() -> Iterator[str]:
    port = _free_port()
    cmd = [
        str(Path(sys.executable).parent / "weir"), "engine", "--backend", "emulated",
        "--fixed-latency", "0.02", "0.03", "0.005", "0.006",
        "--model-name", "hosted/m", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "weir engine did not start in 30 s"
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.1)  # a bounded wait that also notices an early exit
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_weir_profile_against_weir_engine(engine_process: str, tmp_path: Path) -> None:
    out = tmp_path / "p.yaml"
    args = [
        "profile", "--endpoint", engine_process, "--out", str(out), "--model", "hosted/m",
        "--gpu", "none", "--concurrency", "1,2", "--shapes", "16/4", "--requests", "4",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    profile = load_profile(out)
    assert [p.concurrency for p in profile.points] == [1, 2]
    assert profile.gpu == "none"
    assert "wrote" in result.output
