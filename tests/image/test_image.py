"""weir's image, run with podman as the chart's pods run it.

The image comes from e2e/image/build.sh, the script `make image` runs, so the
image tested is the one `make image` tags. Cached by content: warm, the build
step takes seconds and the whole module well under a minute. Cold (a fresh
machine of this kind) it needs minutes: podman, runc and mmdebstrap from
Debian's packages, the Debian base root filesystem, the Python dependencies
from PyPI; the module's timeout allows for that.

No cluster (so the layer hook marks it `unit`): containers run as root's
podman with runc on the host's network, with what the pods have: a read-only
root filesystem with a tmpfs at /tmp (the pods' emptyDir), no capabilities,
no privilege escalation, the image's own user.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "e2e" / "image" / "build.sh"
PODMAN = ROOT / "e2e" / "image" / "podman.sh"
USER_ID = 65532  # the chart's and the router pods' runAsUser
PROFILE = "/app/engines/profiles/llama-3.1-8b-fp8-h100-tp1.yaml"
STARTUP_S = 60.0  # bound on a server in a container answering its health check

pytestmark = pytest.mark.timeout(900)  # cold: installs and builds, see above

# What the pods' securityContext amounts to, for podman.
_POD_LIKE = [
    "--network=host",
    "--read-only",
    "--read-only-tmpfs=false",
    "--tmpfs=/tmp:rw,size=64m,mode=1777",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
]

# Run inside the image: what it holds, as one JSON line.
_PROBE = """
import importlib.metadata as md, importlib.util as iu, json, os, pwd, sys
from weir.api import load_profiles
from weir.controller.settings import OperatorSettings
settings = OperatorSettings()
found = []
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys", "/dev")]
    found += [os.path.join(top, n) for n in dirs + files if "weir_lab" in n or "weir-lab" in n]
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "user": pwd.getpwuid(os.getuid()).pw_name,
    "home": os.environ["HOME"], "python": list(sys.version_info[:2]),
    "lab_spec": iu.find_spec("weir_lab") is not None, "lab_paths": found,
    "torch": iu.find_spec("torch") is not None,
    "plugins": [p.name for g in ("weir.commands", "weir.bench") for p in md.entry_points(group=g)],
    "dists": sorted(d.metadata["Name"].lower() for d in md.distributions()),
    "weir_files": sorted(str(f) for f in md.files("weir") if "test" in str(f).lower()),
    "profiles_dir": str(settings.profiles_dir),
    "profiles": sorted(load_profiles(settings.profiles_dir)),
}))
"""


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PODMAN), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def run_image(image: str, *args: str, entrypoint: str | None = None) -> str:
    """Run the image to completion, pod-like; its stdout (failing with its output)."""
    extra = [f"--entrypoint={entrypoint}"] if entrypoint else []
    done = podman("run", "--rm", *_POD_LIKE, *extra, image, *args)
    assert done.returncode == 0, f"{args}: rc {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def image() -> str:
    """The image `make image` builds (built or found up to date by the same script)."""
    env = {**os.environ, "WEIR_IMAGE_BUILDER": "podman"}
    done = subprocess.run(
        [str(BUILD)], env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, f"{BUILD} failed:\n{done.stderr[-6000:]}"
    print(done.stderr)  # its progress and the image's size, shown with -s
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def inside(image: str) -> dict[str, Any]:
    probe: dict[str, Any] = json.loads(run_image(image, "-c", _PROBE, entrypoint="python3"))
    return probe


@pytest.fixture
def server(image: str) -> Iterator[Any]:
    """Start detached pod-like containers from the image; all removed afterwards."""
    names: list[str] = []

    def start(health_url: str, *args: str) -> str:
        name = f"weir-test-{uuid.uuid4().hex[:8]}"
        done = podman("run", "-d", f"--name={name}", *_POD_LIKE, image, *args)
        assert done.returncode == 0, done.stderr
        names.append(name)
        wait_healthy(name, health_url)
        return name

    try:
        yield start
    finally:
        for name in names:
            podman("rm", "--force", "--time=5", name)


def wait_healthy(name: str, url: str) -> None:
    """Poll `url` until it answers 2xx, failing early (with the logs) if the container exits."""
    deadline = time.monotonic() + STARTUP_S
    while True:
        try:
            if httpx.get(url, timeout=1).is_success:
                return
        except httpx.HTTPError:
            pass
        state = podman("inspect", "--format={{.State.Running}}", name).stdout.strip()
        if state != "true" or time.monotonic() > deadline:
            logs = podman("logs", name)
            pytest.fail(
                f"{name} not healthy at {url} (running {state}):\n{logs.stdout}{logs.stderr}"
            )
        time.sleep(0.1)


def test_help_lists_the_product_commands(image: str) -> None:
    out = run_image(image, "--help")
    for command in ("operator", "router", "engine"):
        assert f"  {command} " in out, out
    assert "cluster" not in out and "demo" not in out, "a lab command is in the image"
    assert "0.1.0" in run_image(image, "--version")


def test_runs_as_the_non_root_user(inside: dict[str, Any]) -> None:
    assert (inside["uid"], inside["gid"], inside["user"]) == (USER_ID, USER_ID, "weir")
    assert inside["home"] == "/tmp"  # the pods' one writable mount


def test_no_lab_no_tests_no_torch(inside: dict[str, Any]) -> None:
    assert not inside["lab_spec"], "weir_lab is importable in the image"
    assert inside["lab_paths"] == []
    assert inside["plugins"] == [], "another distribution adds weir commands"
    assert "weir-lab" not in inside["dists"] and "weir" in inside["dists"]
    assert inside["weir_files"] == []
    assert not inside["torch"]
    assert inside["python"] == [3, 11]


def test_operator_finds_the_engine_profiles(inside: dict[str, Any]) -> None:
    shipped = sorted(p.stem for p in (ROOT / "engines" / "profiles").glob("*.yaml"))
    assert inside["profiles_dir"] == "/app/engines/profiles"  # the chart sets the same
    assert inside["profiles"] == shipped


def test_router_serves_from_an_engine_read_only(server: Any) -> None:
    engine, api, metrics = free_port(), free_port(), free_port()
    server(
        f"http://127.0.0.1:{engine}/health",
        "engine",
        "--backend=emulated",
        f"--profile={PROFILE}",
        "--model-name=m",
        "--host=127.0.0.1",
        f"--port={engine}",
    )
    server(
        f"http://127.0.0.1:{api}/readyz",
        "router",
        "--model=m",
        "--allow-anonymous",
        f"--backend=http://127.0.0.1:{engine}",
        "--host=127.0.0.1",
        f"--port={api}",
        f"--metrics-port={metrics}",
    )
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    reply = httpx.post(f"http://127.0.0.1:{api}/v1/chat/completions", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"]
    with httpx.stream(
        "POST",
        f"http://127.0.0.1:{api}/v1/chat/completions",
        json={**body, "stream": True},
        timeout=30,
    ) as streamed:
        assert streamed.status_code == 200
        events = [line for line in streamed.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]" and len(events) > 2, events
    counted = httpx.get(f"http://127.0.0.1:{metrics}/metrics", timeout=5).text
    assert "weir_router" in counted
