"""One reconcile pass of an InferenceDeployment: references, children, status.

Level-based: the desired children are computed from scratch from the spec,
the referenced pools and endpoint, and the replicas per pool the control loop
last planned (kept in status, so a restarted operator loses nothing). A
missing or unusable reference sets `Ready=False` with the reason and touches
no child.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from pydantic import ValidationError

from weir.api import CapacityPoolSpec, HostedEndpointSpec, InferenceDeploymentSpec
from weir.api._base import describe_validation_error
from weir.controller.apply import Applier, ApplyResult
from weir.controller.children import (
    ChildSettings,
    Inputs,
    InvalidReferenceError,
    Owner,
    desired_children,
    engine_name,
)
from weir.controller.conditions import set_condition
from weir.controller.references import read_hosted, read_pools


@dataclass(frozen=True)
class Outcome:
    """What a reconcile did, for status and events."""

    status: dict[str, Any]
    result: ApplyResult | None
    problem: str | None


def clamp(spec: InferenceDeploymentSpec, wanted: dict[str, int]) -> dict[str, int]:
    """Replicas per pool within the spec's bounds (a pool not given gets its minimum)."""
    return {
        b.pool: max(b.min_replicas, min(b.max_replicas, wanted.get(b.pool, b.min_replicas)))
        for b in spec.pools
    }


def planned_replicas(spec: InferenceDeploymentSpec, status: dict[str, Any]) -> dict[str, int]:
    """Replicas per pool: the last plan in status, clamped to the spec's bounds."""
    planned = {p.get("pool"): p.get("desiredReplicas") for p in status.get("pools") or []}
    return clamp(
        spec, {k: v for k, v in planned.items() if isinstance(k, str) and isinstance(v, int)}
    )


def observed_status(inputs: Inputs, result: ApplyResult) -> dict[str, Any]:
    """Replicas per pool as the engine Deployments report them, and the totals."""
    rows = []
    totals = {"replicas": 0, "readyReplicas": 0, "on-demand": 0, "spot": 0}
    for binding in inputs.spec.pools:
        pool = inputs.pools[binding.pool]
        seen = result.observed.get(("Deployment", engine_name(inputs.owner.name, binding.pool)), {})
        count = int(seen.get("replicas") or 0)
        ready = int(seen.get("readyReplicas") or 0)
        rows.append(
            {
                "pool": binding.pool,
                "capacityType": pool.capacity_type,
                "desiredReplicas": inputs.replicas[binding.pool],
                "replicas": count,
                "readyReplicas": ready,
                "dollarsPerHour": count * pool.gpus_per_replica * pool.dollars_per_gpu_hour,
            }
        )
        totals["replicas"] += count
        totals["readyReplicas"] += ready
        totals[pool.capacity_type] += count
    return {
        "pools": rows,
        "replicas": totals["replicas"],
        "readyReplicas": totals["readyReplicas"],
        "onDemandReplicas": totals["on-demand"],
        "spotReplicas": totals["spot"],
    }


def reconcile(
    api: client.ApiClient,
    applier: Applier,
    body: dict[str, Any],
    now: str,
    settings: ChildSettings,
    replicas: dict[str, int] | None = None,
    router_policy: dict[str, Any] | None = None,
    applied: dict[str, str] | None = None,
    references: tuple[dict[str, CapacityPoolSpec], HostedEndpointSpec | None] | None = None,
) -> Outcome:
    """Apply the children of one InferenceDeployment and say what its status should be.

    With `applied` (owner UID -> digest of the children last applied), an unchanged
    desired set is not re-applied; only the engine Deployments' status is read. The
    control loop passes it and forces a full apply now and then; event handlers do
    not pass it, so an edit by hand is always put back.
    """
    meta, status = body["metadata"], dict(body.get("status") or {})
    generation = meta.get("generation")
    conditions = list(status.get("conditions") or [])
    owner = Owner(meta["name"], meta["namespace"], meta["uid"])
    try:
        spec = InferenceDeploymentSpec.model_validate(body.get("spec") or {})
        if references is not None:
            pools, hosted = references
        else:
            pools = read_pools(api, spec)
            hosted = read_hosted(api, owner.namespace, spec)
        replicas = clamp(spec, replicas) if replicas is not None else planned_replicas(spec, status)
        policy = router_policy if router_policy is not None else status.get("spillPolicy") or {}
        inputs = Inputs(owner, spec, pools, hosted, replicas, policy, settings)
        manifests = desired_children(inputs)
    except (InvalidReferenceError, ValidationError) as exc:
        message = (
            describe_validation_error("spec", exc) if isinstance(exc, ValidationError) else str(exc)
        )
        conditions = set_condition(
            conditions, "Ready", False, "InvalidReference", message, now, generation
        )
        return Outcome({"conditions": conditions, "observedGeneration": generation}, None, message)
    digest = hashlib.sha256(json.dumps(manifests, sort_keys=True).encode()).hexdigest()
    if applied is not None and applied.get(owner.uid) == digest:
        result = applier.observe(owner.namespace, owner.name)
    else:
        result = applier.sync(owner.namespace, owner.name, owner.uid, manifests)
        if applied is not None:
            applied[owner.uid] = digest
    conditions = set_condition(
        conditions,
        "Ready",
        True,
        "ChildrenApplied",
        f"{len(manifests)} objects match the spec"
        + (f"; pruned {', '.join(result.pruned)}" if result.pruned else ""),
        now,
        generation,
    )
    engine_selector = f"weir.dev/deployment={owner.name},weir.dev/component=engine"
    patch = {
        "observedGeneration": generation,
        "selector": engine_selector,
        **observed_status(inputs, result),
        "conditions": conditions,
    }
    return Outcome(patch, result, None)
