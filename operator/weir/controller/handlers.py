"""kopf wiring: which changes trigger a reconcile, and how results reach status and events.

Handlers stay thin: they call `reconcile` (which computes from scratch) or
the control loop's step (`weir.controller.loop`) through the cluster port, in
worker threads because the Kubernetes client is synchronous, and write the
status they return, dumped from the typed model once, here at the edge. Triggers:
- the InferenceDeployment is created, changed, or seen at operator start;
- a child it owns is changed or deleted by someone else (put back at once);
- a CapacityPool or HostedEndpoint it refers to changes.
kopf keeps its own bookkeeping in annotations (not in status, whose schema is
ours), and only warnings and weir's own decisions become events.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
from prometheus_client import start_http_server

from weir.api import load_profiles
from weir.controller.apply import FIELD_MANAGER
from weir.controller.cache import CachedCluster, WatchCache
from weir.controller.children import COMPONENT_LABEL, DEPLOYMENT_LABEL
from weir.controller.conditions import set_condition
from weir.controller.kube import KubeCluster
from weir.controller.kubeapi import api_client
from weir.controller.loop import (
    LoopContext,
    MetricsCache,
    control_step,
    node_reclaimed,
    now_text,
)
from weir.controller.opmetrics import OperatorMetrics
from weir.controller.port import ClusterError
from weir.controller.reconcile import Outcome, read_status, reconcile
from weir.controller.settings import OperatorSettings
from weir.controller.spot import reclaim_reason
from weir.metrics.source import PrometheusSource

GROUP, VERSION, PLURAL = "weir.dev", "v1alpha1", "inferencedeployments"


class _Runtime:
    """Clients and settings created once at operator start (not module globals at import)."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self.api = api_client(settings, pool_size=settings.api_workers)
        self.cache = WatchCache()  # fed by the watch handlers below
        self.cluster = CachedCluster(KubeCluster(self.api), self.cache)
        self.children = settings.child_settings()
        source = PrometheusSource(settings.prometheus_url, window_s=settings.metrics_window_s)
        exported = OperatorMetrics()
        self.loop = LoopContext(
            cluster=self.cluster,
            children=self.children,
            profiles=load_profiles(settings.profiles_dir),
            metrics=MetricsCache(source, settings.metrics_refresh_s, exported),
            exported=exported,
            spot_condition_s=settings.spot_condition_s,
            retry_s=settings.reconcile_retry_s,
        )
        if settings.metrics_port:
            start_http_server(
                settings.metrics_port,
                addr=settings.metrics_host,
                registry=self.loop.exported.registry,
            )


def _runtime(memo: kopf.Memo) -> _Runtime:
    runtime = memo.get("weir")
    if not isinstance(runtime, _Runtime):
        raise kopf.PermanentError("operator runtime missing: startup handler did not run")
    return runtime


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """The kubeconfig weir was given (read when kopf logs in), else the official client's view."""
    if OperatorSettings().kubeconfig:
        return kopf.login_with_kubeconfig(**kwargs)  # reads KUBECONFIG, set to the same file
    return kopf.login_via_client(**kwargs)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="weir.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="weir.dev", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 60
    settings.execution.max_workers = 8
    runtime = _Runtime(OperatorSettings())
    settings.peering.lifetime = runtime.settings.peering_lifetime_s
    # Kubernetes calls run in threads: as many as the client's connection pool serves.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(runtime.settings.api_workers, thread_name_prefix="weir-api")
    )
    memo["weir"] = runtime


