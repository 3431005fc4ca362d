"""The control loop's step for one InferenceDeployment, and what all steps share.

Every period: read the object, take the shared metrics snapshot (one query
set serves every deployment: the cache refreshes it at most every few
seconds, whatever the number of deployments), decide (pure, `control.decide`),
apply children with the decided replicas and spill policy, write status, post
events on changes, export the operator's own metrics. Everything it asks of
Kubernetes goes through the cluster port (`weir.controller.port`), so the
loop is unit-tested against a recording fake.

Fail static: when Prometheus cannot be read, or answers NaN for demand, the
planner holds the fleet (the last plan, or after a restart the replicas the
status reports; never the minimum on missing data) and MetricsAvailable says
why; when the decision itself fails (no profile, budget below the minimum
fleet), the children keep their last replicas and Degraded says why; when
the API server refuses an apply, Ready=False says so and the loop goes on.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from weir.api import EngineProfile, InferenceDeploymentSpec
from weir.api.status import InferenceDeploymentStatus
from weir.controller.children import ChildSettings, InvalidReferenceError, router_name
from weir.controller.conditions import set_condition
from weir.controller.control import ControlDecision, NoPlan, decide, decode_state
from weir.controller.events import post_events
from weir.controller.opmetrics import OperatorMetrics
from weir.controller.port import ClusterError, ClusterPort, References
from weir.controller.reconcile import Outcome, read_status, reconcile
from weir.metrics.snapshot import MetricsSnapshot, MetricsSource
from weir.planner.types import PlannerState, PlanningError, PoolObservation

_log = logging.getLogger(__name__)


def now_text(now_s: float) -> str:
    moment = datetime.datetime.fromtimestamp(now_s, datetime.UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


class MetricsCache:
    """One snapshot shared by every deployment's step, refreshed at most every `max_age_s`."""

    def __init__(
        self, source: MetricsSource, max_age_s: float, exported: OperatorMetrics | None = None
    ) -> None:
        self._exported = exported
        self._source = source
        self._max_age_s = max_age_s
        self._last: MetricsSnapshot | None = None
        self._lock = asyncio.Lock()
        self.collections = 0

    async def get(self, now_s: float) -> MetricsSnapshot:
        async with self._lock:
            last = self._last
            if last is not None and now_s - last.taken_at_s < self._max_age_s:
                return last
            self._last = await asyncio.to_thread(self._source.collect, now_s)
            self.collections += 1
            if self._exported is not None:
                self._exported.collections.inc()
                self._exported.queries.inc(self._last.queries)
            return self._last


@dataclass
class LoopContext:
    """What every step shares: the cluster port, settings, profiles, metrics, memory."""

    cluster: ClusterPort
    children: ChildSettings
    profiles: dict[str, EngineProfile]
    metrics: MetricsCache
    exported: OperatorMetrics
    states: dict[str, PlannerState] = field(default_factory=dict)
    # (namespace, deployment) -> (when, what) of the last spot drain
    interruptions: dict[tuple[str, str], tuple[float, str]] = field(default_factory=dict)
    spot_condition_s: float = 600.0
    last_step_at: dict[tuple[str, str], float] = field(default_factory=dict)
    # owner UID -> digest of the children last applied; a full apply every `resync_every` steps
    applied: dict[str, str] = field(default_factory=dict)
    steps_taken: dict[str, int] = field(default_factory=dict)
    # owner UID -> whether its router Deployment had a ready replica at the last look
    router_ready: dict[str, bool] = field(default_factory=dict)
    # owner UID -> steps since status was last written (skipped while nothing changed)
    unwritten: dict[str, int] = field(default_factory=dict)
    heartbeat_every: int = 4
    resync_every: int = 10
    retry_s: float = 5.0
    clock: Callable[[], float] = time.time


@dataclass(frozen=True)
class StepResult:
    """One step: the status found and the one to write, what was decided, what the
    reconcile did (events compare the two statuses, so the stored one is parsed once)."""

    previous: InferenceDeploymentStatus
    status: InferenceDeploymentStatus
    decision: ControlDecision | NoPlan
    outcome: Outcome


def _observed(status: InferenceDeploymentStatus) -> dict[str, PoolObservation]:
    return {
        row.pool: PoolObservation(
            ready=row.ready_replicas, warming=max(0, row.replicas - row.ready_replicas)
        )
        for row in status.pools
    }


def _references(
    ctx: LoopContext, namespace: str, spec: InferenceDeploymentSpec | None
) -> References | None:
    """The pools and endpoint the spec names, read once per step (None: reconcile says why)."""
    if spec is None:
        return None
    try:
        return ctx.cluster.read_references(namespace, spec)
    except InvalidReferenceError:
        return None


