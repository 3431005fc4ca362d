"""kopf wiring: which changes trigger a reconcile, and how results reach status and events.

Handlers stay thin: they call `reconcile` (which computes from scratch) in a
worker thread, because the Kubernetes client is synchronous, and write the
status it returns. Triggers:
- the InferenceDeployment is created, changed, or seen at operator start;
- a child it owns is changed or deleted by someone else (put back at once);
- a CapacityPool or HostedEndpoint it refers to changes.
kopf keeps its own bookkeeping in annotations (not in status, whose schema is
ours), and only warnings and weir's own decisions become events.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from typing import Any, cast

import kopf
from kubernetes import client
from prometheus_client import start_http_server

from weir.api import load_profiles
from weir.controller.apply import FIELD_MANAGER, Applier, ApplyError
from weir.controller.children import COMPONENT_LABEL, DEPLOYMENT_LABEL, ChildSettings
from weir.controller.control import Decision
from weir.controller.kubeapi import api_client
from weir.controller.loop import LoopContext, MetricsCache, step
from weir.controller.opmetrics import OperatorMetrics
from weir.controller.reconcile import Outcome, reconcile
from weir.controller.settings import OperatorSettings
from weir.controller.spot import drain_node, reclaim_reason
from weir.metrics.source import PrometheusSource

GROUP, VERSION, PLURAL = "weir.dev", "v1alpha1", "inferencedeployments"


class _Runtime:
    """Clients and settings created once at operator start (not module globals at import)."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self.api = api_client(settings)
        self.applier = Applier(self.api)
        self.children = ChildSettings(
            router_image=settings.router_image,
            engine_cpu=settings.engine_cpu,
            engine_memory=settings.engine_memory,
            router_replicas=settings.router_replicas,
            extra_router_args=tuple(settings.router_extra_args),
        )
        source = PrometheusSource(settings.prometheus_url, window_s=settings.metrics_window_s)
        exported = OperatorMetrics()
        self.loop = LoopContext(
            api=self.api,
            applier=self.applier,
            children=self.children,
            profiles=load_profiles(settings.profiles_dir),
            metrics=MetricsCache(source, settings.metrics_refresh_s, exported),
            exported=exported,
            spot_condition_s=settings.spot_condition_s,
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


def _now() -> str:
    return (
        datetime.datetime.now(datetime.UTC)
        .replace(microsecond=0)
        .isoformat()
        .replace("+00:00", "Z")
    )


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """The kubeconfig weir was given (read when kopf logs in), else the official client's view."""
    if OperatorSettings().kubeconfig:
        return kopf.login_with_kubeconfig(**kwargs)  # reads KUBECONFIG, set to the same file
    return kopf.login_via_client(**kwargs)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="weir.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="weir.dev", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 60
    settings.execution.max_workers = 8
    runtime = _Runtime(OperatorSettings())
    settings.peering.lifetime = runtime.settings.peering_lifetime_s
    memo["weir"] = runtime


async def _reconcile_body(body: dict[str, Any], memo: kopf.Memo) -> Outcome:
    runtime = _runtime(memo)
    try:
        return await asyncio.to_thread(
            reconcile, runtime.api, runtime.applier, body, _now(), runtime.children
        )
    except ApplyError as exc:
        if exc.temporary:
            raise kopf.TemporaryError(str(exc), delay=runtime.settings.reconcile_retry_s) from exc
        raise kopf.PermanentError(str(exc)) from exc


def _write(outcome: Outcome, patch: kopf.Patch, body: kopf.Body) -> None:
    for key, value in outcome.status.items():
        patch.status[key] = value
    if outcome.problem:
        kopf.warn(body, reason="InvalidReference", message=outcome.problem)
    elif outcome.result and outcome.result.pruned:
        kopf.event(body, type="Normal", reason="Pruned", message=", ".join(outcome.result.pruned))


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def reconcile_deployment(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any
) -> None:
    outcome = await _reconcile_body(dict(body), memo)
    _write(outcome, patch, body)


def _owner_of(labels: dict[str, str], namespace: str | None) -> tuple[str, str] | None:
    name = labels.get(DEPLOYMENT_LABEL)
    return (namespace, name) if name and namespace else None


async def _reapply_named(namespace: str, name: str, memo: kopf.Memo) -> None:
    """Re-apply the children of one owner; status is left to its control loop."""
    runtime = _runtime(memo)
    custom = client.CustomObjectsApi(runtime.api)
    try:
        body = await asyncio.to_thread(
            custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name
        )
    except client.exceptions.ApiException as exc:
        if exc.status == 404:
            return  # the owner is gone; the garbage collector removes its children
        raise kopf.TemporaryError(f"read {namespace}/{name}: {exc.reason}", delay=2) from exc
    await _reconcile_body(dict(body) if isinstance(body, dict) else {}, memo)


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


@kopf.daemon(GROUP, VERSION, PLURAL, initial_delay=1.0, cancellation_timeout=10.0)
async def control_loop(
    stopped: kopf.DaemonStopped, namespace: str | None, name: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """One loop per InferenceDeployment, at the period its spec sets."""
    if not namespace or not name:
        return
    try:
        while not stopped:
            started = time.monotonic()
            period = await _control_step(namespace, name, memo)
            # a fixed rate: the step's own time counts against the period
            await stopped.wait(max(0.0, period - (time.monotonic() - started)))
    finally:
        if stopped:
            _runtime(memo).loop.exported.forget(namespace, name)


async def _control_step(namespace: str, name: str, memo: kopf.Memo) -> float:
    """Decide, converge, write status and events; the delay until the next step."""
    runtime = _runtime(memo)
    ctx = runtime.loop
    custom = client.CustomObjectsApi(runtime.api)
    retry = runtime.settings.reconcile_retry_s
    try:
        body = await asyncio.to_thread(
            custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name
        )
    except client.exceptions.ApiException:
        return retry
    if not isinstance(body, dict):
        return retry
    period = float(((body.get("spec") or {}).get("control") or {}).get("periodSeconds", 15.0))
    now_s = float(ctx.clock())
    snapshot = await ctx.metrics.get(now_s)
    try:
        status, decision = await asyncio.to_thread(step, ctx, body, snapshot, now_s)
        await asyncio.to_thread(
            custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"status": status},
        )
    except (ApplyError, client.exceptions.ApiException) as exc:
        logging.getLogger(__name__).warning(
            "control step of %s/%s failed: %s", namespace, name, exc
        )
        return min(period, retry)
    _post_events(body, status, decision)
    return period


def _post_events(raw: dict[str, Any], status: dict[str, Any], decision: Decision | str) -> None:
    """An event on each change of plan, and on each decision not to act a person would ask about."""
    body = kopf.Body(cast(kopf.RawBody, raw))
    before: dict[str, Any] = raw.get("status") or {}
    old = (before.get("lastDecision") or {}).get("summary")
    if isinstance(decision, str):
        old_degraded: dict[str, Any] = next(
            (c for c in before.get("conditions") or [] if c.get("type") == "Degraded"), {}
        )
        if old_degraded.get("message") != decision:
            kopf.warn(body, reason="NoPlan", message=decision)
        return
    if decision.plan.held:
        if (before.get("lastDecision") or {}).get("acted", True):
            kopf.warn(body, reason="PlanHeld", message="; ".join(decision.plan.reasons))
    elif decision.summary != old:
        verb = "PlanChanged" if status["lastDecision"]["acted"] else "PlanRecommended"
        kopf.event(body, type="Normal", reason=verb, message=decision.summary)


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
    drained = await asyncio.to_thread(drain_node, runtime.api, node)
    custom = client.CustomObjectsApi(runtime.api)
    for item in drained:
        message = f"node {node} ({why}): moved traffic off {', '.join(item.pods)}; replacing them"
        runtime.loop.exported.interruptions.labels(item.namespace, item.deployment).inc()
        runtime.loop.interruptions[(item.namespace, item.deployment)] = (
            float(runtime.loop.clock()),
            message,
        )
        try:
            owner = await asyncio.to_thread(
                custom.get_namespaced_custom_object,
                GROUP,
                VERSION,
                item.namespace,
                PLURAL,
                item.deployment,
            )
        except client.exceptions.ApiException:
            continue
        kopf.warn(kopf.Body(cast(kopf.RawBody, owner)), reason="SpotInterruption", message=message)
