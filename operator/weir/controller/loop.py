"""The control loop's step for one InferenceDeployment, and what all steps share.

Every period: read the object, take the shared metrics snapshot (one query
set serves every deployment: the cache refreshes it at most every few
seconds, whatever the number of deployments), decide (pure, `control.decide`),
apply children with the decided replicas and spill policy, write status, post
events on changes, export the operator's own metrics.

Fail static: when Prometheus cannot be read the planner holds the last plan
(never scaling down on missing data) and MetricsAvailable says why; when
the decision itself fails (no profile, budget below the minimum fleet), the
children keep their last replicas and Degraded says why.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from pydantic import ValidationError

from weir.api import (
    CapacityPoolSpec,
    EngineProfile,
    HostedEndpointSpec,
    InferenceDeploymentSpec,
)
from weir.controller.apply import Applier
from weir.controller.children import ChildSettings, InvalidReferenceError
from weir.controller.conditions import set_condition
from weir.controller.control import Decision, decide, decode_state
from weir.controller.opmetrics import OperatorMetrics
from weir.controller.reconcile import Outcome, reconcile
from weir.controller.references import read_hosted, read_pools
from weir.metrics.source import MetricsSnapshot, MetricsSource
from weir.planner.types import PlannerState, PlanningError, PoolObservation

GROUP, VERSION, PLURAL = "weir.dev", "v1alpha1", "inferencedeployments"


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
    """What every step shares: clients, settings, profiles, metrics, planner memory."""

    api: client.ApiClient
    applier: Applier
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
    resync_every: int = 10
    clock: Any = time.time


def _observed(status: dict[str, Any]) -> dict[str, PoolObservation]:
    rows = status.get("pools") or []
    return {
        str(r["pool"]): PoolObservation(
            ready=int(r.get("readyReplicas", 0)),
            warming=max(0, int(r.get("replicas", 0)) - int(r.get("readyReplicas", 0))),
        )
        for r in rows
        if r.get("pool")
    }


References = tuple[dict[str, CapacityPoolSpec], HostedEndpointSpec | None]


def _references(ctx: LoopContext, body: dict[str, Any]) -> References | None:
    """The pools and endpoint the spec names, read once per step (None: let reconcile say why)."""
    try:
        spec = InferenceDeploymentSpec.model_validate(body.get("spec") or {})
        return read_pools(ctx.api, spec), read_hosted(ctx.api, body["metadata"]["namespace"], spec)
    except (InvalidReferenceError, ValidationError):
        return None


def _decide(
    ctx: LoopContext,
    body: dict[str, Any],
    snapshot: MetricsSnapshot,
    now_s: float,
    references: References | None,
) -> Decision | str:
    """The decision, or why none could be made (for the Degraded condition)."""
    meta, status = body["metadata"], body.get("status") or {}
    if references is None:
        return "the spec or a referenced CapacityPool or HostedEndpoint is invalid"
    pools, hosted = references
    try:
        spec = InferenceDeploymentSpec.model_validate(body.get("spec") or {})
        if len(pools) != len(spec.pools) or (spec.hosted is not None and hosted is None):
            return "a referenced CapacityPool or HostedEndpoint is missing"
        state = ctx.states.get(meta["uid"]) or decode_state(status.get("plannerState"))
        metrics = snapshot.for_deployment(meta["namespace"], meta["name"])
        ctx.exported.targets(
            meta["namespace"],
            meta["name"],
            spec.cost.budget_dollars_per_hour,
            spec.slo.useful_token_target,
        )
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
        )
    except (PlanningError, InvalidReferenceError, ValidationError) as exc:
        return str(exc)


def _merge(
    outcome: Outcome, decision: Decision | str, now: str, generation: int | None
) -> dict[str, Any]:
    status = dict(outcome.status)
    conditions = list(status.get("conditions") or [])
    if isinstance(decision, str):
        conditions = set_condition(
            conditions, "Degraded", True, "NoPlan", decision, now, generation
        )
    else:
        status.update(decision.status)
        status["spillPolicy"] = decision.router_policy
        for kind, ok, reason, message in decision.conditions:
            conditions = set_condition(conditions, kind, ok, reason, message, now, generation)
    status["conditions"] = conditions
    return status


def step(
    ctx: LoopContext, body: dict[str, Any], snapshot: MetricsSnapshot, now_s: float
) -> tuple[dict[str, Any], Decision | str]:
    """Decide and converge one deployment; the status to write and the decision (sync)."""
    started = time.monotonic()
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    previous = ctx.last_step_at.get(key)
    ctx.last_step_at[key] = started
    if previous is not None:
        ctx.exported.step_gap.observe(started - previous)
    references = _references(ctx, body)
    decision = _decide(ctx, body, snapshot, now_s, references)
    uid = body["metadata"]["uid"]
    count = ctx.steps_taken.get(uid, 0)
    ctx.steps_taken[uid] = count + 1
    if count % ctx.resync_every == 0:
        ctx.applied.pop(uid, None)  # level-based: re-apply everything now and then
    planned = decision if isinstance(decision, Decision) else None
    if planned is not None:
        ctx.states[uid] = planned.plan.state
    outcome = reconcile(
        ctx.api,
        ctx.applier,
        body,
        now_text(now_s),
        ctx.children,
        replicas=planned.replicas if planned else None,
        router_policy=planned.router_policy if planned else None,
        applied=ctx.applied,
        references=references,
    )
    generation = body["metadata"].get("generation")
    status = _merge(outcome, decision, now_text(now_s), generation)
    when, what = ctx.interruptions.get(key, (-1e18, ""))
    recent = now_s - when < ctx.spot_condition_s
    status["conditions"] = set_condition(
        status["conditions"],
        "SpotInterrupted",
        recent,
        "SpotReclaimed" if recent else "NoInterruption",
        what if recent else f"no spot interruption in the last {ctx.spot_condition_s:.0f}s",
        now_text(now_s),
        generation,
    )
    ctx.exported.observe(body["metadata"]["namespace"], body["metadata"]["name"], status)
    ctx.exported.steps.inc()
    ctx.exported.step_seconds.observe(time.monotonic() - started)
    return status, decision
