"""Fixtures shared by every test: the real local cluster, Prometheus, namespaces.

The session's cluster is the one `weir cluster up` runs (default state folder
and ports): reused when it is already running, started otherwise and then
stopped at the end, so the machine is left as it was found. Only tests that
ask for these fixtures pay for the cluster.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client
from prometheus_api_client import PrometheusConnect

from weir_lab.cluster import controlplane, kube
from weir_lab.cluster.settings import ClusterSettings
from weir_lab.cluster.wait import wait_for

_E2E_FOLDERS = ("scenarios",)
_E2E_FILES = ("test_demo.py",)
_INTEGRATION_FIXTURES = {"cluster", "prometheus", "namespace"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test by its layer, so `pytest -m unit` runs without a cluster.

    e2e: the closed-loop scenarios and the demo; integration: anything that asks
    for the real API server or Prometheus (directly or through another fixture);
    unit: the rest (pure code, real HTTP on loopback, subprocesses at most).
    """
    for item in items:
        path = Path(str(item.fspath))
        if path.parent.name in _E2E_FOLDERS or path.name in _E2E_FILES:
            item.add_marker(pytest.mark.e2e)
        elif _INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)


@dataclass(frozen=True)
class Cluster:
    """A running local cluster and clients for it."""

    settings: ClusterSettings
    api: client.ApiClient

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def discovery(self) -> client.DiscoveryV1Api:
        return client.DiscoveryV1Api(self.api)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    external = os.environ.get("WEIR_TEST_KUBECONFIG")
    if external:  # another cluster (e2e/kind/run.sh): use it as it is, start nothing
        state = tmp_path_factory.mktemp("external-cluster")
        (state / "kubeconfig").write_text(Path(external).read_text())
        settings = ClusterSettings(state_dir=state)
        with kube.api_client(settings) as api:
            yield Cluster(settings, api)
        return
    settings = ClusterSettings()
    # Reuse a cluster whose API server answers, even while a test has taken one of its
    # parts away (Prometheus in the fail-static test): restarting it would wipe it.
    started = not controlplane.api_ready(settings)
    if started:
        controlplane.up(settings, print)
    api = kube.api_client(settings)
    try:
        yield Cluster(settings, api)
    finally:
        api.close()
        if started and not os.environ.get("WEIR_TEST_KEEP_CLUSTER"):
            controlplane.down(settings, print)


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace with its default ServiceAccount, deleted after the test."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = cluster.core
    core.create_namespace({"metadata": {"name": name, "labels": {"weir.dev/test": "true"}}})

    def has_default_sa() -> bool:
        accounts = core.list_namespaced_service_account(name).items
        return any(sa.metadata.name == "default" for sa in accounts)

    wait_for(has_default_sa, f"ServiceAccount default in {name}", 60)
    try:
        yield name
    finally:
        core.delete_namespace(name)
        # Wait until it is gone so the next test finds the GPUs free again.
        wait_for(
            lambda: name not in {n.metadata.name for n in core.list_namespace().items},
            f"namespace {name} to be deleted",
            120,
        )


@dataclass(frozen=True)
class Prometheus:
    """The cluster's Prometheus: a client and a way to add loopback scrape targets."""

    client: PrometheusConnect
    targets_dir: Path

    def add_target(self, name: str, address: str, labels: dict[str, str] | None = None) -> Path:
        path = self.targets_dir / f"{name}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": [address], "labels": labels or {}}]))
        tmp.rename(path)  # Prometheus must never read a half-written list
        return path


@pytest.fixture
def prometheus(cluster: Cluster) -> Iterator[Prometheus]:
    prom = Prometheus(
        PrometheusConnect(url=cluster.settings.prometheus_url, disable_ssl=True),
        cluster.settings.prometheus_targets_dir,
    )
    before = set(prom.targets_dir.glob("*.json"))
    yield prom
    for path in set(prom.targets_dir.glob("*.json")) - before:
        path.unlink()
