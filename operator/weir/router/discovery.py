"""Engine pods from EndpointSlices: which replicas exist, which are ready, which drain.

The operator runs one Deployment and one Service per capacity pool of an
InferenceDeployment; the router watches the EndpointSlices of those
Services (label `kubernetes.io/service-name`), so the pool of an endpoint is
the pool of its Service. An endpoint is routable when its conditions say
`ready` and not `terminating`. Draining at a spot notice needs nothing
else: the operator deletes the pod with a grace period as long as the
notice, the endpoint turns `ready: false, terminating: true` at once, the
router sends it no new request, and the engine finishes its open streams
during the grace period (the router keeps them until they end).

The official client is synchronous, so the list-then-watch loop runs in a
daemon thread and hands each full endpoint set to the event loop. API and
network errors are retried with a pause, never raised into the router: on
errors the last known set stays in force (fail static).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from weir.router.backends import Endpoint

log = logging.getLogger("weir.router")
SERVICE_LABEL = "kubernetes.io/service-name"
_RETRY_S = 1.0
_WATCH_S = 30


def slice_endpoints(slice_obj: Any, pool: str, port_name: str | None) -> list[Endpoint]:
    """The endpoints of one EndpointSlice object (kubernetes client model)."""
    ports = slice_obj.ports or []
    chosen = [p for p in ports if port_name is None or p.name == port_name]
    if not chosen or chosen[0].port is None:
        return []
    port = chosen[0].port
    out = []
    for ep in slice_obj.endpoints or []:
        if not ep.addresses:
            continue
        address = ep.addresses[0]
        host = f"[{address}]" if ":" in address else address
        cond = ep.conditions
        ready = cond is None or cond.ready is not False
        terminating = cond is not None and cond.terminating is True
        url = f"http://{host}:{port}"
        pod = ep.target_ref.name if ep.target_ref is not None else None
        out.append(Endpoint(url, url, pool, ready=ready, draining=terminating, pod=pod))
    return out


class EndpointSliceDiscovery:
    """Watches the EndpointSlices of one Service per pool in a namespace."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        services: Mapping[str, str],
        port_name: str | None = None,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.pool_of = {service: pool for pool, service in services.items()}
        self.port_name = port_name
        self._stop = threading.Event()
        self._watch: Any = None

    def _endpoints(self, slices: Mapping[str, Any]) -> list[Endpoint]:
        out: list[Endpoint] = []
        for obj in slices.values():
            service = (obj.metadata.labels or {}).get(SERVICE_LABEL, "")
            out.extend(slice_endpoints(obj, self.pool_of.get(service, service), self.port_name))
        return out

    def _loop(self, deliver: Callable[[list[Endpoint]], None]) -> None:
        api: Any = client.DiscoveryV1Api(self.api)
        selector = f"{SERVICE_LABEL} in ({','.join(sorted(self.pool_of))})"
        while not self._stop.is_set():
            try:
                listing = api.list_namespaced_endpoint_slice(
                    self.namespace, label_selector=selector
                )
                slices = {s.metadata.name: s for s in listing.items}
                deliver(self._endpoints(slices))
                watcher: Any = watch.Watch()  # type: ignore[no-untyped-call]
                self._watch = watcher
                for event in watcher.stream(
                    api.list_namespaced_endpoint_slice,
                    self.namespace,
                    label_selector=selector,
                    resource_version=listing.metadata.resource_version,
                    timeout_seconds=_WATCH_S,
                ):
                    obj = event["object"]
                    if event["type"] == "DELETED":
                        slices.pop(obj.metadata.name, None)
                    else:
                        slices[obj.metadata.name] = obj
                    deliver(self._endpoints(slices))
            except (ApiException, HTTPError, OSError) as exc:
                if self._stop.is_set():
                    return
                log.warning("EndpointSlice watch failed, keeping the last set: %s", exc)
                self._stop.wait(_RETRY_S)

    async def run(self, publish: Callable[[list[Endpoint]], None]) -> None:
        loop = asyncio.get_running_loop()

        def deliver(endpoints: list[Endpoint]) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(publish, endpoints)

        thread = threading.Thread(target=self._loop, args=(deliver,), daemon=True)
        thread.start()
        try:
            await asyncio.Event().wait()
        finally:
            self._stop.set()
            if self._watch is not None:
                self._watch.stop()