async def _reconcile_body(body: dict[str, Any], memo: kopf.Memo, created: bool = False) -> Outcome:
    """Apply the children now. On creation there is nothing to prune, and the digest is
    remembered, so the control loop's first step observes instead of applying again."""
    runtime = _runtime(memo)
    applied = runtime.loop.applied if created else None
    if created:  # just applied in full: the first control step need not resync
        runtime.loop.steps_taken.setdefault(str(body["metadata"]["uid"]), 1)
    try:
        outcome = await asyncio.to_thread(
            reconcile, runtime.cluster, body, runtime.children, applied=applied, prune=not created
        )
    except ClusterError as exc:  # reading a reference failed
        outcome = Outcome(False, "ReadFailed", str(exc), problem=str(exc), temporary=exc.temporary)
    if outcome.reason == "ApplyFailed" or outcome.reason == "ReadFailed":
        if outcome.temporary:
            raise kopf.TemporaryError(outcome.message, delay=runtime.settings.reconcile_retry_s)
        raise kopf.PermanentError(outcome.message)
    return outcome


_WRITTEN_BY_RECONCILE = (
    "pools",
    "replicas",
    "readyReplicas",
    "onDemandReplicas",
    "spotReplicas",
    "selector",
    "conditions",
    "observedGeneration",
)


def _write(outcome: Outcome, patch: kopf.Patch, body: kopf.Body) -> None:
    """The fleet and the Ready condition; the rest of status is the control loop's."""
    status = read_status(dict(body))
    if outcome.fleet is not None:
        status = outcome.fleet.into(status)
    generation = body.get("metadata", {}).get("generation")
    generation = generation if isinstance(generation, int) else None
    conditions = set_condition(
        status.conditions,
        "Ready",
        outcome.ready,
        outcome.reason,
        outcome.message,
        now_text(time.time()),
        generation,
    )
    status = status.model_copy(update={"conditions": conditions, "observed_generation": generation})
    dumped = status.model_dump(mode="json", by_alias=True)
    for key in _WRITTEN_BY_RECONCILE:
        patch.status[key] = dumped[key]
    if outcome.problem:
        kopf.warn(body, reason=outcome.reason, message=outcome.problem)
    elif outcome.result and outcome.result.pruned:
        kopf.event(body, type="Normal", reason="Pruned", message=", ".join(outcome.result.pruned))


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def reconcile_deployment(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, reason: str, **_: Any
) -> None:
    outcome = await _reconcile_body(dict(body), memo, created=reason == "create")
    _write(outcome, patch, body)


def _owner_of(labels: dict[str, str], namespace: str | None) -> tuple[str, str] | None:
    name = labels.get(DEPLOYMENT_LABEL)
    return (namespace, name) if name and namespace else None


async def _reapply_named(namespace: str, name: str, memo: kopf.Memo) -> None:
    """Re-apply the children of one owner; status is left to its control loop."""
    runtime = _runtime(memo)
    try:
        body = await asyncio.to_thread(runtime.cluster.read_deployment, namespace, name)
    except ClusterError as exc:
        raise kopf.TemporaryError(str(exc), delay=2) from exc
    if body is None:
        return  # the owner is gone; the garbage collector removes its children
    await _reconcile_body(body, memo)


def _changed_by_us(body: kopf.Body) -> bool:
    """Whether the latest write to a child was weir's own apply (nothing to restore).

    managedFields times have one-second resolution: when several managers wrote in the
    latest second, it counts as ours only if all of them are weir.
    """
    entries = body.get("metadata", {}).get("managedFields") or []
    if not entries:
        return False
    latest = max(str(e.get("time", "")) for e in entries)
    return all(
        e.get("manager") == FIELD_MANAGER for e in entries if str(e.get("time", "")) == latest
    )


_CHILD_FILTER = {DEPLOYMENT_LABEL: kopf.PRESENT, COMPONENT_LABEL: kopf.PRESENT}


