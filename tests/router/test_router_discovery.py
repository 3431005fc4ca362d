"""EndpointSlice discovery against the real API server: ready, draining, gone.

The addresses are not reachable (the API server refuses loopback ones); traffic
is tested with fixed loopback backends, which plug into the same Protocol.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conftest import Cluster
from router.helpers import wait_until
from weir.router.backends import BackendSet, Endpoint
from weir.router.discovery import SERVICE_LABEL, EndpointSliceDiscovery

pytestmark = pytest.mark.cluster


def _slice(name: str, service: str, endpoints: list[tuple[str, bool, bool]]) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {SERVICE_LABEL: service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}],
        "endpoints": [
            {
                "targetRef": {"kind": "Pod", "name": f"pod-{ip}"},
                "addresses": [ip],
                "conditions": {"ready": ready, "serving": True, "terminating": terminating},
            }
            for ip, ready, terminating in endpoints
        ],
    }


async def test_endpointslice_watch_tracks_ready_draining_and_removed(
    cluster: Cluster, namespace: str
) -> None:
    api = cluster.discovery
    for svc in ("llm-spot", "llm-od"):
        cluster.core.create_namespaced_service(
            namespace, {"metadata": {"name": svc}, "spec": {"ports": [{"port": 8000}]}}
        )
    api.create_namespaced_endpoint_slice(
        namespace,
        _slice("spot-1", "llm-spot", [("10.1.0.1", True, False), ("10.1.0.2", True, False)]),
    )
    api.create_namespaced_endpoint_slice(
        namespace, _slice("od-1", "llm-od", [("10.2.0.1", True, False)])
    )
    backends = BackendSet()
    seen: list[list[Endpoint]] = []

    def publish(endpoints: list[Endpoint]) -> None:
        seen.append(endpoints)
        backends.update(endpoints)

    discovery = EndpointSliceDiscovery(
        cluster.api, namespace, {"spot": "llm-spot", "on-demand": "llm-od"}, port_name="http"
    )
    task = asyncio.create_task(discovery.run(publish))
    try:
        await wait_until(lambda: len(backends.by_id) == 3, "three endpoints", 20)
        pools = {b.url: b.pool for b in backends.by_id.values()}
        assert pools == {
            "http://10.1.0.1:8000": "spot",
            "http://10.1.0.2:8000": "spot",
            "http://10.2.0.1:8000": "on-demand",
        }
        busy = backends.by_id["http://10.1.0.2:8000"]
        assert busy.pod == "pod-10.1.0.2"  # the operator's drainingPods name pods
        backends.acquire(busy)  # an open stream on the pod about to drain
        # spot notice: the pod is deleted with a grace period; its endpoint turns terminating
        api.replace_namespaced_endpoint_slice(
            "spot-1",
            namespace,
            _slice("spot-1", "llm-spot", [("10.1.0.1", True, False), ("10.1.0.2", False, True)]),
        )
        await wait_until(lambda: not busy.routable, "the endpoint to drain", 20)
        assert backends.counts() == (2, 1)
        loads = {r.replica_id: r.accepting for r in backends.loads(0.0, None)}
        assert loads["http://10.1.0.2:8000"] is False
        api.delete_namespaced_endpoint_slice("spot-1", namespace)
        await wait_until(lambda: "http://10.1.0.1:8000" not in backends.by_id, "slice gone", 20)
        assert busy.id in backends.by_id  # kept while its stream is open
        backends.release(busy)
        assert busy.id not in backends.by_id
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
