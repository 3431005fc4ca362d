"""One reconcile pass of an InferenceDeployment: references, children, observed fleet.

Level-based: the desired children are computed from scratch from the spec,
the referenced pools and endpoint, and the replicas per pool the control loop
last planned (kept in status, so a restarted operator loses nothing). A
missing or unusable reference sets `Ready=False` with the reason and touches
no child; an apply the API server refuses sets `Ready=False` with its reason
too (the control loop writes it, and goes on with the other deployments).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from weir.api import InferenceDeploymentSpec
from weir.api._base import describe_validation_error
from weir.api.router import RouterPolicy
from weir.api.status import InferenceDeploymentStatus, PoolStatus
from weir.controller.children import (
    CLIENT_TOKENS_KEY,
    ChildSettings,
    Inputs,
    InvalidReferenceError,
    Owner,
    client_tokens_name,
    desired_children,
    engine_name,
)
from weir.controller.port import ApplyResult, ClusterError, ClusterPort, OwnerRef, References


@dataclass(frozen=True)
class Fleet:
    """The engine replicas as the API server reports them, per pool and in total."""

    pools: tuple[PoolStatus, ...]
    selector: str

    def into(self, status: InferenceDeploymentStatus) -> InferenceDeploymentStatus:
        """`status` with this fleet's fields."""
        count = {"on-demand": 0, "spot": 0}
        for row in self.pools:
            count[row.capacity_type] += row.replicas
        return status.model_copy(
            update={
                "pools": list(self.pools),
                "replicas": sum(r.replicas for r in self.pools),
                "ready_replicas": sum(r.ready_replicas for r in self.pools),
                "on_demand_replicas": count["on-demand"],
                "spot_replicas": count["spot"],
                "selector": self.selector,
            }
        )


@dataclass(frozen=True)
class Outcome:
    """What a reconcile did: the fleet it saw and the Ready condition it earned."""

    ready: bool
    reason: str
    message: str
    fleet: Fleet | None = None
    result: ApplyResult | None = None
    problem: str | None = None  # a message for a warning event (invalid input, failed apply)
    temporary: bool = False  # a failed apply that a retry may fix
    notes: tuple[str, ...] = field(default=())


def clamp(spec: InferenceDeploymentSpec, wanted: dict[str, int]) -> dict[str, int]:
    """Replicas per pool within the spec's bounds (a pool not given gets its minimum)."""
    return {
        b.pool: max(b.min_replicas, min(b.max_replicas, wanted.get(b.pool, b.min_replicas)))
        for b in spec.pools
    }


def planned_replicas(
    spec: InferenceDeploymentSpec, status: InferenceDeploymentStatus
) -> dict[str, int]:
    """Replicas per pool: the last plan in status, clamped to the spec's bounds."""
    return clamp(spec, {p.pool: p.desired_replicas for p in status.pools})


def observed_fleet(inputs: Inputs, result: ApplyResult) -> Fleet:
    """Replicas per pool as the engine Deployments report them."""
    rows = []
    for binding in inputs.spec.pools:
        pool = inputs.pools[binding.pool]
        seen = result.observed.get(("Deployment", engine_name(inputs.owner.name, binding.pool)), {})
        count = int(seen.get("replicas") or 0)
        rows.append(
            PoolStatus(
                pool=binding.pool,
                capacity_type=pool.capacity_type,
                desired_replicas=inputs.replicas[binding.pool],
                replicas=count,
                ready_replicas=int(seen.get("readyReplicas") or 0),
                dollars_per_hour=count * pool.gpus_per_replica * pool.dollars_per_gpu_hour,
            )
        )
    selector = f"weir.dev/deployment={inputs.owner.name},weir.dev/component=engine"
    return Fleet(tuple(rows), selector)


