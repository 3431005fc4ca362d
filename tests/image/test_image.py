"""weir's image, as `make image` builds it, run with podman the way a kubelet runs it.

The image is what the chart and the operator's router pods run, so these tests
run it under the pods' own terms: as its own non-root user, with a read-only
root filesystem and /tmp as the one writable mount. They check that it is
small, carries the product and not the lab, answers `weir --help`, serves a
request as `weir router` (the official client, real HTTP on loopback), and
reconciles an InferenceDeployment as `weir operator run` against the local
cluster with a kubeconfig of its own (the operator's whole import graph:
kopf, the kubernetes client without the asyncio twin the image drops).
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from openai import OpenAI

from conftest import Cluster
from support.image import built_image
from support.operator import (
    GROUP,
    VERSION,
    create,
    custom,
    delete_and_wait,
    deployment,
    install_crds,
    pools,
)
from weir_lab.closedloop.harness import free_port
from weir_lab.cluster.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
PODMAN = str(ROOT / "e2e" / "image" / "podman.sh")
MAX_IMAGE_BYTES = 400_000_000  # issue 15's target, without torch
# The pods' terms (charts/weir and the operator's router pods): their own user,
# a read-only root and an emptyDir on /tmp.
POD_TERMS = ("--read-only", "--tmpfs", "/tmp:rw,size=64m", "--network", "host")
# A cold build makes a Debian root filesystem and installs the dependencies.
pytestmark = pytest.mark.timeout(1800)


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def image() -> str:
    """The image `make image` builds (cached by content: built once per change)."""
    return built_image()


def run_in(image: str, *command: str) -> subprocess.CompletedProcess[str]:
    return podman("run", "--rm", *POD_TERMS, "--entrypoint", command[0], image, *command[1:])


def test_the_image_is_small_and_runs_as_its_own_user(image: str) -> None:
    size = podman("image", "inspect", "--format", "{{.Size}}", image)
    assert size.returncode == 0, size.stderr
    assert int(size.stdout) <= MAX_IMAGE_BYTES, f"{image} is {int(size.stdout) / 1e6:.0f} MB"
    user = podman("image", "inspect", "--format", "{{.Config.User}}", image)
    assert user.stdout.strip() == "65532:65532"
    ids = run_in(image, "id", "-u")
    assert ids.returncode == 0, ids.stderr
    assert ids.stdout.strip() == "65532"
    help_text = podman("run", "--rm", *POD_TERMS, image, "--help")
    assert help_text.returncode == 0, help_text.stderr
    assert "operator" in help_text.stdout and "router" in help_text.stdout
    written = run_in(image, "sh", "-c", "touch /app/x")
    assert written.returncode != 0 and "Read-only" in written.stderr


def test_the_image_carries_the_product_and_not_the_lab(image: str) -> None:
    probe = (
        "import importlib.util as u, weir\n"
        "print(weir.__file__)\n"
        "for name in ('weir_lab', 'matplotlib', 'torch', 'pytest', 'kubernetes.aio', 'pip'):\n"
        "    print(name, u.find_spec(name) is not None)\n"
    )
    found = run_in(image, "python3", "-c", probe)
    assert found.returncode == 0, found.stderr
    lines = found.stdout.split("\n")
    assert lines[0].startswith("/opt/weir/lib/")
    assert set(lines[1:-1]) == {
        f"{name} False"
        for name in ("weir_lab", "matplotlib", "torch", "pytest", "kubernetes.aio", "pip")
    }
    # as root, to see every folder: an inspection, not how the pods run it
    files = podman(
        "run",
        "--rm",
        "--user",
        "0",
        "--entrypoint",
        "find",
        image,
        "/",
        "-xdev",
        "(",
        "-name",
        "weir_lab*",
        "-o",
        "-name",
        "bench",
        ")",
    )
    assert files.returncode == 0 and files.stdout == "", files.stdout
    profiles = run_in(image, "sh", "-c", "ls $WEIR_OPERATOR_PROFILES_DIR")
    assert profiles.returncode == 0 and ".yaml" in profiles.stdout


@contextmanager
def container(image: str, name: str, *args: str) -> Iterator[str]:
    """A detached container, removed on exit; yields its name."""
    started = podman("run", "-d", "--name", name, *POD_TERMS, *args)
    assert started.returncode == 0, started.stderr
    try:
        yield name
    finally:
        podman("rm", "-f", "-t", "5", name)


def test_the_image_serves_a_request_as_the_router(image: str, tmp_path: Path) -> None:
    engine_port, router_port = free_port(), free_port()
    log = (tmp_path / "engine.log").open("wb")
    engine = subprocess.Popen(
        [
            *(sys.executable, "-m", "weir", "engine", "--backend", "emulated"),
            *("--port", str(engine_port), "--model-name", "m"),
            *("--fixed-latency", "0.01", "0.02", "0.002", "0.004"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    name = f"weir-router-{os.getpid()}"
    try:
        router_args = [
            *("--model", "m", "--host", "127.0.0.1", "--port", str(router_port)),
            *("--backend", f"http://127.0.0.1:{engine_port}"),
            *("--allow-anonymous", "--metrics-port", "0"),
        ]
        with container(image, name, image, "router", *router_args):
            client = OpenAI(base_url=f"http://127.0.0.1:{router_port}/v1", api_key="none")

            def answered() -> str | None:
                try:
                    reply = client.chat.completions.create(
                        model="m",
                        messages=[{"role": "user", "content": "hello"}],
                        max_tokens=8,
                    )
                except Exception:  # noqa: BLE001 - the router is still starting
                    return None
                return reply.choices[0].message.content

            text = wait_for(answered, "the router in the image to answer", 60)
            assert text
            stream = client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "hello"}],
                max_tokens=8,
                stream=True,
            )
            chunks = [c.choices[0].delta.content for c in stream if c.choices]
            assert len([c for c in chunks if c]) >= 2
            logs = podman("logs", name)
            assert "Traceback" not in logs.stdout + logs.stderr
    finally:
        engine.terminate()
        engine.wait(timeout=20)
        log.close()


def _self_contained(kubeconfig: Path, out: Path) -> Path:
    """The cluster's kubeconfig with its files inlined, readable by the image's user."""
    config = yaml.safe_load(kubeconfig.read_text())
    for section, key in (("clusters", "cluster"), ("users", "user")):
        for entry in config[section]:
            body = entry[key]
            for field in ("certificate-authority", "client-certificate", "client-key"):
                if field in body:
                    data = Path(body.pop(field)).read_bytes()
                    body[f"{field}-data"] = base64.b64encode(data).decode()
    out.write_text(yaml.safe_dump(config))
    out.chmod(0o644)
    return out


def test_the_image_reconciles_as_the_operator(
    image: str, cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    install_crds(cluster.api)
    api = custom(cluster.api)
    made = pools(namespace)
    for pool in made:
        api.create_cluster_custom_object(GROUP, VERSION, "capacitypools", pool)
    kubeconfig = _self_contained(cluster.settings.kubeconfig, tmp_path / "kubeconfig")
    name = f"weir-operator-{os.getpid()}"
    env = {
        "WEIR_OPERATOR_KUBECONFIG": "/etc/weir/kubeconfig",
        "WEIR_OPERATOR_PROMETHEUS_URL": cluster.settings.prometheus_url,
        "WEIR_OPERATOR_METRICS_PORT": "0",
    }
    flags = [f for k, v in env.items() for f in ("-e", f"{k}={v}")]
    try:
        with container(
            image,
            name,
            "-v",
            f"{kubeconfig}:/etc/weir/kubeconfig:ro",
            *flags,
            image,
            "operator",
            "run",
            "--standalone",
        ):
            create(cluster, namespace, deployment(namespace))

            def children() -> list[str] | None:
                state = podman("inspect", "--format", "{{.State.Running}}", name)
                if state.stdout.strip() != "true":  # it exited: say why, do not wait on
                    logs = podman("logs", name)
                    pytest.fail(f"the operator's container stopped:\n{logs.stderr[-3000:]}")
                found = cluster.apps.list_namespaced_deployment(namespace).items
                names = sorted(d.metadata.name for d in found)
                return names if f"llm-{namespace}-spot" in names else None

            names = wait_for(children, "the operator in the image to create the engines", 120)
            assert f"llm-{namespace}-od" in names
            logs = podman("logs", name)
            assert "Traceback" not in logs.stdout + logs.stderr, logs.stderr[-3000:]
            # deleted while the operator runs: it lets go of its finalizer, so the
            # namespace the test leaves behind can go too
            delete_and_wait(cluster, namespace)
    finally:
        for pool in made:
            api.delete_cluster_custom_object(
                GROUP, VERSION, "capacitypools", pool["metadata"]["name"]
            )
