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
from typing import Any

import kopf
from kubernetes import client, config

from weir.controller.apply import Applier, ApplyError
from weir.controller.children import COMPONENT_LABEL, DEPLOYMENT_LABEL, ChildSettings
from weir.controller.reconcile import Outcome, reconcile
from weir.controller.settings import OperatorSettings

GROUP, VERSION, PLURAL = "weir.dev", "v1alpha1", "inferencedeployments"


class _Runtime:
    """Clients and settings created once at operator start (not module globals at import)."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        if settings.kubeconfig:
            self.api = config.new_client_from_config(config_file=settings.kubeconfig)  # type: ignore[no-untyped-call]
        else:
            try:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
            except config.ConfigException:
                config.load_kube_config()  # type: ignore[no-untyped-call]
            self.api = client.ApiClient()
        self.applier = Applier(self.api)
        self.children = ChildSettings(
            router_image=settings.router_image,
            engine_cpu=settings.engine_cpu,
            engine_memory=settings.engine_memory,
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


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="weir.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="weir.dev", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 60
    settings.execution.max_workers = 8
    memo["weir"] = _Runtime(OperatorSettings())


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
        kopf.info(body, reason="Pruned", message=", ".join(outcome.result.pruned))


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


async def _reconcile_named(namespace: str, name: str, memo: kopf.Memo) -> None:
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
    outcome = await _reconcile_body(dict(body) if isinstance(body, dict) else {}, memo)
    await asyncio.to_thread(
        custom.patch_namespaced_custom_object_status,
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        name,
        {"status": outcome.status},
    )


_CHILD_FILTER = {DEPLOYMENT_LABEL: kopf.PRESENT, COMPONENT_LABEL: kopf.PRESENT}


@kopf.on.update("apps", "v1", "deployments", labels=_CHILD_FILTER, field="spec")
@kopf.on.delete("apps", "v1", "deployments", labels=_CHILD_FILTER, optional=True)
@kopf.on.update("v1", "services", labels=_CHILD_FILTER, field="spec")
@kopf.on.delete("v1", "services", labels=_CHILD_FILTER, optional=True)
@kopf.on.update("v1", "configmaps", labels=_CHILD_FILTER, field="data")
@kopf.on.delete("v1", "configmaps", labels=_CHILD_FILTER, optional=True)
async def child_changed(
    labels: kopf.Labels, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """A child was edited or deleted by someone: put it back (apply is a no-op if it is ours)."""
    owner = _owner_of(dict(labels), namespace)
    if owner:
        await _reconcile_named(owner[0], owner[1], memo)


@kopf.daemon(GROUP, VERSION, PLURAL, initial_delay=1.0, cancellation_timeout=10.0)
async def control_loop(
    stopped: kopf.DaemonStopped, namespace: str | None, name: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """One loop per InferenceDeployment, at the period its spec sets: converge and observe."""
    if not namespace or not name:
        return
    while not stopped:
        period = await _control_step(namespace, name, memo)
        await stopped.wait(period)


async def _control_step(namespace: str, name: str, memo: kopf.Memo) -> float:
    """Reconcile from current state and refresh the observed part of status; the next delay."""
    runtime = _runtime(memo)
    custom = client.CustomObjectsApi(runtime.api)
    try:
        body = await asyncio.to_thread(
            custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name
        )
    except client.exceptions.ApiException:
        return runtime.settings.reconcile_retry_s
    if not isinstance(body, dict):
        return runtime.settings.reconcile_retry_s
    period = float(((body.get("spec") or {}).get("control") or {}).get("periodSeconds", 15.0))
    try:
        outcome = await asyncio.to_thread(
            reconcile, runtime.api, runtime.applier, body, _now(), runtime.children
        )
        await asyncio.to_thread(
            custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"status": outcome.status},
        )
    except (ApplyError, client.exceptions.ApiException) as exc:
        logging.getLogger(__name__).warning(
            "control step of %s/%s failed: %s", namespace, name, exc
        )
        return min(period, runtime.settings.reconcile_retry_s)
    return period