def _decide(
    ctx: LoopContext,
    key: tuple[str, str, str],
    spec: InferenceDeploymentSpec | None,
    status: InferenceDeploymentStatus,
    snapshot: MetricsSnapshot,
    now_s: float,
    references: References | None,
) -> ControlDecision | NoPlan:
    """The decision, or why none could be made (for the Degraded condition)."""
    namespace, name, uid = key
    if spec is None or references is None:
        return NoPlan("the spec or a referenced CapacityPool or HostedEndpoint is invalid")
    pools, hosted = references
    if len(pools) != len(spec.pools) or (spec.hosted is not None and hosted is None):
        return NoPlan("a referenced CapacityPool or HostedEndpoint is missing")
    state = ctx.states.get(uid) or decode_state(status.planner_state)
    metrics = snapshot.for_deployment(namespace, name)
    ctx.exported.targets(
        namespace, name, spec.cost.budget_dollars_per_hour, spec.slo.useful_token_target
    )
    try:
        return decide(
            spec,
            pools,
            hosted,
            ctx.profiles,
            snapshot,
            metrics,
            _observed(status),
            state,
            now_s,
            now_text(now_s),
            router_ready=ctx.router_ready.get(uid, False),
        )
    except PlanningError as exc:
        return NoPlan(str(exc))


def _conditions(
    ctx: LoopContext,
    key: tuple[str, str],
    status: InferenceDeploymentStatus,
    outcome: Outcome,
    decision: ControlDecision | NoPlan,
    now_s: float,
    generation: int | None,
) -> InferenceDeploymentStatus:
    now = now_text(now_s)
    conditions = set_condition(
        status.conditions, "Ready", outcome.ready, outcome.reason, outcome.message, now, generation
    )
    if isinstance(decision, NoPlan):
        conditions = set_condition(
            conditions, "Degraded", True, "NoPlan", decision.reason, now, generation
        )
    else:
        for kind, ok, reason, message in decision.conditions:
            conditions = set_condition(conditions, kind, ok, reason, message, now, generation)
    when, what = ctx.interruptions.get(key, (-1e18, ""))
    recent = now_s - when < ctx.spot_condition_s
    conditions = set_condition(
        conditions,
        "SpotInterrupted",
        recent,
        "SpotReclaimed" if recent else "NoInterruption",
        what if recent else f"no spot interruption in the last {ctx.spot_condition_s:.0f}s",
        now,
        generation,
    )
    return status.model_copy(update={"conditions": conditions, "observed_generation": generation})


def _parse_spec(body: dict[str, Any]) -> InferenceDeploymentSpec | None:
    try:
        return InferenceDeploymentSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        return None


def step(
    ctx: LoopContext, body: dict[str, Any], snapshot: MetricsSnapshot, now_s: float
) -> StepResult:
    """Decide and converge one deployment; the status to write and the decision (sync)."""
    started = time.monotonic()
    meta = body["metadata"]
    namespace, name, uid = str(meta["namespace"]), str(meta["name"]), str(meta["uid"])
    previous = ctx.last_step_at.get((namespace, name))
    ctx.last_step_at[(namespace, name)] = started
    if previous is not None:
        ctx.exported.step_gap.observe(started - previous)
    spec = _parse_spec(body)  # once per step: decide and reconcile share it
    stored = status = read_status(body)  # events compare the written status with it
    references = _references(ctx, namespace, spec)
    decision = _decide(ctx, (namespace, name, uid), spec, status, snapshot, now_s, references)
    count = ctx.steps_taken.get(uid, 0)
    ctx.steps_taken[uid] = count + 1
    if count % ctx.resync_every == 0:
        ctx.applied.pop(uid, None)  # level-based: re-apply everything now and then
    planned = decision if isinstance(decision, ControlDecision) else None
    if planned is not None:
        ctx.states[uid] = planned.plan.state
        ctx.exported.speeds(namespace, name, planned.plan.state.speeds)
    outcome = reconcile(
        ctx.cluster,
        dict(body),
        ctx.children,
        replicas=planned.replicas if planned else None,
        router_policy=planned.router_policy if planned else None,
        applied=ctx.applied,
        references=references,
        status=status,
        spec=spec,
    )
    if outcome.result is not None:
        router = outcome.result.observed.get(("Deployment", router_name(name)), {})
        ctx.router_ready[uid] = int(router.get("readyReplicas") or 0) > 0
    if planned is not None:
        status = planned.into(status)
    if outcome.fleet is not None:
        status = outcome.fleet.into(status)
    generation = meta.get("generation")
    status = _conditions(
        ctx,
        (namespace, name),
        status,
        outcome,
        decision,
        now_s,
        generation if isinstance(generation, int) else None,
    )
    ctx.exported.steps.inc()
    ctx.exported.step_seconds.observe(time.monotonic() - started)
    return StepResult(stored, status, decision, outcome)