def _inputs(
    cluster: ClusterPort,
    owner: Owner,
    spec: InferenceDeploymentSpec,
    status: InferenceDeploymentStatus,
    settings: ChildSettings,
    replicas: dict[str, int] | None,
    policy: RouterPolicy | None,
    references: References | None,
) -> Inputs:
    pools, hosted = references or cluster.read_references(owner.namespace, spec)
    wanted = clamp(spec, replicas) if replicas is not None else planned_replicas(spec, status)
    if policy is None:  # the event handlers: keep the policy the last plan wrote
        last = status.spill_policy
        dumped = {} if last is None else last.model_dump(by_alias=True, exclude={"draining_pods"})
        policy = RouterPolicy.model_validate(dumped)
    return Inputs(owner, spec, pools, hosted, wanted, policy.model_dump(by_alias=True), settings)


def reconcile(
    cluster: ClusterPort,
    body: dict[str, Any],
    settings: ChildSettings,
    replicas: dict[str, int] | None = None,
    router_policy: RouterPolicy | None = None,
    applied: dict[str, str] | None = None,
    references: References | None = None,
    status: InferenceDeploymentStatus | None = None,
    spec: InferenceDeploymentSpec | None = None,
    prune: bool = True,
) -> Outcome:
    """Apply the children of one InferenceDeployment and say what its status should be.

    With `applied` (owner UID -> digest of the children last applied), an unchanged
    desired set is not re-applied; only the engine Deployments' status is read. The
    control loop passes it and forces a full apply now and then; event handlers do
    not pass it, so an edit by hand is always put back. The control loop also passes
    the spec and status it already parsed (once per step). `prune=False` on creation:
    a new owner has no children to prune (seven list calls saved per deployment).
    """
    meta = body["metadata"]
    owner = Owner(meta["name"], meta["namespace"], meta["uid"])
    current = status if status is not None else read_status(body)
    try:
        if spec is None:
            spec = InferenceDeploymentSpec.model_validate(body.get("spec") or {})
        inputs = _inputs(
            cluster, owner, spec, current, settings, replicas, router_policy, references
        )
        manifests = desired_children(inputs)
    except (InvalidReferenceError, ValidationError) as exc:
        message = (
            describe_validation_error("spec", exc) if isinstance(exc, ValidationError) else str(exc)
        )
        return Outcome(False, "InvalidReference", message, problem=message)
    digest = hashlib.sha256(json.dumps(manifests, sort_keys=True).encode()).hexdigest()
    try:
        weights = spec.model.weights_secret_ref
        if weights is not None:  # its engines read the token: the Secret must allow this owner
            cluster.check_weights_secret(owner.namespace, owner.name, weights.name)
        if settings.client_auth:  # before the router that mounts it
            cluster.ensure_secret(
                owner.namespace,
                client_tokens_name(owner.name),
                OwnerRef(owner.name, owner.uid),
                CLIENT_TOKENS_KEY,
            )
        if applied is not None and applied.get(owner.uid) == digest:
            result = cluster.observe_children(owner.namespace, owner.name)
        else:
            result = cluster.apply_children(
                owner.namespace, owner.name, owner.uid, manifests, prune=prune
            )
            if applied is not None:
                applied[owner.uid] = digest
    except InvalidReferenceError as exc:
        return Outcome(False, "InvalidReference", str(exc), problem=str(exc))
    except ClusterError as exc:
        if applied is not None:
            applied.pop(owner.uid, None)  # apply everything again next time
        message = f"applying the children failed: {exc}"
        return Outcome(False, "ApplyFailed", message, problem=message, temporary=exc.temporary)
    pruned = f"; pruned {', '.join(result.pruned)}" if result.pruned else ""
    message = f"{len(manifests)} objects match the spec{pruned}"
    return Outcome(True, "ChildrenApplied", message, observed_fleet(inputs, result), result)


def read_status(body: dict[str, Any]) -> InferenceDeploymentStatus:
    """The status stored on `body`, read leniently: a field that no longer validates
    (written by another version, or edited by hand) is dropped, the rest kept."""
    raw = body.get("status") or {}
    if not isinstance(raw, dict):
        return InferenceDeploymentStatus()
    try:
        return InferenceDeploymentStatus.model_validate(raw)
    except ValidationError:
        pass
    kept: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            InferenceDeploymentStatus.model_validate({**kept, key: value})
        except ValidationError:
            continue
        kept[key] = value
    return InferenceDeploymentStatus.model_validate(kept)