@kopf.on.update("apps", "v1", "deployments", labels=_CHILD_FILTER, field="spec")
@kopf.on.delete("apps", "v1", "deployments", labels=_CHILD_FILTER, optional=True)
@kopf.on.update("v1", "services", labels=_CHILD_FILTER, field="spec")
@kopf.on.delete("v1", "services", labels=_CHILD_FILTER, optional=True)
@kopf.on.update("v1", "configmaps", labels=_CHILD_FILTER, field="data")
@kopf.on.delete("v1", "configmaps", labels=_CHILD_FILTER, optional=True)
async def child_changed(
    body: kopf.Body,
    labels: kopf.Labels,
    namespace: str | None,
    memo: kopf.Memo,
    reason: str,
    **_: Any,
) -> None:
    """A child was edited or deleted by someone else: put it back at once."""
    owner = _owner_of(dict(labels), namespace)
    if owner and (reason == "delete" or not _changed_by_us(body)):
        await _reapply_named(owner[0], owner[1], memo)


@kopf.on.event(GROUP, VERSION, "capacitypools")
def pool_watched(
    event: kopf.RawEvent, name: str | None, spec: kopf.Spec, memo: kopf.Memo, **_: Any
) -> None:
    """Keep the cache's CapacityPools current (a control step then reads none)."""
    if name:
        deleted = event.get("type") == "DELETED"
        _runtime(memo).cache.pool_seen(name, None if deleted else dict(spec))


@kopf.on.event(GROUP, VERSION, "hostedendpoints")
def hosted_watched(
    event: kopf.RawEvent,
    namespace: str | None,
    name: str | None,
    spec: kopf.Spec,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Keep the cache's HostedEndpoints current (their specs only, never a Secret)."""
    if namespace and name:
        deleted = event.get("type") == "DELETED"
        _runtime(memo).cache.hosted_seen(namespace, name, None if deleted else dict(spec))


@kopf.on.event("apps", "v1", "deployments", labels=_CHILD_FILTER)
def child_watched(
    event: kopf.RawEvent,
    namespace: str | None,
    name: str | None,
    labels: kopf.Labels,
    status: kopf.Status,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Keep the cache's view of weir's Deployments' status (replicas, ready ones)."""
    owner = _owner_of(dict(labels), namespace)
    if owner and name:
        deleted = event.get("type") == "DELETED"
        _runtime(memo).cache.child_seen(owner[0], owner[1], name, None if deleted else dict(status))


def _period_of(body: kopf.Body) -> float:
    control = (body.get("spec") or {}).get("control") or {}
    value = control.get("periodSeconds", 15.0)
    return float(value) if isinstance(value, int | float) and value > 0 else 15.0


@kopf.daemon(GROUP, VERSION, PLURAL, initial_delay=1.0, cancellation_timeout=10.0)
async def control_loop(
    stopped: kopf.DaemonStopped,
    namespace: str | None,
    name: str | None,
    body: kopf.Body,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """One loop per InferenceDeployment, at the period its spec sets.

    kopf keeps `body` current from its watch, so a step does not read the object.
    """
    if not namespace or not name:
        return
    runtime = _runtime(memo)
    # Spread the daemons over the period: a thousand created at once must not all step
    # in the same second (each at a fixed offset from its UID, the same after a restart).
    uid = str(body.get("metadata", {}).get("uid", name))
    await stopped.wait(_period_of(body) * (zlib.crc32(uid.encode()) % 1000) / 1000)
    try:
        while not stopped:
            started = time.monotonic()
            current = dict(body)
            current["status"] = dict(body.get("status") or {})
            period = await control_step(runtime.loop, namespace, name, current)
            # a fixed rate: the step's own time counts against the period
            await stopped.wait(max(0.0, period - (time.monotonic() - started)))
    finally:
        if stopped:
            _runtime(memo).loop.exported.forget(namespace, name)


@kopf.on.event("", "v1", "nodes")
async def node_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A node being reclaimed: drain weir's engine pods on it now, not at the next period."""
    runtime = _runtime(memo)
    if event.get("type") == "DELETED":
        why: str | None = "node deleted"
    else:
        why = reclaim_reason(body, runtime.settings.reclaim_taints)
    if why is None:
        return
    node = str(body.get("metadata", {}).get("name", ""))
    await node_reclaimed(runtime.loop, node, why)