def _period(body: dict[str, Any]) -> float:
    spec = body.get("spec")
    control = spec.get("control") if isinstance(spec, dict) else None
    value = control.get("periodSeconds", 15.0) if isinstance(control, dict) else 15.0
    return float(value) if isinstance(value, int | float) and value > 0 else 15.0


def _settled(status: dict[str, Any]) -> dict[str, Any]:
    """What a change of must reach status at once: the fleet, the plan, the conditions.

    The rest changes every step without news (live economics drift, the planner's
    memory gains a sample, reasons quote the forecast): written as a heartbeat.
    """
    decision = status.get("lastDecision")
    conditions = status.get("conditions")
    return {
        "fleet": [status.get(k) for k in ("pools", "plannedReplicas", "spillPolicy", "selector")],
        "generation": status.get("observedGeneration"),
        "plan": [decision.get(k) for k in ("summary", "acted")]
        if isinstance(decision, dict)
        else None,
        "conditions": sorted(
            (c.get("type"), c.get("status"), c.get("reason"))
            for c in conditions
            if isinstance(c, dict)
        )
        if isinstance(conditions, list)
        else None,
    }


def _worth_writing(ctx: LoopContext, uid: str, before: Any, written: dict[str, Any]) -> bool:
    """Write when something a person or a restart needs changed, or a heartbeat is due."""
    skipped = ctx.unwritten.get(uid, ctx.heartbeat_every)
    unchanged = isinstance(before, dict) and _settled(before) == _settled(written)
    if unchanged and skipped + 1 < ctx.heartbeat_every:
        ctx.unwritten[uid] = skipped + 1
        return False
    ctx.unwritten[uid] = 0
    return True


async def control_step(
    ctx: LoopContext, namespace: str, name: str, body: dict[str, Any] | None = None
) -> float:
    """Decide, converge, write status and events; the delay until the next step.

    `body` is the object as the daemon's watch last saw it (kopf keeps it fresh);
    without it the step reads the object.
    """
    if body is None:
        try:
            body = await asyncio.to_thread(ctx.cluster.read_deployment, namespace, name)
        except ClusterError as exc:
            _log.warning("reading %s/%s failed: %s", namespace, name, exc)
            return ctx.retry_s
    if body is None:
        return ctx.retry_s  # deleted: kopf stops this daemon
    period = _period(body)
    now_s = float(ctx.clock())
    snapshot = await ctx.metrics.get(now_s)
    try:
        result = await asyncio.to_thread(step, ctx, body, snapshot, now_s)
    except ClusterError as exc:  # reading references failed: try again soon, change nothing
        _log.warning("control step of %s/%s failed: %s", namespace, name, exc)
        return min(period, ctx.retry_s)
    written = result.status.model_dump(mode="json", by_alias=True)  # the one dump
    ctx.exported.observe(namespace, name, written)
    uid = str(body["metadata"]["uid"])
    if _worth_writing(ctx, uid, body.get("status"), written):
        try:
            await asyncio.to_thread(ctx.cluster.write_status, namespace, name, written)
        except ClusterError as exc:
            ctx.unwritten.pop(uid, None)  # write again next step
            _log.warning("writing the status of %s/%s failed: %s", namespace, name, exc)
            return min(period, ctx.retry_s)
    post_events(
        ctx.cluster,
        body,
        before=result.previous,
        status=result.status,
        decision=result.decision,
        outcome=result.outcome,
    )
    return min(period, ctx.retry_s) if result.outcome.temporary else period


async def node_reclaimed(ctx: LoopContext, node: str, why: str) -> None:
    """A node being reclaimed: drain weir's engine pods on it now, not at the next period.

    Each affected deployment gets the SpotInterrupted condition for a while (its
    next steps set it), an interruption counted in the operator's metrics, and a
    warning event naming the pods.
    """
    try:
        drained = await asyncio.to_thread(ctx.cluster.drain_node, node)
    except ClusterError as exc:
        _log.warning("draining node %s failed: %s", node, exc)
        return
    for item in drained:
        message = f"node {node} ({why}): moved traffic off {', '.join(item.pods)}; replacing them"
        ctx.exported.interruptions.labels(item.namespace, item.deployment).inc()
        ctx.interruptions[(item.namespace, item.deployment)] = (float(ctx.clock()), message)
        try:
            owner = await asyncio.to_thread(
                ctx.cluster.read_deployment, item.namespace, item.deployment
            )
        except ClusterError:
            continue
        if owner is not None:
            ctx.cluster.event(owner, "Warning", "SpotInterruption", message)
