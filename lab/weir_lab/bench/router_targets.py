"""The processes `weir bench router` measures: upstream, nginx, weir, LiteLLM.

Each target is started as its own process pinned with `taskset` (the
upstream and load generator share one core, the proxy under test has the
other to itself), answers on a loopback port, and is stopped after its
runs. nginx runs with our own config (one worker, no daemon, no master),
LiteLLM with its default single worker, weir as `weir router`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from weir.router.errors import ConfigError

_READY_TIMEOUT_S = 120.0
BENCH_TOKEN = "sk-" + secrets.token_hex(24)  # LiteLLM refuses to start without a master key

NGINX_CONF = """
worker_processes 1;
daemon off;
master_process off;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream standin {{ server 127.0.0.1:{upstream}; keepalive 512; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://standin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
    }}
  }}
}}
"""

LITELLM_CONF = """
model_list:
  - model_name: bench-model
    litellm_params:
      model: openai/standin
      api_base: http://127.0.0.1:{upstream}/v1
      api_key: bench-key
general_settings:
  master_key: {token}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Started:
    """A running target: its process tree and the port it answers on."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int

    def cpu_s(self) -> float:
        """User + system CPU of the process and its children so far."""
        total = 0.0
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.proc.pid)
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    total += t.user + t.system
        return total

    def rss_mb(self) -> float:
        total = 0
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.proc.pid)
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
        return total / 2**20


NICE = -10 if os.geteuid() == 0 else 0  # same priority for every target; ahead of other work


def pinned(cpu: str, cmd: list[str]) -> list[str]:
    """`cmd` pinned to `cpu` (taskset) at the benchmark's priority (nice)."""
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", cpu, *cmd]
    return ["nice", "-n", str(NICE), *cmd] if NICE else cmd


def _wait_http(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ConfigError(f"{what} exited with code {proc.returncode} before it was ready")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        time.sleep(0.1)  # poll interval of a bounded wait for the target to answer
    raise ConfigError(f"{what} was not ready within {_READY_TIMEOUT_S:.0f} s")


@contextlib.contextmanager
def running(
    name: str,
    cmd: list[str],
    cpu: str,
    ready_url: str | None,
    port: int,
    workdir: Path,
    env: dict[str, str] | None = None,
) -> Iterator[Started]:
    """Start a pinned process, wait until it answers, stop it afterwards."""
    log = (workdir / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        pinned(cpu, cmd),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
        env={**os.environ, **(env or {})},
    )
    try:
        if ready_url is not None:
            _wait_http(ready_url, proc, name)
        yield Started(name, proc, port)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@contextlib.contextmanager
def upstream(delay_ms: float, cpu: str, workdir: Path) -> Iterator[Started]:
    port = free_port()
    cmd = [sys.executable, "-m", "weir_lab.standin", str(port), str(delay_ms), "64"]
    with running(
        f"upstream-{delay_ms:g}ms", cmd, cpu, f"http://127.0.0.1:{port}/v1/models", port, workdir
    ) as started:
        yield started


Launch = tuple[list[str], str, dict[str, str] | None]  # command, readiness path, extra env


def _nginx(upstream_port: int, port: int, workdir: Path, binary: str | None) -> Launch:
    ndir = workdir / "nginx"
    ndir.mkdir(exist_ok=True)
    conf = ndir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=ndir, upstream=upstream_port, port=port))
    found = binary or shutil.which("nginx") or "/usr/sbin/nginx"
    return (
        [found, "-p", str(ndir), "-c", str(conf), "-e", str(ndir / "error.log")],
        "/v1/models",
        None,
    )


def _weir(upstream_port: int, port: int, workdir: Path) -> Launch:
    policy = workdir / "weir-policy.json"
    policy.write_text(json.dumps({"defaultConcurrencyLimit": 100000, "maxWaiting": 100000}))
    cmd = [sys.executable, "-c", "from weir.cli import main; main()", "router"]
    cmd += ["--model", "bench-model", "--backend", f"http://127.0.0.1:{upstream_port}"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--policy-file", str(policy)]
    cmd += ["--allow-anonymous", "--metrics-port", "0"]  # the bench sends no token
    return [*cmd, "--log-level", "warning"], "/healthz", None


def _litellm(upstream_port: int, port: int, workdir: Path, binary: str | None) -> Launch:
    conf = workdir / "litellm.yaml"
    conf.write_text(LITELLM_CONF.format(upstream=upstream_port, token=BENCH_TOKEN))
    found = binary or shutil.which("litellm")
    if found is None:
        raise ConfigError("litellm is not installed: pip install -e 'lab[bench]' or --litellm PATH")
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    cmd = [found, "--config", str(conf), "--host", "127.0.0.1", "--port", str(port)]
    return cmd, "/health/liveliness", env


@contextlib.contextmanager
def target(
    name: str, upstream_port: int, cpu: str, workdir: Path, litellm: str | None, nginx: str | None
) -> Iterator[Started | None]:
    """The proxy under test (None for `direct`)."""
    if name == "direct":
        yield None
        return
    port = free_port()
    if name == "nginx":
        cmd, ready, env = _nginx(upstream_port, port, workdir, nginx)
    elif name == "weir":
        cmd, ready, env = _weir(upstream_port, port, workdir)
    elif name == "litellm":
        cmd, ready, env = _litellm(upstream_port, port, workdir, litellm)
    else:
        raise ConfigError(f"unknown target {name!r}")
    with running(name, cmd, cpu, f"http://127.0.0.1:{port}{ready}", port, workdir, env) as started:
        yield started
